"""The layers' casts: ``FixedType.cast`` plus two shortcuts that matter inside a network.

``FixedType.cast`` already takes an int64 fast path for the common modes; here the
layers may also hand over a scratch array to be overwritten (no copy), and the
overflow step is skipped when the two types prove no value can leave the target's
range (no pass over the data at all).  The rounding itself is ``sim.fixed``'s
``round_shift``; anything else - other overflow modes, saturation bits, ap_int
targets, widths beyond 62 bits - is delegated to ``FixedType.cast``.
"""

from __future__ import annotations

import numpy as np

from sim.fixed import FixedType, note_cast, round_shift

_FAST_MODES_Q = ("AP_TRN", "AP_RND", "AP_RND_CONV", "AP_RND_ZERO", "AP_RND_INF", "AP_RND_MIN_INF", "AP_TRN_ZERO")
_FAST_MODES_O = ("AP_WRAP", "AP_SAT")
_LIMIT = 62


def _fast_ok(src: FixedType, dst: FixedType) -> bool:
    return (
        dst.quantization in _FAST_MODES_Q
        and dst.overflow in _FAST_MODES_O
        and dst.sat_bits == 0
        and not dst.integer
        and src.width + max(0, dst.frac_bits - src.frac_bits) + 1 <= _LIMIT
        and dst.width + 1 <= _LIMIT
        and src.frac_bits - dst.frac_bits <= _LIMIT  # round_shift's shifts: its bias overflowed at 64
    )


def _overflow(q: np.ndarray, dst: FixedType) -> np.ndarray:
    """Clip (AP_SAT) or keep the low W bits (AP_WRAP); ``q`` is a scratch array.

    The signed wrap is a sign extension from bit W-1: shift left then arithmetic
    right by 64-W, in place."""
    if dst.overflow == "AP_SAT":
        return np.clip(q, dst.min_raw, dst.max_raw, out=q)
    if dst.signed:
        q <<= np.int64(64 - dst.width)
        q >>= np.int64(64 - dst.width)
        return q
    q &= np.int64((1 << dst.width) - 1)
    return q


def _in_range(src: FixedType, dst: FixedType, sh: int) -> bool:
    """Every value of ``src`` (after the shift/rounding) fits ``dst``: no overflow step."""
    lo, hi = src.min_raw, src.max_raw
    if sh > 0:
        lo, hi = lo >> sh, (hi >> sh) + 1
    else:
        lo, hi = lo << -sh, hi << -sh
    return dst.min_raw <= lo and hi <= dst.max_raw


def cast(raw: np.ndarray, src: FixedType, dst: FixedType, scratch: bool = False) -> np.ndarray:
    """``dst x = (src) raw``, as ``FixedType.cast``; int64 out.  ``scratch``: ``raw``
    is a temporary int64 array the cast may overwrite."""
    if src == dst:
        return np.asarray(raw, dtype=np.int64)
    if not _fast_ok(src, dst):
        return np.asarray(dst.cast(raw, src)).astype(np.int64)
    note_cast(src, dst)  # the fast path below bypasses FixedType.cast, which notes its own
    raw = np.asarray(raw, dtype=np.int64)
    sh = src.frac_bits - dst.frac_bits
    if sh > 0:
        if scratch and dst.quantization == "AP_TRN":
            raw >>= np.int64(sh)
            q = raw
        else:
            q = round_shift(raw, sh, dst.quantization, src.signed)
    elif sh < 0:
        q = raw << np.int64(-sh)
    else:
        q = raw if scratch else raw.copy()
    if _in_range(src, dst, sh):
        return q
    return _overflow(q, dst)


def from_float(x: np.ndarray, dst: FixedType) -> np.ndarray:
    """``dst(double)``: the input port's cast, as ``FixedType.to_raw`` (which has its own
    exact float64 fast path); int64 out."""
    return np.asarray(dst.to_raw(np.asarray(x, dtype=np.float64))).astype(np.int64, copy=False)


# ------------------------------------------------------------ the float64 domain
# Between the matrix products of a dense chain the raw integers stay in float64
# (``exact_in_float``): NumPy's int64 right shift is not vectorised (about 5x slower
# than a float64 multiply), and the products come out of BLAS as floats anyway.  Every
# step below is exact for integers below 2**52: scaling by a power of two only moves the
# exponent, floor/ceil/rint of such a value are exact, and the +-0.5 of the rounding
# modes stays within the 53-bit significand because the value's lowest bit is 2**-sh
# with sh >= 1.
_FLOAT_BITS = 52
_FLOAT_MIN_EXP = 1022  # 2**-1022: the smallest normal double
_FLOAT_ROUND = {
    "AP_TRN": np.floor,
    "AP_TRN_ZERO": np.trunc,
    "AP_RND_CONV": np.rint,  # IEEE round half to even
}


def exact_in_float(t: FixedType) -> bool:
    """Raw integers of ``t`` are held exactly, with room for the casts' temporaries."""
    return t.width <= _FLOAT_BITS and not t.integer


def float_cast_ok(src: FixedType, dst: FixedType) -> bool:
    """``cast_float`` computes ``(dst) src`` exactly (else: the int64 path)."""
    sh = src.frac_bits - dst.frac_bits
    return (
        exact_in_float(src)
        and exact_in_float(dst)
        and (sh <= 0 or dst.quantization in (*_FLOAT_ROUND, "AP_RND", "AP_RND_MIN_INF"))
        and dst.overflow in _FAST_MODES_O
        and dst.sat_bits == 0
        and (sh >= 0 or src.width - sh <= _FLOAT_BITS)
        and sh <= _FLOAT_MIN_EXP  # y * 2**-sh stays a normal double (beyond, -1 * 2**-sh underflowed to -0.0)
    )


def cast_float(y: np.ndarray, src: FixedType, dst: FixedType, scratch: bool = False) -> np.ndarray:
    """``cast`` on raw integers held in float64 (``float_cast_ok(src, dst)`` must hold);
    float64 out.  ``scratch``: ``y`` is a temporary the cast may overwrite."""
    if src == dst:
        return y
    note_cast(src, dst)
    sh = src.frac_bits - dst.frac_bits
    q = y if scratch else np.empty_like(y)
    if sh:
        np.multiply(y, 2.0**-sh, out=q)
    elif not scratch:
        q[...] = y
    if sh > 0:
        mode = dst.quantization
        if mode == "AP_RND":  # ties up
            q += 0.5
            np.floor(q, out=q)
        elif mode == "AP_RND_MIN_INF":  # ties down
            q -= 0.5
            np.ceil(q, out=q)
        else:
            _FLOAT_ROUND[mode](q, out=q)
    if _in_range(src, dst, sh):
        return q
    if dst.overflow == "AP_SAT":
        np.minimum(q, float(dst.max_raw), out=q)
        return np.maximum(q, float(dst.min_raw), out=q)
    lo, hi = (q.min(), q.max()) if q.size else (0.0, 0.0)
    if dst.min_raw <= lo and hi <= dst.max_raw:
        return q  # nothing wrapped: the common case, two reductions instead of four passes
    if max(-lo, hi) < 2.0**50:
        # k = 2**W * floor((q - min_raw) / 2**W) is the multiple of 2**W nearest to
        # q + c (c below: never a tie, q + c exact), rounded by adding and removing
        # M = 1.5 * 2**(52+W), whose ulp is 2**W: four passes instead of five
        c = 0.5 - float(dst.min_raw) - 2.0 ** (dst.width - 1)
        magic = 1.5 * 2.0 ** (52 + dst.width)
        k = q + c
        k += magic
        k -= magic
    else:
        k = q - float(dst.min_raw)
        k *= 2.0**-dst.width
        np.floor(k, out=k)
        k *= 2.0**dst.width
    q -= k
    return q


def as_int(raw: np.ndarray) -> np.ndarray:
    """Raw integers as int64 (from the float64 domain or already int64)."""
    return raw.astype(np.int64, copy=False)


def cast_either(raw: np.ndarray, src: FixedType, dst: FixedType, scratch: bool = False) -> np.ndarray:
    """``cast`` for raws in either domain: float64 stays float64 where exact, else int64.
    ``scratch``: ``raw`` is a temporary the cast may overwrite."""
    if raw.dtype == np.float64:
        if float_cast_ok(src, dst):
            return cast_float(raw, src, dst, scratch)
        raw, scratch = as_int(raw), True  # a new int64 array
    return cast(raw, src, dst, scratch)
