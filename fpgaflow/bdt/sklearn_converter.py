"""Our scikit-learn converter.  conifer 1.11's fails or misleads on several estimators:
``GradientBoostingRegressor`` and ``RandomForestRegressor`` have no ``n_classes_``
(AttributeError); a binary ``RandomForestClassifier`` yields the probability of class
0, a multi-class one a single tree per estimator for K outputs; ``max_depth=None``
reaches the backends as ``None``.  Here every estimator gets the scores
``decision_function`` / ``predict_proba`` / ``predict`` compute, with sklearn's
``x <= threshold`` on float32 inputs (float64 for HistGradientBoosting)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fpgaflow.bdt.trees import NO_CHILD, make_ensemble, make_tree
from fpgaflow.bdt.xgboost_converter import ConversionError

GRADIENT_BOOSTING = ("GradientBoostingClassifier", "GradientBoostingRegressor")
FORESTS = ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor")
HIST_GRADIENT_BOOSTING = ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")
SUPPORTED = GRADIENT_BOOSTING + FORESTS + HIST_GRADIENT_BOOSTING


def _tree(t: Any, value: np.ndarray, n_features: int) -> dict:
    return make_tree(t.feature, t.threshold, value, t.children_left, t.children_right, n_features)


def convert(estimator: Any, where: str = "sklearn model") -> dict[str, Any]:
    name = type(estimator).__name__
    if name not in SUPPORTED:
        raise ConversionError(
            f"{where}: {type(estimator).__module__}.{name} is not supported; conifer takes {', '.join(SUPPORTED)}"
        )
    if not hasattr(estimator, "n_features_in_"):
        raise ConversionError(f"{where}: {name} is not fitted")
    n_features = int(estimator.n_features_in_)
    if name in GRADIENT_BOOSTING:
        return _gradient_boosting(estimator, n_features, where)
    if name in FORESTS:
        return _forest(estimator, n_features, where)
    return _hist_gradient_boosting(estimator, n_features, where)


CONSTANT_DUMMY = ("prior", "most_frequent", "constant", "mean", "median", "quantile")


def _gradient_boosting(est: Any, n_features: int, where: str) -> dict[str, Any]:
    init_est = est.init_
    constant = isinstance(init_est, str) and init_est == "zero"
    constant |= type(init_est).__name__ in ("DummyClassifier", "DummyRegressor") and (
        getattr(init_est, "strategy", None) in CONSTANT_DUMMY
    )
    if not constant:  # the firmware starts every sum from one constant
        raise ConversionError(
            f"{where}: {type(est).__name__} has init={type(init_est).__name__}, whose prediction depends on the "
            "input; conifer starts from a constant: use init=None (the class prior or mean) or 'zero'"
        )
    lr = float(est.learning_rate)
    trees = [[_tree(t.tree_, t.tree_.value[:, 0, 0] * lr, n_features) for t in stage] for stage in est.estimators_]
    init = est._raw_predict_init(np.zeros((1, n_features), dtype=np.float32))[0]
    n_classes = int(getattr(est, "n_classes_", 1))
    return make_ensemble(trees, n_features, n_classes, list(init), "sklearn", "<=")


def _forest(est: Any, n_features: int, where: str) -> dict[str, Any]:
    n = len(est.estimators_)
    classifier = hasattr(est, "n_classes_")
    if classifier and not isinstance(est.n_classes_, (int, np.integer)):
        raise ConversionError(f"{where}: multi-output forests are not supported")
    trees = []
    for member in est.estimators_:
        t = member.tree_
        if classifier:
            frac = t.value[:, 0, :] / t.value[:, 0, :].sum(axis=1, keepdims=True)  # counts or fractions
            outputs = [1] if est.n_classes_ == 2 else range(est.n_classes_)
            trees.append([_tree(t, frac[:, k] / n, n_features) for k in outputs])
        else:
            if est.n_outputs_ != 1:
                raise ConversionError(
                    f"{where}: {type(est).__name__} has {est.n_outputs_} regression targets; "
                    "conifer takes one per model"
                )
            trees.append([_tree(t, t.value[:, 0, 0] / n, n_features)])
    n_classes = int(est.n_classes_) if classifier else 1
    return make_ensemble(trees, n_features, n_classes, [0.0] * (1 if n_classes <= 2 else n_classes), "sklearn", "<=")


def _hist_gradient_boosting(est: Any, n_features: int, where: str) -> dict[str, Any]:
    trees = []
    for stage in est._predictors:
        row = []
        for predictor in stage:
            nodes = predictor.nodes
            if np.any(nodes["is_categorical"]):
                raise ConversionError(f"{where}: categorical splits cannot be expressed by conifer")
            leaf = nodes["is_leaf"].astype(bool)
            left = np.where(leaf, NO_CHILD, nodes["left"])
            right = np.where(leaf, NO_CHILD, nodes["right"])
            row.append(make_tree(nodes["feature_idx"], nodes["num_threshold"], nodes["value"], left, right, n_features))
        trees.append(row)
    baseline = np.asarray(est._baseline_prediction, dtype=np.float64).reshape(-1)
    n_classes = len(est.classes_) if hasattr(est, "classes_") else 1
    return make_ensemble(trees, n_features, n_classes, list(baseline), "sklearn", "<=")


def margins(est: Any, x: np.ndarray) -> np.ndarray:
    """sklearn's own scores matching what the firmware sums, shape (n, outputs)."""
    name = type(est).__name__
    if name in FORESTS:
        if hasattr(est, "n_classes_"):
            p = est.predict_proba(x)
            return p[:, 1:] if p.shape[1] == 2 else p
        return est.predict(x).reshape(len(x), 1)
    if name in HIST_GRADIENT_BOOSTING:  # raw scores before any inverse link
        return np.asarray(est._raw_predict(np.asarray(x, dtype=np.float64)), dtype=np.float64).reshape(len(x), -1)
    if hasattr(est, "decision_function"):
        return np.asarray(est.decision_function(x), dtype=np.float64).reshape(len(x), -1)
    return np.asarray(est.predict(x), dtype=np.float64).reshape(len(x), 1)


def float32_inputs(est: Any) -> bool:
    """sklearn's trees compare float32 inputs; HistGradientBoosting keeps float64."""
    return type(est).__name__ not in HIST_GRADIENT_BOOSTING
