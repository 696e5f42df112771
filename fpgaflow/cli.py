"""The ``fpgaflow`` command: one subcommand per module in ``fpgaflow.commands``.

Each command module registers its arguments and a ``run(args) -> int``; the modules
import nothing heavy at import time so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from fpgaflow import __version__
from fpgaflow.errors import UserError  # here too: fpgaflow.cli.UserError is what older code imports

# name -> one-line help; the module fpgaflow.commands.<name> implements it.
COMMANDS: dict[str, str] = {
    "train": "quantization-aware training (QKeras) of a network project on its ROOT/HDF5/NPZ data",
    "synth": "convert a network or BDT project into an HLS firmware project, its manifest and reports",
    "emulate": "run the bit-exact emulator of a firmware project on input data",
    "verify": "compare the emulator with the firmware's C simulation and the float model",
    "profile": "precision profile of a network: ranges vs types, overflows, suggested types, ROC, report.md",
    "node": "run the node daemon: receive FPGA streams over ZeroMQ, build events, CPU fallback (status, keygen)",
    "board": "an FPGA board stand-in: the project's firmware (emulator) streaming fragments to a node, with faults",
    "demo": "the main job: build and verify the example projects, stream through boards and a node, account for all",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fpgaflow",
        description="Machine learning from the laptop to the FPGA beside the detector.",
    )
    parser.add_argument("--version", action="version", version=f"fpgaflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"fpgaflow.commands.{name}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except BrokenPipeError:  # `fpgaflow node status | head`: the reader left, nothing to tell
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    except (UserError, OSError, ValueError) as exc:  # includes ProjectError, ManifestError; a folder not made
        if os.environ.get("FPGAFLOW_DEBUG"):
            raise
        print(f"fpgaflow {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
