"""Conv2D (and QConv2D, and hls4ml's PointwiseConv2D for 1x1 kernels), channels last.

io_parallel (``nnet::conv_2d_cl``): the im2col ``fill_buffer`` builds, per output
pixel, the patch of ``filt_height * filt_width * n_chan`` inputs (zeros in the
padding), in (row, column, channel) order, and runs the dense multiply-accumulate
on it (``conv_2d_latency_cl`` / ``conv_2d_resource_cl``: each product cast to
``accum_t``, the bias first, the sum cast to ``res_T``).  io_stream
(``nnet::conv_2d_buffer_cl``): the line buffer hands the same window to the dense
kernel; hls4ml has already inserted a ZeroPadding2D layer before it, so the
exported pads are zero.  Either way the arithmetic is ``sim.network.mac``'s.

Manifest entry: ``in_height``, ``in_width``, ``n_chan``, ``filt_height``,
``filt_width``, ``n_filt``, ``stride_height``, ``stride_width``, ``pad_top``,
``pad_bottom``, ``pad_left``, ``pad_right``, ``out_height``, ``out_width`` and the
Dense fields; arrays ``weight`` (filt_height, filt_width, n_chan, n_filt) and
``bias`` (n_filt,)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from sim.fixed import Fixed
from sim.manifest import ManifestError
from sim.network.mac import AccumulatorPerInputType
from sim.network.registry import Layer, register


def patch_indices(out_size: int, stride: int, filt: int) -> np.ndarray:
    """(out_size, filt) input positions (in the padded image) of every window."""
    return (np.arange(out_size) * stride)[:, None] + np.arange(filt)[None, :]


@register("conv2d")
class Conv2D(AccumulatorPerInputType, Layer):
    mac_reuse = False  # a saturating accumulator with a Resource conv2d is refused at export

    def __init__(self, spec, arrays):
        super().__init__(spec, arrays)
        w = arrays["weight"]
        if w.ndim != 4:
            raise ManifestError(f"layer {self.name!r} (conv2d): weight must be 4-d, got shape {w.shape}")
        self.filt_height, self.filt_width, self.n_chan, self.n_filt = w.shape
        self.weight = w.reshape(-1, self.n_filt)
        self.bias = arrays["bias"]
        self.accum_type = self.type_of("accum_type")
        self.in_height, self.in_width = int(self.param("in_height")), int(self.param("in_width"))
        self.pads = tuple(int(self.param(k)) for k in ("pad_top", "pad_bottom", "pad_left", "pad_right"))
        self.out_height, self.out_width = int(self.param("out_height")), int(self.param("out_width"))
        self.strides = (int(self.param("stride_height")), int(self.param("stride_width")))
        self.rows = patch_indices(self.out_height, self.strides[0], self.filt_height)
        self.cols = patch_indices(self.out_width, self.strides[1], self.filt_width)
        if self.rows.max() >= self.in_height + self.pads[0] + self.pads[1] or self.cols.max() >= (
            self.in_width + self.pads[2] + self.pads[3]
        ):
            raise ManifestError(f"layer {self.name!r} (conv2d): output size does not fit the padded input")

    def patches(self, raw: np.ndarray) -> np.ndarray:
        """im2col: (n * out_height * out_width, filt_height * filt_width * n_chan)."""
        n = len(raw)
        data = raw.reshape(n, self.in_height, self.in_width, self.n_chan)
        top, bottom, left, right = self.pads
        if any(self.pads):
            data = np.pad(data, ((0, 0), (top, bottom), (left, right), (0, 0)))
        win = sliding_window_view(data, (self.filt_height, self.filt_width), axis=(1, 2))  # (n, y, x, c, fh, fw)
        win = win[:, :: self.strides[0], :: self.strides[1]][:, : self.out_height, : self.out_width]
        return np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(n * self.out_height * self.out_width, -1)

    def forward(self, x: Fixed) -> Fixed:
        n = len(x.raw)
        res = self.mac_result(x.type, self.patches(self.mac_input(x)))
        return Fixed(res.reshape((n, *self.output_shape)), self.result_type)
