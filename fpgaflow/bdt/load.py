"""Read the model a BDT project names (xgboost, scikit-learn or conifer JSON) and turn it
into conifer's ensemble dictionary with a float reference to check the conversion by."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fpgaflow.bdt import sklearn_converter, xgboost_converter
from fpgaflow.bdt.trees import check_fields, float_decision_function, parents_first, tree_depth, validate
from fpgaflow.bdt.xgboost_converter import ConversionError
from fpgaflow.project import Project, ProjectError


@dataclass
class SourceModel:
    """A converted model: conifer's ensemble dict, and the library's own scores."""

    key: str  # the project key that named it
    path: Path
    sha256: str
    library: str  # xgboost | sklearn | conifer
    estimator: str  # class name or objective
    ensemble: dict[str, Any]
    reference: Callable[[np.ndarray], np.ndarray]  # float scores (n, outputs) from the library itself
    reference_name: str
    float32_inputs: bool  # the library compares float32(x) with its thresholds

    def float_scores(self, x: np.ndarray) -> np.ndarray:
        """The converted ensemble in float, fed the inputs the library would see."""
        x = np.asarray(x, dtype=np.float32 if self.float32_inputs else np.float64)
        return float_decision_function(self.ensemble, x)


def file_sha256(path: Path) -> str:
    """What a manifest's ``source.sha256`` records of the model file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


MODEL_KEYS = ("XGBoostModel", "SklearnModel", "ConiferModel")


def model_file(project: Project) -> tuple[str, Path]:
    """The project key that names the model, and its file (not loaded: for the hash synth recorded)."""
    for key in MODEL_KEYS:
        if key in project.config:
            return key, project.existing(key)
    raise ProjectError(f"{project.file}: names no BDT model (XGBoostModel, SklearnModel or ConiferModel)")


def load_model(project: Project) -> SourceModel:
    key, path = model_file(project)
    source = {"XGBoostModel": _xgboost, "SklearnModel": _sklearn, "ConiferModel": _conifer}[key](key, path)
    validate(source.ensemble, str(path))
    return source


def _xgboost(key: str, path: Path) -> SourceModel:
    if path.suffix.lower() not in (".json", ".ubj"):
        raise ProjectError(f"{path}: {key} must be an xgboost model saved as .json or .ubj (Booster.save_model)")
    booster = xgboost_converter.load_booster(str(path))
    model_json = xgboost_converter.booster_json(booster)
    ensemble = xgboost_converter.convert(model_json, str(path))
    objective = model_json["learner"]["objective"]["name"]
    return SourceModel(
        key,
        path,
        file_sha256(path),
        "xgboost",
        objective,
        ensemble,
        lambda x: xgboost_converter.margins(booster, x),
        "xgboost Booster.predict(output_margin=True)",
        True,
    )


def _sklearn(key: str, path: Path) -> SourceModel:
    import joblib

    # joblib/pickle files run code when loaded: only load models you trust (see docs/bdt.md)
    try:
        est = joblib.load(path)
    except Exception as exc:  # a pickle can fail in any way
        raise ProjectError(f"{path}: {key} could not be loaded with joblib ({type(exc).__name__}: {exc})") from None
    ensemble = sklearn_converter.convert(est, str(path))
    return SourceModel(
        key,
        path,
        file_sha256(path),
        "sklearn",
        type(est).__name__,
        ensemble,
        lambda x: sklearn_converter.margins(est, x),
        f"sklearn {type(est).__name__}",
        sklearn_converter.float32_inputs(est),
    )


def _conifer(key: str, path: Path) -> SourceModel:
    try:
        js = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{path}: {key} is not a conifer JSON model ({exc})") from None
    if not isinstance(js, dict):
        raise ProjectError(f"{path}: not a conifer model (a JSON {type(js).__name__}, not an object)")
    missing = [k for k in ("trees", "n_trees", "n_classes", "n_features", "init_predict", "norm") if k not in js]
    if missing:
        raise ProjectError(f"{path}: not a conifer model, missing field(s) {', '.join(missing)}")
    check_fields(js, str(path))
    ensemble = {k: v for k, v in js.items() if k not in ("config", "metadata")}
    ensemble["trees"] = [[parents_first(t) for t in round_trees] for round_trees in ensemble["trees"]]
    ensemble.setdefault("splitting_convention", "<=")
    if ensemble["splitting_convention"] not in ("<", "<="):
        raise ConversionError(f"{path}: splitting_convention {ensemble['splitting_convention']!r} is not < or <=")
    ensemble["max_depth"] = max((tree_depth(t) for ts in ensemble["trees"] for t in ts), default=0)
    return SourceModel(
        key,
        path,
        file_sha256(path),
        "conifer",
        str(js.get("library", "conifer")),
        ensemble,
        lambda x: float_decision_function(ensemble, x),
        "the conifer model in double precision",
        False,
    )
