"""Export hls4ml's model graph (after its optimizer passes) as the firmware manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fpgaflow.network.exporters import EXPORTERS, ExportContext, load_all
from fpgaflow.network.firmware_settings import settings_digests
from fpgaflow.network.types import UnsupportedType, result_type
from fpgaflow.project import ProjectError


def graph_layers(hls_model: Any) -> list[Any]:
    return list(hls_model.get_layers())


def manifest_content(hls_model: Any, settings: Any, source_sha256: str) -> tuple[dict, dict]:
    """The manifest's metadata and arrays for a converted hls4ml model."""
    import hls4ml

    load_all()
    ctx = ExportContext(io_type=settings.io_type)
    producer: dict[str, str] = {}
    layers: list[dict] = []
    for layer in graph_layers(hls_model):
        fn = EXPORTERS.get(layer.class_name)
        if fn is None:
            raise ProjectError(
                f"layer {layer.name!r}: hls4ml layer class {layer.class_name} is not supported by the emulator "
                f"(supported: {', '.join(sorted(EXPORTERS))})"
            )
        try:
            spec = fn(layer, ctx)
            spec = {
                "name": layer.name,
                "kind": spec.pop("kind"),
                "class_name": layer.class_name,
                "inputs": [producer[v] for v in layer.inputs] if layer.class_name != "Input" else [],
                "output_shape": [int(d) for d in layer.get_output_variable().shape],
                "result_type": result_type(layer),
                **spec,
            }
        except (UnsupportedType, KeyError) as exc:
            raise ProjectError(f"layer {layer.name!r} ({layer.class_name}): {exc}") from None
        for out in layer.outputs:
            producer[out] = layer.name
        layers.append(spec)
    warnings = getattr(settings, "warnings", None)
    if warnings is not None:
        warnings.extend(w for w in ctx.warnings if w not in warnings)
    n_inputs = sum(1 for spec in layers if not spec["inputs"])
    if n_inputs != 1:
        raise ProjectError(f"networks with {n_inputs} inputs are not supported (the emulator takes one input array)")
    outputs = [producer[v] for v in hls_model.outputs]
    if len(outputs) != 1:
        raise ProjectError(f"networks with {len(outputs)} outputs are not supported (outputs: {outputs})")
    meta = {
        "kind": "network",
        "name": settings.project_name,
        "backend": settings.backend,
        "io_type": settings.io_type,
        "part": hls_model.config.get_config_value("Part"),
        "clock_period": hls_model.config.get_config_value("ClockPeriod"),
        "hls4ml_version": hls4ml.__version__,
        "source_sha256": source_sha256,
        "settings_sha256": settings_digests(settings),  # what the stale check compares the project file with
        "input": layers[0]["name"],
        "output": outputs[0],
        "layers": layers,
    }
    return meta, ctx.arrays


def refuse_unemulated(meta: dict, arrays: dict, directory: Path) -> Any:
    """The emulator built from the manifest before synth writes anything: a layer it
    cannot replay (products beyond its exact paths, an accumulator that saturates whose
    summation order it does not follow) is refused naming the layer, where it used to be
    found only when the emulator first ran that layer (verify, after the C simulation).
    Returns the emulator (a ``sim.network.Network``)."""
    from sim.manifest import Manifest, ManifestError
    from sim.network import Network

    try:
        return Network(Manifest(directory, {**meta, "id": "unwritten"}, arrays))
    except ManifestError as exc:
        raise ProjectError(f"the emulator cannot compute this firmware: {exc}") from None


def export_manifest(hls_model: Any, settings: Any, source_sha256: str, directory: Path) -> str:
    from sim.manifest import write_manifest

    meta, arrays = manifest_content(hls_model, settings, source_sha256)
    return write_manifest(directory, meta, arrays)
