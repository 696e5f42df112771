"""Loading Keras 2 / QKeras models: .h5, JSON + weights .h5, SavedModel."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from fpgaflow.project import Project, ProjectError


def custom_objects() -> dict[str, Any]:
    """QKeras layers and quantizers, so QKeras models load without the user doing anything."""
    objects: dict[str, Any] = {}
    try:
        from qkeras.utils import _add_supported_quantized_objects
    except ImportError:  # plain Keras still works without QKeras
        return objects
    _add_supported_quantized_objects(objects)
    return objects


def load_keras_model(project: Project) -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    cfg, objects = project.config, custom_objects()
    try:
        if "KerasJson" in cfg:
            path = project.existing("KerasJson")
            model = tf.keras.models.model_from_json(path.read_text(), custom_objects=objects)
            if "KerasH5" in cfg:
                weights = project.existing("KerasH5")
                model.load_weights(str(weights))
            return model
        key = "KerasH5" if "KerasH5" in cfg else "KerasModel"
        path = project.existing(key)
        return tf.keras.models.load_model(str(path), custom_objects=objects, compile=False)
    except ProjectError:
        raise
    except Exception as exc:  # Keras raises many types; name the file, not the stack
        files = ", ".join(str(p) for p in _named_files(project))
        raise ProjectError(f"{project.file}: cannot load the model from {files}: {type(exc).__name__}: {exc}") from None


def _named_files(project: Project) -> list[Path]:
    return [project.resolve(project.config[k]) for k in ("KerasJson", "KerasH5", "KerasModel") if k in project.config]


def source_sha256(files: list[Path]) -> str:
    """Hash of the model files (a SavedModel folder: all its files, in sorted order)."""
    h = hashlib.sha256()
    for f in files:
        paths = sorted(p for p in f.rglob("*") if p.is_file()) if f.is_dir() else [f]
        for p in paths:
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()
