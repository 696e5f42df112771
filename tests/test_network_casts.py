"""The emulator's int64 fast casts agree with ``sim.fixed`` (itself proven against the
g++-compiled ap_fixed headers) for every quantization and overflow mode they take,
and delegate the rest."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sim.fixed import QUANTIZATION_MODES, FixedType
from sim.network.casts import cast, cast_float, float_cast_ok, from_float

OVERFLOWS = ("AP_WRAP", "AP_SAT", "AP_SAT_SYM", "AP_SAT_ZERO")
SOURCES = ["ap_fixed<20,8>", "ap_ufixed<12,4>", "ap_fixed<37,17>", "ap_fixed<6,1>", "ap_fixed<16,16>"]


@pytest.mark.parametrize(("q", "o"), list(itertools.product(QUANTIZATION_MODES, OVERFLOWS)))
def test_cast_matches_fixed(q, o):
    rng = np.random.default_rng(len(q) * 7 + len(o))
    for src_text in SOURCES:
        src = FixedType.parse(src_text)
        raw = rng.integers(src.min_raw, src.max_raw, size=4000, endpoint=True)
        raw[:4] = [src.min_raw, src.max_raw, 0, -1 if src.signed else 1]
        for dst_text in ("ap_fixed<8,3,{q},{o}>", "ap_ufixed<7,2,{q},{o}>", "ap_fixed<24,10,{q},{o}>"):
            dst = FixedType.parse(dst_text.format(q=q, o=o))
            assert np.array_equal(cast(raw, src, dst), dst.cast(raw, src).astype(np.int64)), (src, dst)


@pytest.mark.parametrize(
    "src_text, dst_text",
    [
        ("ap_fixed<53,-20>", "ap_fixed<59,50,AP_RND_CONV,AP_SAT>"),  # a right shift of 64: the bias overflowed
        ("ap_fixed<8,-60>", "ap_fixed<8,4,AP_RND_ZERO,AP_SAT>"),  # 64
        ("ap_fixed<8,-61>", "ap_fixed<8,4,AP_RND_CONV,AP_SAT>"),  # 65: a TypeError
        ("ap_fixed<8,-61>", "ap_fixed<8,4,AP_TRN_ZERO,AP_WRAP>"),
        ("ap_fixed<8,-51>", "ap_fixed<8,4,AP_RND,AP_SAT>"),  # 62 and below: the fast path
    ],
)
def test_cast_far_below_the_source_matches_fixed(src_text, dst_text):
    src, dst = FixedType.parse(src_text), FixedType.parse(dst_text)
    raw = np.array([1, 2, 3, -1, -2, src.max_raw, src.min_raw], np.int64)
    assert np.array_equal(cast(raw, src, dst), dst.cast(raw, src).astype(np.int64))


def test_float_domain_cast_declines_shifts_that_leave_the_normal_doubles():
    """``y * 2**-sh`` underflowed to -0.0 for a shift past 1074: -1 became 0, not -1."""
    src, dst = FixedType.parse("ap_fixed<8,-1100>"), FixedType.parse("ap_fixed<8,4,AP_TRN,AP_SAT>")
    assert not float_cast_ok(src, dst)
    near = FixedType.parse("ap_fixed<8,-1000>")  # a shift of 1012: still normal, still taken
    raw = np.array([-128, -1, 0, 1, 127], np.int64)
    assert float_cast_ok(near, dst)
    assert np.array_equal(cast_float(raw.astype(np.float64), near, dst).astype(np.int64), dst.cast(raw, near))


@pytest.mark.parametrize("q", QUANTIZATION_MODES)
def test_from_float_matches_fixed(q):
    rng = np.random.default_rng(3)
    dst = FixedType.parse(f"ap_fixed<10,4,{q},AP_SAT>")
    x = np.concatenate(
        [
            rng.uniform(-12, 12, 3000),
            dst.from_raw(np.arange(dst.min_raw, dst.max_raw + 1)) + 2**-7,
            np.arange(-64, 64) / 64.0,
        ]
    )
    assert np.array_equal(from_float(x, dst), dst.to_raw(x).astype(np.int64))


FLOAT_SOURCES = ["ap_fixed<20,8>", "ap_ufixed<12,4>", "ap_fixed<37,17>", "ap_fixed<52,20>", "ap_ufixed<52,30>"]


@pytest.mark.parametrize(("q", "o"), list(itertools.product(QUANTIZATION_MODES, ("AP_WRAP", "AP_SAT"))))
def test_float_domain_cast_matches_fixed(q, o):
    """``cast_float`` (raw integers held in float64) against ``sim.fixed`` wherever it
    claims exactness, right and left shifts, wrapping and not; elsewhere it declines."""
    rng = np.random.default_rng(len(q) * 11 + len(o))
    taken = 0
    for src_text in FLOAT_SOURCES:
        src = FixedType.parse(src_text)
        raw = rng.integers(src.min_raw, src.max_raw, size=4000, endpoint=True)
        raw[:6] = [src.min_raw, src.max_raw, 0, 1, src.min_raw + 1, src.max_raw - 1]
        for dst_text in (
            "ap_fixed<8,3,{q},{o}>",
            "ap_ufixed<7,2,{q},{o}>",
            "ap_fixed<24,10,{q},{o}>",
            "ap_fixed<16,14,{q},{o}>",
            "ap_fixed<40,30,{q},{o}>",
            "ap_fixed<52,21,{q},{o}>",
        ):
            dst = FixedType.parse(dst_text.format(q=q, o=o))
            if not float_cast_ok(src, dst):
                continue
            taken += 1
            expected = dst.cast(raw, src).astype(np.int64)
            y = raw.astype(np.float64)
            got = cast_float(y.copy(), src, dst, scratch=True)
            assert got.dtype == np.float64
            assert np.array_equal(got.astype(np.int64), expected), (src, dst)
            assert np.array_equal(cast_float(y, src, dst).astype(np.int64), expected), (src, dst)
            assert np.array_equal(y, raw.astype(np.float64)), "the input was overwritten without scratch"
    assert taken >= (6 if q in ("AP_RND_ZERO", "AP_RND_INF") else 20)  # those two: left shifts only
