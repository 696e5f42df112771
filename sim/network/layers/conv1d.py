"""Conv1D (and QConv1D), channels last, io_parallel: ``nnet::conv_1d_cl``.

The firmware builds, per output pixel, the patch of ``filt_width * n_chan`` inputs
(zeros in the padding) and runs the dense multiply-accumulate on it with the weights
laid out (filt_width, n_chan, n_filt).  Manifest entry: ``in_width``, ``n_chan``,
``filt_width``, ``n_filt``, ``stride_width``, ``pad_left``, ``pad_right``,
``out_width``, and the Dense fields; arrays ``weight`` (filt_width, n_chan, n_filt),
``bias`` (n_filt,)."""

from __future__ import annotations

import numpy as np

from sim.fixed import Fixed
from sim.network.mac import AccumulatorPerInputType
from sim.network.registry import Layer, register


@register("conv1d")
class Conv1D(AccumulatorPerInputType, Layer):
    mac_kernel = "conv"

    def __init__(self, spec, arrays):
        super().__init__(spec, arrays)
        self.filt_width, self.n_chan, self.n_filt = arrays["weight"].shape
        self.weight = arrays["weight"].reshape(self.filt_width * self.n_chan, self.n_filt)
        self.bias = arrays["bias"]
        self.accum_type = self.type_of("accum_type")
        self.stride = int(self.param("stride_width"))
        self.pad_left, self.pad_right = int(self.param("pad_left")), int(self.param("pad_right"))
        self.out_width = int(self.param("out_width"))

    def forward(self, x: Fixed) -> Fixed:
        n = len(x.raw)
        data = x.raw.reshape(n, -1, self.n_chan)
        padded = np.zeros((n, data.shape[1] + self.pad_left + self.pad_right, self.n_chan), dtype=data.dtype)
        padded[:, self.pad_left : self.pad_left + data.shape[1]] = data
        starts = np.arange(self.out_width) * self.stride
        taps = starts[:, None] + np.arange(self.filt_width)[None, :]  # (out_width, filt_width)
        patches = padded[:, taps, :].reshape(n * self.out_width, self.filt_width * self.n_chan)
        res = self.mac_result(x.type, patches)
        return Fixed(res.reshape((n, *self.output_shape)), self.result_type)
