"""``fpgaflow verify PROJECT``: the emulator against the firmware's C simulation, and
against the float model; exit status 1 unless 100% bit-exact."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("project", help="project folder or project file (synthesized with `fpgaflow synth`)")
    p.add_argument("--input", help="inputs (.npy, .npz or .h5); default: random inputs, see --samples")
    p.add_argument("--dataset", help="array name inside an .npz/.h5 input")
    p.add_argument("--samples", type=int, default=10_000, help="random inputs across the input type's range")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rtl", action="store_true", help="BDT: also simulate the VHDL with GHDL (smaller sample)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from fpgaflow.project import load_project

    project = load_project(args.project)
    if project.kind == "network":
        from fpgaflow.network.verify import verify
    else:
        from fpgaflow.bdt.verify import verify
    return verify(project, args)
