"""``fpgaflow board --project P --source S --node ENDPOINT``: an FPGA board stand-in that
runs the project's firmware (the bit-exact emulator) on detector data and streams
fragments to a node, or answers its offload requests; with fault injection.

Imports only ``sim`` (NumPy, pyzmq) and the node's wire format, never the heavy front end."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from sim.board.cli import add_arguments as board_arguments

    p.add_argument("--project", required=True, help="project folder/file (synthesized), or a manifest folder")
    board_arguments(p)


def run(args: argparse.Namespace) -> int:
    from fpgaflow.commands.emulate import firmware_manifest
    from sim.board.cli import config_from_args
    from sim.board.runtime import Board

    cfg = config_from_args(args, "")  # the arguments first: their errors name the option
    manifest = firmware_manifest(args.project, "board")  # read once: the stale check, then the board
    cfg.manifest = str(manifest.path)
    board = Board(cfg, manifest)
    status = board.run()
    c = status["counters"]
    print(f"board {cfg.source_id}: {status['state']}, {c['generated']} events, {c['sent_fragments']} fragments sent, "
          f"faults {c['faults']}")  # fmt: skip
    return 1 if status["state"] == "undelivered" else 0
