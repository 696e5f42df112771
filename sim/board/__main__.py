"""``python -m sim.board --manifest DIR --source S --node ENDPOINT ...``: the board
stand-in without the front end (see ``fpgaflow board``)."""

from __future__ import annotations

import argparse
import sys

from sim.board.cli import add_arguments, config_from_args
from sim.board.runtime import main as run_board


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.board", description="an FPGA board stand-in")
    p.add_argument("--manifest", required=True, help="the firmware: a manifest folder (build/emulator)")
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        cfg = config_from_args(args, args.manifest)
    except ValueError as exc:
        print(f"board: error: {exc}", file=sys.stderr)
        return 2
    return run_board(cfg)


if __name__ == "__main__":
    sys.exit(main())
