"""Bit-exact ``ap_fixed`` / ``ap_int`` arithmetic on NumPy arrays.

Values are carried as raw two's-complement integers, never as floats, so that every
cast reproduces what Xilinx's ``ap_fixed.h`` computes bit for bit.  The casting
rules are a vectorised port of ``ap_fixed_base::operator=`` and of the ``double``
constructors in the HLS_arbitrary_Precision_Types headers (the ones hls4ml ships),
including their corner cases (the ``lD`` bit of AP_WRAP_SM, AP_SAT_SYM turning the
most negative value into ``-max``, unsigned AP_WRAP_SM saturating, ``ap_int`` from a
``double`` truncating towards zero).  ``tests/test_fixed_oracle.py`` proves it against
those headers compiled with g++.

Raw integers are ``int64`` arrays while every intermediate provably fits in 62 bits
and Python-integer object arrays beyond that, so results are exact for any width the
parser accepts (``MAX_WIDTH``); ``to_raw`` hands out ``int64`` (``uint64`` for
unsigned 64-bit types).
"""

from __future__ import annotations

import re
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
        return np.ldexp(raw.astype(np.float64), -self.frac_bits)

    def cast(self, raw: RawArray, src: FixedType) -> RawArray:
        """Cast raw integers of type ``src`` into this type, as ``dst_t x = src_t y``."""
        return _narrow(self, _cast(np.asarray(raw), src, self))

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
    u = raw & ((1 << width) - 1)
    if signed:
        u = np.where(u >= (1 << (width - 1)), u - (1 << width), u)
    return u


def _from_double(x: np.ndarray, dst: FixedType) -> RawArray:
    """Port of the ``double`` constructors of ``ap_fixed_base`` and ``ap_int_base``."""
    nan = np.isnan(x)
    if np.any(nan):
        raise ValueError(f"{dst}: cannot represent NaN ({int(nan.sum())} of {x.size} values are NaN)")
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
