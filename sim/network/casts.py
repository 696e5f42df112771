"""Fast int64 paths for the most common casts; everything else goes to ``sim.fixed``.

``FixedType.cast`` ports ``ap_fixed_base::operator=`` in full generality (all seven
quantization and five overflow modes, any width), which costs a dozen passes over
the array.  The jet-tagger-sized networks spend most of their time in casts whose
modes are AP_TRN/AP_RND and AP_WRAP/AP_SAT; for those the result is a shift, an
optional half-LSB add and a wrap or clip.  Results are identical by construction
(and checked against hls4ml's C simulation by the oracle tests); anything else -
other modes, saturation bits, ap_int targets, widths beyond 62 bits - is delegated.
"""

from __future__ import annotations

import numpy as np

from sim.fixed import FixedType

_FAST_MODES_Q = ("AP_TRN", "AP_RND")
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
    )


def _overflow(q: np.ndarray, dst: FixedType) -> np.ndarray:
    """Clip (AP_SAT) or keep the low W bits (AP_WRAP); ``q`` is a scratch array."""
    if dst.overflow == "AP_SAT":
        return np.clip(q, dst.min_raw, dst.max_raw, out=q)
    half = np.int64(1 << (dst.width - 1)) if dst.signed else np.int64(0)
    q += half
    q &= np.int64((1 << dst.width) - 1)
    q -= half
    return q


def _in_range(src: FixedType, dst: FixedType, sh: int) -> bool:
    """Every value of ``src`` (after the shift/rounding) fits ``dst``: no overflow step."""
    lo, hi = src.min_raw, src.max_raw
    if sh > 0:
        lo, hi = lo >> sh, (hi >> sh) + 1
    else:
        lo, hi = lo << -sh, hi << -sh
    return dst.min_raw <= lo and hi <= dst.max_raw


def cast(raw: np.ndarray, src: FixedType, dst: FixedType) -> np.ndarray:
    """``dst x = (src) raw``, as ``FixedType.cast``; int64 out."""
    if src == dst:
        return np.asarray(raw, dtype=np.int64)
    if not _fast_ok(src, dst):
        return np.asarray(dst.cast(raw, src)).astype(np.int64)
    raw = np.asarray(raw, dtype=np.int64)
    sh = src.frac_bits - dst.frac_bits
    if sh > 0:
        q = raw + np.int64(1 << (sh - 1)) if dst.quantization == "AP_RND" else raw.copy()
        q >>= np.int64(sh)
    elif sh < 0:
        q = raw << np.int64(-sh)
    else:
        q = raw.copy()
    if _in_range(src, dst, sh):
        return q
    return _overflow(q, dst)


def from_float(x: np.ndarray, dst: FixedType) -> np.ndarray:
    """``dst(double)``: the input port's cast, as ``FixedType.to_raw``; int64 out."""
    x = np.asarray(x, dtype=np.float64)
    if not _fast_ok(FixedType(2, 1), dst) or dst.frac_bits > 900:
        return np.asarray(dst.to_raw(x)).astype(np.int64)
    v = np.ldexp(x, dst.frac_bits)  # exact: scaling by a power of two
    limit = 2.0**51  # v + 0.5 and floor are exact below this
    if not np.all(np.abs(v) < limit):  # NaN, inf or huge: the general path
        return np.asarray(dst.to_raw(x)).astype(np.int64)
    if dst.quantization == "AP_RND":
        v = v + 0.5
    return _overflow(np.floor(v).astype(np.int64), dst)
