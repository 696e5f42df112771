"""End-to-end events/s and latency of the demo setup (run on demand, not a test).

The demo's chain as ``fpgaflow demo`` builds it (four board stand-ins running the
example projects' firmware, all pushing to one node on loopback, HDF5 sink, 1-in-100
validation by the CPU fallback), without injected faults, at a few offered trigger
rates, each for about ``--seconds`` of stream: built complete events/s against the
offered rate, incomplete events, and the latency from the board's timestamp to the
event leaving the node (p50/p99).

    .venv/bin/python bench/bench_e2e.py [--rates 2000,5000,10000] [--seconds 10] [--write]

Prints a JSON summary; ``--write`` rewrites the ``## End to end`` section of
docs/benchmarks.md.  The firmware is reused when up to date (the demo's stamp).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchdoc import DOC, machine, now_utc, replace_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## End to end"


def demo(events: int, rate: float, out: Path) -> dict:
    cmd = [sys.executable, "-m", "fpgaflow.cli", "demo", "--json", "--no-faults", "--events", str(events),
           "--rate", str(rate), "--out", str(out)]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if not r.stdout.strip():
        raise SystemExit(f"bench_e2e: fpgaflow demo failed (exit {r.returncode}): {r.stderr[-2000:]}")
    return json.loads(r.stdout)


def bench(rates: list[float], seconds: float) -> dict:
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        for rate in rates:
            events = int(rate * seconds)
            print(f"bench_e2e: {events:,} events at {rate:,.0f}/s ...", file=sys.stderr, flush=True)
            s = demo(events, rate, Path(tmp) / f"r{int(rate)}")
            runs.append({
                "case": f"{rate:,.0f} events/s offered",
                "offered_per_s": rate,
                "events": events,
                "complete_per_s": s["complete_per_s"],
                "complete_vs_offered": (s["complete_per_s"] or 0) / rate,
                "incomplete": s["built_incomplete"],
                "lost": s["lost"],
                "latency_p50_ms": (s["latency_s"]["p50"] or 0) * 1e3,
                "latency_p99_ms": (s["latency_s"]["p99"] or 0) * 1e3,
            })  # fmt: skip
            print(f"bench_e2e: {json.dumps(runs[-1])}", file=sys.stderr, flush=True)
        projects = [f"{f['name']} ({f['kind']})" for f in s["firmware"]]
    return {"projects": projects, "boards": 4, "seconds": seconds, "load_average": os.getloadavg()[0], "runs": runs}


def write_section(r: dict, path: Path) -> None:
    now = now_utc()
    lines = [
        SECTION,
        "",
        f"`bench/bench_e2e.py --seconds {r['seconds']:g}`, {now}, {machine()} (shared), load average "
        f"{r['load_average']:.1f} when it ended. The demo's chain without faults: {r['boards']} board stand-ins "
        f"({', '.join(r['projects'])}) -> one node on loopback, HDF5 sink, 1-in-100 validation; latency is board "
        "timestamp -> event out of the node. Boards, node and benchmark share the machine's cores; on a busy "
        "machine the boards drift apart past the node's build timeout, which shows as incomplete events.",
        "",
        "| offered events/s | events | built complete events/s | complete / offered | incomplete | lost "
        "| latency p50 | latency p99 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in r["runs"]:
        lines.append(
            f"| {x['offered_per_s']:,.0f} | {x['events']:,} | {x['complete_per_s'] or 0:,.0f} "
            f"| {x['complete_vs_offered'] or 0:.2f} | {x['incomplete']:,} | {x['lost']} "
            f"| {x['latency_p50_ms']:.1f} ms | {x['latency_p99_ms']:.1f} ms |"
        )
    replace_section(SECTION, "\n".join(lines), path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", default="2000,5000,10000", help="offered trigger rates, events/s")
    p.add_argument("--seconds", type=float, default=10.0, help="stream length per rate")
    p.add_argument("--write", action="store_true", help="rewrite the end-to-end section of docs/benchmarks.md")
    args = p.parse_args()
    result = bench([float(r) for r in args.rates.split(",")], args.seconds)
    print(json.dumps(result, indent=1))
    if args.write:
        write_section(result, DOC)
    return 0


if __name__ == "__main__":
    sys.exit(main())
