"""Conv1D (and QConv1D), channels last, io_parallel: ``nnet::conv_1d_cl``.

The firmware builds, per output pixel, the patch of ``filt_width * n_chan`` inputs
(zeros in the padding) and runs the dense multiply-accumulate on it with the weights
laid out (filt_width, n_chan, n_filt).  Manifest entry: ``in_width``, ``n_chan``,
``filt_width``, ``n_filt``, ``stride_width``, ``pad_left``, ``pad_right``,
``out_width``, and the Dense fields; arrays ``weight`` (filt_width, n_chan, n_filt),
``bias`` (n_filt,)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

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
        data = self.mac_input(x).reshape(n, -1, self.n_chan)
        if self.pad_left or self.pad_right:
            data = np.pad(data, ((0, 0), (self.pad_left, self.pad_right), (0, 0)))
        # im2col as a strided view, copied once (a fancy-index gather was 6x slower)
        win = sliding_window_view(data, self.filt_width, axis=1)[:, :: self.stride][:, : self.out_width]
        patches = np.ascontiguousarray(win.transpose(0, 1, 3, 2)).reshape(n * self.out_width, -1)
        res = self.mac_result(x.type, patches)
        return Fixed(res.reshape((n, *self.output_shape)), self.result_type)
