"""ZeroPadding1D/2D (``nnet::zeropad1d_cl`` / ``zeropad2d_cl``), channels last: the
input cast to ``res_T`` with zero rows/columns around it.  hls4ml inserts these
before every padded convolution in io_stream, and they come from Keras's own
ZeroPadding layers in both io types.

Manifest entry: ``pad_left``, ``pad_right`` and, for 2-d, ``pad_top``, ``pad_bottom``."""

from __future__ import annotations

import numpy as np

from sim.fixed import Fixed
from sim.network.casts import cast_either
from sim.network.registry import Layer, register


@register("zeropad1d", "zeropad2d")
class ZeroPadding(Layer):
    def __init__(self, spec, arrays):
        super().__init__(spec, arrays)
        width = (int(self.param("pad_left")), int(self.param("pad_right")))
        if spec["kind"] == "zeropad2d":
            self.pad = ((0, 0), (int(self.param("pad_top")), int(self.param("pad_bottom"))), width, (0, 0))
        else:
            self.pad = ((0, 0), width, (0, 0))

    float_input = True

    def forward(self, x: Fixed) -> Fixed:
        raw = cast_either(x.raw, x.type, self.result_type)
        in_shape = [o - before - after for o, (before, after) in zip(self.output_shape, self.pad[1:], strict=True)]
        return Fixed(np.pad(raw.reshape(len(raw), *in_shape), self.pad), self.result_type)
