"""Profiling numbers: overflow/underflow counts on crafted inputs (expected values
worked out by hand from the types), suggested types, ROC AUCs against independent
formulas and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

import sim
from fpgaflow.profiling.ranges import suggest_type
from fpgaflow.profiling.roc import auc, per_class, roc_curve
from sim.fixed import FixedType
from sim.manifest import write_manifest
from sim.network.overflow import count_overflows


@pytest.fixture
def tiny_network(tmp_path):
    """input ap_fixed<16,6> (wraps) -> dense y = x (weight 1, bias 0) into
    ap_fixed<8,3,AP_TRN,AP_SAT> -> relu into ap_ufixed<6,1,AP_TRN,AP_SAT>."""
    w_t = FixedType.parse("ap_fixed<8,3>")
    layers = [
        {"name": "x", "kind": "input", "inputs": [], "output_shape": [1], "result_type": "ap_fixed<16,6>"},
        {
            "name": "d", "kind": "dense", "inputs": ["x"], "output_shape": [1],
            "result_type": "ap_fixed<8,3,AP_TRN,AP_SAT>", "n_in": 1, "n_out": 1,
            "arrays": {"weight": "d/weight", "bias": "d/bias"}, "weight_type": str(w_t), "bias_type": str(w_t),
            "accum_type": "ap_fixed<24,10>", "strategy": "latency", "product": "mult", "reuse_factor": 1,
        },
        {"name": "r", "kind": "activation", "inputs": ["d"], "output_shape": [1],
         "result_type": "ap_ufixed<6,1,AP_TRN,AP_SAT>", "activation": "relu"},
    ]  # fmt: skip
    arrays = {"d/weight": w_t.to_raw(np.ones((1, 1))), "d/bias": w_t.to_raw(np.zeros(1))}
    write_manifest(tmp_path, {"kind": "network", "input": "x", "output": "r", "layers": layers}, arrays)
    return sim.load(tmp_path)


def test_overflow_and_underflow_counts_on_crafted_inputs(tiny_network):
    # input port ap_fixed<16,6>: [-32, 32), LSB 2^-10; 40 wraps to -24 (one overflow)
    # dense into ap_fixed<8,3> SAT: [-4, 3.96875], LSB 1/32: 5, -6 and -24 saturate (3 overflows),
    #   0.01 (0.009765625 after the port) truncates to 0 (one underflow)
    # relu into ap_ufixed<6,1> SAT: [0, 1.96875]: 3 and 3.96875 saturate (2); negatives are relu's zeros
    x = np.array([0.5, 3.0, 5.0, -6.0, 0.01, 1.5, 40.0])[:, None]
    counts = {c.name: c for c in count_overflows(tiny_network, x)}
    assert (counts["x"].overflow, counts["x"].underflow) == (1, 0)
    assert (counts["d"].overflow, counts["d"].underflow) == (3, 1)
    assert (counts["r"].overflow, counts["r"].underflow) == (2, 0)
    assert (counts["d"].low, counts["d"].high) == (-24.0, 5.0)  # what the type would have had to hold
    assert counts["r"].high == 3.96875 and counts["r"].values == 7
    # inside every range: nothing to count
    quiet = {c.name: c for c in count_overflows(tiny_network, np.array([[0.5], [1.25], [-0.75]]))}
    assert all(c.overflow == 0 and c.underflow == 0 for c in quiet.values())


def test_suggested_types_hold_the_range_with_the_same_fraction_bits():
    assert str(suggest_type("ap_fixed<8,3>", -6.0, 5.0)) == "ap_fixed<9,4>"  # needs -8..7.97
    assert str(suggest_type("ap_fixed<8,3>", -24.0, 5.0)) == "ap_fixed<11,6>"
    assert str(suggest_type("ap_ufixed<6,0,AP_RND_CONV,AP_SAT>", 0.0, 11.88)) == "ap_ufixed<10,4,AP_RND_CONV,AP_SAT>"
    assert str(suggest_type("ap_ufixed<6,1>", -0.5, 1.0)) == "ap_fixed<7,2>"  # negatives need a sign bit
    assert str(suggest_type("ap_fixed<16,6>", -3.0, 3.9)) == "ap_fixed<13,3>"  # can be narrower
    t = suggest_type("ap_fixed<8,3>", -6.0, 5.0)
    assert t.min_value <= -6.0 and t.max_value >= 5.0 and t.frac_bits == 5


def _auc_by_pairs(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + P(tie) / 2 (Mann-Whitney)."""
    p, n = scores[positive], scores[~positive]
    diff = p[:, None] - n[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def test_roc_auc_known_values():
    s = np.array([0.9, 0.8, 0.7, 0.6])
    assert auc(*roc_curve(s, np.array([1, 1, 0, 0], bool))) == 1.0
    assert auc(*roc_curve(s, np.array([0, 0, 1, 1], bool))) == 0.0
    assert auc(*roc_curve(np.array([0.5, 0.5]), np.array([1, 0], bool))) == 0.5  # a tie is a coin flip
    # one swapped pair out of four: 3/4
    assert auc(*roc_curve(np.array([0.9, 0.7, 0.8, 0.1]), np.array([1, 1, 0, 0], bool))) == 0.75
    fpr, tpr = roc_curve(s, np.array([1, 0, 1, 0], bool))
    assert np.array_equal(fpr, [0, 0, 0.5, 0.5, 1]) and np.array_equal(tpr, [0, 0.5, 0.5, 1, 1])


def test_roc_auc_with_many_ties_matches_pairs_and_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 3000)
    scores = rng.random((3000, 3)) + 0.8 * np.eye(3)[labels]
    scores = np.round(scores * 16) / 16  # few-bit firmware outputs: lots of ties
    got = per_class(scores, labels, ["a", "b", "c"])
    for k, name in enumerate("abc"):
        pos = labels == k
        assert got[name]["auc"] == pytest.approx(_auc_by_pairs(scores[:, k], pos), abs=1e-12)
        assert got[name]["auc"] == pytest.approx(roc_auc_score(pos, scores[:, k]), abs=1e-12)
    binary = per_class(scores[:, :1], (labels == 0).astype(int), ["bkg", "sig"])
    assert list(binary) == ["sig"] and binary["sig"]["auc"] == pytest.approx(got["a"]["auc"])
