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


def _quantize(raw: np.ndarray, sh: int, mode: str, src_signed: bool) -> np.ndarray:
    """Drop ``sh`` fraction bits with ap_fixed's quantization ``mode``.

    Every mode is ``floor((raw + c) / 2**sh)`` for an offset ``c`` in [0, 2**sh]
    chosen so that exact halves go the mode's way (``half = 2**(sh-1)``, ``neg`` the
    source's sign, ``odd`` the parity of the truncated value): RND ``half``,
    RND_MIN_INF ``half - 1``, RND_INF ``half - neg``, RND_ZERO ``half - 1 + neg``,
    RND_CONV ``half - 1 + odd``, TRN_ZERO ``neg * (2**sh - 1)``, TRN 0."""
    half = np.int64(1 << (sh - 1))
    shift = np.int64(sh)
    if mode == "AP_TRN" or (mode == "AP_TRN_ZERO" and not src_signed):
        return raw >> shift
    if mode == "AP_RND":
        q = raw + half
    elif mode == "AP_RND_MIN_INF":
        q = raw + (half - 1)
    elif mode == "AP_RND_INF":
        q = raw + half
        q -= raw < 0
    elif mode == "AP_RND_ZERO":
        q = raw + (half - 1)
        q += raw < 0
    elif mode == "AP_RND_CONV":
        q = (raw >> shift) & 1
        q += raw
        q += half - 1
    else:  # AP_TRN_ZERO on a signed source: towards zero
        q = (raw < 0).astype(np.int64)
        q *= np.int64((1 << sh) - 1)
        q += raw
    q >>= shift
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
    raw = np.asarray(raw, dtype=np.int64)
    sh = src.frac_bits - dst.frac_bits
    if sh > 0:
        if scratch and dst.quantization == "AP_TRN":
            raw >>= np.int64(sh)
            q = raw
        else:
            q = _quantize(raw, sh, dst.quantization, src.signed)
    elif sh < 0:
        q = raw << np.int64(-sh)
    else:
        q = raw if scratch else raw.copy()
    if _in_range(src, dst, sh):
        return q
    return _overflow(q, dst)


def from_float(x: np.ndarray, dst: FixedType) -> np.ndarray:
    """``dst(double)``: the input port's cast, as ``FixedType.to_raw``; int64 out.

    AP_TRN/AP_RND: ``floor(x * 2**F)`` (+ 0.5), exact in float64 below 2**51.  Other
    rounding modes take the integer path when ``x`` lies on a grid 3 bits finer (then
    the dropped bits are exact), else the general port."""
    x = np.asarray(x, dtype=np.float64)
    if not _fast_ok(FixedType(2, 1), dst) or dst.frac_bits > 900:
        return np.asarray(dst.to_raw(x)).astype(np.int64)
    v = np.ldexp(x, dst.frac_bits)  # exact: scaling by a power of two
    limit = 2.0**51  # v + 0.5 and floor are exact below this
    if not np.all(np.abs(v) < limit):  # NaN, inf or huge: the general path
        return np.asarray(dst.to_raw(x)).astype(np.int64)
    if dst.quantization == "AP_TRN":
        return _overflow(np.floor(v).astype(np.int64), dst)
    if dst.quantization == "AP_RND":
        return _overflow(np.floor(v + 0.5).astype(np.int64), dst)
    # other rounding modes: one more fraction bit is not enough in general; use
    # 2 extra bits scaled exactly, then the integer quantization above
    if not np.all(np.abs(v) < 2.0**48):
        return np.asarray(dst.to_raw(x)).astype(np.int64)
    fine = np.ldexp(x, dst.frac_bits + 3)
    if not np.array_equal(fine, np.floor(fine)):  # not exactly on the finer grid: general path
        return np.asarray(dst.to_raw(x)).astype(np.int64)
    return _overflow(_quantize(fine.astype(np.int64), 3, dst.quantization, True), dst)
