"""Does the converted ensemble, evaluated in float, give the library's own scores?
This catches converter errors (conifer's with xgboost >= 2) before any fixed point."""

from __future__ import annotations

from typing import Any

import numpy as np

from fpgaflow.bdt.load import SourceModel
from fpgaflow.bdt.trees import float_decision_function


def tolerance(ensemble: dict[str, Any], reference: np.ndarray) -> np.ndarray:
    """float32 summation error of the library: a few ULPs per tree."""
    n = max(int(ensemble["n_trees"]), 1)
    return 1e-6 * (n + 1) * np.maximum(1.0, np.abs(reference))


def compare(ensemble: dict[str, Any], scores: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    if scores.shape != reference.shape:
        raise ValueError(f"float model gives shape {scores.shape}, the library {reference.shape}")
    diff = np.abs(scores - reference)
    bad = np.any(~(diff <= tolerance(ensemble, reference)), axis=1)  # NaN counts as disagreement
    return {
        "samples": int(len(scores)),
        "agree": int(len(scores) - bad.sum()),
        "max_abs_diff": float(np.nanmax(diff)) if np.isfinite(diff).any() else float("nan"),
        "nan": int(np.isnan(scores).any(axis=1).sum()),
    }


def check_conversion(source: SourceModel, x: np.ndarray) -> dict[str, Any]:
    result = compare(source.ensemble, source.float_scores(x), source.reference(x))
    result["reference"] = source.reference_name
    result["note"] = conifer_converter_note(source, x)
    return result


def conifer_converter_note(source: SourceModel, x: np.ndarray) -> str:
    """How conifer's own converter fares on the same inputs (why we use ours)."""
    if source.library != "xgboost":
        return ""
    try:
        from fpgaflow.bdt.toolchain import prepare_conifer_environment

        prepare_conifer_environment()
        from conifer.converters import xgboost as conifer_xgb

        from fpgaflow.bdt.xgboost_converter import load_booster

        theirs = conifer_xgb.convert(load_booster(str(source.path)))
        r = compare(source.ensemble, float_decision_function(theirs, x.astype(np.float32)), source.reference(x))
        return f"conifer's own xgboost converter: {r['agree']}/{r['samples']} agree ({r['nan']} NaN)"
    except Exception as exc:
        return f"conifer's own xgboost converter fails: {type(exc).__name__}: {exc}"
