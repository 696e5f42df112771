"""``fpgaflow synth PROJECT``: a network (hls4ml) or BDT (conifer) firmware project."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("project", help="project folder or project file (hls4ml YAML, or conifer keys for a BDT)")
    p.add_argument(
        "--vendor",
        action="store_true",
        help=(
            "also run vendor synthesis where the tool is on PATH "
            "(network: vivado_hls or vitis-run; BDT: vivado_hls, vitis_hls or vitis-run, or vivado for VHDL)"
        ),
    )
    p.add_argument(
        "--open-synth",
        action="store_true",
        help="BDT/VHDL: open-source synthesis with GHDL + yosys for resource counts",
    )


def run(args: argparse.Namespace) -> int:
    from fpgaflow.project import ProjectError, load_project

    project = load_project(args.project)
    if project.kind == "network":
        if args.open_synth:  # was ignored: synth ran, and the report had no resource counts
            raise ProjectError(
                f"{project.file}: --open-synth runs GHDL + yosys on a BDT's VHDL (Backend: vhdl); a network's "
                "firmware is HLS C++, synthesized by the vendor's tool (--vendor)"
            )
        from fpgaflow.network.synth import synth
    else:
        from fpgaflow.bdt.synth import synth
    return synth(project, args)
