"""Where training writes: the model file(s) named by the project's hls4ml keys, so
``fpgaflow synth`` finds them without further configuration; the scaling where
``synth`` looks for it; the history beside them."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fpgaflow.data.scaling import scaling_file
from fpgaflow.train.config import TrainingError

# Keras 2.14's notice on every model.save to .h5 (the format the hls4ml keys name)
HDF5_LEGACY_WARNING = r"You are saving your model as an HDF5 file via `model\.save\(\)`"


@dataclass
class TrainingOutputs:
    model: Path  # KerasH5 (full model, or weights when json is set) or KerasModel
    json: Path | None  # KerasJson: architecture, with weights in KerasH5
    scaling: Path
    history: Path

    def save_model(self, model: Any) -> None:
        """Keras calls HDF5 legacy and frets over QKeras quantizers, both fine here: those two
        are silenced, and only they (any other warning while the model is written shows)."""
        from fpgaflow.network.model import quiet_qkeras_serialize

        with quiet_qkeras_serialize(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=HDF5_LEGACY_WARNING, category=UserWarning)
            self._save(model)

    def _save(self, model: Any) -> None:
        self.model.parent.mkdir(parents=True, exist_ok=True)
        if self.json is not None:
            self.json.parent.mkdir(parents=True, exist_ok=True)
            self.json.write_text(model.to_json(indent=1))
            model.save_weights(str(self.model))
        elif self.model.suffix in (".h5", ".hdf5", ".keras"):
            model.save(str(self.model), include_optimizer=False)
        else:  # a SavedModel folder
            model.save(str(self.model), include_optimizer=False, save_format="tf")

    def all(self) -> list[Path]:
        return [p for p in (self.json, self.model, self.scaling, self.history) if p is not None]


def training_outputs(project: Any, history_name: str) -> TrainingOutputs:
    cfg = project.config
    if cfg.get("KerasJson") and not cfg.get("KerasH5"):
        raise TrainingError(f"{project.file}: KerasJson is set without KerasH5 (where the trained weights go)")
    if cfg.get("KerasH5"):
        model = project.resolve(cfg["KerasH5"])
        json = project.resolve(cfg["KerasJson"]) if cfg.get("KerasJson") else None
    elif cfg.get("KerasModel"):
        model, json = project.resolve(cfg["KerasModel"]), None
    else:
        raise TrainingError(f"{project.file}: name where the trained model goes with KerasH5 (or KerasModel)")
    scaling = scaling_file(project)
    assert scaling is not None  # a training project has a Data block
    return TrainingOutputs(model, json, scaling, project.resolve(history_name))
