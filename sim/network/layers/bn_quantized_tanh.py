"""BatchNormalization merged with a binary/ternary tanh: ``nnet::normalize_binary_tanh``
(``data >= threshold`` -> 1 else 0, as ``ap_uint<1>``) and
``nnet::normalize_ternary_tanh`` (``data > hi`` -> 1, ``data <= lo`` -> -1, else 0).

Manifest entry: ``mode`` (binary, ternary), ``n_filt`` (-1: per element),
``threshold_type`` (the input's type); arrays ``threshold`` or ``threshold_hi`` and
``threshold_lo`` as raw integers of that type."""

from __future__ import annotations

import numpy as np

from sim.fixed import Fixed
from sim.manifest import ManifestError
from sim.network.casts import cast
from sim.network.registry import Layer, register


@register("bn_quantized_tanh")
class BatchNormQuantizedTanh(Layer):
    def __init__(self, spec, arrays):
        super().__init__(spec, arrays)
        self.mode = self.param("mode")
        self.threshold_type = self.type_of("threshold_type")
        self.arrays = {k: v.astype(np.int64).ravel() for k, v in arrays.items()}
        self.n_filt = int(spec.get("n_filt", -1))
        if self.mode not in ("binary", "ternary"):
            raise ManifestError(f"layer {self.name!r}: unknown mode {self.mode!r}")

    def _thresholds(self, key: str, n_in: int) -> np.ndarray:
        idx = np.arange(n_in) if self.n_filt <= 0 else np.arange(n_in) % self.n_filt
        return self.arrays[key][idx]

    def forward(self, x: Fixed) -> Fixed:
        n = len(x.raw)
        data = cast(x.raw.reshape(n, -1), x.type, self.threshold_type)  # datareg is data_T
        if self.mode == "binary":
            res = (data >= self._thresholds("threshold", data.shape[1])).astype(np.int64)
        else:
            hi, lo = self._thresholds("threshold_hi", data.shape[1]), self._thresholds("threshold_lo", data.shape[1])
            res = np.where(data > hi, 1, np.where(data <= lo, -1, 0)).astype(np.int64)
        return Fixed(res.reshape((n, *self.output_shape)), self.result_type)
