"""Keras model -> hls4ml model graph (after hls4ml's optimizer passes) and HLS project."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fpgaflow.network.config import NetworkSettings, merge_hls_config
from fpgaflow.project import ProjectError


def check_supported(model: Any, where: str) -> None:
    """Every Keras layer must be one the emulator covers: name the first one that is not."""
    from fpgaflow.network.exporters import KERAS_CHECKS, KERAS_CLASSES, load_all

    load_all()
    for layer in model.layers:
        cls = type(layer).__name__
        if cls not in KERAS_CLASSES:
            raise ProjectError(
                f"{where}: layer {layer.name!r} of type {cls} is not supported "
                f"(supported: {', '.join(sorted(KERAS_CLASSES))})"
            )
        for check in KERAS_CHECKS.get(cls, ()):
            why = check(layer)
            if why:
                raise ProjectError(f"{where}: layer {layer.name!r} of type {cls}: {why}")


def hls_config(model: Any, settings: NetworkSettings, trace: bool = False) -> dict[str, Any]:
    import hls4ml

    base = hls4ml.utils.config_from_keras_model(model, granularity="name", backend=settings.backend)
    config = merge_hls_config(base, settings.hls_config, str(settings.project.file))
    if trace:
        for entry in config["LayerName"].values():
            entry["Trace"] = True
    return config


def convert(model: Any, settings: NetworkSettings, output_dir: Path, trace: bool = False) -> Any:
    """``hls4ml.converters.convert_from_keras_model`` with the project's settings."""
    import hls4ml

    check_supported(model, str(settings.project.file))
    kwargs: dict[str, Any] = {
        "output_dir": str(output_dir),
        "project_name": settings.project_name,
        "backend": settings.backend,
        "io_type": settings.io_type,
        "hls_config": hls_config(model, settings, trace),
    }
    if settings.part:
        kwargs["part"] = settings.part
    if settings.clock_period is not None:
        kwargs["clock_period"] = settings.clock_period
    try:
        return hls4ml.converters.convert_from_keras_model(model, **kwargs)
    except ProjectError:
        raise
    except Exception as exc:
        raise ProjectError(
            f"{settings.project.file}: hls4ml could not convert the model: {type(exc).__name__}: {exc}"
        ) from None
