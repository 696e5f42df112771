"""``sim.fixed`` against the real ``ap_fixed.h``/``ap_int.h`` compiled with g++.

Type combinations are drawn with hypothesis (derandomized, so the compiled oracle is
reused between runs) over a grid that forces every quantization x overflow x
signedness x saturation-bit class to appear; the values within each combination
come from generators aimed at the places casts go wrong: exact ties at the rounding
position and below it, the overflow boundaries on both sides, wrap points, tiny and
huge values, infinities.  Agreement is required on every raw bit.
"""

from __future__ import annotations

import itertools
from collections import Counter
from contextlib import contextmanager
from unittest import mock

import ap_oracle
import numpy as np
import pytest
from ap_oracle import Combo, hex_word, parse_bits
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from sim.fixed import OVERFLOW_MODES, QUANTIZATION_MODES, Fixed, FixedType

pytestmark = pytest.mark.oracle

N_DOUBLE_FREE = 70  # double -> type combinations beyond the mode grid
N_CAST_FREE = 30
N_CAST_NARROW = 60  # realistic hls4ml widths, where the int64 fast paths run
N_ARITH = 72
DOUBLES_PER_COMBO = 180
RAWS_PER_COMBO = 150
PAIRS_PER_COMBO = 120

# UG1399 ("Vitis HLS User Guide", Quantization Modes / Overflow Modes), verbatim.
UG1399 = [
    ("ap_fixed<3,2,AP_RND,AP_SAT>", 1.25, 1.5),
    ("ap_fixed<3,2,AP_RND,AP_SAT>", -1.25, -1.0),
    ("ap_fixed<4,4,AP_RND,AP_SAT>", 19.0, 7.0),
    ("ap_fixed<4,4,AP_RND,AP_SAT>", -19.0, -8.0),
    ("ap_ufixed<4,4,AP_RND,AP_SAT>", 19.0, 15.0),
    ("ap_ufixed<4,4,AP_RND,AP_SAT>", -19.0, 0.0),
    ("ap_fixed<4,4,AP_RND,AP_SAT_ZERO>", 19.0, 0.0),
    ("ap_fixed<4,4,AP_RND,AP_SAT_ZERO>", -19.0, 0.0),
    ("ap_ufixed<4,4,AP_RND,AP_SAT_ZERO>", 19.0, 0.0),
    ("ap_ufixed<4,4,AP_RND,AP_SAT_ZERO>", -19.0, 0.0),
    ("ap_fixed<4,4,AP_RND,AP_SAT_SYM>", 19.0, 7.0),
    ("ap_fixed<4,4,AP_RND,AP_SAT_SYM>", -19.0, -7.0),
    ("ap_ufixed<4,4,AP_RND,AP_SAT_SYM>", 19.0, 15.0),
    ("ap_ufixed<4,4,AP_RND,AP_SAT_SYM>", -19.0, 0.0),
    ("ap_fixed<4,4,AP_RND,AP_WRAP>", 31.0, -1.0),
    ("ap_fixed<4,4,AP_RND,AP_WRAP>", -19.0, -3.0),
    ("ap_ufixed<4,4,AP_RND,AP_WRAP>", 19.0, 3.0),
    ("ap_ufixed<4,4,AP_RND,AP_WRAP>", -19.0, 13.0),
]
# The wrap modes with saturation bits, and sign-magnitude wrap: the guide's example
# lines for these were not retrievable, so these cases are checked against g++ only
# (the same inputs as the guide's, plus the IEEE 1666 SC_WRAP n_bits example 9, -5).
WRAP_WITH_N = [
    (f"ap_{u}fixed<4,4,AP_RND,{o},{n}>", x)
    for u, o in (("", "AP_WRAP"), ("u", "AP_WRAP"), ("", "AP_WRAP_SM"))
    for n in (0, 1, 2, 3)
    for x in (19.0, -19.0, 31.0, 9.0, -5.0)
]
# AP_SAT_SYM into a 1-bit signed type: the header's "-max" sets the sign bit, then |= 1 on
# that same bit: -1 (the fast paths clipped to 0, the audit's finding)
SAT_SYM_1BIT = [f"ap_fixed<1,{i},{q},AP_SAT_SYM>" for i in (1, -2, 3) for q in ("AP_TRN", "AP_RND_CONV")]
# ap_fixed.h has no unsigned sign-magnitude wrap: constructing one exits the program.
REFUSED = "ap_ufixed<8,4,AP_RND,AP_WRAP_SM,0>"
# A rounding cast dropping more bits than the source has: operator= reads the bit
# past the source's MSB (an assert in ap_private; see ap_oracle.NDEBUG).
FAR_ROUNDING = ("ap_fixed<8,4>", "ap_fixed<4,14,AP_RND,AP_SAT>")


# ------------------------------------------------------------------ combinations
@contextmanager
def _no_local_constants():
    """Hypothesis mixes literals harvested from every imported local module into its
    draws; that would make the combinations (and so the compiled oracle) change with
    any edit anywhere.  Generate from the seed alone."""
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - other hypothesis layouts
        yield
        return
    pool = getattr(providers, "_local_constants", None)
    cache = getattr(providers, "CONSTANTS_CACHE", None)
    if pool is None or cache is None or not hasattr(providers, "_get_local_constants"):  # pragma: no cover
        yield
        return
    empty = type(pool)()
    cache.cache.clear()
    try:
        with mock.patch.object(providers, "_get_local_constants", lambda: empty):
            yield
    finally:
        cache.cache.clear()


def _collect(strategy: st.SearchStrategy, n: int, salt: int) -> list:
    """``n`` examples of ``strategy``, the same ones on every run (fixed seed ``salt``)."""
    out: list = []

    @seed(salt)
    @settings(
        max_examples=n,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(strategy)
    def draw(example):
        out.append(example)

    with _no_local_constants():
        draw()
    if not out:
        raise RuntimeError("hypothesis produced no examples")
    return [out[k % len(out)] for k in range(n)]


@st.composite
def shapes(draw) -> tuple[int, int, int]:
    """(W, I, N-fraction): W in 1..64, I from negative to beyond W."""
    w = draw(st.sampled_from(range(1, 65)))
    near = range(-4, w + 5)
    i = draw(st.sampled_from(list(near) * 3 + list(range(-70, 131))))
    return w, i, draw(st.integers(0, 1 << 16))


def _make(shape, q: str, o: str, signed: bool, nclass: str) -> FixedType:
    w, i, frac = shape
    if nclass == "0":
        n = 0
    elif nclass == "1" or w < 2:
        n = 1
    else:
        n = 2 + frac % (w - 1)  # 2..W
    return FixedType(w, i, signed or o == "AP_WRAP_SM", q, o, n)  # no unsigned AP_WRAP_SM (REFUSED)


def _grid(nclasses: tuple[str, ...]) -> list[tuple[str, str, bool, str]]:
    cells = itertools.product(QUANTIZATION_MODES, OVERFLOW_MODES, (True, False), nclasses)
    return [c for c in cells if c[2] or c[1] != "AP_WRAP_SM"]


GRID = _grid(("0", "1", "many"))
free_types = st.builds(
    lambda shape, q, o, s, nclass: _make(shape, q, o, s, nclass),
    shapes(),
    st.sampled_from(QUANTIZATION_MODES),
    st.sampled_from(OVERFLOW_MODES),
    st.booleans(),
    st.sampled_from(("0", "0", "1", "many")),
)
int_types = st.builds(lambda w, s: FixedType(w, w, s, integer=True), st.integers(1, 64), st.booleans())


@st.composite
def narrow_types(draw, max_width: int, modes: bool) -> FixedType:
    """What hls4ml designs use: W up to 32-40 bits, I within a few bits of 0..W."""
    w = draw(st.sampled_from(range(1, max_width + 1)))
    i = draw(st.sampled_from(range(-4, w + 5)))
    s = draw(st.booleans())
    if not modes:
        return FixedType(w, i, s)
    q, o = draw(st.sampled_from(QUANTIZATION_MODES)), draw(st.sampled_from(OVERFLOW_MODES))
    return _make((w, i, 0), q, o, s, "0")


source_types = st.builds(
    lambda w, i, s: FixedType(w, i, s),
    st.integers(1, 64),
    st.integers(-20, 90),
    st.booleans(),
)


def _combos() -> tuple[list[Combo], dict[str, list[int]]]:
    shapes_ = _collect(shapes(), len(GRID), 1)
    doubles = [Combo("double", _make(s, *cell)) for s, cell in zip(shapes_, GRID, strict=True)]
    doubles += [Combo("double", t) for t in _collect(free_types, N_DOUBLE_FREE, 2)]
    doubles += [Combo("double", t) for t in _collect(int_types, 16, 3)]
    doubles += [Combo("double", FixedType.parse(t)) for t, _, _ in UG1399]
    doubles += [Combo("double", FixedType.parse(t)) for t, _ in WRAP_WITH_N]
    doubles += [Combo("double", FixedType.parse(t)) for t in SAT_SYM_1BIT]
    doubles.append(Combo("double", None, cpp=REFUSED))
    cast_grid = _grid(("0", "many"))
    srcs = _collect(source_types, len(cast_grid) + N_CAST_FREE + 16, 4)
    dst_shapes = _collect(shapes(), len(cast_grid), 5)
    dsts = [_make(s, *cell) for s, cell in zip(dst_shapes, cast_grid, strict=True)]
    dsts += _collect(free_types, N_CAST_FREE, 6) + _collect(int_types, 16, 7)
    casts = [Combo("cast", d, a=s) for s, d in zip(srcs, dsts, strict=True)]
    casts.append(Combo("cast", FixedType.parse(FAR_ROUNDING[1]), a=FixedType.parse(FAR_ROUNDING[0])))
    casts += [Combo("cast", FixedType.parse(t), a=FixedType.parse("ap_fixed<8,8>")) for t in SAT_SYM_1BIT]
    narrow_pairs = st.tuples(narrow_types(40, False), st.one_of(narrow_types(32, True), int_types))
    narrow = _collect(narrow_pairs, N_CAST_NARROW, 10)
    casts += [Combo("cast", d, a=s) for s, d in narrow]
    arith = [
        Combo("arith", d, a=a, b=b)
        for a, b, d in _collect(st.tuples(source_types, source_types, free_types), N_ARITH, 8)
    ]
    combos = list(dict.fromkeys(doubles + casts + arith))  # unique, in order
    by_kind: dict[str, list[int]] = {"double": [], "cast": [], "arith": []}
    for k, c in enumerate(combos):
        by_kind[c.kind].append(k)
    return combos, by_kind


@pytest.fixture(scope="module")
def oracle():
    combos, by_kind = _combos()
    return combos, by_kind, ap_oracle.build(combos)


# -------------------------------------------------------------------- value sets
def _f64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def double_cases(t: FixedType, rng: np.random.Generator, extra: list[float], n: int) -> np.ndarray:
    """Doubles aimed at ``t``: ties, boundaries, wrap points, tiny/huge values, infinities."""
    f = t.frac_bits
    k = n // 8
    span_bits = min(t.width + 2, 51)
    mant = rng.integers(0, 1 << span_bits, k) * rng.choice([-1, 1], k)
    ties = np.ldexp(_f64(2 * mant + 1), -f - 1)  # exact ties at the LSB
    sub = rng.integers(1, 12, k)
    below = np.ldexp(_f64(2 * mant[:k] + 1), -f - 1) + np.ldexp(_f64(rng.choice([-1, 1], k)), -f - 1 - sub)
    near_ties = np.concatenate([np.nextafter(ties, np.inf), np.nextafter(ties, -np.inf)])[:k]
    lo, hi = t.min_value, t.max_value
    bounds = _f64([lo, hi, 0.0, t.lsb, -t.lsb])
    bounds = np.concatenate(
        [bounds, bounds + t.lsb / 2, bounds - t.lsb / 2, bounds + t.lsb, bounds - t.lsb, 2 * bounds, -2 * bounds]
    )
    wraps = np.ldexp(_f64(rng.integers(-6, 7, k)), t.int_bits - 1) + np.ldexp(_f64(rng.integers(-4, 5, k)), -f - 1)
    around = rng.uniform(-4, 4, k) * max(abs(lo), abs(hi), t.lsb)
    logu = rng.choice([-1, 1], k) * np.ldexp(rng.uniform(1, 2, k), rng.integers(-f - 12, t.int_bits + 12, k))
    specials = _f64(
        [
            0.0,
            -0.0,
            np.inf,
            -np.inf,
            5e-324,
            -5e-324,
            2.2250738585072014e-308,
            1e-300,
            -1e-300,
            1e300,
            -1e300,
            1.7976931348623157e308,
            -1.7976931348623157e308,
            2.0**63,
            -(2.0**63),
            2.0**64,
            -(2.0**64),
            0.5,
            -0.5,
            1.0,
            -1.0,
            1.25,
            -1.25,
            19.0,
            -19.0,
        ]
    )
    tiny = rng.choice([-1, 1], k) * np.ldexp(1.0, -f - rng.integers(1, 70, k))
    values = np.concatenate([ties, below, near_ties, bounds, wraps, around, logu, specials, tiny, _f64(extra)])
    values = values[~np.isnan(values)]
    return values[:n] if values.size > n + 40 else values


def _wrap_int(v: int, width: int, signed: bool) -> int:
    v &= (1 << width) - 1
    return v - (1 << width) if signed and v >> (width - 1) else v


def raw_cases(src: FixedType, dst: FixedType, rng: np.random.Generator, n: int) -> list[int]:
    """Raw source integers aimed at ``dst``'s rounding position and range boundaries."""
    w2, sh = src.width, src.frac_bits - dst.frac_bits
    out = [int(v) for v in rng.integers(0, 1 << 62, n // 3)]  # uniform bits (wrapped below)
    out += [int(v) << int(s) for v, s in zip(rng.integers(0, 1 << 62, n // 6), rng.integers(0, 3, n // 6), strict=True)]
    out += list(range(-8, 9)) + [src.min_raw, src.max_raw, src.min_raw + 1, src.max_raw - 1]
    edges = [dst.max_raw, dst.min_raw, 0, 1, -1, 1 << (dst.width - 1), 1 << dst.width, -(1 << dst.width)]
    for e in edges:
        base = e << sh if sh >= 0 else e >> -sh
        deltas = [-1, 0, 1] + ([1 << (sh - 1), (1 << (sh - 1)) - 1, (1 << (sh - 1)) + 1] if sh > 0 else [])
        out += [base + d for d in deltas] + [base - d for d in deltas]
    if sh > 0:  # ties and near-ties at the rounding position
        for v in rng.integers(-(1 << 40), 1 << 40, n // 6):
            out += [(int(v) << sh) | (1 << (sh - 1)), ((int(v) << sh) | (1 << (sh - 1))) + 1]
    out = [_wrap_int(v, w2, src.signed) for v in out]
    return out[:n] if len(out) > n + 40 else out


def _as_raw_array(values: list[int], t: FixedType) -> np.ndarray:
    """What ``to_raw`` hands out for ``t``: int64, or uint64 for 64-bit unsigned."""
    return np.array(values, dtype=np.uint64 if (not t.signed and t.width == 64) else np.int64)


def _bits(raw, width: int) -> list[int]:
    return [int(v) & ((1 << width) - 1) for v in np.asarray(raw).reshape(-1).tolist()]


# ------------------------------------------------------------------------- tests
def _quantize_failures(t: FixedType, x: np.ndarray, theirs: list[int]) -> list:
    """``quantize`` (its own fast path) against the values of the header's bits."""
    values = t.from_raw(np.array([_wrap_int(v, t.width, t.signed) for v in theirs], dtype=object))
    ours = t.quantize(x)
    return [(str(t), "quantize", float(x[k])) for k in np.flatnonzero(ours != values)]


def _extras(n: int) -> list:
    floats = st.floats(allow_nan=False, width=64)
    return _collect(st.lists(floats, min_size=6, max_size=6), n, 9)


def _report(kind: str, cases: int, combos: int, failures: list) -> None:
    print(f"\n[oracle] {kind}: {cases} cases in {combos} type combinations, {cases - len(failures)} agree")
    assert not failures, f"{len(failures)} of {cases} {kind} cases disagree with ap_fixed.h; first: {failures[:8]}"


def test_doubles_into_every_mode(oracle):
    combos, by_kind, binary = oracle
    ids = by_kind["double"]
    extras = _extras(len(ids))
    records, inputs = [], []
    ids = [cid for cid in ids if combos[cid].dst is not None]
    for n, cid in enumerate(ids):
        t = combos[cid].dst
        x = double_cases(t, np.random.default_rng(cid), extras[n], DOUBLES_PER_COMBO)
        inputs.append(x)
        records.append((cid, [format(int(b), "x") for b in x.view(np.uint64)]))
    answers = ap_oracle.run(binary, records)
    failures, cases, modes = [], 0, Counter()
    for (cid, _), x, got in zip(records, inputs, answers, strict=True):
        t = combos[cid].dst
        ours = _bits(t.to_raw(x), t.width)
        theirs = [parse_bits(g) for g in got]
        cases += len(x)
        modes[(t.quantization, t.overflow, t.signed, min(t.sat_bits, 2))] += 1
        failures += [(str(t), float(v), hex(a), hex(b)) for v, a, b in zip(x, ours, theirs, strict=True) if a != b]
        failures += _quantize_failures(t, x, theirs)
    assert len({m[:3] for m in modes}) == len(QUANTIZATION_MODES) * (len(OVERFLOW_MODES) * 2 - 1)
    _report("double -> type", cases, len(ids), failures)


def test_long_arrays_across_chunk_boundaries(oracle):
    """The fast path works in chunks and sends subnormals to the literal port: long
    arrays with subnormals scattered through them must still agree everywhere."""
    combos, by_kind, binary = oracle
    picks = {}
    for cid in by_kind["double"]:
        t = combos[cid].dst
        if t is None:
            continue
        key = "int" if t.integer else (t.overflow, t.width > 53)
        picks.setdefault(key, cid)
    records, inputs = [], []
    for cid in picks.values():
        t = combos[cid].dst
        rng = np.random.default_rng(cid)
        x = np.concatenate([double_cases(t, rng, [], DOUBLES_PER_COMBO) for _ in range(120)])
        x[rng.integers(0, x.size, 300)] = rng.choice([5e-324, -5e-324, 1e-310, -1e-310], 300)
        inputs.append(x)
        records.append((cid, [format(int(b), "x") for b in x.view(np.uint64)]))
    answers = ap_oracle.run(binary, records)
    failures, cases = [], 0
    for (cid, _), x, got in zip(records, inputs, answers, strict=True):
        t = combos[cid].dst
        ours = _bits(t.to_raw(x), t.width)
        theirs = [parse_bits(g) for g in got]
        cases += len(x)
        failures += [(str(t), k, float(x[k])) for k, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
        failures += _quantize_failures(t, x, theirs)
    assert len(picks) >= 8
    _report("long arrays (double -> type)", cases, len(picks), failures)


def test_unsigned_sign_magnitude_wrap_is_refused_like_the_header(oracle):
    combos, _, binary = oracle
    cid = combos.index(Combo("double", None, cpp=REFUSED))
    with pytest.raises(RuntimeError, match="cannot support AP_WRAP_SM"):
        ap_oracle.run(binary, [(cid, ["3ff0000000000000"])])
    with pytest.raises(ValueError, match="AP_WRAP_SM needs a signed type"):
        FixedType.parse(REFUSED)


def test_rounding_far_below_the_source_aborts_csim_but_has_a_defined_value(oracle):
    combos, _, binary = oracle
    src, dst = (FixedType.parse(t) for t in FAR_ROUNDING)
    combo = Combo("cast", dst, a=src)
    raws = [-128, -127, -1, 0, 1, 127]
    lines = [hex_word(v, src.width) for v in raws]
    [got] = ap_oracle.run(binary, [(combos.index(combo), lines)])
    assert _bits(dst.cast(np.array(raws), src), dst.width) == [parse_bits(g) for g in got]
    with_asserts = ap_oracle.build([combo], units=1, debug=True)
    with pytest.raises(RuntimeError, match="Attempting to read bit beyond MSB"):
        ap_oracle.run(with_asserts, [(0, lines)])


def test_nan_is_refused():
    t = FixedType.parse("ap_fixed<8,3,AP_RND,AP_SAT>")
    with pytest.raises(ValueError, match="NaN"):
        t.to_raw(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="NaN"):
        FixedType.parse("ap_int<8>").quantize(float("nan"))


def test_raw_casts_between_types(oracle):
    combos, by_kind, binary = oracle
    ids = by_kind["cast"]
    records, inputs = [], []
    for cid in ids:
        c = combos[cid]
        raws = raw_cases(c.a, c.dst, np.random.default_rng(cid), RAWS_PER_COMBO)
        inputs.append(raws)
        records.append((cid, [hex_word(v, c.a.width) for v in raws]))
    answers = ap_oracle.run(binary, records)
    failures, cases, undefined = [], 0, 0
    for (cid, _), raws, got in zip(records, inputs, answers, strict=True):
        c = combos[cid]
        if c.dst.integer and c.a.int_bits < 0:
            # to_ap_int_base() never assigns its result when I < 0: csim reads an
            # uninitialised register there (the answer changes with -O level), so
            # there is no bit pattern to compare; see docs/fixed_point.md.
            undefined += len(raws)
            continue
        ours = _bits(c.dst.cast(_as_raw_array(raws, c.a), c.a), c.dst.width)
        theirs = [parse_bits(g) for g in got]
        cases += len(raws)
        failures += [
            (str(c.a), str(c.dst), r, hex(a), hex(b)) for r, a, b in zip(raws, ours, theirs, strict=True) if a != b
        ]
    print(f"\n[oracle] raw cast: {undefined} cases of ap_fixed<W,I<0> -> ap_int skipped (undefined in the header)")
    _report("raw cast", cases, len(ids), failures)


def _operands(t: FixedType, rng: np.random.Generator, n: int) -> list[int]:
    vals = [int(v) for v in rng.integers(0, 1 << 62, n)]
    vals[: n // 4] = [int(v) for v in rng.integers(-20, 21, n // 4)]
    vals[n // 4 : n // 4 + 4] = [t.min_raw, t.max_raw, t.min_raw + 1, t.max_raw - 1]
    return [_wrap_int(v, t.width, t.signed) for v in vals]


def _fixed(values: list[int], t: FixedType) -> Fixed:
    dtype = object if t.width > 62 else np.int64
    return Fixed(np.array(values, dtype=dtype), t)


def test_full_precision_arithmetic_then_cast(oracle):
    combos, by_kind, binary = oracle
    ids = by_kind["arith"]
    records, inputs = [], []
    for cid in ids:
        c = combos[cid]
        rng = np.random.default_rng(cid)
        a, b = _operands(c.a, rng, PAIRS_PER_COMBO), _operands(c.b, rng, PAIRS_PER_COMBO)
        rng.shuffle(b)
        inputs.append((a, b))
        records.append((cid, [f"{hex_word(x, c.a.width)} {hex_word(y, c.b.width)}" for x, y in zip(a, b, strict=True)]))
    answers = ap_oracle.run(binary, records)
    failures, cases = [], 0
    for (cid, _), (a, b), got in zip(records, inputs, answers, strict=True):
        c = combos[cid]
        fa, fb = _fixed(a, c.a), _fixed(b, c.b)
        results = {"*": fa * fb, "+": fa + fb, "-": fa - fb, "neg": -fa}
        ours = {}
        for op, r in results.items():
            ours[op] = (r.type, _bits(r.raw, r.type.width), _bits(r.cast(c.dst).raw, c.dst.width))
        for k, line in enumerate(got):
            fields = line.split()
            for j, op in enumerate(results):
                w, i, s = (int(v) for v in fields[3 * j].split(","))
                rtype, full, cast = ours[op]
                theirs = (w, i, bool(s), parse_bits(fields[3 * j + 1]), parse_bits(fields[3 * j + 2]))
                mine = (rtype.width, rtype.int_bits, rtype.signed, full[k], cast[k])
                cases += 1
                if mine != theirs:
                    failures.append((str(c.a), op, str(c.b), str(c.dst), a[k], b[k], mine, theirs))
    _report("arithmetic (a*b, a+b, a-b, -a, each cast)", cases, len(ids), failures)


def _oracle_value(oracle, text: str, x: float) -> float:
    combos, _, binary = oracle
    t = FixedType.parse(text)
    cid = combos.index(Combo("double", t))
    [[line]] = ap_oracle.run(binary, [(cid, [format(int(_f64(x).view(np.uint64)), "x")])])
    return float(t.from_raw(_wrap_int(parse_bits(line), t.width, t.signed)))


@pytest.mark.parametrize("text, x, guide", UG1399)
def test_ug1399_examples(oracle, text, x, guide):
    t = FixedType.parse(text)
    assert _oracle_value(oracle, text, x) == guide  # the guide's claim, confirmed by g++
    assert t.quantize(x) == guide


@pytest.mark.parametrize("text, x", WRAP_WITH_N)
def test_wrap_modes_with_saturation_bits(oracle, text, x):
    assert FixedType.parse(text).quantize(x) == _oracle_value(oracle, text, x)
