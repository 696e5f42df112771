"""Standalone BatchNormalization (and QBatchNormalization): ``nnet::normalize``.

``res = (res_T)(data * scale + bias)`` with the product and the sum at full precision;
``scale``/``bias`` are per element (``n_filt == -1``) or per channel (``ires % n_filt``).
Manifest entry: ``scale_type``, ``bias_type``, ``n_filt``; arrays ``scale`` and
``bias`` (raw integers).  BatchNormalization folded into a Dense/Conv layer by hls4ml
needs nothing here: it is in that layer's weights."""

from __future__ import annotations

import numpy as np

from sim.fixed import Fixed
from sim.network.registry import Layer, register


@register("batchnorm")
class BatchNorm(Layer):
    def __init__(self, spec, arrays):
        super().__init__(spec, arrays)
        self.scale = Fixed(arrays["scale"].astype(np.int64).ravel(), self.type_of("scale_type"))
        self.bias = Fixed(arrays["bias"].astype(np.int64).ravel(), self.type_of("bias_type"))
        self.n_filt = int(spec.get("n_filt", -1))

    def forward(self, x: Fixed) -> Fixed:
        n = len(x.raw)
        flat = Fixed(x.raw.reshape(n, -1), x.type)
        n_in = flat.raw.shape[1]
        idx = np.arange(n_in) if self.n_filt in (-1, 0) or self.n_filt >= 2**31 else np.arange(n_in) % self.n_filt
        scale = Fixed(self.scale.raw[idx], self.scale.type)
        bias = Fixed(self.bias.raw[idx], self.bias.type)
        y = flat * scale + bias
        res = self.result_type.cast(y.raw, y.type)
        return Fixed(np.asarray(res).reshape((n, *self.output_shape)), self.result_type)
