"""End-to-end events/s and latency of the demo setup (run on demand, not a test).

The demo's chain as ``fpgaflow demo`` builds it (four board stand-ins running the
example projects' firmware, pushing to one node per project on loopback, HDF5 sinks,
1-in-100 validation by the CPU fallback), without injected faults, twice:

1. offered far beyond what the chain can take: the built events/s it sustains;
2. offered at half of that: latency from the board's timestamp to the event leaving
   the node (p50/p99), and the fraction of the offered rate built (should be 1.00).

    .venv/bin/python bench/bench_e2e.py [--events 200000] [--write]

Prints a JSON summary; ``--write`` rewrites the ``## End to end`` section of
docs/benchmarks.md.  The firmware is reused when up to date (the demo's stamp).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

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


def bench(events: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        full = demo(events, 1e6, Path(tmp) / "max")
        n_paths = max(len(full["paths"]), 1)
        max_rate = full["events_per_s"] or 0.0
        half = max_rate / 2 / n_paths  # the demo's --rate is per node
        lat = demo(events, half, Path(tmp) / "half")
    return {
        "projects": [f"{f['name']} ({f['kind']})" for f in full["firmware"]],
        "boards": 4,
        "nodes": n_paths,
        "events": events,
        "max_events_per_s": max_rate,
        "max_incomplete": full["built_incomplete"],
        "max_lost": full["lost"],
        "half_offered_per_s": half * n_paths,
        "half_built_per_s": lat["events_per_s"],
        "half_built_vs_offered": (lat["events_per_s"] or 0) / (half * n_paths) if half else None,
        "half_latency_p50_ms": (lat["latency_s"]["p50"] or 0) * 1e3,
        "half_latency_p99_ms": (lat["latency_s"]["p99"] or 0) * 1e3,
        "half_incomplete": lat["built_incomplete"],
        "half_lost": lat["lost"],
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores (shared), Python {platform.python_version()}"


def write_section(r: dict, path: Path) -> None:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        SECTION,
        "",
        f"`bench/bench_e2e.py --events {r['events']}`, {now}, {machine()}. The demo's chain: "
        f"{r['boards']} board stand-ins ({', '.join(r['projects'])}) -> {r['nodes']} node(s) on loopback, HDF5 sinks, "
        "1-in-100 validation; latency is board timestamp -> event out of the node. Boards, nodes and the "
        "benchmark share the machine's cores.",
        "",
        "| offered | built events/s | built / offered | latency p50 | latency p99 | incomplete | lost |",
        "|---|---|---|---|---|---|---|",
        f"| as fast as possible | {r['max_events_per_s']:,.0f} | - | - | - | {r['max_incomplete']:,} "
        f"| {r['max_lost']} |",
        f"| half of that ({r['half_offered_per_s']:,.0f}/s) | {r['half_built_per_s'] or 0:,.0f} "
        f"| {r['half_built_vs_offered'] or 0:.2f} | {r['half_latency_p50_ms']:.1f} ms "
        f"| {r['half_latency_p99_ms']:.1f} ms "
        f"| {r['half_incomplete']:,} | {r['half_lost']} |",
    ]
    section = "\n".join(lines) + "\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--write", action="store_true", help="rewrite the end-to-end section of docs/benchmarks.md")
    args = p.parse_args()
    result = bench(args.events)
    print(json.dumps(result, indent=1))
    if args.write:
        write_section(result, ROOT / "docs" / "benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
