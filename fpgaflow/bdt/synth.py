"""``fpgaflow synth`` for a BDT project: model -> conifer project, manifest, report."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from fpgaflow.bdt.config import check_norm, read_config
from fpgaflow.bdt.export import INIT_PREDICT_POSITION, export_manifest, firmware_types, reduction
from fpgaflow.bdt.float_check import check_conversion
from fpgaflow.bdt.inputs import probe_inputs
from fpgaflow.bdt.load import load_model
from fpgaflow.bdt.precision import check_precision
from fpgaflow.bdt.project_writer import write_project
from fpgaflow.bdt.report import conifer_estimates, write_report
from fpgaflow.bdt.trees import n_outputs
from fpgaflow.folders import refuse_foreign_build_dir
from fpgaflow.project import Project

PROBE_SAMPLES = 2_000


def _say(msg: str) -> None:
    print(f"synth: {msg}", file=sys.stderr, flush=True)


def vendor_build(model: Any, cfg: Any) -> dict[str, Any]:
    """conifer's own vendor build (HLS C synthesis, or Vivado for VHDL) where the tool exists.

    A failing tool never ends synth: the estimate stays valid, and the report says what
    went wrong (``ran`` False when conifer raised, ``success`` False when the build failed).
    """
    import shutil

    from fpgaflow.bdt.project_writer import working_directory

    # conifer's order of preference (conifer.backends.common._TOOLS): the tool named is the one it runs
    tools = ("vivado_hls", "vitis_hls", "vitis-run") if cfg.backend == "xilinxhls" else ("vivado",)
    found = [t for t in tools if shutil.which(t)]
    if not found:
        _say(f"--vendor: none of {', '.join(tools)} on PATH; skipped")
        return {"ran": False, "reason": f"none of {', '.join(tools)} on PATH"}
    tool = found[0]
    _say(f"--vendor: conifer build with {tool} (this takes a while; log in {cfg.hls_dir / 'build.log'})")
    try:
        with working_directory(cfg.hls_dir):
            ok = bool(model.build())
            found_report = model.read_report() if ok else {}
    except Exception as exc:  # report the failure, keep the estimate
        reason = f"{tool} failed: {type(exc).__name__}: {exc}"
        _say(f"--vendor: {reason}")
        return {"ran": False, "tool": tool, "reason": reason}
    if not ok:
        reason = f"{tool} build failed; see build.log in {cfg.hls_dir}"
        _say(f"--vendor: {reason}")
        return {"ran": True, "tool": tool, "success": False, "report": {}, "reason": reason}
    return {"ran": True, "tool": tool, "success": True, "report": found_report}


def _check_vhdl_shape(ens: dict[str, Any], where: str) -> None:
    """conifer's VHDL writer puts each tree's nodes in a positional aggregate, ``(a, b)``,
    and the trees in another: with one tree, or one node per tree (every tree a single
    leaf), that is ``((a, b))`` or ``(-2)``, a parenthesised value and no array, which
    GHDL and Vivado reject (and its AddReduce never raises y_vld for one tree)."""
    if ens["n_trees"] == 1 or ens["max_depth"] == 0:
        what = "one tree" if ens["n_trees"] == 1 else "only single-leaf trees (depth 0)"
        raise ValueError(
            f"{where}: the model has {what}; conifer's vhdl backend writes VHDL for it that does not "
            "compile (one-element array aggregates); use Backend: xilinxhls, or a model of at least "
            "two trees and one split"
        )


def synth(project: Project, args: argparse.Namespace) -> int:
    start = time.monotonic()
    cfg = read_config(project)
    refuse_foreign_build_dir(project.build_dir, str(project.file))  # before the work, not only at writing
    source = load_model(project)
    ens = source.ensemble
    if ens["n_features"] < 1 or not ens["trees"]:
        raise ValueError(f"{source.path}: the model has no trees or no features")
    if cfg.backend == "vhdl":
        _check_vhdl_shape(ens, str(source.path))
    check_norm(cfg, float(ens["norm"]))
    shape = f"{ens['n_trees']} trees x {n_outputs(ens)} output(s), depth {ens['max_depth']}"
    _say(f"{source.library} {source.estimator}: {shape}")
    warnings = list(cfg.warnings)
    probes = probe_inputs(ens, cfg.types["input"], PROBE_SAMPLES, seed=1)
    float_check = check_conversion(source, probes)
    if float_check["agree"] != float_check["samples"]:
        raise ValueError(
            f"{source.path}: the converted model disagrees with {source.reference_name} on "
            f"{float_check['samples'] - float_check['agree']} of {float_check['samples']} probe inputs "
            f"(max difference {float_check['max_abs_diff']:.3g}); this model cannot be converted faithfully"
        )
    precision = check_precision(ens, cfg.types)
    warnings += precision["warnings"]
    for w in warnings:
        print(f"fpgaflow synth: warning: {w}", file=sys.stderr)
    _say(f"writing conifer {cfg.backend} project to {cfg.hls_dir}")
    model = write_project(ens, cfg)
    manifest_id = export_manifest(model, source, cfg, cfg.emulator_dir)
    report: dict[str, Any] = {
        "project": cfg.project_name,
        "project_file": str(project.file),
        "backend": cfg.backend,
        "manifest_id": manifest_id,
        "model": {
            "file": str(source.path),
            "sha256": source.sha256,
            "library": source.library,
            "estimator": source.estimator,
            "n_trees": int(ens["n_trees"]),
            "n_outputs": n_outputs(ens),
            "n_features": int(ens["n_features"]),
            "max_depth": int(ens["max_depth"]),
            "n_nodes": int(sum(len(t["feature"]) for ts in ens["trees"] for t in ts)),
        },
        "types": {k: (str(v) if v is not None else "unused") for k, v in firmware_types(cfg).items()},
        "splitting_convention": ens["splitting_convention"],
        "reduction": {"order": reduction(cfg), "init_predict": INIT_PREDICT_POSITION[reduction(cfg)]},
        "precision": precision,
        "float_check": float_check,
        "conifer_estimates": conifer_estimates(model),
        "warnings": warnings,
    }
    if getattr(args, "open_synth", False):
        from fpgaflow.bdt.open_synth import open_synthesis

        report["open_synth"] = open_synthesis(cfg, log=_say)
    if getattr(args, "vendor", False):
        report["vendor"] = vendor_build(model, cfg)
    write_report(project.build_dir, report)
    _say(f"manifest {manifest_id} in {cfg.emulator_dir}; report in {project.build_dir / 'report.md'}")
    _say(f"done in {time.monotonic() - start:.1f} s")
    return 0
