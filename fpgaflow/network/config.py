"""The network project file: hls4ml's own YAML keys, read by fpgaflow itself.

(hls4ml 1.3.0's ``convert_from_config`` returns None for ``KerasJson``/``KerasH5``
configurations, so the keys are interpreted here and the model converted with
``convert_from_keras_model``.)"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fpgaflow.project import Project, ProjectError

BACKENDS = ("Vivado", "Vitis")
IO_TYPES = ("io_parallel", "io_stream")
HLS_SECTIONS = ("Model", "LayerType", "LayerName")


@dataclass
class NetworkSettings:
    project: Project
    backend: str
    project_name: str
    part: str | None
    clock_period: float | None
    io_type: str
    hls_config: dict[str, Any]  # the user's HLSConfig, unchanged

    @property
    def build_dir(self) -> Path:
        return self.project.build_dir


def read_settings(project: Project) -> NetworkSettings:
    cfg = project.config
    backend = str(cfg.get("Backend", "Vivado"))
    match = [b for b in BACKENDS if b.lower() == backend.lower()]
    if not match:
        raise ProjectError(f"{project.file}: Backend {backend!r} is not supported (supported: {', '.join(BACKENDS)})")
    io_type = str(cfg.get("IOType", "io_parallel"))
    if io_type not in IO_TYPES:
        raise ProjectError(f"{project.file}: IOType {io_type!r} is not one of {', '.join(IO_TYPES)}")
    hls = cfg.get("HLSConfig") or {}
    if not isinstance(hls, dict):
        raise ProjectError(f"{project.file}: HLSConfig must be a mapping")
    for key in hls:
        if key not in HLS_SECTIONS:
            raise ProjectError(
                f"{project.file}: HLSConfig has unknown section {key!r} (expected {', '.join(HLS_SECTIONS)})"
            )
    clock = cfg.get("ClockPeriod")
    return NetworkSettings(
        project=project,
        backend=match[0],
        project_name=str(cfg.get("ProjectName") or "myproject"),
        part=cfg.get("Part"),
        clock_period=float(clock) if clock is not None else None,
        io_type=io_type,
        hls_config=hls,
    )


def model_files(project: Project) -> list[Path]:
    """The files the model is read from (for the source hash and error messages)."""
    cfg = project.config
    if "KerasJson" in cfg:
        files = [project.existing("KerasJson")]
        if "KerasH5" in cfg:
            files.append(project.existing("KerasH5"))
        return files
    if "KerasH5" in cfg:
        return [project.existing("KerasH5")]
    return [project.existing("KerasModel")]


def merge_hls_config(base: dict[str, Any], user: dict[str, Any], where: str) -> dict[str, Any]:
    """hls4ml's per-name defaults with the user's Model/LayerType/LayerName entries on top.

    A ``Precision`` given as a string replaces the layer's; as a mapping it updates
    only the variables it names.  A LayerName entry for a layer the model does not
    have is an error naming it."""
    merged = copy.deepcopy(base)
    for key, value in (user.get("Model") or {}).items():
        merged.setdefault("Model", {})[key] = copy.deepcopy(value)
    if user.get("LayerType"):
        merged["LayerType"] = copy.deepcopy(user["LayerType"])
    names = merged.setdefault("LayerName", {})
    for layer, entry in (user.get("LayerName") or {}).items():
        if layer not in names:
            raise ProjectError(
                f"{where}: HLSConfig.LayerName names layer {layer!r}, which the model does not have "
                f"(its layers: {', '.join(sorted(names))})"
            )
        if not isinstance(entry, dict):
            raise ProjectError(f"{where}: HLSConfig.LayerName.{layer} must be a mapping")
        target = names[layer]
        for key, value in entry.items():
            if key == "Precision" and isinstance(value, dict) and isinstance(target.get("Precision"), dict):
                target["Precision"].update(copy.deepcopy(value))
            else:
                target[key] = copy.deepcopy(value)
    return merged
