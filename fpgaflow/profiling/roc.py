"""ROC curves and their areas, one class against the rest (NumPy only)."""

from __future__ import annotations

import numpy as np


def roc_curve(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates for every threshold, from (0, 0) to (1, 1).
    Tied scores move both rates at once (a diagonal step), as they must: a firmware
    output with few bits has many ties."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    if scores.shape != positive.shape:
        raise ValueError(f"scores {scores.shape} and labels {positive.shape} differ in shape")
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("a ROC curve needs both positive and negative samples")
    order = np.argsort(-scores, kind="stable")
    s, p = scores[order], positive[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(p)[last_of_tie]
    fp = np.cumsum(~p)[last_of_tie]
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under the curve (trapezoids; exact for the step/diagonal curve above)."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def per_class(scores: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, dict]:
    """``{class: {"fpr", "tpr", "auc"}}``; a single output column is a binary classifier."""
    scores = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)
    out: dict[str, dict] = {}
    if scores.shape[1] == 1:
        pairs = [(classes[-1] if classes else "positive", scores[:, 0], labels == 1)]
    else:
        pairs = [(classes[k] if k < len(classes) else f"class{k}", scores[:, k], labels == k)
                 for k in range(scores.shape[1])]  # fmt: skip
    for name, s, pos in pairs:
        if pos.all() or not pos.any():
            continue  # the class is absent (or alone) in this sample: no curve
        fpr, tpr = roc_curve(s, pos)
        out[name] = {"fpr": fpr, "tpr": tpr, "auc": auc(fpr, tpr)}
    return out
