"""Max and average pooling, 1-d and 2-d, windowed and global, channels last
(``nnet_pooling.h`` for io_parallel, ``nnet_pooling_stream.h`` for io_stream).

The two io types do not compute the same thing, so the manifest says which one
(``stream``):

* io_parallel, windowed (``pooling2d_cl``): padding cells hold ``pad_val`` (the
  data type with only its top bit set - the most negative value of a signed type,
  but 2**(W-1) of an unsigned one - for max; 0 for average).  Max compares in the
  data type and casts the winner to ``accum_t``.  Average adds in window order,
  each partial sum cast to ``accum_t``, then ``y /= length`` (an integer division
  of the raw value, truncated towards zero) with ``length`` the pixels overlapping
  the image (or the whole window with ``count_pad``).  The result is cast to ``res_T``.
* io_stream, windowed (line buffer / encoded; no padding, stride == pool size):
  every window value is first cast to ``accum_t``; average sums them with
  ``nnet::reduce``'s balanced tree (each sum cast to ``accum_t``) and divides by the
  window size.
* global, io_parallel: as the windowed kernel over the whole image.
* global, io_stream: a running value per channel in ``accum_t`` (max starts at
  ``hls::numeric_limits<accum_t>::min()``, average at 0), each pixel cast to
  ``accum_t`` first; average divides by the pixel count at the end, straight into
  ``res_T``.

Manifest entry (``pooling1d``, ``pooling2d``): ``pool_op`` (``max``/``average``),
``in_height`` (2-d), ``in_width``, ``n_filt``, ``pool_height`` (2-d), ``pool_width``,
``stride_height`` (2-d), ``stride_width``, ``pad_top``/``pad_bottom`` (2-d),
``pad_left``, ``pad_right``, ``out_height`` (2-d), ``out_width``, ``count_pad``,
``accum_type``, ``stream``.  ``global_pooling1d``/``global_pooling2d``: ``pool_op``,
``in_height`` (2-d), ``in_width``, ``n_filt``, ``accum_type``, ``stream``.
"""

from __future__ import annotations

from functools import reduce

import numpy as np

from sim.fixed import Fixed, FixedType
from sim.manifest import ManifestError
from sim.network.casts import cast
from sim.network.layers.conv2d import patch_indices
from sim.network.registry import Layer, register

POOL_OPS = ("max", "average")


def trunc_div(raw: np.ndarray, divisor: np.ndarray | int) -> np.ndarray:
    """Integer division rounding towards zero (APInt ``sdiv``, C's ``/``)."""
    q = np.abs(raw) // divisor
    return np.where(raw < 0, -q, q)


def add_cast(a: np.ndarray, a_type: FixedType, b: np.ndarray, b_type: FixedType, to: FixedType) -> np.ndarray:
    """``(to)(a + b)``: the exact sum in ap_fixed's ``plus`` type, then the cast."""
    s = Fixed(a, a_type) + Fixed(b, b_type)
    return cast(s.raw, s.type, to)


def tree_sum(items: list[np.ndarray], t: FixedType) -> np.ndarray:
    """``nnet::reduce<T, N, Op_add<T>>``: left part the largest power of two below N."""
    n = len(items)
    if n == 1:
        return items[0]
    if n == 2:
        return add_cast(items[0], t, items[1], t, t)
    left = 1 << ((n - 1).bit_length() - 1)
    return add_cast(tree_sum(items[:left], t), t, tree_sum(items[left:], t), t, t)


def pad_value(t: FixedType, op: str) -> int:
    """``nnet::pad_val``: the top bit set for max, 0 for average."""
    if op == "average":
        return 0
    return t.min_raw if t.signed else 1 << (t.width - 1)


class _Pooling(Layer):
    def __init__(self, spec, arrays):
        super().__init__(spec, arrays)
        self.op = str(self.param("pool_op"))
        if self.op not in POOL_OPS:
            raise ManifestError(f"layer {self.name!r}: pool_op {self.op!r} is not one of {', '.join(POOL_OPS)}")
        self.accum_type = self.type_of("accum_type")
        self.stream = bool(spec.get("stream", False))
        self.two_d = spec["kind"].endswith("2d")
        self.in_height = int(self.param("in_height")) if self.two_d else 1
        self.in_width = int(self.param("in_width"))
        self.n_filt = int(self.param("n_filt"))

    def _image(self, x: Fixed) -> np.ndarray:
        return np.asarray(x.raw).reshape(len(x.raw), self.in_height, self.in_width, self.n_filt)

    def _finish(self, acc: np.ndarray) -> Fixed:
        res = np.asarray(cast(acc, self.accum_type, self.result_type)).astype(np.int64)
        return Fixed(res.reshape((len(res), *self.output_shape)), self.result_type)


@register("pooling1d", "pooling2d")
class Pooling(_Pooling):
    def __init__(self, spec, arrays):
        super().__init__(spec, arrays)
        if self.two_d:
            self.pool = (int(self.param("pool_height")), int(self.param("pool_width")))
            self.strides = (int(self.param("stride_height")), int(self.param("stride_width")))
            self.pads = tuple(int(self.param(k)) for k in ("pad_top", "pad_bottom", "pad_left", "pad_right"))
            out = (int(self.param("out_height")), int(self.param("out_width")))
        else:
            self.pool = (1, int(self.param("pool_width")))
            self.strides = (1, int(self.param("stride_width")))
            self.pads = (0, 0, int(self.param("pad_left")), int(self.param("pad_right")))
            out = (1, int(self.param("out_width")))
        self.count_pad = bool(spec.get("count_pad", False))
        if self.stream and (any(self.pads) or self.pool != self.strides):
            raise ManifestError(
                f"layer {self.name!r}: io_stream pooling needs no padding and strides equal to the pool size "
                "(as nnet_pooling_stream.h asserts)"
            )
        self.rows = patch_indices(out[0], self.strides[0], self.pool[0])
        self.cols = patch_indices(out[1], self.strides[1], self.pool[1])
        top, bottom, left, right = self.pads
        inside = np.pad(np.ones((self.in_height, self.in_width), dtype=np.int64), ((top, bottom), (left, right)))
        if self.rows.max() >= inside.shape[0] or self.cols.max() >= inside.shape[1]:
            raise ManifestError(f"layer {self.name!r}: output size does not fit the padded input")
        self.inside = inside
        size = self.pool[0] * self.pool[1]
        overlap = sum(self._window(inside[None, :, :, None], k)[0, :, :, 0] for k in range(size))
        self.length = np.full_like(overlap, size) if self.count_pad else overlap  # (out_h, out_w)

    def _window(self, padded: np.ndarray, k: int) -> np.ndarray:
        """Element ``k`` (row-major in the pool window) of every window: (n, out_h, out_w, c)."""
        kk, ll = divmod(k, self.pool[1])
        (sh, sw), (oh, ow) = self.strides, (len(self.rows), len(self.cols))
        return padded[:, kk : kk + (oh - 1) * sh + 1 : sh, ll : ll + (ow - 1) * sw + 1 : sw, :]

    def forward(self, x: Fixed) -> Fixed:
        data = self._image(x)
        top, bottom, left, right = self.pads
        if any(self.pads):
            data = np.pad(
                data, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=pad_value(x.type, self.op)
            )
        items = [self._window(data, k) for k in range(self.pool[0] * self.pool[1])]
        acc_t = self.accum_type
        if self.stream:
            items = [cast(item, x.type, acc_t) for item in items]
            if self.op == "max":
                return self._finish(reduce(np.maximum, items))
            return self._finish(trunc_div(tree_sum(items, acc_t), len(items)))
        if self.op == "max":
            return self._finish(cast(reduce(np.maximum, items), x.type, acc_t))
        acc = np.zeros_like(items[0])
        for item in items:
            acc = add_cast(acc, acc_t, item, x.type, acc_t)
        return self._finish(trunc_div(acc, self.length[None, :, :, None]))


@register("global_pooling1d", "global_pooling2d")
class GlobalPooling(_Pooling):
    def __init__(self, spec, arrays):
        super().__init__(spec, arrays)
        if self.stream and self.op == "max" and self.accum_type.sat_bits:
            raise ManifestError(
                f"layer {self.name!r}: io_stream global max pooling with accumulator {self.accum_type} "
                "(saturation bits) starts from an unspecified hls::numeric_limits<>::min(); not emulated"
            )

    def forward(self, x: Fixed) -> Fixed:
        data = self._image(x).reshape(len(x.raw), -1, self.n_filt)
        n_pix = data.shape[1]
        acc_t = self.accum_type
        if self.stream:
            start = acc_t.min_raw if self.op == "max" else 0
            acc = np.full((len(data), self.n_filt), start, dtype=np.int64)
            for p in range(n_pix):
                item = cast(data[:, p], x.type, acc_t)
                acc = np.where(acc > item, acc, item) if self.op == "max" else add_cast(acc, acc_t, item, acc_t, acc_t)
            return self._finish(acc if self.op == "max" else trunc_div(acc, n_pix))
        if self.op == "max":
            return self._finish(cast(data.max(axis=1), x.type, acc_t))
        acc = np.zeros((len(data), self.n_filt), dtype=np.int64)
        for p in range(n_pix):
            acc = add_cast(acc, acc_t, data[:, p], x.type, acc_t)
        return self._finish(trunc_div(acc, n_pix))
