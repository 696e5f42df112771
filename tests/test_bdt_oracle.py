"""The emulator against the real firmware references, bit for bit: conifer's compiled
``cpp`` backend on 10,000 inputs per model (on thresholds, one LSB off, outside the
input type's range), the HLS firmware's own C++ where a saturating sum makes the order
matter, and GHDL running conifer's VHDL."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from bdt_helpers import data, make_project, sklearn_model, xgb_binary, xgb_multiclass, xgb_regressor

import sim
from fpgaflow.bdt.config import read_config
from fpgaflow.bdt.export import firmware_types
from fpgaflow.bdt.inputs import probe_inputs
from fpgaflow.bdt.load import load_model
from fpgaflow.bdt.synth import synth
from fpgaflow.project import load_project

pytestmark = pytest.mark.oracle
N_INPUTS = 10_000

MODELS = {
    "xgboost-binary-100x4": lambda: xgb_binary(100, 4),
    "xgboost-multiclass": lambda: xgb_multiclass(20, 3),
    "xgboost-poisson-regressor": lambda: xgb_regressor("count:poisson", 20, 3),
    "sklearn-GradientBoostingClassifier": lambda: sklearn_model("GradientBoostingClassifier", 30, 3),
    "sklearn-HistGradientBoostingClassifier-3": lambda: sklearn_model("HistGradientBoostingClassifier", 10, 3, 3),
    "sklearn-GradientBoostingRegressor": lambda: sklearn_model("GradientBoostingRegressor", 30, 3),
    "sklearn-RandomForestClassifier-3": lambda: sklearn_model("RandomForestClassifier", 20, 5, n_classes=3),
    "sklearn-RandomForestRegressor": lambda: sklearn_model("RandomForestRegressor", 20, 4),
    # unlimited depth: more than 64 leaves per tree, so the emulator walks the trees instead
    "sklearn-RandomForestRegressor-deep": lambda: sklearn_model("RandomForestRegressor", 5, None),
}
NO_SYNTH_OPTIONS = argparse.Namespace(open_synth=False, vendor=False)


def _synthesized(folder, model, **keys):
    project = load_project(make_project(folder, model, **keys))
    assert synth(project, NO_SYNTH_OPTIONS) == 0
    return project, read_config(project), load_model(project), sim.load(project.build_dir / "emulator")


def _cpp(project, cfg, source):
    from fpgaflow.bdt.oracle import CppOracle

    types = {k: (v if v is not None else cfg.types[k]) for k, v in firmware_types(cfg).items()}
    return CppOracle(source.ensemble, types, project.build_dir / "cpp")


@pytest.mark.parametrize("name", MODELS)
def test_bit_exact_against_conifer_cpp(tmp_path, name):
    project, cfg, source, emulator = _synthesized(tmp_path, MODELS[name]())
    x = probe_inputs(source.ensemble, cfg.types["input"], N_INPUTS, seed=7)
    outside = (x < cfg.types["input"].min_value) | (x > cfg.types["input"].max_value)
    assert outside.any(axis=1).sum() > N_INPUTS // 4
    emulated = emulator.predict(x)
    assert (emulator._bitvectors is None) == name.endswith("-deep")
    reference = _cpp(project, cfg, source).predict_raw(x)
    assert emulated.raw.shape == reference.shape
    mismatches = np.flatnonzero(np.any(emulated.raw != reference, axis=1))
    assert mismatches.size == 0, f"{mismatches.size} mismatches, first at {x[mismatches[0]]}"


def test_saturating_sum_and_mixed_precisions_follow_the_hls_firmware(tmp_path):
    """A saturating score type makes the sum's order decide the bits, and inputs with
    fewer fractional bits than the thresholds need an exact mixed comparison; conifer's
    cpp backend can stand for neither.  The oracle is conifer's HLS firmware compiled by
    g++ (its balanced ``reduce``, ``input_t`` against ``threshold_t``)."""
    from fpgaflow.bdt.oracle import HlsOracle

    project, cfg, source, emulator = _synthesized(
        tmp_path,
        xgb_binary(8, 2),
        precision="ap_fixed<8,2,AP_RND,AP_SAT>",
        InputPrecision="ap_fixed<10,4,AP_RND,AP_SAT>",
        ThresholdPrecision="ap_fixed<14,4>",
    )
    assert emulator.order == "balanced" and not emulator.sum_wraps
    assert emulator.input_type.frac_bits < emulator.threshold_type.frac_bits
    x = probe_inputs(source.ensemble, cfg.types["input"], 3000, seed=11)
    firmware = HlsOracle(source.ensemble, cfg.conifer, cfg.types["score"])
    emulated, reference = emulator.predict(x).raw, firmware.predict_raw(x)
    assert np.array_equal(emulated, reference)
    saturated = np.isin(reference, [cfg.types["score"].min_raw, cfg.types["score"].max_raw])
    assert saturated.sum() > 100  # the test exercises saturation


@pytest.mark.slow
def test_rolled_hls_sums_sequentially_like_conifer_cpp(tmp_path):
    project, cfg, source, emulator = _synthesized(
        tmp_path, xgb_binary(8, 2), precision="ap_fixed<8,2,AP_RND,AP_SAT>", Unroll="false"
    )
    assert emulator.order == "sequential"
    x = probe_inputs(source.ensemble, cfg.types["input"], 3000, seed=12)
    assert np.array_equal(emulator.predict(x).raw, _cpp(project, cfg, source).predict_raw(x))


@pytest.mark.parametrize(
    "name, model",
    [
        ("xgboost-multiclass", lambda: xgb_multiclass(10, 3)),
        ("sklearn-RandomForestClassifier", lambda: sklearn_model("RandomForestClassifier", 10, 4)),
    ],
)
def test_bit_exact_against_ghdl_rtl(tmp_path, name, model):
    from fpgaflow.bdt.rtl import simulate

    project, cfg, source, emulator = _synthesized(tmp_path, model(), backend="vhdl", precision="ap_fixed<16,6>")
    x = probe_inputs(source.ensemble, cfg.types["input"], 500, seed=5)
    x_raw = emulator.input_type.to_raw(x.astype(np.float64))
    rtl = simulate(cfg.hls_dir, x_raw, emulator.n_outputs)
    assert np.array_equal(emulator.predict(x).raw, rtl)


@pytest.mark.slow
def test_100_trees_depth_4_rtl_and_cpp_at_full_size(tmp_path):
    from fpgaflow.bdt.rtl import simulate

    project, cfg, source, emulator = _synthesized(tmp_path, xgb_binary(100, 4), backend="vhdl")
    x = probe_inputs(source.ensemble, cfg.types["input"], N_INPUTS, seed=9)
    emulated = emulator.predict(x).raw
    assert np.array_equal(emulated, _cpp(project, cfg, source).predict_raw(x))
    rtl = simulate(cfg.hls_dir, emulator.input_type.to_raw(x[:2000].astype(np.float64)), 1)
    assert np.array_equal(emulated[:2000], rtl)


@pytest.mark.slow
def test_weight_type_that_cannot_hold_one_is_emulated_as_the_firmware_garbles_it(tmp_path):
    """WeightPrecision ap_fixed<8,1> turns conifer's one-hot weight 1.0 into -1.0."""
    project, cfg, source, emulator = _synthesized(
        tmp_path, xgb_multiclass(10, 3), precision="ap_fixed<16,6>", WeightPrecision="ap_fixed<8,1>"
    )
    assert emulator._weight_one is not None
    x = probe_inputs(source.ensemble, cfg.types["input"], 3000, seed=13)
    assert np.array_equal(emulator.predict(x).raw, _cpp(project, cfg, source).predict_raw(x))


@pytest.mark.parametrize("name", ["RandomForestRegressor", "HistGradientBoostingClassifier"])
def test_trees_trained_with_missing_values_are_bit_exact(tmp_path, name):
    """sklearn trees fitted on data with NaN split missing values off with a threshold
    of +inf (every number goes left, only NaN right); synth stopped with numpy's
    ``OverflowError: high - low range exceeds valid bounds`` drawing its probe inputs.
    Such a split sends every input the fixed-point firmware can take left."""
    from sklearn import ensemble

    x, s = data(2000)
    x[:400, 5] = np.nan  # missing, and telling: the best split separates them
    s[:400] += 5
    est = getattr(ensemble, name)(max_depth=3, random_state=0, **{"max_iter" if "Hist" in name else "n_estimators": 10})
    model = est.fit(x, s if "Regressor" in name else s > 0)
    assert np.isinf(source_thresholds(model)).any()
    project, cfg, source, emulator = _synthesized(tmp_path, model)
    x = probe_inputs(source.ensemble, cfg.types["input"], 3000, seed=14)
    assert np.array_equal(emulator.predict(x).raw, _cpp(project, cfg, source).predict_raw(x))


def source_thresholds(model) -> np.ndarray:
    if hasattr(model, "estimators_"):
        return np.concatenate([m.tree_.threshold for m in model.estimators_])
    return np.concatenate([p.nodes["num_threshold"] for stage in model._predictors for p in stage])


def test_thresholds_near_the_float32_limit_are_probed_with_finite_inputs(tmp_path):
    """Probe inputs beyond a threshold near float32's maximum overflowed to inf, and synth
    stopped with xgboost's "Input data contains `inf`" from its float check."""
    import xgboost as xgb

    x = np.random.default_rng(0).uniform(-3.39e38, 3.39e38, size=(2000, 2)).astype(np.float32)
    x[:200, 0] = np.float32(3.39e38)
    y = (x[:, 0] > 3.385e38) + (x[:, 1] > 0.0)
    model = xgb.XGBRegressor(n_estimators=3, max_depth=2, random_state=0).fit(x, y)
    project, cfg, source, emulator = _synthesized(tmp_path, model)
    x = probe_inputs(source.ensemble, cfg.types["input"], 3000, seed=15)
    assert np.isfinite(x).all() and x.max() == np.finfo(np.float32).max
    assert np.array_equal(emulator.predict(x).raw, _cpp(project, cfg, source).predict_raw(x))


def test_conifer_json_with_children_before_their_parent_follows_the_hls_firmware(tmp_path):
    """conifer's HLS trees find the active leaf in node order, a node's activity from its
    parent's: a conifer JSON numbering a node before its parent (here 1 and 2 under 3) gave
    firmware whose every score was 0 while cpp, and so verify, agreed with the emulator."""
    import json

    from fpgaflow.bdt.oracle import HlsOracle

    def tree(values):
        return {"feature": [0, -2, -2, 1, -2], "threshold": [0.0, -2.0, -2.0, 0.5, -2.0],
                "value": [0.0, values[0], values[1], 0.0, values[2]],
                "children_left": [3, -1, -1, 1, -1], "children_right": [4, -1, -1, 2, -1],
                "weight": [[1, 0], [0, 0], [0, 0], [0, 1], [0, 0]]}  # fmt: skip

    trees = [[tree([1.0, 2.0, 3.0])], [tree([0.25, 0.5, 0.75])]]
    ensemble = {"n_trees": 2, "n_classes": 2, "n_features": 2, "init_predict": [0.0], "norm": 1, "library": "conifer",
                "splitting_convention": "<=", "trees": trees}  # fmt: skip
    (tmp_path / "model.json").write_text(json.dumps(ensemble))
    (tmp_path / "project.yml").write_text("ConiferModel: model.json\nPrecision: ap_fixed<16,6>\n")
    project = load_project(tmp_path)
    assert synth(project, NO_SYNTH_OPTIONS) == 0
    cfg, source, emulator = read_config(project), load_model(project), sim.load(project.build_dir / "emulator")
    x = probe_inputs(source.ensemble, cfg.types["input"], 500, seed=16)
    firmware = HlsOracle(source.ensemble, cfg.conifer, cfg.types["score"])
    assert np.array_equal(emulator.predict(x).raw, firmware.predict_raw(x))
    assert set(np.unique(emulator.predict(x).values)) == {1.25, 2.5, 3.75}
