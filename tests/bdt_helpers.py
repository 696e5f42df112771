"""Small BDTs of every supported kind, trained on the spot, and project folders for them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim.fixed import FixedType
from sim.manifest import write_manifest

N_FEATURES = 6


def data(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32) * 1.5
    score = x[:, 0] + x[:, 1] * x[:, 2] - 0.5 * x[:, 3] ** 2
    return x, score


def xgb_binary(n_trees: int = 100, depth: int = 4):
    import xgboost as xgb

    x, s = data()
    return xgb.XGBClassifier(n_estimators=n_trees, max_depth=depth, random_state=0).fit(x, s > 0).get_booster()


def xgb_multiclass(n_trees: int = 20, depth: int = 3):
    import xgboost as xgb

    x, s = data()
    y = np.digitize(s, [-1.0, 0.5])
    return xgb.XGBClassifier(n_estimators=n_trees, max_depth=depth, random_state=0).fit(x, y).get_booster()


def xgb_regressor(objective: str = "reg:squarederror", n_trees: int = 20, depth: int = 3):
    import xgboost as xgb

    x, s = data()
    y = np.exp(0.3 * s).clip(0, 50) if objective in ("count:poisson", "reg:gamma") else s
    return xgb.XGBRegressor(n_estimators=n_trees, max_depth=depth, objective=objective, random_state=0).fit(x, y)


def sklearn_model(name: str, n_trees: int = 20, depth: int = 3, n_classes: int = 2):
    from sklearn import ensemble

    x, s = data(2000)
    y = np.digitize(s, [-1.0, 0.5]) if n_classes == 3 else (s > 0).astype(int)
    est = getattr(ensemble, name)
    kwargs = {"max_depth": depth, "random_state": 0}
    if name.startswith("HistGradientBoosting"):
        kwargs.update(max_iter=n_trees)
    else:
        kwargs.update(n_estimators=n_trees)
    return est(**kwargs).fit(x, s if "Regressor" in name else y)


def save_model(model, folder: Path) -> tuple[str, str]:
    """Save as users do; returns (project key, file name)."""
    folder.mkdir(parents=True, exist_ok=True)
    if type(model).__module__.startswith("xgboost"):
        booster = model if hasattr(model, "save_raw") and not hasattr(model, "get_booster") else model.get_booster()
        booster.save_model(str(folder / "model.json"))
        return "XGBoostModel", "model.json"
    import joblib

    joblib.dump(model, folder / "model.joblib")
    return "SklearnModel", "model.joblib"


def make_project(folder: Path, model, backend: str = "xilinxhls", precision: str = "ap_fixed<18,9>", **keys) -> Path:
    key, name = save_model(model, folder)
    lines = [f"{key}: {name}", f"Backend: {backend}", f"Precision: {precision}"]
    lines += [f"{k}: {v}" for k, v in keys.items()]
    (folder / "project.yml").write_text("\n".join(lines) + "\n")
    return folder


def one_tree_manifest(tmp_path: Path, **changes) -> Path:
    """A BDT firmware manifest of one tree with two inputs, x0 < 0.5 ? 1.0 : 2.0, in
    ap_fixed<8,4> (``changes``: arrays or metadata replaced, to break it)."""
    t = FixedType.parse("ap_fixed<8,4>")
    arrays = {
        "feature": np.array([[[0, -2, -2]]], dtype=np.int32),
        "children_left": np.array([[[1, -1, -1]]], dtype=np.int32),
        "children_right": np.array([[[2, -1, -1]]], dtype=np.int32),
        "threshold_raw": np.array([[[8, 0, 0]]]),
        "value_raw": np.array([[[0, 16, 32]]]),
        "n_nodes": np.array([[3]], dtype=np.int32),
        "init_predict_raw": np.array([0]),
        "norm_raw": np.array(16),
    }
    meta = {
        "kind": "bdt",
        "n_features": 2,
        "n_outputs": 1,
        "n_trees": 1,
        "splitting_convention": "<",
        "types": {k: str(t) for k in ("input", "threshold", "score", "weight", "sum")},
        "reduction": {"order": "balanced", "normalise": True},
        "source": {"sha256": "-"},
    }
    for key, value in changes.items():
        (arrays if key in arrays else meta)[key] = value
    write_manifest(tmp_path, meta, arrays)
    return tmp_path
