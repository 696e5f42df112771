"""Bit-exact ``ap_fixed`` / ``ap_int`` arithmetic on NumPy arrays.

Values are carried as raw two's-complement integers, never as floats, so that every
cast reproduces what Xilinx's ``ap_fixed.h`` computes bit for bit.  The casting
rules are a vectorised port of ``ap_fixed_base::operator=`` and of the ``double``
constructors in the HLS_arbitrary_Precision_Types headers (the ones hls4ml ships),
including their corner cases (the ``lD`` bit of AP_WRAP_SM, AP_SAT_SYM turning the
most negative value into ``-max``, infinities read as 2**1024, ``ap_int`` from a
``double`` truncating towards zero but giving +1 just below zero); ``ap_ufixed`` with
AP_WRAP_SM, which the header refuses at run time, is refused here too.
``tests/test_fixed_oracle.py`` proves it against those headers compiled with g++, and
``docs/fixed_point.md`` lists the header behaviour it reproduces.

Raw integers are ``int64`` arrays while every intermediate provably fits in 62 bits
and Python-integer object arrays beyond that, so results are exact for every width:
declared types have 1..``MAX_WIDTH`` (64) bits and ``to_raw`` hands out ``int64``
(``uint64`` for unsigned 64-bit types); full-precision results of ``Fixed`` arithmetic
may be wider (up to ``MAX_INTERMEDIATE_WIDTH``) and are cast back into declared types.
Doubles into types of up to 62 bits take an exact float64 fast path.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

MAX_WIDTH = 64
"""Widest declared type (``parse``, ``to_raw``): raw values must fit a 64-bit NumPy integer."""

MAX_INTERMEDIATE_WIDTH = 1024
"""Widest full-precision result of ``Fixed`` arithmetic (ap_int's AP_INT_MAX_W); such
results are carried as Python integers and can be cast back into declared types."""

_FAST_BITS = 62
"""Below this magnitude (2**62) int64 shifts, masks and sums cannot overflow."""

QUANTIZATION_MODES = (
    "AP_TRN",
    "AP_TRN_ZERO",
    "AP_RND",
    "AP_RND_ZERO",
    "AP_RND_MIN_INF",
    "AP_RND_INF",
    "AP_RND_CONV",
)
OVERFLOW_MODES = ("AP_WRAP", "AP_SAT", "AP_SAT_ZERO", "AP_SAT_SYM", "AP_WRAP_SM")

_UNSIGNED_WRAP_SM = (
    "AP_WRAP_SM needs a signed type; ap_fixed.h refuses ap_ufixed with sign-magnitude wrap "
    "(its constructors print 'cannot support AP_WRAP_SM' and exit)"
)

RawArray = np.ndarray
"""int64 array, or object array of Python ints for wide intermediates."""

_TYPE_RE = re.compile(r"^\s*(ap_fixed|ap_ufixed|ap_int|ap_uint|fixed|ufixed|int|uint)\s*<(.*)>\s*$")


def _mode_name(token: str, valid: tuple[str, ...], what: str, text: str) -> str:
    name = token.strip().upper()
    if not name.startswith("AP_"):
        name = "AP_" + name
    if name not in valid:
        raise ValueError(f"{text}: unknown {what} mode {token.strip()!r}; expected one of {', '.join(valid)}")
    return name


def _int_param(token: str, what: str, text: str) -> int:
    try:
        return int(token.strip())
    except ValueError:
        raise ValueError(f"{text}: {what} must be an integer, got {token.strip()!r}") from None


@dataclass(frozen=True)
class FixedType:
    """One HLS fixed-point or integer type, e.g. ``ap_fixed<8,3,AP_RND,AP_SAT>``.

    ``integer`` marks ``ap_int``/``ap_uint``: they hold the same bits as
    ``ap_fixed<W,W>`` but convert from fractions the C way (towards zero).
    """

    width: int
    int_bits: int
    signed: bool = True
    quantization: str = "AP_TRN"
    overflow: str = "AP_WRAP"
    sat_bits: int = 0
    integer: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.width <= MAX_INTERMEDIATE_WIDTH:
            raise ValueError(f"{self}: width {self.width} outside the supported 1..{MAX_INTERMEDIATE_WIDTH}")
        if self.quantization not in QUANTIZATION_MODES:
            raise ValueError(f"{self}: unknown quantization mode {self.quantization!r}")
        if self.overflow not in OVERFLOW_MODES:
            raise ValueError(f"{self}: unknown overflow mode {self.overflow!r}")
        if not 0 <= self.sat_bits <= self.width:
            raise ValueError(f"{self}: saturation bits N={self.sat_bits} must be within 0..W")
        if self.integer and self.int_bits != self.width:
            raise ValueError(f"{self}: an integer type has I == W")
        if self.overflow == "AP_WRAP_SM" and not self.signed:
            raise ValueError(f"{self}: {_UNSIGNED_WRAP_SM}")

    # ------------------------------------------------------------------ parsing
    @classmethod
    def parse(cls, text: str) -> FixedType:
        """Parse ``ap_fixed<W,I,Q,O,N>``, ``ap_ufixed``, ``ap_int<W>``, ``ap_uint<W>``
        and hls4ml's ``fixed<W,I,RND,SAT>``, ``ufixed``, ``int<W>``, ``uint<W>``."""
        if isinstance(text, FixedType):
            return text
        if not isinstance(text, str):
            raise ValueError(f"{text!r}: a fixed-point type must be given as a string")
        match = _TYPE_RE.match(text)
        if not match:
            raise ValueError(
                f"{text}: not a fixed-point type; expected e.g. ap_fixed<16,6>, "
                "ap_ufixed<8,0,AP_RND,AP_SAT>, ap_int<8>, fixed<16,6,RND,SAT> or uint<4>"
            )
        kind, body = match.group(1), match.group(2)
        params = [p for p in body.split(",")]
        if any(not p.strip() for p in params):
            raise ValueError(f"{text}: empty template parameter")
        signed = kind in ("ap_fixed", "fixed", "ap_int", "int")
        if kind in ("ap_int", "ap_uint", "int", "uint"):
            if len(params) != 1:
                raise ValueError(f"{text}: an integer type takes exactly one parameter (W)")
            width = _int_param(params[0], "width W", text)
            if not 1 <= width <= MAX_WIDTH:
                raise ValueError(f"{text}: width {width} outside the supported 1..{MAX_WIDTH}")
            return cls(width, width, signed, integer=True)
        if not 2 <= len(params) <= 5:
            raise ValueError(f"{text}: expected 2 to 5 parameters <W,I[,Q[,O[,N]]]>, got {len(params)}")
        width = _int_param(params[0], "width W", text)
        int_bits = _int_param(params[1], "integer bits I", text)
        if not 1 <= width <= MAX_WIDTH:
            raise ValueError(f"{text}: width {width} outside the supported 1..{MAX_WIDTH}")
        quant = _mode_name(params[2], QUANTIZATION_MODES, "quantization", text) if len(params) > 2 else "AP_TRN"
        over = _mode_name(params[3], OVERFLOW_MODES, "overflow", text) if len(params) > 3 else "AP_WRAP"
        nsat = _int_param(params[4], "saturation bits N", text) if len(params) > 4 else 0
        if not 0 <= nsat <= width:
            raise ValueError(f"{text}: saturation bits N={nsat} must be within 0..{width}")
        if over == "AP_WRAP_SM" and not signed:
            raise ValueError(f"{text}: {_UNSIGNED_WRAP_SM}")
        return cls(width, int_bits, signed, quant, over, nsat)

    def __str__(self) -> str:
        if self.integer:
            return f"ap_{'' if self.signed else 'u'}int<{self.width}>"
        parts = [str(self.width), str(self.int_bits), self.quantization, self.overflow, str(self.sat_bits)]
        while len(parts) > 2 and parts[-1] == {2: "AP_TRN", 3: "AP_WRAP", 4: "0"}[len(parts) - 1]:
            parts.pop()
        return f"ap_{'' if self.signed else 'u'}fixed<{','.join(parts)}>"

    # --------------------------------------------------------------- properties
    @property
    def frac_bits(self) -> int:
        return self.width - self.int_bits

    @property
    def min_raw(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_raw(self) -> int:
        return (1 << (self.width - (1 if self.signed else 0))) - 1

    @property
    def lsb(self) -> float:
        return float(2.0**-self.frac_bits)

    @property
    def min_value(self) -> float:
        return float(np.ldexp(float(self.min_raw), -self.frac_bits))

    @property
    def max_value(self) -> float:
        return float(np.ldexp(float(self.max_raw), -self.frac_bits))

    def with_modes(self, quantization: str = "AP_TRN", overflow: str = "AP_WRAP", sat_bits: int = 0) -> FixedType:
        """The same bits with other rounding/overflow modes (for result types of ops)."""
        return replace(self, quantization=quantization, overflow=overflow, sat_bits=sat_bits)

    # ------------------------------------------------------------- conversions
    def quantize(self, x: np.ndarray | float) -> np.ndarray:
        """Float values exactly as this type holds them (float64; exact up to 53 bits)."""
        self._check_declared("quantize")
        x = np.asarray(x, dtype=np.float64)
        if _fast_double_ok(self) and -1022 <= -self.frac_bits:  # the lsb is a normal double
            _refuse_nan(x, self)
            return _fast_from_double(x.reshape(-1), self, values=True).reshape(x.shape)
        return self.from_raw(self.to_raw(x))

    def to_raw(self, x: np.ndarray | float) -> np.ndarray:
        """Raw two's-complement integers of ``x`` (floats) cast into this type."""
        self._check_declared("to_raw")
        return _export(self, _from_double(np.asarray(x, dtype=np.float64), self))

    def _check_declared(self, what: str) -> None:
        if self.width > MAX_WIDTH:
            raise ValueError(
                f"{self}: {what} supports widths 1..{MAX_WIDTH}; wider types exist only as "
                "full-precision intermediates of Fixed arithmetic (cast them into a declared type)"
            )

    def from_raw(self, raw: np.ndarray | int) -> np.ndarray:
        """Values of raw integers of this type (rounded to float64 beyond 53 bits)."""
        raw = np.asarray(raw)
        if raw.dtype == object:
            raw = raw.astype(np.float64)
        if -1022 <= -self.frac_bits <= 1023:  # a power of two: the product is the exact value
            return np.multiply(raw, 2.0**-self.frac_bits, dtype=np.float64)
        return np.ldexp(raw.astype(np.float64), -self.frac_bits)

    def cast(self, raw: RawArray, src: FixedType) -> RawArray:
        """Cast raw integers of type ``src`` into this type, as ``dst_t x = src_t y``."""
        note_cast(src, self)
        raw = _as_raw(np.asarray(raw), src)
        if raw.dtype == np.int64 and _fast_cast_ok(src, self):
            return _fast_cast(raw, src, self)
        return _narrow(self, _cast(raw, src, self))

    # -------------------------------------------------------------- word growth
    def mul_type(self, other: FixedType) -> FixedType:
        """Full-precision product type: widths and integer bits add."""
        return FixedType(self.width + other.width, self.int_bits + other.int_bits, self.signed or other.signed)

    def add_type(self, other: FixedType) -> FixedType:
        """Full-precision sum type (ap_fixed's ``plus`` RType); also used for minus."""
        i = (
            max(
                self.int_bits + (other.signed and not self.signed),
                other.int_bits + (self.signed and not other.signed),
            )
            + 1
        )
        f = max(self.frac_bits, other.frac_bits)
        return FixedType(i + f, i, self.signed or other.signed)

    def sub_type(self, other: FixedType) -> FixedType:
        """Full-precision difference type: as ``plus`` but always signed."""
        return replace(self.add_type(other), signed=True)


TypeLike = "FixedType | str"


def as_type(t: TypeLike) -> FixedType:
    return t if isinstance(t, FixedType) else FixedType.parse(t)


# ---------------------------------------------------------------------- raw helpers
def _fits_fast(*bits: int) -> bool:
    return max(bits) <= _FAST_BITS


def _to_object(raw: RawArray) -> RawArray:
    return raw if raw.dtype == object else raw.astype(object)


def _narrow(t: FixedType, raw: RawArray) -> RawArray:
    """Back to int64 where the type allows, so later arithmetic takes the fast path."""
    if raw.dtype == object and t.width <= _FAST_BITS:
        return raw.astype(np.int64)
    return raw


def _export(t: FixedType, raw: RawArray) -> np.ndarray:
    if raw.dtype != object:
        return raw.astype(np.int64, copy=False)
    if not t.signed and t.width == 64:
        return raw.astype(np.uint64)
    return raw.astype(np.int64)


def _as_raw(raw: np.ndarray, t: FixedType) -> RawArray:
    """Raw integers as int64, or Python ints where int64 cannot hold them (the uint64
    that ``to_raw`` hands out for 64-bit unsigned types)."""
    if raw.dtype == np.int64 or raw.dtype == object:
        return raw
    if raw.dtype.kind == "u" and raw.dtype.itemsize == 8:
        return raw.astype(object) if t.width == 64 and not t.signed else raw.astype(np.int64)
    if raw.dtype.kind in "iub":
        return raw.astype(np.int64)
    raise ValueError(f"{t}: raw values must be integers, got an array of {raw.dtype}")


# ------------------------------------------------- casts that abort hls4ml's csim
def reads_beyond_msb(src: FixedType, dst: FixedType) -> bool:
    """``dst_t x = src_t y`` reads a bit beyond the source's MSB in ``ap_fixed_base::operator=``
    (docs/fixed_point.md, quirk 8): a rounding cast into an ap_fixed (any mode but AP_TRN,
    and AP_TRN_ZERO from an unsigned source, which do not round) that drops more fraction
    bits than the source has bits, ``F2 - F > W2``.  The header reads the rounding bit
    ``get_bit(F2-F-1)`` before it decides to use the sign instead; ap_private asserts
    there, so hls4ml's C simulation (built with asserts) aborts.  The value itself is
    defined (``cast`` computes it, as hardware does).  ``ap_int`` sources count as
    ``ap_fixed<W,W>`` (the header converts them so); ``ap_int`` targets take another path."""
    if dst.integer:
        return False
    rounds = not (dst.quantization == "AP_TRN" or (dst.quantization == "AP_TRN_ZERO" and not src.signed))
    return rounds and src.frac_bits - dst.frac_bits > src.width


_watch = threading.local()


def note_cast(src: FixedType, dst: FixedType) -> None:
    """Record ``src -> dst`` where a ``watch_csim_aborts`` on this thread is open and the
    cast aborts hls4ml's C simulation (``reads_beyond_msb``).  Every raw cast calls it."""
    seen = getattr(_watch, "seen", None)
    if seen is not None and reads_beyond_msb(src, dst) and (src, dst) not in seen:
        seen.append((src, dst))


@contextmanager
def watch_csim_aborts() -> Iterator[list[tuple[FixedType, FixedType]]]:
    """The casts (source, target) made on this thread inside the ``with`` that would abort
    hls4ml's C simulation, each once, in the order first made."""
    seen: list[tuple[FixedType, FixedType]] = []
    outer = getattr(_watch, "seen", None)
    _watch.seen = seen
    try:
        yield seen
    finally:
        _watch.seen = outer
        if outer is not None:
            outer.extend(c for c in seen if c not in outer)


# ---------------------------------------------------------- int64 fast raw cast
# A cast with a static shift sh = F2 - F between types that fit in 62 bits: every
# rounding mode is "add a bias, shift right" (the bias is what decides ties), the
# saturating modes are a clip and AP_WRAP (N = 0) a mask.  Where the header skips its
# overflow handling no overflow can happen, so the clip is the same there.
def _fast_cast_ok(src: FixedType, dst: FixedType) -> bool:
    if dst.integer or dst.width > _FAST_BITS or src.width > _FAST_BITS:
        return False
    if dst.overflow == "AP_WRAP_SM" or (dst.overflow == "AP_WRAP" and dst.sat_bits):
        return False
    sh = src.frac_bits - dst.frac_bits
    return 0 < sh <= _FAST_BITS if sh > 0 else src.width - sh <= _FAST_BITS


def _fast_cast(raw: np.ndarray, src: FixedType, dst: FixedType) -> np.ndarray:
    if raw.ndim == 0:  # NumPy's operators give a 0-d array back as a scalar: no clip(out=), no item assignment
        return _fast_cast(raw.reshape(1), src, dst).reshape(())
    sh = src.frac_bits - dst.frac_bits
    if sh <= 0:
        q = raw << -sh
    else:
        q = round_shift(raw, sh, dst.quantization, src.signed)
    W, S, O = dst.width, dst.signed, dst.overflow
    if O == "AP_WRAP":
        if q.size and dst.min_raw <= q.min() and q.max() <= dst.max_raw:
            return q
        if S:
            half = 1 << (W - 1)
            q += half
            q &= (1 << W) - 1
            q -= half
        else:
            q &= (1 << W) - 1
        return q
    if O == "AP_SAT_ZERO":
        q[(q > dst.max_raw) | (q < dst.min_raw)] = 0
        return q
    low = dst.min_raw + 1 if (_sat_sym(dst) and src.signed) else dst.min_raw
    return np.clip(q, low, dst.max_raw, out=q)


def _sat_sym(t: FixedType) -> bool:
    """AP_SAT_SYM makes the most negative value -max, on a signed type of 2 bits or more;
    with W = 1 the header sets the sign bit and then ``|= 1`` on that same bit: -1, the
    most negative value itself (as the literal port, ``_from_double_exact``, has it)."""
    return t.overflow == "AP_SAT_SYM" and t.signed and t.width > 1


def round_shift(raw: np.ndarray, sh: int, mode: str, signed_src: bool) -> np.ndarray:
    """``raw * 2**-sh`` rounded per quantization mode (new array), 0 < sh <= 62, for
    int64 ``raw`` below 2**62: every mode is a bias (which decides ties), then a shift."""
    half = 1 << (sh - 1)
    if mode == "AP_TRN" or (mode == "AP_TRN_ZERO" and not signed_src):
        return raw >> sh
    if mode == "AP_RND":  # ties up
        q = raw + half
    elif mode == "AP_RND_MIN_INF":  # ties down
        q = raw + (half - 1)
    elif mode == "AP_RND_CONV":  # ties to even
        q = raw + (half - 1)
        q += (raw >> sh) & 1
    elif mode == "AP_RND_ZERO":  # ties towards zero: up when negative
        q = raw + (half - 1)
        q += raw < 0
    elif mode == "AP_RND_INF":  # ties away from zero: down when negative
        q = raw + half
        q -= raw < 0
    else:  # AP_TRN_ZERO from a signed source: towards zero
        q = raw + np.where(raw < 0, (1 << sh) - 1, 0)
    q >>= sh
    return q


def _cast(raw: RawArray, src: FixedType, dst: FixedType) -> RawArray:
    if dst.integer:
        return _to_integer(raw, src, dst)
    sh = src.frac_bits - dst.frac_bits
    growth = max(0, -sh)
    if raw.dtype == object or not _fits_fast(src.width + growth + 1, dst.width + 1):
        raw = _to_object(raw)
    return _fixed_cast(raw, src.width, sh, src.signed, src.int_bits, dst)


def _bit(x: RawArray, pos: int | np.ndarray) -> RawArray:
    return (x >> pos) & 1


def _shift_amounts(sh: int | np.ndarray, obj: bool) -> tuple[object, object, object]:
    """Split ``sh`` into right/left shift amounts usable on the raw array's dtype.

    On the int64 path shifts are clipped at 63: with |raw| < 2**62 that changes no
    quotient, remainder bit or rounding decision."""
    if np.isscalar(sh):
        sh = int(sh)
        return sh > 0, min(max(sh, 0), 10**6 if obj else 63), max(-sh, 0)
    right = sh > 0
    if obj:
        sh = sh.astype(object)
        return right, np.where(right, sh, 0), np.where(right, 0, -sh)
    return right, np.clip(sh, 0, 63), np.clip(-sh, 0, 63)


def _fixed_cast(
    raw: RawArray,
    w2: int,
    sh: int | np.ndarray,
    s2: bool,
    i2: int | np.ndarray,
    dst: FixedType,
) -> RawArray:
    """Port of ``ap_fixed_base::operator=``: a source of W2 bits and I2 integer bits
    with ``sh = F2 - F`` (scalar, or per element for doubles) into ``dst``."""
    W, S, Q, O, N = dst.width, dst.signed, dst.quantization, dst.overflow, dst.sat_bits
    obj = raw.dtype == object
    right, r_sh, l_sh = _shift_amounts(sh, obj)
    t = np.where(right, raw >> r_sh, raw << l_sh)  # floor(raw * 2**-sh), unbounded
    rounds = not (Q == "AP_TRN" or (Q == "AP_TRN_ZERO" and not s2))
    quant_inc = np.logical_and(right, rounds)
    q = t
    if np.any(quant_inc):
        qpos = np.maximum(r_sh - 1, 0) if not np.isscalar(r_sh) else max(r_sh - 1, 0)
        qb = np.asarray(_bit(raw, qpos), dtype=bool)
        one = np.ones_like(raw)
        rest = np.asarray((raw & ((one << qpos) - 1)) != 0, dtype=bool)
        isneg = np.asarray(raw < 0, dtype=bool)
        if Q == "AP_RND":
            inc = qb
        elif Q == "AP_RND_ZERO":
            inc = qb & (isneg | rest)
        elif Q == "AP_RND_MIN_INF":
            inc = qb & rest
        elif Q == "AP_RND_INF":
            inc = qb & (~isneg | rest)
        elif Q == "AP_RND_CONV":
            inc = qb & (np.asarray(_bit(t, 0), dtype=bool) | rest)
        else:  # AP_TRN_ZERO on a signed source
            inc = isneg & (qb | rest)
        q = t + np.where(quant_inc & inc, one, 0 * one)
    modulus = 1 << W
    u = q & (modulus - 1)  # the W bits the result register holds
    if O != "AP_WRAP" or N != 0:
        # ap_fixed only looks for overflow where the source could exceed the target
        headroom = np.logical_or(quant_inc, s2 and O == "AP_SAT_SYM").astype(np.int64)
        enter = np.logical_or(not S and s2, np.less(dst.int_bits - S, np.asarray(i2) - s2 + headroom))
        if np.any(enter):
            u = np.where(enter, _overflow_adjust(u, q, t, sh, w2, dst, s2), u)
    if S:
        u = np.where(u >= (modulus >> 1), u - modulus, u)
    return u


def _overflow_adjust(
    u: RawArray, q: RawArray, t: RawArray, sh: int | np.ndarray, w2: int, dst: FixedType, s2: bool
) -> RawArray:
    """Port of ``overflow_adjust``: ``u`` the wrapped bits, ``q`` the exact rounded value,
    ``t`` the truncated value before rounding (for the ``lD`` bit)."""
    W, S, O, N = dst.width, dst.signed, dst.overflow, dst.sat_bits
    all_ones = (1 << W) - 1
    overflow = q > dst.max_raw
    underflow = q < dst.min_raw
    sign = np.asarray(q < 0, dtype=bool)
    if O == "AP_SAT_SYM" and S and s2:
        underflow = underflow | (q == dst.min_raw)
    hit = np.asarray(overflow | underflow, dtype=bool)
    if not np.any(hit):
        return u
    if O == "AP_WRAP":
        if S:
            v = np.where(sign, u | (1 << (W - 1)), u & ~(1 << (W - 1)))
            if N > 1:
                mid = ((1 << (N - 1)) - 1) << (W - N)
                v = np.where(sign, v & ~mid, v | mid)
        else:
            v = u | (((1 << N) - 1) << (W - N))
    elif O == "AP_SAT_ZERO":
        v = np.zeros_like(u)
    elif O == "AP_WRAP_SM" and S:
        msb = 1 << (W - 1)
        ro = np.asarray(_bit(u, W - 1), dtype=bool)
        if N == 0:
            in_range = np.less(np.asarray(sh) + W, w2)
            ld = np.asarray(np.where(in_range, _bit(t, W), 0), dtype=bool)
            flipped = (u ^ all_ones) & ~msb
            flipped = np.where(ld, flipped | msb, flipped)
            v = np.where(ld != ro, flipped, u)
        else:
            if N == 1:
                v = np.where(sign != ro, u ^ all_ones, u)
            else:
                lno = np.asarray(_bit(u, W - N), dtype=bool)
                v = np.where(lno == sign, u ^ all_ones, u)
                mid = ((1 << (N - 1)) - 1) << (W - N)
                v = np.where(sign, v & ~mid, v | mid)
            v = np.where(sign, v | msb, v & ~msb)
    else:  # AP_SAT, AP_SAT_SYM, and unsigned AP_WRAP_SM
        if S:
            low = (1 << (W - 1)) | (1 if O == "AP_SAT_SYM" else 0)
            v = np.where(overflow, all_ones >> 1, np.where(underflow, low, u))
        else:
            v = np.where(overflow, all_ones, np.where(underflow, 0, u))
    return np.where(hit, v, u)


def _to_integer(raw: RawArray, src: FixedType, dst: FixedType) -> RawArray:
    """``ap_int<W> = ap_fixed<...>``: ``to_ap_int_base()`` (C-style truncation towards
    zero, in a register of max(I2, 1) bits), then sign/zero extension to W bits."""
    w2, i2, s2 = src.width, src.int_bits, src.signed
    reg_bits = max(i2, 1)
    if raw.dtype == object or not _fits_fast(w2 + max(0, i2 - w2) + 1, reg_bits + 1, dst.width + 1):
        raw = _to_object(raw)
    if raw.dtype == np.int64 and 0 < i2 <= w2:
        k = w2 - i2  # towards zero: negative values get 2**k - 1 added before the shift
        ret = raw + ((raw >> 63) & ((1 << k) - 1)) if s2 and k else raw.copy()
        ret >>= k
        return _wrap(_wrap(ret, reg_bits, s2), dst.width, dst.signed)
    if 0 < i2 <= w2:
        ret = raw >> (w2 - i2)
    elif i2 > w2:
        ret = raw << (i2 - w2)
    else:
        ret = raw * 0
    if i2 < w2 and s2:
        frac_hi = w2 - 1 if i2 < 0 else w2 - i2 - 1
        frac = raw & ((1 << (frac_hi + 1)) - 1)
        ret = ret + np.where((raw < 0) & (frac != 0), 1, 0).astype(raw.dtype)
    ret = _wrap(ret, reg_bits, s2)
    return _wrap(ret, dst.width, dst.signed)


def _wrap(raw: RawArray, width: int, signed: bool) -> RawArray:
    if raw.dtype == np.int64 and width < 64:
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
        if not raw.size or (lo <= raw.min() and raw.max() <= hi):
            return raw
        if signed:
            return ((raw + (1 << (width - 1))) & ((1 << width) - 1)) - (1 << (width - 1))
        return raw & ((1 << width) - 1)
    u = raw & ((1 << width) - 1)
    if signed:
        u = np.where(u >= (1 << (width - 1)), u - (1 << width), u)
    return u


def _refuse_nan(x: np.ndarray, dst: FixedType) -> None:
    if np.isnan(x).any():
        nan = int(np.isnan(x).sum())
        raise ValueError(f"{dst}: cannot represent NaN ({nan} of {x.size} values are NaN)")


def _from_double(x: np.ndarray, dst: FixedType) -> RawArray:
    """``dst_t(double)`` for every element: the float64 fast path where it applies, the
    literal port of the header's constructors for everything else."""
    _refuse_nan(x, dst)
    if _fast_double_ok(dst):
        return _fast_from_double(x.reshape(-1), dst).reshape(x.shape)
    return _from_double_exact(x, dst)


# ------------------------------------------------------------- float64 fast path
# For W <= 62 the cast of a double is computed on float64 arrays, exactly: scaling by
# 2**F is exact for normal results, floor/trunc/fmod are exact, the rounding bit and
# the bits below it come from exact comparisons (``y - floor(y) >= 0.5`` is exact for
# every double; ``y != floor(y) + 0.5`` is exact wherever y has a fraction), and the
# saturation bounds are compared as powers of two.  Elements it cannot take exactly
# (subnormal inputs, which the header reads with the hidden bit set, and scalings that
# underflow) go through the literal port.  Chunks keep the temporaries in cache.
_CHUNK = 1 << 14
_TINY = float(np.finfo(np.float64).tiny)  # 2**-1022, smallest normal double
_HUGE = 2.0**1000
"""Stands in for infinities and scalings beyond float64: a multiple of 2**W for every
supported W, and beyond every range, which is how the header treats them."""


def _fast_double_ok(dst: FixedType) -> bool:
    if dst.width > _FAST_BITS:
        return False
    if dst.integer:
        return True
    if dst.overflow == "AP_WRAP_SM" or (dst.overflow == "AP_WRAP" and dst.sat_bits):
        return False
    return -1022 <= dst.frac_bits <= 1023


class _Scratch:
    """Work buffers reused by every chunk (no allocation or page faults per chunk)."""

    def __init__(self, n: int) -> None:
        self.y, self.t, self.d = np.empty(n), np.empty(n), np.empty(n)
        self.m1, self.m2 = np.empty(n, dtype=bool), np.empty(n, dtype=bool)

    def views(self, n: int) -> tuple[np.ndarray, ...]:
        return self.y[:n], self.t[:n], self.d[:n], self.m1[:n], self.m2[:n]


def _fast_from_double(x: np.ndarray, dst: FixedType, values: bool = False) -> np.ndarray:
    """Raw int64 results, or with ``values`` the float64 values they stand for (computed
    chunk by chunk through a cached int64 buffer, so ``quantize`` costs one output)."""
    out = np.empty(x.size, dtype=np.float64 if values else np.int64)
    scratch = _Scratch(min(_CHUNK, x.size))
    raw_buf = np.empty(min(_CHUNK, x.size), dtype=np.int64) if values else None
    lsb = dst.lsb
    slow = []
    with np.errstate(over="ignore", invalid="ignore"):  # infinities are handled, not errors
        for start in range(0, x.size, _CHUNK):
            stop = min(start + _CHUNK, x.size)
            raw = raw_buf[: stop - start] if values else out[start:stop]
            if dst.integer:
                _int_chunk(x[start:stop], dst, raw)
            else:
                bad = _fixed_chunk(x[start:stop], dst, raw, scratch)
                if bad is not None:
                    slow.append(bad + start)
            if values:
                np.multiply(raw, lsb, out=out[start:stop])
    if slow:
        idx = np.concatenate(slow)
        exact = _narrow(dst, _from_double_exact(x[idx], dst))
        out[idx] = dst.from_raw(exact) if values else exact
    return out


def _fixed_chunk(x: np.ndarray, dst: FixedType, out: np.ndarray, scratch: _Scratch) -> np.ndarray | None:
    """Cast one chunk into ``out``; return the indices the fast path cannot take."""
    y, t, d, m1, m2 = scratch.views(x.size)
    scale = 2.0**dst.frac_bits
    np.multiply(x, scale, out=y)
    # subnormal x  <=>  |y| < tiny * scale; a subnormal or zero y from a nonzero x underflowed
    np.abs(y, out=t)
    bad = None
    if t.min() < _TINY * max(scale, 1.0):
        small = (t < _TINY * max(scale, 1.0)) & (x != 0)
        if small.any():
            bad = np.flatnonzero(small)
            y[bad] = 0.0
    wrap = dst.overflow == "AP_WRAP"
    if wrap:
        np.clip(y, -_HUGE, _HUGE, out=y)
    _quantize_scaled(y, dst.quantization, t, d, m1, m2)
    _overflow_scaled(t, dst, out, wrap)
    return bad


def _quantize_scaled(y: np.ndarray, mode: str, t: np.ndarray, d: np.ndarray, m1: np.ndarray, m2: np.ndarray) -> None:
    """The rounded integer (as float64, into ``t``) of a scaled double, per quantization mode."""
    if mode == "AP_TRN_ZERO":  # a double is a signed source: towards zero
        np.trunc(y, out=t)
        return
    if mode == "AP_RND_CONV":  # ties to even: exactly IEEE round-to-nearest
        np.rint(y, out=t)
        return
    np.floor(y, out=t)
    if mode == "AP_TRN":
        return
    np.subtract(y, t, out=d)  # exact for every double; nan for infinities, which then never round
    qb = np.greater_equal(d, 0.5, out=m1)
    if mode == "AP_RND":
        np.add(t, qb, out=t)
        return
    # bits below the rounding bit: y is neither on the grid nor exactly half-way
    rest = np.not_equal(d, 0.0, out=m2)
    np.add(t, 0.5, out=d)
    rest &= y != d
    if mode == "AP_RND_ZERO":
        rest |= y < 0
    elif mode == "AP_RND_INF":
        rest |= y >= 0
    qb &= rest  # AP_RND_MIN_INF: rounding bit and something below it
    np.add(t, qb, out=t)


def _overflow_scaled(q: np.ndarray, dst: FixedType, out: np.ndarray, wrap: bool) -> None:
    """Write the W-bit result of rounded values ``q`` (float64) into ``out``."""
    W, S, O = dst.width, dst.signed, dst.overflow
    hi = 2.0 ** (W - S)  # first value above max_raw
    lo = -(2.0 ** (W - 1)) if S else 0.0
    if wrap:
        _wrap_float_into(q, W, S, out)
        return
    if O == "AP_SAT_ZERO":
        q[(q >= hi) | (q < lo)] = 0.0
        out[...] = q
        return
    sym = _sat_sym(dst)  # the most negative value becomes -max
    if W <= 53:  # every bound is an exact double
        np.clip(q, lo + sym, hi - 1.0, out=out, casting="unsafe")
        return
    over = q >= hi
    under = (q <= lo) if sym else (q < lo)
    np.clip(q, lo, np.nextafter(hi, 0.0), out=out, casting="unsafe")
    out[over] = dst.max_raw
    out[under] = dst.min_raw + sym


def _wrap_float_into(q: np.ndarray, W: int, S: bool, out: np.ndarray) -> None:
    """``q mod 2**W`` (finite float64 integers) as W-bit two's complement."""
    if not q.size:
        return
    lo, hi = q.min(), q.max()
    if lo >= (-(2.0 ** (W - 1)) if S else 0.0) and hi < 2.0 ** (W - S):
        out[...] = q  # nothing wraps
        return
    if max(-lo, hi) >= 2.0**62:
        q = np.fmod(q, 2.0**W)  # exact
    out[...] = q
    mask = (1 << W) - 1
    if S:
        half = 1 << (W - 1)
        out += half
        out &= mask
        out -= half
    else:
        out &= mask


def _int_chunk(x: np.ndarray, dst: FixedType, out: np.ndarray) -> None:
    """``ap_int_base(double)``: truncate towards zero, wrap; a negative double above
    -0.5 gives +1 (the header shifts its magnitude out to -1, then negates)."""
    t = np.trunc(np.clip(x, -_HUGE, _HUGE))
    t[(x < 0) & (x > -0.5)] = 1.0
    _wrap_float_into(t, dst.width, dst.signed, out)


def _from_double_exact(x: np.ndarray, dst: FixedType) -> RawArray:
    """Port of the ``double`` constructors of ``ap_fixed_base`` and ``ap_int_base``."""
    shape = x.shape
    x = x.reshape(-1)
    bits = x.view(np.int64)
    isneg = bits < 0
    exp = ((bits >> 52) & 0x7FF) - 1023
    man = (bits & ((1 << 52) - 1)) | (1 << 52)  # hidden bit set even for subnormals, as the header does
    zero = (bits & 0x7FFFFFFFFFFFFFFF) == 0
    if dst.integer:
        out = _int_from_double(man, exp, isneg, dst)
    else:
        # the double is ap_fixed<54, exp+2> with raw value +-man; cast that
        man = np.where(isneg, -man, man)
        sh = (52 - exp) - dst.frac_bits
        wide = ((sh < 0) & (54 - sh > _FAST_BITS)) | (dst.width + 1 > _FAST_BITS)
        parts = []
        for sel, as_obj in ((~wide, False), (wide, True)):
            if np.any(sel):
                m, s, e = man[sel], sh[sel], exp[sel]
                if as_obj:
                    m, s, e = m.astype(object), s.astype(object), e.astype(object)
                parts.append((sel, _fixed_cast(m, 54, s, True, e + 2, dst)))
        dtype = object if any(r.dtype == object for _, r in parts) else np.int64
        out = np.zeros(x.shape, dtype=dtype)
        for sel, res in parts:
            out[sel] = res
    out = np.where(zero, 0, out)
    out = _narrow(dst, out) if out.dtype == object else out
    return out.reshape(shape)


def _int_from_double(man: np.ndarray, exp: np.ndarray, isneg: np.ndarray, dst: FixedType) -> RawArray:
    """``ap_int_base(double)``: shift the magnitude, truncate, wrap, then negate.  A
    negative double shifted out entirely gives +1, exactly as the header does."""
    sh = 52 - exp
    obj = dst.width + 1 > _FAST_BITS or np.any((sh < 0) & (-sh + 54 > _FAST_BITS))
    m = man.astype(object) if obj else man
    shr = np.clip(sh, 0, 63)
    shl = np.clip(-sh, 0, 63 if not obj else None)
    if obj:
        shr, shl = shr.astype(object), shl.astype(object)
    v = np.where(sh > 0, np.where(sh < 54, m >> shr, np.where(isneg, -1, 0)), np.where(-sh < dst.width, m << shl, 0))
    if obj:
        v = v.astype(object)
    v = _wrap(v, dst.width, dst.signed)
    return _wrap(np.where(isneg, -v, v), dst.width, dst.signed)


# ----------------------------------------------------------------------- arithmetic
@dataclass(frozen=True)
class Fixed:
    """An array of raw integers with its type: exact arithmetic with ap_fixed's word
    growth, so layer code can say ``(a * b).cast(accum_t)`` literally."""

    raw: np.ndarray
    type: FixedType

    @classmethod
    def from_float(cls, x: np.ndarray | float, t: TypeLike) -> Fixed:
        t = as_type(t)
        t._check_declared("from_float")
        return cls(_narrow(t, _from_double(np.asarray(x, dtype=np.float64), t)), t)

    @property
    def values(self) -> np.ndarray:
        return self.type.from_raw(self.raw)

    def cast(self, t: TypeLike) -> Fixed:
        t = as_type(t)
        return Fixed(t.cast(self.raw, self.type), t)

    def _aligned(self, other: Fixed, result: FixedType) -> tuple[RawArray, RawArray]:
        a, b = self.raw, other.raw
        if not _fits_fast(result.width + 1) or a.dtype == object or b.dtype == object:
            a, b = _to_object(a), _to_object(b)
        return a << (result.frac_bits - self.type.frac_bits), b << (result.frac_bits - other.type.frac_bits)

    def __add__(self, other: Fixed) -> Fixed:
        result = self.type.add_type(other.type)
        a, b = self._aligned(other, result)
        return Fixed(_narrow(result, a + b), result)

    def __sub__(self, other: Fixed) -> Fixed:
        result = self.type.sub_type(other.type)
        a, b = self._aligned(other, result)
        return Fixed(_narrow(result, a - b), result)

    def __mul__(self, other: Fixed) -> Fixed:
        result = self.type.mul_type(other.type)
        a, b = self.raw, other.raw
        if not _fits_fast(result.width + 1) or a.dtype == object or b.dtype == object:
            a, b = _to_object(a), _to_object(b)
        return Fixed(_narrow(result, a * b), result)

    def __neg__(self) -> Fixed:
        result = FixedType(self.type.width + 1, self.type.int_bits + 1, True)
        raw = self.raw if _fits_fast(result.width + 1) else _to_object(self.raw)
        return Fixed(_narrow(result, -raw), result)
