"""Casts that abort hls4ml's C simulation (docs/fixed_point.md, quirk 8): the exact
condition on two types, and the network audit that names the layer and the variables,
on hand-built manifests (no hls4ml, no compiler)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim.fixed import FixedType, reads_beyond_msb, watch_csim_aborts
from sim.manifest import Manifest
from sim.network import Network
from sim.network.csim_casts import aborting_casts

# the known case: a Dense bias of ap_fixed<18,1> (F2 = 17) into an accumulator of
# ap_fixed<6,8,AP_TRN_ZERO> (F = -2) drops 19 fraction bits from an 18-bit source
BIAS, ACCUM = "ap_fixed<18,1>", "ap_fixed<6,8,AP_TRN_ZERO,AP_WRAP,1>"


@pytest.mark.parametrize(
    ("src", "dst", "aborts"),
    [
        (BIAS, ACCUM, True),
        ("ap_fixed<18,1>", "ap_fixed<6,7,AP_TRN_ZERO>", False),  # F2 - F = 18 = W2: reads the MSB itself
        ("ap_fixed<18,1>", "ap_fixed<6,8>", False),  # AP_TRN does not read the rounding bit
        ("ap_ufixed<18,1>", "ap_fixed<6,8,AP_TRN_ZERO>", False),  # nor AP_TRN_ZERO from an unsigned source
        ("ap_ufixed<18,1>", "ap_fixed<6,8,AP_RND>", True),
        ("ap_fixed<8,4>", "ap_fixed<4,14,AP_RND,AP_SAT>", True),  # the oracle's FAR_ROUNDING
        ("ap_int<4>", "ap_fixed<2,8,AP_RND_CONV>", True),  # an ap_int source is an ap_fixed<W,W>
        ("ap_fixed<18,1>", "ap_int<6>", False),  # ap_int targets convert otherwise
        ("ap_fixed<8,4>", "ap_fixed<16,12,AP_RND>", False),  # 8 bits dropped, the source's MSB
    ],
)
def test_the_condition_is_the_headers(src, dst, aborts):
    assert reads_beyond_msb(FixedType.parse(src), FixedType.parse(dst)) is aborts


def test_every_cast_path_is_watched_once_per_pair():
    from sim.network.casts import cast, cast_float

    src, dst = FixedType.parse(BIAS), FixedType.parse("ap_fixed<6,8,AP_RND>")
    raw = np.array([-5, 0, 7], dtype=np.int64)
    paths = {
        "FixedType.cast": lambda: dst.cast(raw, src),
        "casts.cast": lambda: cast(raw, src, dst),  # its int64 fast path bypasses FixedType.cast
        "casts.cast_float": lambda: cast_float(raw.astype(np.float64), src, dst),
    }
    for name, run in paths.items():
        with watch_csim_aborts() as seen:
            run()
            run()
            dst.cast(raw, FixedType.parse("ap_fixed<18,10>"))  # a legal one
        assert seen == [(src, dst)], name
    dst.cast(raw, src)  # outside a watch: nothing recorded, nothing raised


def _dense_net(bias_type: str, accum_type: str, out_type: str = "ap_fixed<16,6>") -> Network:
    layers = [
        {"name": "x", "kind": "input", "inputs": [], "output_shape": [4], "result_type": "ap_fixed<16,6>"},
        {
            "name": "fc",
            "kind": "dense",
            "inputs": ["x"],
            "output_shape": [3],
            "result_type": "ap_fixed<16,6>",
            "arrays": {"weight": "fc/weight", "bias": "fc/bias"},
            "weight_type": "ap_fixed<16,6>",
            "bias_type": bias_type,
            "accum_type": accum_type,
        },
        {"name": "out", "kind": "flatten", "inputs": ["fc"], "output_shape": [3], "result_type": out_type},
    ]
    arrays = {"fc/weight": np.full((4, 3), 256, dtype=np.int64), "fc/bias": np.array([3, -2, 1], dtype=np.int64)}
    meta = {"kind": "network", "id": "test", "layers": layers}
    return Network(Manifest(Path("unwritten"), meta, arrays))


def test_the_audit_names_the_layer_the_variables_and_the_types():
    [found] = aborting_casts(_dense_net(BIAS, ACCUM))
    assert (found.layer, str(found.source), str(found.target)) == ("fc", BIAS, ACCUM)
    assert str(found) == (
        f"layer 'fc': casting the bias (bias_type {BIAS}) into the accumulator (accum_type {ACCUM}) "
        "rounds away 19 fraction bits, more than the 18 bits of the source"
    )
    assert "at least -1 fraction bits" in found.fix()


def test_the_audit_finds_casts_made_while_running_and_intermediates():
    # a product of 32 bits (F = 20) into an accumulator with F = -14: 34 > 32 (the bias, F2 = 0,
    # drops 14 of its 16 bits: legal); fc's ap_fixed<16,6> (F = 10) into the flatten's
    # ap_fixed<4,12,AP_RND> (F = -8): 18 > 16
    net = _dense_net("ap_fixed<16,16>", "ap_fixed<4,18,AP_RND_CONV>", "ap_fixed<4,12,AP_RND>")
    found = [(c.layer, c.source_is, c.target_is) for c in aborting_casts(net)]
    assert found == [
        (
            "fc",
            "the product of input and weight (ap_fixed<32,12>)",
            "the accumulator (accum_type ap_fixed<4,18,AP_RND_CONV>)",
        ),
        ("out", "the input from layer 'fc' (ap_fixed<16,6>)", "the result (result_type ap_fixed<4,12,AP_RND>)"),
    ]


def test_a_legal_network_has_no_aborting_cast_and_still_predicts():
    net = _dense_net("ap_fixed<18,1>", "ap_fixed<24,12,AP_TRN_ZERO>")
    assert aborting_casts(net) == []
    assert net.predict_raw(np.zeros((2, 4), dtype=np.int64)).raw.shape == (2, 3)
