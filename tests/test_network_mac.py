"""Refusals of the multiply-accumulate the emulator cannot replay say what the
accumulator does on overflow, in the type's own terms (AP_WRAP with saturation bits is
no saturating accumulator)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.fixed import FixedType
from sim.manifest import ManifestError
from sim.network.mac import Accumulator


def accumulator(accum: str, **kw) -> Accumulator:
    w = np.ones((4, 2), dtype=np.int64)
    t = FixedType.parse("ap_fixed<8,3>")
    return Accumulator("dense", t, w, t, np.zeros(2, np.int64), t, FixedType.parse(accum), **kw)


@pytest.mark.parametrize(
    "accum,says",
    [
        ("ap_fixed<18,6,AP_RND,AP_SAT>", r"a saturating accumulator \(ap_fixed<18,6,AP_RND,AP_SAT>\)"),
        (
            "ap_fixed<18,6,AP_TRN,AP_WRAP,2>",
            r"an accumulator wrapping with 2 saturation bit\(s\) \(ap_fixed<18,6,AP_TRN,AP_WRAP,2>\)",
        ),
    ],
)
def test_an_unreplayable_summation_order_names_how_the_accumulator_overflows(accum, says):
    with pytest.raises(ManifestError, match=rf"layer 'dense': {says} with the resource strategy"):
        accumulator(accum, strategy="resource", kernel="conv1d")


def test_a_plain_wrapping_accumulator_is_emulated_in_any_order():
    acc = accumulator("ap_fixed<18,6>", strategy="resource", kernel="conv1d")
    x = np.full((1, 4), 32)  # 1.0 in ap_fixed<8,3>, times weights of 1/32: 4/32 in 12 fraction bits
    assert np.array_equal(acc(x), [[512, 512]])
