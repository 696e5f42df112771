"""Shared helpers for the network oracle tests: synthesize a project into a tmp dir,
run hls4ml's C simulation (the real firmware sources, g++) and our emulator on the
same inputs, and compare them with ``fpgaflow.network.verify.compare``."""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODELS = Path(__file__).parent / "data" / "models"


@dataclass
class Oracle:
    """One synthesized project with its emulator and compiled C simulation."""

    project: Any
    net: Any
    hls_model: Any
    keras_model: Any

    def compare(self, x: np.ndarray) -> dict:
        from fpgaflow.network.verify import compare, csim_trace

        x = self.net._input_raw(np.asarray(x, dtype=np.float64))
        y, trace = csim_trace(self.hls_model, x)
        result = compare(self.net, x, y, trace, None)
        result["predict_bit_exact"] = self.predict_agrees(x, y)
        return result

    def predict_agrees(self, x: np.ndarray, csim_y: np.ndarray) -> dict[str, bool]:
        """``predict`` (chunked, threaded, the float64 domain) against csim's outputs, on
        each BLAS the emulator can use (``compare`` checks ``trace``, one chunk)."""
        from fpgaflow.network.verify import raw_of
        from sim.network import blas

        expected = raw_of(csim_y, self.net.output_type).reshape(len(x), *self.net.output_shape)
        before, agrees = blas.backend(), {}
        try:
            for name in ("scipy", "numpy"):
                blas.use(name)
                agrees[name] = bool(np.array_equal(self.net.predict(x).raw, expected))
        finally:
            blas.use(before)
        return agrees

    def random_inputs(self, n: int, seed: int = 0) -> np.ndarray:
        from fpgaflow.network.verify import random_inputs

        return random_inputs(self.net.input_type, self.net.input_shape, n, seed)


def write_project(folder: Path, config: dict, files: dict[str, Path] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for rel, src in (files or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, folder / rel)
    path = folder / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def synth_and_build(config_file: Path) -> Oracle:
    """``fpgaflow synth`` the project, then a traced csim copy of it (not yet compiled:
    ``trace()`` compiles on first use)."""
    import sim
    from fpgaflow.network.config import read_settings
    from fpgaflow.network.model import load_keras_model
    from fpgaflow.network.synth import synth
    from fpgaflow.network.verify import csim_model
    from fpgaflow.project import load_project

    project = load_project(config_file)
    assert synth(project, argparse.Namespace(vendor=False)) == 0
    net = sim.load(project.build_dir / "emulator")
    model = load_keras_model(project)
    hls_model = csim_model(model, read_settings(project), project.root / "csim")
    return Oracle(project, net, hls_model, model)


def save_keras(model: Any, folder: Path, name: str) -> dict[str, Path]:
    """A Keras model as JSON + weights .h5 (the format of the shared models)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(model.to_json())
    model.save_weights(str(folder / f"{name}_weights.h5"))
    return {f"{name}.json": folder / f"{name}.json", f"{name}_weights.h5": folder / f"{name}_weights.h5"}
