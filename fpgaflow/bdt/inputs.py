"""Inputs that probe a BDT where firmware and model are most likely to part: exactly on
thresholds (float and fixed-point), one LSB either side, outside the input type's range,
and spread over it.  All are float32 values, so xgboost, sklearn, conifer's C++, the
RTL and the emulator see the same numbers."""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.fixed import FixedType


def probe_inputs(ensemble: dict[str, Any], input_type: FixedType, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n_features = int(ensemble["n_features"])
    thresholds: list[list[float]] = [[] for _ in range(n_features)]
    for trees in ensemble["trees"]:
        for t in trees:
            for f, thr in zip(t["feature"], t["threshold"], strict=False):
                if f >= 0:
                    thresholds[f].append(float(thr))
    lo, hi, lsb = input_type.min_value, input_type.max_value, input_type.lsb
    x = np.empty((n, n_features))
    kind = rng.choice(6, size=(n, n_features), p=[0.25, 0.2, 0.15, 0.15, 0.1, 0.15])
    for f in range(n_features):
        thr = np.asarray(thresholds[f] or [0.0])
        span_lo, span_hi = min(thr.min(), lo), max(thr.max(), hi)
        pick = thr[rng.integers(0, len(thr), n)]
        fixed = input_type.quantize(np.clip(pick, lo, hi))
        beyond = rng.uniform(lsb, 2 * (hi - lo) + lsb, n)
        candidates = np.stack(
            [
                pick,  # exactly on the float threshold
                fixed,  # exactly on the fixed-point threshold
                fixed + lsb * rng.choice([-1.0, 1.0], n),  # one LSB either side
                rng.uniform(thr.min() - 0.1 * abs(thr.min()) - lsb, thr.max() + 0.1 * abs(thr.max()) + lsb, n),
                np.where(rng.random(n) < 0.5, hi + beyond, lo - beyond),  # outside the input type
                rng.uniform(span_lo, span_hi, n),  # across the input type's range
            ]
        )
        x[:, f] = candidates[kind[:, f], np.arange(n)]
    # beyond a threshold near float32's limit the candidates would overflow to inf (which
    # xgboost refuses); float32's largest finite values are outside every input type too
    limit = float(np.finfo(np.float32).max)
    return np.clip(x, -limit, limit).astype(np.float32)
