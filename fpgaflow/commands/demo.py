"""``fpgaflow demo``: the main job. Synthesize and verify the example projects, stream
events from four board stand-ins through a node on loopback with injected faults, and
account for every event; exit status 1 if anything is lost or fails verification."""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", type=int, default=200_000,
                   help="events to stream (default 200,000)")  # fmt: skip
    p.add_argument("--rate", type=float, default=5_000.0,
                   help="trigger rate in events/s: each board sends one fragment per event "
                        "(default 5,000)")  # fmt: skip
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--project", action="append", default=[], metavar="DIR",
                   help="run these projects (default: every project under firmware_projects/)")  # fmt: skip
    p.add_argument("--projects", default=str(ROOT / "firmware_projects"), help=argparse.SUPPRESS)
    p.add_argument("--rebuild", action="store_true", help="synthesize and verify even when up to date")
    p.add_argument("--verify-samples", type=int, default=2000, help="inputs compared with the C simulation")
    p.add_argument("--no-faults", dest="faults", action="store_false", help="inject no faults")
    p.add_argument("--pool", type=int, default=4096, help="distinct detector samples per board")
    p.add_argument("--seed", type=int, default=0, help="the boards' --seed: draws their detector samples (default 0)")


def run(args: argparse.Namespace) -> int:
    if args.events < 1:
        raise ValueError(f"--events {args.events} must be at least 1")
    if args.rate <= 0:
        raise ValueError(f"--rate {args.rate} must be positive")
    from fpgaflow.demo.run import run_demo

    return run_demo(args)
