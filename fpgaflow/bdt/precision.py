"""Can the chosen types hold the model?  Thresholds that collapse onto one fixed-point
value (distinct splits become the same split) or fall outside the threshold type, and
leaf scores or sums outside the score type, make a firmware that disagrees with the
model however exact the arithmetic is: count them and say so."""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.fixed import FixedType


def check_precision(ensemble: dict[str, Any], types: dict[str, FixedType]) -> dict[str, Any]:
    thr_t, score_t = types["threshold"], types["score"]
    per_feature: dict[int, list[float]] = {}
    leaves: list[float] = []
    for trees in ensemble["trees"]:
        for t in trees:
            for f, thr, v in zip(t["feature"], t["threshold"], t["value"], strict=False):
                if f >= 0:
                    per_feature.setdefault(int(f), []).append(float(thr))
                else:
                    leaves.append(float(v))
    n_thresholds = collapsed = outside = 0
    features: dict[str, dict[str, int]] = {}
    for f, values in sorted(per_feature.items()):
        distinct = np.unique(np.asarray(values))
        out = int(np.sum((distinct < thr_t.min_value) | (distinct > thr_t.max_value)))
        inside = distinct[(distinct >= thr_t.min_value) & (distinct <= thr_t.max_value)]
        merged = len(inside) - len(np.unique(thr_t.to_raw(inside)))
        n_thresholds += len(distinct)
        collapsed += merged
        outside += out
        if merged or out:
            features[f"f{f}"] = {"thresholds": len(distinct), "collapsed": merged, "outside_range": out}
    leaf = np.asarray(leaves or [0.0])
    init = np.abs(np.asarray(ensemble["init_predict"], dtype=np.float64))
    worst_sum = float(np.max(init)) + len(ensemble["trees"]) * float(np.max(np.abs(leaf)))
    leaf_outside = int(np.sum((leaf < score_t.min_value) | (leaf > score_t.max_value)))
    clipped = np.clip(leaf, score_t.min_value, score_t.max_value)
    leaf_zeroed = int(np.sum((leaf != 0) & (score_t.quantize(clipped) == 0)))
    result = {
        "threshold_type": str(thr_t),
        "score_type": str(score_t),
        "distinct_thresholds": n_thresholds,
        "collapsed_thresholds": collapsed,
        "thresholds_outside_range": outside,
        "features": features,
        "leaves": len(leaves),
        "leaves_outside_range": leaf_outside,
        "leaves_quantised_to_zero": leaf_zeroed,
        "worst_case_sum": worst_sum,
        "sum_may_overflow": worst_sum > score_t.max_value,
    }
    result["warnings"] = precision_warnings(result)
    return result


def precision_warnings(r: dict[str, Any]) -> list[str]:
    out = []
    if r["collapsed_thresholds"]:
        worst = ", ".join(f"{f}: {d['collapsed']}" for f, d in list(r["features"].items())[:5] if d["collapsed"])
        out.append(
            f"ThresholdPrecision {r['threshold_type']} collapses {r['collapsed_thresholds']} of "
            f"{r['distinct_thresholds']} distinct thresholds onto a neighbour ({worst}); add fractional bits"
        )
    if r["thresholds_outside_range"]:
        out.append(
            f"{r['thresholds_outside_range']} thresholds lie outside {r['threshold_type']} "
            "and wrap or saturate; add integer bits"
        )
    if r["leaves_outside_range"]:
        out.append(f"{r['leaves_outside_range']} leaf scores lie outside ScorePrecision {r['score_type']}")
    if r["leaves_quantised_to_zero"]:
        out.append(f"{r['leaves_quantised_to_zero']} non-zero leaf scores become 0 in {r['score_type']}")
    if r["sum_may_overflow"]:
        out.append(
            f"the sum of tree scores can reach {r['worst_case_sum']:.4g}, beyond {r['score_type']} "
            f"(max {FixedType.parse(r['score_type']).max_value:.4g}): it may overflow"
        )
    return out
