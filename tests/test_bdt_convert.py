"""Our converters against the libraries themselves: the converted ensemble, evaluated in
float, must give xgboost's / scikit-learn's own scores on inputs that sit exactly on the
thresholds (where conifer 1.11's xgboost converter goes wrong with xgboost >= 2)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from bdt_helpers import data, make_project, sklearn_model, xgb_binary, xgb_multiclass, xgb_regressor

from fpgaflow.bdt.float_check import check_conversion
from fpgaflow.bdt.inputs import probe_inputs
from fpgaflow.bdt.load import load_model
from fpgaflow.project import load_project
from sim.fixed import FixedType


def _xgb_survival(objective: str):
    """Log-link survival objectives: the intercept is log(base_score) (was the identity: all disagreed)."""
    import xgboost as xgb

    x, s = data(600)
    t = np.exp(0.3 * s).clip(0.01, 50)
    dm = xgb.DMatrix(x, label=t)
    if objective == "survival:aft":
        dm.set_float_info("label_lower_bound", t)
        dm.set_float_info("label_upper_bound", t * 1.5)
    return xgb.train({"objective": objective, "max_depth": 2, "base_score": 3.0}, dm, 5)


XGBOOST = {
    "binary": lambda: xgb_binary(30, 4),
    "multiclass": lambda: xgb_multiclass(10, 3),
    "squarederror": lambda: xgb_regressor("reg:squarederror"),
    "poisson": lambda: xgb_regressor("count:poisson"),
    "gamma": lambda: xgb_regressor("reg:gamma"),
    "absoluteerror": lambda: xgb_regressor("reg:absoluteerror"),
    "cox": lambda: _xgb_survival("survival:cox"),
    "aft": lambda: _xgb_survival("survival:aft"),
}
SKLEARN = {
    "GradientBoostingClassifier": {},
    "GradientBoostingClassifier-3": {"n_classes": 3},
    "GradientBoostingRegressor": {},
    "RandomForestClassifier": {"depth": 6},
    "RandomForestClassifier-3": {"n_classes": 3, "depth": None},
    "RandomForestRegressor": {"depth": None, "n_trees": 5},
    "ExtraTreesRegressor": {},
    "HistGradientBoostingClassifier": {},
    "HistGradientBoostingClassifier-3": {"n_classes": 3},
    "HistGradientBoostingRegressor": {},
}


def _check(tmp_path, model) -> dict:
    project = load_project(make_project(tmp_path, model))
    source = load_model(project)
    x = probe_inputs(source.ensemble, FixedType.parse("ap_fixed<18,9>"), 3000, seed=3)
    return check_conversion(source, x)


@pytest.mark.parametrize("kind", XGBOOST)
def test_xgboost_conversion_matches_xgboost(tmp_path, kind):
    result = _check(tmp_path, XGBOOST[kind]())
    assert result["agree"] == result["samples"], result


@pytest.mark.parametrize("name", SKLEARN)
def test_sklearn_conversion_matches_sklearn(tmp_path, name):
    options = dict(SKLEARN[name])
    result = _check(tmp_path, sklearn_model(name.split("-")[0], **options))
    assert result["agree"] == result["samples"], result


def _sklearn_refused(kind: str):
    from sklearn import ensemble, linear_model

    x, s = data(300)
    if kind == "forest-2-targets":
        return ensemble.RandomForestRegressor(n_estimators=3, max_depth=2).fit(x, np.stack([s, -s], 1))
    if kind == "extra-trees-3-targets":
        return ensemble.ExtraTreesRegressor(n_estimators=3, max_depth=2).fit(x, np.stack([s, -s, s], 1))
    init = linear_model.LogisticRegression()
    return ensemble.GradientBoostingClassifier(n_estimators=3, max_depth=2, init=init).fit(x, s > 0)


@pytest.mark.parametrize(
    "kind, message",
    [
        # was a reshape error from the float check (and only the first target converted)
        ("forest-2-targets", "RandomForestRegressor has 2 regression targets; conifer takes one per model"),
        ("extra-trees-3-targets", "ExtraTreesRegressor has 3 regression targets"),
        # was a float-check disagreement: the init estimator evaluated at x = 0 only
        ("gb-init-estimator", "GradientBoostingClassifier has init=LogisticRegression, whose prediction depends on"),
    ],
)
def test_sklearn_models_conifer_cannot_express_are_named(tmp_path, kind, message):
    project = load_project(make_project(tmp_path, _sklearn_refused(kind)))
    with pytest.raises(ValueError, match=message):
        load_model(project)


def test_probe_inputs_hit_thresholds_and_leave_the_range(tmp_path):
    project = load_project(make_project(tmp_path, xgb_binary(10, 3)))
    ens = load_model(project).ensemble
    t = FixedType.parse("ap_fixed<18,9>")
    x = probe_inputs(ens, t, 2000, seed=0)
    thresholds = {
        (f, thr)
        for trees in ens["trees"]
        for tr in trees
        for f, thr in zip(tr["feature"], tr["threshold"], strict=True)
        if f >= 0
    }
    on_float = sum((f, float(v)) in thresholds for f in range(x.shape[1]) for v in x[:, f])
    quantised = {(f, float(t.quantize(thr))) for f, thr in thresholds}
    on_fixed = sum((f, float(v)) in quantised for f in range(x.shape[1]) for v in x[:, f])
    outside = np.sum((x < t.min_value) | (x > t.max_value))
    assert on_float > 100 and on_fixed > 100 and outside > 100


def test_synth_refuses_a_model_it_cannot_convert_faithfully(tmp_path, monkeypatch):
    """If the float conversion ever disagrees with the library, synth stops (no silent firmware)."""
    from fpgaflow.bdt import load as load_module
    from fpgaflow.bdt.synth import synth

    project = load_project(make_project(tmp_path, xgb_binary(5, 2)))
    original = load_module.load_model

    def broken(p):
        source = original(p)
        source.ensemble["init_predict"] = [source.ensemble["init_predict"][0] + 0.25]
        return source

    monkeypatch.setattr("fpgaflow.bdt.synth.load_model", broken)
    with pytest.raises(ValueError, match="disagrees with xgboost"):
        synth(project, argparse.Namespace(open_synth=False, vendor=False))


def test_ubj_and_conifer_json_models_load(tmp_path):
    """xgboost's binary UBJ format, and a model saved by conifer itself (ConiferModel)."""
    import conifer

    booster = xgb_binary(5, 3)
    booster.save_model(str(tmp_path / "model.ubj"))
    (tmp_path / "project.yml").write_text("XGBoostModel: model.ubj\n")
    source = load_model(load_project(tmp_path))
    assert source.ensemble["n_trees"] == 5
    x = probe_inputs(source.ensemble, FixedType.parse("ap_fixed<18,9>"), 500, seed=1)
    assert check_conversion(source, x)["agree"] == 500

    gbc = sklearn_model("GradientBoostingClassifier", 4, 2)
    config = {"Backend": "py", "OutputDir": str(tmp_path), "ProjectName": "c"}
    theirs = conifer.converters.convert_from_sklearn(gbc, config)
    theirs.save(str(tmp_path / "conifer_model.json"))
    (tmp_path / "project.yml").write_text("ConiferModel: conifer_model.json\n")
    mine = load_model(load_project(tmp_path))
    assert mine.ensemble["n_trees"] == 4 and mine.ensemble["splitting_convention"] == "<="
    assert np.allclose(mine.float_scores(x), gbc.decision_function(x).reshape(-1, 1))


@pytest.mark.parametrize("objective", ["multi:softprob", "multi:softmax"])
def test_xgboost_two_class_multiclass_is_named(tmp_path, objective):
    """num_class 2 gives two trees per round; conifer reads n_classes 2 as one output.
    It was refused as "tree 0 has 2 output trees, expected 1"."""
    import xgboost as xgb

    x, s = data(300)
    booster = xgb.train({"objective": objective, "num_class": 2, "max_depth": 2}, xgb.DMatrix(x, s > 0), 3)
    project = load_project(make_project(tmp_path, booster))
    with pytest.raises(ValueError, match=f"{objective} with num_class 2: two outputs.*binary:logistic"):
        load_model(project)
