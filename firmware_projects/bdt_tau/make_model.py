"""Regenerate ``model.json``: a small xgboost tau-vs-jet classifier trained on generated
candidates (no data files needed).  Run: ``.venv/bin/python make_model.py``.

Features per candidate: pt [GeV], |eta|, relative isolation, number of prongs (1 or 3),
leading-track momentum fraction, visible mass [GeV]."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FEATURES = ["pt", "abs_eta", "rel_iso", "n_prongs", "lead_frac", "vis_mass"]


def candidates(n: int, seed: int = 2024) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    tau = rng.random(n) < 0.5
    pt = np.where(tau, rng.gamma(4.0, 12.0, n), rng.gamma(2.5, 15.0, n)) + 20.0
    eta = rng.uniform(0.0, 2.4, n)
    iso = np.where(tau, rng.exponential(0.08, n), rng.exponential(0.35, n))
    prongs = np.where(tau, rng.choice([1.0, 3.0], n, p=[0.75, 0.25]), rng.choice([1.0, 3.0], n, p=[0.4, 0.6]))
    lead = np.clip(np.where(tau, rng.beta(5, 2, n), rng.beta(2, 3, n)), 0, 1)
    mass = np.clip(np.where(tau, rng.normal(0.9, 0.35, n), rng.gamma(2.0, 0.9, n)), 0.0, 6.0)
    x = np.stack([pt, eta, iso, prongs, lead, mass], axis=1).astype(np.float32)
    return x, tau.astype(int)


def main() -> None:
    import xgboost as xgb

    x, y = candidates(20_000)
    model = xgb.XGBClassifier(n_estimators=20, max_depth=3, learning_rate=0.3, random_state=0)
    model.fit(x, y)
    model.get_booster().feature_names = FEATURES
    model.get_booster().save_model(str(Path(__file__).with_name("model.json")))


if __name__ == "__main__":
    main()
