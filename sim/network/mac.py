"""Multiply-accumulate as hls4ml's dense kernels compute it (``nnet_dense_latency.h``,
``nnet_dense_resource.h``; conv layers reuse it on im2col patches).

What the firmware does, per output ``j``::

    acc = (accum_t) bias[j]
    for i in 0..n_in-1:  acc = (accum_t)(acc + (accum_t)(x[i] * w[i][j]))
    res[j] = (res_T) acc

Each product is cast to ``accum_t`` and every partial sum is cast back to ``accum_t``.
With a wrapping accumulator (``AP_WRAP``, no saturation bits) those casts are
arithmetic modulo 2**W, so the order of the sums does not matter and, when the cast
of a product loses no fraction bits, the whole thing is one exact integer matrix
product followed by one wrap (the *fast path*).  Otherwise products are cast one by
one; a saturating accumulator is summed in the firmware's exact order.

Exactness of the matrix product: see ``ExactAffine`` (the float32/float64/int64
choice is proven per layer from the input type and the actual weights and bias).
"""

from __future__ import annotations

import numpy as np

from sim.fixed import FixedType
from sim.manifest import ManifestError

_FLOAT_EXACT = 2**53
_FLOAT32_EXACT = 2**24
_CHUNK_ELEMENTS = 1 << 22  # products held at once on the slow paths


def wrap(raw: np.ndarray, t: FixedType) -> np.ndarray:
    """Keep the low W bits of int64 values as type ``t`` (two's complement)."""
    if t.width >= 64:
        return raw
    half = np.int64(1 << (t.width - 1)) if t.signed else np.int64(0)
    u = raw + half
    u &= np.int64((1 << t.width) - 1)
    u -= half
    return u


def is_wrapping(t: FixedType) -> bool:
    return t.overflow == "AP_WRAP" and t.sat_bits == 0


def max_abs_raw(t: FixedType) -> int:
    return max(abs(t.min_raw), abs(t.max_raw))


class ExactAffine:
    """``(x @ w) * 2**shift + bias`` on raw integers, exact.

    With ``B = (max|x_raw| * max_j sum_i |w_raw[i, j]|) * 2**shift + max|bias|``: float32
    BLAS when B < 2**24, float64 when B < 2**53 (every partial sum of every order,
    and every fused multiply-add, is then an integer the float holds exactly), else
    int64 (exact modulo 2**64, enough for a final wrap to W <= 64 bits)."""

    def __init__(self, w: np.ndarray, x_type: FixedType, shift: int, bias: np.ndarray) -> None:
        bound = max_abs_raw(x_type) * int(np.abs(w).sum(axis=0).max(initial=0))
        self.bound = (bound << shift) + int(np.abs(bias).max(initial=0))
        if self.bound < _FLOAT32_EXACT:
            self.dtype = np.float32
        elif self.bound < _FLOAT_EXACT:
            self.dtype = np.float64
        else:
            self.dtype = np.int64
        scale = 1 << shift
        if self.dtype == np.int64:
            self.w, self.shift = w.astype(np.int64), shift
        else:  # the shift folds into the weights: scaling by a power of two is exact
            self.w, self.shift = (w * scale).astype(self.dtype), 0
        self.bias = bias.astype(self.dtype)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = x.astype(self.dtype) @ self.w
        if self.shift:
            y <<= np.int64(self.shift)
        y += self.bias
        return y if self.dtype == np.int64 else y.astype(np.int64)


class Accumulator:
    """One dense multiply-accumulate: ``x (n, n_in) -> acc (n, n_out)`` in ``accum_t``.

    ``order`` is the sequence of input indices the firmware adds, needed only for a
    saturating accumulator (Latency strategy: 0..n_in-1)."""

    def __init__(
        self,
        layer: str,
        x_type: FixedType,
        weight: np.ndarray,
        weight_type: FixedType,
        bias: np.ndarray,
        bias_type: FixedType,
        accum_type: FixedType,
        strategy: str,
        product: str = "mult",
    ) -> None:
        if weight.ndim != 2 or bias.shape != (weight.shape[1],):
            raise ManifestError(f"layer {layer!r}: weight {weight.shape} and bias {bias.shape} do not match")
        self.data_binary = product == "data_binary"
        if self.data_binary:
            x_type = FixedType.parse("ap_int<2>")
        self.layer, self.x_type, self.accum = layer, x_type, accum_type
        self.weight = weight.astype(np.int64)
        self.product_type = x_type.mul_type(weight_type)
        self.bias = accum_type.cast(bias.astype(np.int64), bias_type).astype(np.int64)
        self.wrapping = is_wrapping(accum_type)
        self.shift = accum_type.frac_bits - self.product_type.frac_bits
        self.fast = self.wrapping and self.shift >= 0
        self.affine = ExactAffine(self.weight, x_type, self.shift, self.bias) if self.fast else None
        # no wrap needed when no sum can leave the accumulator's range
        bound = self.affine.bound if self.fast else None
        self.never_wraps = bound is not None and bound <= accum_type.max_raw and -bound >= accum_type.min_raw
        if self.product_type.width > 62 and not self.fast:
            raise ManifestError(
                f"layer {layer!r}: products of {self.product_type.width} bits with accumulator {accum_type} "
                "are beyond this emulator's exact slow path (62 bits)"
            )
        if not self.wrapping and strategy != "latency":
            raise ManifestError(
                f"layer {layer!r}: a saturating accumulator ({accum_type}) with the {strategy} strategy "
                "is not emulated (the summation order differs); use AP_WRAP for accum or the Latency strategy"
            )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.data_binary:  # ap_uint<1> data: 0 stands for -1 (the kernel returns -w)
            x = np.where(x == 0, -1, 1)
        if self.fast:
            acc = self.affine(x)
            return acc if self.never_wraps else wrap(acc, self.accum)
        n_in, n_out = self.weight.shape
        step = max(1, _CHUNK_ELEMENTS // max(1, n_in * n_out))
        out = [self._slow(x[i : i + step]) for i in range(0, len(x), step)]
        return np.concatenate(out) if out else np.zeros((0, n_out), dtype=np.int64)

    def _slow(self, x: np.ndarray) -> np.ndarray:
        products = x.astype(np.int64)[:, :, None] * self.weight[None, :, :]
        mult = self.accum.cast(products, self.product_type).astype(np.int64)
        if self.wrapping:
            return wrap(mult.sum(axis=1) + self.bias, self.accum)
        acc = np.broadcast_to(self.bias, (len(x), self.weight.shape[1])).copy()
        add_type = self.accum.add_type(self.accum)
        for i in range(self.weight.shape[0]):
            acc = self.accum.cast(acc + mult[:, i, :], add_type).astype(np.int64)
        return acc
