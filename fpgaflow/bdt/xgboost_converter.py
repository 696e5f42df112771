"""Our xgboost converter, reading the booster's own JSON: conifer's (1.11) goes wrong
for xgboost >= 2, and the float model must match xgboost before the firmware can.

What conifer gets wrong, and what we do instead:

- thresholds: conifer parses ``trees_to_dataframe`` text (9 significant digits), not
  the float32 xgboost compares with ``float32(x) < threshold``; xgboost's histogram
  cuts sit exactly on data values, so inputs equal to a threshold go the wrong way.
  We take ``split_conditions`` as float32 and widen them exactly.
- the intercept: xgboost 3 stores multi-class ``base_score`` as margins (conifer takes
  their logit: NaN for negative ones), and log-link objectives (Poisson, gamma,
  Tweedie, Cox and AFT survival) need ``log(base_score)``, not the identity.  We apply each objective's own
  link, in float32 as xgboost does.
- trees: ``tree_info`` says which class a tree belongs to (``num_parallel_tree`` > 1
  breaks conifer's ``class = index % n_classes``); pruned nodes are dropped; DART
  weights are applied; categorical splits and vector leaves are refused.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from fpgaflow.bdt.trees import make_ensemble, make_tree

LOGIT_OBJECTIVES = ("binary:logistic", "reg:logistic")
LOG_OBJECTIVES = ("count:poisson", "reg:gamma", "reg:tweedie", "survival:cox", "survival:aft")


class ConversionError(ValueError):
    """A model conifer's firmware cannot express; the message names the part."""


def intercept(objective: str, base_score: str, n_outputs: int) -> list[float]:
    """The margin xgboost starts every prediction from, per output."""
    values = np.asarray([float(v) for v in base_score.strip("[]").split(",")], dtype=np.float32)
    one = np.float32(1.0)
    if objective in LOGIT_OBJECTIVES:
        margin = -np.log(one / values - one)
    elif objective in LOG_OBJECTIVES:
        margin = np.log(values)
    else:  # identity link; xgboost >= 3 already stores multi-class intercepts as margins
        margin = values
    margin = np.asarray(margin, dtype=np.float32)
    if margin.size == 1:
        margin = np.repeat(margin, n_outputs)
    if margin.size != n_outputs:
        raise ConversionError(f"base_score {base_score!r} has {margin.size} values for {n_outputs} outputs")
    return [float(v) for v in margin]


def convert(model_json: dict[str, Any], where: str = "xgboost model") -> dict[str, Any]:
    """conifer ensemble dict from ``Booster.save_raw('json')`` (parsed)."""
    learner = model_json["learner"]
    params = learner["learner_model_param"]
    booster = learner["gradient_booster"]
    objective = learner["objective"]["name"]
    if booster["name"] == "dart":
        weights = [float(w) for w in booster["weight_drop"]]
        model = booster["gbtree"]["model"]
    elif booster["name"] == "gbtree":
        model, weights = booster["model"], None
    else:
        raise ConversionError(f"{where}: booster '{booster['name']}' has no trees; conifer takes gbtree or dart")
    if int(params.get("num_target", 1)) > 1:
        raise ConversionError(f"{where}: {params['num_target']} regression targets; conifer takes one per model")
    n_features = int(params["num_feature"])
    num_class = int(params.get("num_class", 0))
    if num_class == 2:  # conifer's backends read n_classes 2 as a single output
        raise ConversionError(
            f"{where}: {objective} with num_class 2: two outputs (one tree per class and round), but conifer "
            "takes 2 classes as one output; train a two-class model with binary:logistic"
        )
    n_outputs = max(num_class, 1)
    info = [int(c) for c in model["tree_info"]]
    by_output: list[list[dict]] = [[] for _ in range(n_outputs)]
    for i, tree in enumerate(model["trees"]):
        if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
            raise ConversionError(f"{where}: tree {i} has vector leaves (multi_strategy); conifer needs scalar leaves")
        if any(int(s) != 0 for s in tree["split_type"]):
            raise ConversionError(f"{where}: tree {i} has categorical splits, which conifer cannot express")
        leaf = np.asarray(tree["split_conditions"], dtype=np.float32)
        if weights is not None:
            leaf = leaf * np.float32(weights[i])
        by_output[info[i]].append(
            make_tree(
                tree["split_indices"],
                np.asarray(tree["split_conditions"], dtype=np.float32).astype(np.float64),
                leaf.astype(np.float64),
                tree["left_children"],
                tree["right_children"],
                n_features,
            )
        )
    counts = {len(ts) for ts in by_output}
    if len(counts) != 1:
        raise ConversionError(f"{where}: outputs have different numbers of trees {sorted(counts)}")
    trees = [list(group) for group in zip(*by_output, strict=False)]
    n_classes = 2 if num_class == 0 else num_class  # conifer: 2 means a single output
    return make_ensemble(
        trees, n_features, n_classes, intercept(objective, params["base_score"], n_outputs), "xgboost", "<"
    )


def load_booster(path: str) -> Any:
    import xgboost as xgb

    booster = xgb.Booster()
    try:
        booster.load_model(str(path))
    except xgb.core.XGBoostError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise ConversionError(f"{path}: not an xgboost model file (.json or .ubj): {first}") from None
    return booster


def booster_json(booster: Any) -> dict[str, Any]:
    return json.loads(booster.save_raw(raw_format="json"))


def margins(booster: Any, x: np.ndarray) -> np.ndarray:
    """xgboost's own raw scores (float32 inputs, as xgboost compares), shape (n, outputs)."""
    import xgboost as xgb

    matrix = xgb.DMatrix(np.asarray(x, dtype=np.float32), feature_names=booster.feature_names)
    out = booster.predict(matrix, output_margin=True)
    return np.asarray(out, dtype=np.float64).reshape(len(x), -1)
