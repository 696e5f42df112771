"""A tiny trainable project with named scalar features (f0..f3 on very different
scales, three classes), for the tests of what happens after training: synth, verify
and profile against the recorded scaling and split."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FEATURES = ["f0", "f1", "f2", "f3"]


def tiny_project(root: Path, training: dict[str, Any] | None = None, data: dict[str, Any] | None = None,
                 n: int = 600) -> Path:  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    centres = np.array([[0, 0, 0, 0], [3, 0, 3, 0], [0, 3, 0, 3]], float)
    x = (centres[y] + rng.normal(size=(n, 4))) * [1, 100, 0.01, 1] + [0, 500, 0, -7]
    onehot = np.eye(3)[y]
    columns = {f: x[:, i] for i, f in enumerate(FEATURES)}
    np.savez(root / "d.npz", **columns, y=y, is_a=onehot[:, 0], is_b=onehot[:, 1], is_c=onehot[:, 2], X=x)
    cfg = {
        "KerasH5": "model/m.h5",
        "OutputDir": "build",
        "ProjectName": "tiny",
        "IOType": "io_parallel",
        "HLSConfig": {"Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"}},
        "Data": {"File": "d.npz", "Features": list(FEATURES), "Labels": "y", "Classes": ["a", "b", "c"]},
        "Training": {
            "Model": {
                "Bits": 8,
                "IntegerBits": 1,
                "Layers": [{"Name": "fc1", "Units": 8}, {"Name": "out", "Units": 3, "Activation": "softmax"}],
            },
            "Epochs": 2,
            "BatchSize": 64,
            "LearningRate": 0.01,
            "Seed": 3,
            "Verbose": 0,
            **(training or {}),
        },
    }
    cfg["Data"].update(data or {})
    write_config(root, cfg)
    return root


def read_config(root: Path) -> dict[str, Any]:
    return yaml.safe_load((root / "project.yml").read_text())


def write_config(root: Path, cfg: dict[str, Any]) -> None:
    (root / "project.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
