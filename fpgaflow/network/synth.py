"""``fpgaflow synth`` for a network: hls4ml project, firmware manifest, reports."""

from __future__ import annotations

import argparse
import shutil
import sys
from typing import Any

from fpgaflow.network.model import quiet_qkeras_serialize
from fpgaflow.project import Project

# the command each hls4ml 1.3 backend's build() runs (Vitis: the unified ``vitis-run --mode hls``)
VENDOR_TOOLS = {"Vivado": "vivado_hls", "Vitis": "vitis-run"}


def _say(msg: str) -> None:
    print(f"synth: {msg}", file=sys.stderr, flush=True)


def run_vendor(hls_model: Any, backend: str, requested: bool) -> dict[str, Any]:
    """Vendor C synthesis where asked for and possible; otherwise say why not.

    A failing tool never ends synth: the estimate stays valid, and the report says what
    went wrong (``ran`` False when hls4ml raised, ``success`` False when the tool left no
    C synthesis report -- hls4ml's Vivado build ignores the tool's exit code).
    """
    tool = VENDOR_TOOLS[backend]
    if not requested:
        return {"ran": False, "reason": "not requested (pass --vendor to run C synthesis)"}
    if shutil.which(tool) is None:
        return {"ran": False, "reason": f"--vendor given but {tool} is not on PATH"}
    _say(f"running {tool} C synthesis (this takes minutes)")
    try:
        results = hls_model.build(csim=False, synth=True, cosim=False, export=False)
    except Exception as exc:  # report the failure, keep the estimate
        reason = f"{tool} failed: {type(exc).__name__}: {exc}"
        _say(reason)
        return {"ran": False, "tool": tool, "reason": reason}
    if not (results or {}).get("CSynthesisReport"):
        where = hls_model.config.get_output_dir()
        reason = f"{tool} left no C synthesis report in {where}; see the tool's console output and the logs there"
        _say(reason)
        return {"ran": True, "tool": tool, "success": False, "results": results, "reason": reason}
    return {"ran": True, "tool": tool, "success": True, "results": results}


@quiet_qkeras_serialize()  # Keras frets over QKeras quantizers at each serialization
def synth(project: Project, args: argparse.Namespace | None = None) -> int:
    from fpgaflow.data.scaling import project_preprocessing, refuse_feature_count
    from fpgaflow.folders import claim_build_dir, refuse_foreign_build_dir
    from fpgaflow.network.config import model_files, read_settings
    from fpgaflow.network.convert import convert
    from fpgaflow.network.manifest import manifest_content, refuse_unemulated
    from fpgaflow.network.model import load_keras_model, source_sha256
    from fpgaflow.network.precision import (
        unapplied_softmax_table_types,
        unapplied_weight_types,
        weight_checks,
        weight_warnings,
    )
    from fpgaflow.network.report import build_report, write_report
    from fpgaflow.network.verify import csim_abort_warnings
    from sim.manifest import read_manifest, write_manifest

    settings = read_settings(project)
    build = project.build_dir
    refuse_foreign_build_dir(build, str(project.file))  # before the work, not only at writing
    files = model_files(project)
    preprocessing = project_preprocessing(project)  # the input scaling training fitted, if any; checked first
    _say(f"loading {', '.join(str(f) for f in files)}")
    model = load_keras_model(project)
    if preprocessing is not None and isinstance(model.input_shape, tuple):  # several inputs: refused below
        refuse_feature_count(project, preprocessing[0]["features"], model.input_shape[1:])
    _say(f"converting with hls4ml ({settings.backend}, {settings.io_type})")
    hls_model = convert(model, settings, build / "hls")
    checks = weight_checks(hls_model)
    unapplied = unapplied_weight_types(hls_model, settings.hls_config)
    unapplied += unapplied_softmax_table_types(hls_model, settings.hls_config)
    settings.warnings.extend(f"{project.file}: {note}" for note in unapplied)  # a key of this file, as the others
    settings.warnings.extend(weight_warnings(checks))
    meta, arrays = manifest_content(hls_model, settings, source_sha256(files))  # may add warnings
    net = refuse_unemulated(meta, arrays, build / "emulator")
    settings.warnings.extend(csim_abort_warnings(net))  # the firmware is fine; verify refuses it
    for warning in settings.warnings:
        _say(f"warning: {warning}")
    if preprocessing is not None:
        meta["preprocessing"], extra = preprocessing
        arrays = {**arrays, **extra}
    _say(f"writing the HLS project to {build / 'hls'}")
    claim_build_dir(build, str(project.file), replaced=["hls"])  # never a folder of the user's
    hls_model.write()
    manifest_id = write_manifest(build / "emulator", meta, arrays)
    meta = read_manifest(build / "emulator").meta
    vendor = run_vendor(hls_model, settings.backend, bool(getattr(args, "vendor", False)))
    write_report(build_report(meta, arrays, vendor, settings.warnings, checks), build)
    print(f"synth: {project.name}: {len(meta['layers'])} layers -> {build} (manifest {manifest_id})")
    return 0
