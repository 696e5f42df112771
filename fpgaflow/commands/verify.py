"""``fpgaflow verify PROJECT``: the emulator against the firmware's C simulation, and
against the float model; exit status 1 unless 100% bit-exact."""

from __future__ import annotations

import argparse

SAMPLES = 10_000  # random inputs by default


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("project", help="project folder or project file (synthesized with `fpgaflow synth`)")
    p.add_argument("--input", help="inputs (.npy, .npz or .h5) for both comparisons; default: random inputs (see "
                                    "--samples), and for a network with a Data: block its first rows too, on "
                                    "which the float model is compared")  # fmt: skip
    p.add_argument("--dataset", help="array name inside an .npz/.h5 input")
    p.add_argument("--samples", type=int,
                   help=f"random inputs across the input type's range (default {SAMPLES:,}), and at most "
                        "this many rows of a network project's Data: block; with --input, its first this many rows "
                        "(default all)")  # fmt: skip
    p.add_argument("--seed", type=int, help="seed of the random inputs (default 0)")
    p.add_argument("--rtl", action="store_true", help="BDT: also simulate the VHDL with GHDL (smaller sample)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def check_options(args: argparse.Namespace) -> None:
    """Refuse what would be ignored or fail later without naming the option (``--seed -1``
    was NumPy's 'expected non-negative integer'), and fill in the random inputs' defaults."""
    from fpgaflow.errors import UserError

    if args.samples is not None and args.samples < 1:
        raise UserError(f"--samples {args.samples}: must be at least 1")
    if args.seed is not None and args.seed < 0:
        raise UserError(f"--seed {args.seed}: must be a whole number >= 0")
    if args.input is None:
        if args.dataset is not None:
            raise UserError(f"--dataset {args.dataset!r} names an array inside --input, and no --input is given")
        args.samples = SAMPLES if args.samples is None else args.samples
        args.seed = 0 if args.seed is None else args.seed
    elif args.seed is not None:
        raise UserError("--seed draws the random inputs; with --input there are none to draw")


def run(args: argparse.Namespace) -> int:
    from fpgaflow.project import ProjectError, load_project

    check_options(args)
    project = load_project(args.project)
    if project.kind == "network":
        if args.rtl:  # was ignored: the verdict read as if the RTL had been simulated
            raise ProjectError(
                f"{project.file}: --rtl simulates a BDT's VHDL with GHDL (Backend: vhdl); a network's firmware is "
                "HLS C++, which verify checks against hls4ml's C simulation"
            )
        from fpgaflow.network.verify import verify
    else:
        from fpgaflow.bdt.verify import verify
    return verify(project, args)
