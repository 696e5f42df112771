"""Every benchmark of the project in one run, and the summary table of docs/benchmarks.md.

Runs each ``bench/bench_*.py`` (fixed-point core vs fxpmath/apytypes, network emulator
vs hls4ml's C simulation, BDT emulator vs conifer's cpp backend, node vs raw ZeroMQ,
end-to-end events/s and latency of the demo setup) as its own process, with its flag to
rewrite its own section of docs/benchmarks.md, then rewrites the ``## Summary`` section
at the top: one row per ratio the scripts report, the machine and the date.

    .venv/bin/python bench/run_all.py                 # all of them (several minutes)
    .venv/bin/python bench/run_all.py --only node e2e # some of them
    .venv/bin/python bench/run_all.py --list          # just list the scripts
    .venv/bin/python bench/run_all.py --keep-sections # rewrite only the summary

A script that fails is reported in the table (with its exit status) and the others still
run; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchdoc import DOC, machine, now_utc, read_section, replace_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Summary"
WRITE_FLAGS = ("--write-docs", "--write")  # whichever the script's --help offers


def scripts(only: list[str]) -> list[Path]:
    found = sorted(p for p in (ROOT / "bench").glob("bench_*.py"))
    if only:
        found = [p for p in found if any(p.stem == f"bench_{o}" or p.stem == o for o in only)]
    return found


def write_flag(script: Path) -> str | None:
    r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    for flag in WRITE_FLAGS:
        if re.search(rf"(^|\s){re.escape(flag)}(\s|$|,)", r.stdout):
            return flag
    return None


def run(script: Path, write_sections: bool = True) -> dict[str, Any]:
    flag = write_flag(script) if write_sections else None
    cmd = [sys.executable, str(script)] + ([flag] if flag else [])
    print(f"run_all: {script.name} ...", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    seconds = time.monotonic() - t0
    print(f"run_all: {script.name}: exit {r.returncode} after {seconds:.0f} s", file=sys.stderr, flush=True)
    return {"script": script.name, "exit": r.returncode, "seconds": seconds, "stdout": r.stdout,
            "stderr": r.stderr[-2000:], "wrote_section": flag is not None}  # fmt: skip


def _json(text: str) -> Any:
    """The last JSON document a script printed (its summary), or None."""
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    while start >= 0:
        try:
            return json.loads(text[start:])
        except ValueError:
            nxt = [i for i in (text.find("\n{", start + 1), text.find("\n[", start + 1)) if i >= 0]
            start = min(nxt) + 1 if nxt else -1
    return None


def ratios(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, ratio) rows from a script's output: JSON keys naming a ratio ("x_vs_y",
    "ratio"), or "= R x raw" lines in text output."""
    rows: list[tuple[str, str]] = []
    data = _json(result["stdout"])

    def walk(obj: Any, label: str) -> None:
        if isinstance(obj, dict):
            name = str(obj.get("model") or obj.get("type") or obj.get("name") or obj.get("case") or label)
            for k, v in obj.items():
                if isinstance(v, int | float) and not isinstance(v, bool) and ("_vs_" in k or "ratio" in k):
                    what = k.replace("_", " ")
                    rows.append((f"{name}: {what}" if name else what, f"{v:.2f}"))
                elif isinstance(v, dict | list):
                    walk(v, f"{name} {k}".strip())
        elif isinstance(obj, list):
            for item in obj:
                walk(item, label)

    if data is not None:
        walk(data, "")
    context = ""
    for line in result["stdout"].splitlines():
        c = re.search(r"raw pyzmq PUSH/PULL, (\d+) fragment\(s\)/message(, sources [^:]+)?:", line)
        if c:  # the sources' mode too: without it the rows of free-running and in-step senders read alike
            context = f"{c.group(1)} fragment(s)/message{c.group(2) or ''}, "
        m = re.search(r"^\s*(.+?):\s*([\d,]+) events/s = ([\d.]+) x raw", line)
        if m:
            rows.append((f"{context}{m.group(1).strip()} vs raw pyzmq PUSH/PULL", m.group(3)))
    return rows


def write_summary(results: list[dict[str, Any]], path: Path = DOC) -> None:
    now = now_utc()
    lines = [
        SECTION,
        "",
        f"`bench/run_all.py`, {now}, on {machine()}. Every ratio below is measured within one script's run "
        "(both sides on the same machine, same inputs); the sections that follow give the absolute numbers. "
        'Rows marked "earlier run" were not rerun this time: their sections name the machine they ran on.',
        "",
        "| benchmark | measurement | ratio | run time |",
        "|---|---|---|---|",
    ]
    ran = {r["script"] for r in results}
    old = read_section(SECTION, path)
    kept = []  # rows of scripts not run this time stay, marked with their earlier date
    if old:
        when = re.search(r"`bench/run_all.py[^`]*`, ([^,]+),", old)
        for line in old.splitlines():
            m = re.match(r"^\| `(bench_\w+\.py)`( \(earlier run[^)]*\))? \|", line)
            if m and m.group(1) not in ran:
                kept.append(line if m.group(2) or not when else line.replace(
                    f"| `{m.group(1)}` |", f"| `{m.group(1)}` (earlier run, {when.group(1)}) |", 1))  # fmt: skip
    for r in results:
        rows = ratios(r) if r["exit"] == 0 else []
        if r["exit"] != 0:
            lines.append(f"| `{r['script']}` | FAILED (exit {r['exit']}) | - | {r['seconds']:.0f} s |")
        elif not rows:
            lines.append(f"| `{r['script']}` | (no ratio reported; see its section) | - | {r['seconds']:.0f} s |")
        for what, value in rows:
            lines.append(f"| `{r['script']}` | {what} | {value} | {r['seconds']:.0f} s |")
    lines += kept
    replace_section(SECTION, "\n".join(lines), path, first=True)  # right under the title


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", default=[], help="run only these (e.g. node e2e, or bench_bdt)")
    p.add_argument("--list", action="store_true", help="list the scripts that would run, and stop")
    p.add_argument("--keep-sections", action="store_true",
                   help="rewrite only the summary, not each script's own section")  # fmt: skip
    args = p.parse_args()
    todo = scripts(args.only)
    if not todo:
        print("run_all: no benchmark scripts matched", file=sys.stderr)
        return 2
    if args.list:
        print("\n".join(s.name for s in todo))
        return 0
    results = [run(s, not args.keep_sections) for s in todo]
    write_summary(results)
    for r in results:
        if r["exit"]:
            print(f"run_all: {r['script']} failed: {r['stderr']}", file=sys.stderr)
    print(json.dumps([{k: v for k, v in r.items() if k not in ("stdout", "stderr")} for r in results], indent=1))
    return 1 if any(r["exit"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
