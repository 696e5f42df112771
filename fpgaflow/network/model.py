"""Loading Keras 2 / QKeras models: .h5, JSON + weights .h5, SavedModel."""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fpgaflow.project import Project, ProjectError

# Keras's two-line UserWarning each time a QKeras layer serializes its quantizers (every
# get_config: conversion, hls4ml's write...): about QKeras's code, never the user's model
QKERAS_SERIALIZE_WARNING = (
    r"The `keras\.constraints\.serialize\(\)` API should only be used for objects of type "
    r"`keras\.constraints\.Constraint`\. Found an instance of type <class 'qkeras\."
)


@contextlib.contextmanager
def quiet_qkeras_serialize() -> Iterator[None]:
    """Silence Keras's warning about QKeras quantizers, and only it, for the ``with`` block
    (or, ``@quiet_qkeras_serialize()``, the function) that loads and converts a model."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=QKERAS_SERIALIZE_WARNING, category=UserWarning)
        yield


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
    if "KerasJson" in cfg and "KerasH5" not in cfg:
        # Keras would initialise the weights at random: firmware from random numbers, and
        # verify, which loads the model again, would draw other ones and report a divergence
        raise ProjectError(
            f"{project.file}: KerasJson is set without KerasH5: the JSON holds the architecture only; "
            "name the weights file with KerasH5 (or give the full model with KerasH5 or KerasModel alone)"
        )
    # what is being read, for the message: with KerasJson + KerasH5, the file that failed
    what = ""
    try:
        if "KerasJson" in cfg:
            path = project.existing("KerasJson")
            what = f"the model's architecture from {path} (KerasJson)"
            model = tf.keras.models.model_from_json(path.read_text(), custom_objects=objects)
            weights = project.existing("KerasH5")
            what = f"the model's weights from {weights} (KerasH5) into the architecture of {path.name}"
            model.load_weights(str(weights))
            return model
        key = "KerasH5" if "KerasH5" in cfg else "KerasModel"
        path = project.existing(key)
        what = f"the model from {path} ({key})"
        return tf.keras.models.load_model(str(path), custom_objects=objects, compile=False)
    except ProjectError:
        raise
    except Exception as exc:  # Keras raises many types; name the file, not the stack
        unknown = _unknown_layers(project, objects)
        if unknown:  # Keras's own error for these is e.g. "'str' object is not callable"
            raise ProjectError(
                f"{project.file}: cannot load {what}: "
                + "; ".join(f"{_layers(n)} of class {cls}{src}" for cls, src, n in unknown)
                + ", which neither Keras nor QKeras defines (fpgaflow reads Keras and QKeras models)"
            ) from None
        why = " ".join(f"{type(exc).__name__}: {exc}".split())  # one line: some of Keras's span several
        raise ProjectError(f"{project.file}: cannot load {what}: {why}") from None


def _layers(names: list[str]) -> str:
    return f"layer {names[0]!r} is" if len(names) == 1 else f"layers {', '.join(map(repr, names))} are"


def _unknown_layers(project: Project, objects: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(class, " (module ...)", layer names) of the layers in a model JSON (``KerasJson``, or
    the config inside a full ``KerasH5``) whose class Keras and QKeras do not know."""
    import json

    import tensorflow as tf

    try:
        if "KerasJson" in project.config:
            config = json.loads(project.existing("KerasJson").read_text())
        elif "KerasH5" in project.config:
            import h5py

            with h5py.File(project.existing("KerasH5"), "r") as f:
                text = f.attrs.get("model_config")
            config = json.loads(text.decode() if isinstance(text, bytes) else text)
        else:
            return []
        layers = config["config"]["layers"]
    except Exception:  # not a model config we can read: keep Keras's own error
        return []
    unknown: dict[tuple[str, str], list[str]] = {}
    for layer in layers:
        cls = layer.get("class_name", "")
        if not hasattr(tf.keras.layers, cls) and cls not in objects:
            module = layer.get("module") or ""
            src = f" (module {module})" if module and not module.startswith("keras") else ""
            unknown.setdefault((cls, src), []).append(layer.get("name") or layer.get("config", {}).get("name", "?"))
    return [(cls, src, names) for (cls, src), names in unknown.items()]


def source_sha256(files: list[Path]) -> str:
    """Hash of the model files (a SavedModel folder: all its files, in sorted order)."""
    h = hashlib.sha256()
    for f in files:
        paths = sorted(p for p in f.rglob("*") if p.is_file()) if f.is_dir() else [f]
        for p in paths:
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()
