"""Two-input merges (``nnet_merge.h``, ``nnet_merge_stream.h``: the same arithmetic in
both io types).

* add / subtract / multiply: the exact result in ap_fixed's ``plus`` / ``minus`` /
  ``mult`` type, cast to ``res_T``;
* average: ``(a + b) * ap_ufixed<1,0>(0.5)`` - the exact sum with one more fraction
  bit - cast to ``res_T``;
* maximum / minimum: ``a > b`` (``a < b``) compared exactly, the chosen input cast
  to ``res_T``;
* concatenate (1-d, 2-d, 3-d): each input cast to ``res_T`` and placed along the
  axis the firmware picks from the config's Keras ``axis`` (``concatenate2d``: 2 or
  -1 the last axis, else the first; ``concatenate3d``: 3/-1, 2/-2, else the first).

The result types themselves are hls4ml's inferred ones, read from the manifest.
Manifest entry: ``merge``: ``op``; ``concatenate``: ``axis`` (as Keras gave it)."""

from __future__ import annotations

import numpy as np

from sim.fixed import Fixed, FixedType
from sim.manifest import ManifestError
from sim.network.casts import cast
from sim.network.registry import Layer, register

OPS = ("add", "subtract", "multiply", "average", "maximum", "minimum")
HALF = Fixed(np.array(1, dtype=np.int64), FixedType(1, 0, False))  # ap_ufixed<1,0>(0.5)


def _flat(x: Fixed, n_elem: int) -> Fixed:
    """One sample per row, broadcast as the io_parallel kernel indexes (``ii % n_elem``)."""
    raw = np.asarray(x.raw).reshape(len(x.raw), -1)
    if raw.shape[1] != n_elem:
        raw = raw[:, np.arange(n_elem) % raw.shape[1]]
    return Fixed(raw, x.type)


def _aligned(a: Fixed, b: Fixed) -> tuple[np.ndarray, np.ndarray]:
    """Raw values on a common grid, for exact comparison."""
    f = max(a.type.frac_bits, b.type.frac_bits)
    return a.raw << (f - a.type.frac_bits), b.raw << (f - b.type.frac_bits)


@register("merge")
class Merge(Layer):
    def __init__(self, spec, arrays):
        super().__init__(spec, arrays)
        self.op = str(self.param("op"))
        if self.op not in OPS:
            raise ManifestError(f"layer {self.name!r} (merge): op {self.op!r} is not one of {', '.join(OPS)}")
        self.n_elem = int(np.prod(self.output_shape))

    def _out(self, s: Fixed) -> Fixed:
        return self._cast(s.raw, s.type)

    def _cast(self, raw: np.ndarray, t: FixedType) -> Fixed:
        res = np.asarray(cast(raw, t, self.result_type)).astype(np.int64)
        return Fixed(res.reshape((len(res), *self.output_shape)), self.result_type)

    def forward(self, a: Fixed, b: Fixed) -> Fixed:
        a, b = _flat(a, self.n_elem), _flat(b, self.n_elem)
        if self.op == "add":
            return self._out(a + b)
        if self.op == "subtract":
            return self._out(a - b)
        if self.op == "multiply":
            return self._out(a * b)
        if self.op == "average":
            return self._out((a + b) * HALF)
        ra, rb = _aligned(a, b)
        pick_a = ra > rb if self.op == "maximum" else ra < rb
        ca = np.asarray(cast(a.raw, a.type, self.result_type)).astype(np.int64)
        cb = np.asarray(cast(b.raw, b.type, self.result_type)).astype(np.int64)
        res = np.where(pick_a, ca, cb)
        return Fixed(res.reshape((len(res), *self.output_shape)), self.result_type)


def concat_axis(axis: int, rank: int) -> int:
    """The per-sample axis ``concatenateNd`` uses for the config's Keras ``axis``."""
    if rank == 1:
        return 0
    if rank == 2:
        return 1 if axis in (2, -1) else 0
    if rank == 3:
        return 2 if axis in (3, -1) else 1 if axis in (2, -2) else 0
    raise ManifestError(f"concatenation of rank {rank} tensors is not supported (1 to 3)")


@register("concatenate")
class Concatenate(Layer):
    def __init__(self, spec, arrays):
        super().__init__(spec, arrays)
        self.axis = concat_axis(int(self.param("axis")), len(self.output_shape))

    def forward(self, a: Fixed, b: Fixed) -> Fixed:
        parts = [np.asarray(cast(x.raw, x.type, self.result_type)).astype(np.int64) for x in (a, b)]
        res = np.concatenate(parts, axis=1 + self.axis)
        if res.shape[1:] != self.output_shape:
            raise ManifestError(
                f"layer {self.name!r} (concatenate): inputs {a.raw.shape[1:]} and {b.raw.shape[1:]} do not give "
                f"{self.output_shape}"
            )
        return Fixed(res, self.result_type)
