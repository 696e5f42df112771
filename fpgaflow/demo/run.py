"""``fpgaflow demo``: synthesize and verify the example projects, stream events from four
board stand-ins through a node on loopback with injected faults, account for every
event, and write the summary and a plot under the output folder."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from fpgaflow.demo import firmware as firmware_mod
from fpgaflow.demo import stream
from fpgaflow.demo.summary import account_path, problems, read_faults, total
from fpgaflow.folders import ForeignFolderError, mark_folder, owned, remove_outputs

N_BOARDS = 4
# faults per board role, per project: its first board has a flaky link, its second
# flaky logic (never both on one event's every fragment, so no event can vanish whole)
LINK_FAULTS = {"drop": 0.0005, "delay": 0.0005, "delay-ms": 5000, "duplicate": 0.001}
LOGIC_FAULTS = {"bitflip": 0.003, "error": 0.002}


def say(msg: str) -> None:
    print(f"demo: {msg}", file=sys.stderr, flush=True)


def plan_paths(fws: list[firmware_mod.Firmware], out: Path, faults: bool) -> list[stream.TriggerPath]:
    """Four boards, the firmware projects dealt out in turn, all feeding one node."""
    boards, seen = [], {}
    for k in range(N_BOARDS):
        fw = fws[k % len(fws)]
        j = seen[fw.name] = seen.get(fw.name, -1) + 1
        role = (LINK_FAULTS if j % 2 == 0 else LOGIC_FAULTS) if faults else {}
        boards.append(stream.BoardPlan(k + 1, fw.manifest_dir, fw.name, dict(role, **{"fault-seed": k + 1})))
    return [stream.TriggerPath("node", boards, out / "node")]


def progress(paths: list[stream.TriggerPath], events: int, t_start: float, last: dict[str, tuple[float, int]]) -> str:
    parts = []
    for p in paths:
        s = stream.read_json(p.status_file) or {}
        c = s.get("counters", {})
        out, now = int(c.get("events_out", 0)), time.monotonic()
        t_prev, n_prev = last.get(p.name, (t_start, 0))
        rate = (out - n_prev) / max(now - t_prev, 1e-9)
        last[p.name] = (now, out)
        parts.append(f"{p.name} {out}/{events} built ({rate:,.0f}/s, {c.get('events_incomplete', 0)} incomplete, "
                     f"{c.get('fallback_fallback_events', 0)} fallback)")  # fmt: skip
    return "; ".join(parts)


MARK = ".fpgaflow-demo"  # in --out: a demo's folder, whose earlier outputs a new run may replace
OUTPUTS = ("node", "paths", "demo.png", "summary.json")


def clear_earlier_run(out: Path) -> None:
    """Remove an earlier demo's outputs from ``out``, and only a demo's: an existing folder
    without a demo's mark that is not empty is refused, not emptied (``--out .`` in the
    repository removed the ``node`` package's source) nor marked (a ``node/`` made there
    later would go with the next run)."""
    if not owned(out, MARK, lambda folder: _demo_summary(folder / "summary.json")):
        raise ForeignFolderError(f"--out {out}: a folder that is not empty and not an earlier fpgaflow demo's: "
                                 "give a new or empty folder (an earlier demo's outputs are replaced)")  # fmt: skip
    remove_outputs(out, OUTPUTS)


def _demo_summary(path: Path) -> bool:
    """A demo's own summary (one from before the mark was written), not just any file of that name."""
    try:
        s = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(s, dict) and {"generated", "faults_by_kind", "firmware", "lost"} <= s.keys()


def run_demo(args: Any) -> int:
    t_all = time.monotonic()
    out = Path(args.out).resolve()
    clear_earlier_run(out)
    mark_folder(out, MARK, "outputs of fpgaflow demo: a new run replaces them\n")
    root = Path(args.projects)
    project_dirs = [Path(p) for p in args.project] or firmware_mod.example_projects(root)
    if not project_dirs:
        raise ValueError(f"{root}: no example projects (folders with a project file) to run")
    say(f"stage 1/3: firmware for {', '.join(p.name for p in project_dirs)}")
    t0 = time.monotonic()
    fws = firmware_mod.prepare(project_dirs, out=out, rebuild=args.rebuild, verify_samples=args.verify_samples, say=say)
    seconds = {"firmware": round(time.monotonic() - t0, 1)}
    fw_info = [{"name": f.name, "kind": f.kind, "manifest_id": f.manifest_id, "verified": f.verified,
                "reused": f.reused, "error": f.error, "verify": f.verify} for f in fws]  # fmt: skip
    ready = [f for f in fws if f.verified]
    if not ready:
        summary = total([], fw_info, seconds)
        return finish(summary, out, args, [])

    paths = plan_paths(ready, out, args.faults)
    per_path = -(-args.events // len(paths))
    import sim

    emulators = {p.name: [sim.load(b.manifest_dir) for b in p.boards] for p in paths}
    for p in paths:
        p.layout = stream.padded_layout(emulators[p.name]) if p.mixed else None
        who = ", ".join(f"board {b.source} runs {b.project}" for b in p.boards)
        say(f"stage 2/3: {who} -> one node on loopback; {per_path:,} events at {args.rate:,.0f} events/s"
            f"{', with injected faults' if args.faults else ', no faults'}"
            f"{f'; fragments padded to {p.layout[0]} inputs, {p.layout[1]} outputs' if p.layout else ''}")  # fmt: skip
    t0 = time.monotonic()
    try:
        for p in paths:
            stream.start_node(p)
        stream.wait_nodes_up(paths)
        start_at = time.time() + 2.0
        for p in paths:
            stream.start_boards(p, events=per_path, rate=args.rate, start_at=start_at, pool=args.pool, seed=args.seed)
        last: dict[str, tuple[float, int]] = {}
        t_stream = time.monotonic()
        next_line = t_stream + 2.0
        while any(b.poll() is None for p in paths for b in p.board_procs.values()):
            time.sleep(0.1)
            if time.monotonic() >= next_line:
                say(progress(paths, per_path, t_stream, last))
                next_line += 2.0
            for p in paths:
                if p.node.poll() is not None:
                    raise RuntimeError(
                        f"the node {p.name!r} died (exit {p.node.returncode}): {stream.tail(p.dir / 'node.log')}"
                    )
        # let the nodes finish building (incomplete events wait for the build timeout)
        for p in paths:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                g = (stream.read_json(p.status_file) or {}).get("gauges", {})
                if not g.get("events_in_flight", 1) and not g.get("events_pending_fallback", 1):
                    break
                time.sleep(0.2)
        say(progress(paths, per_path, t_stream, last))
        nodes = {p.name: stream.stop_node(p) for p in paths}
    except RuntimeError as exc:  # a node or board that could not start or died: say which, leave nothing behind
        stream.kill_all(paths)
        say(f"error: {exc}")
        return 1
    except BaseException:
        stream.kill_all(paths)
        raise
    seconds["stream"] = round(time.monotonic() - t0, 1)

    say("stage 3/3: accounting for every event")
    results = []
    short: dict[int, str] = {}
    for p in paths:
        boards = {s: stream.read_json(p.board_status(s)) or {} for s in p.sources}
        faults = {s: read_faults(p.board_status(s)) for s in p.sources}
        # every planned event is accounted for (not what the boards' last status says they made: a
        # board stopped or killed early left events unmade, and faults unlogged, which must fail the run)
        for s, b in boards.items():
            made = int(b.get("counters", {}).get("generated", 0))
            if made < per_path or not b.get("final"):
                short[s] = f"generated {made} of {per_path} events" + ("" if b.get("final") else ", no final status")
        results.append(account_path(p.name, p.dir / "events", p.sources, boards, faults, nodes[p.name], per_path,
                                    p.validate_every, emulators[p.name]))  # fmt: skip
        if nodes[p.name].get("exit_code"):
            say(f"the node {p.name!r} exited with {nodes[p.name]['exit_code']}")
    seconds["total"] = round(time.monotonic() - t_all, 1)
    summary = total(results, fw_info, seconds)
    summary["boards_failed"] = {
        str(s): f"exit {proc.returncode}: {stream.tail(p.dir / f'board-{s}.log', 3)}"
        for p in paths
        for s, proc in p.board_procs.items()
        if proc.returncode
    }
    for s, why in short.items():
        summary["boards_failed"].setdefault(str(s), why)
    return finish(summary, out, args, results)


def finish(summary: dict[str, Any], out: Path, args: Any, results: list[dict[str, Any]]) -> int:
    from fpgaflow.demo.report import print_summary

    bad = problems(summary)
    bad += [f"board {s} failed ({why})" for s, why in summary.get("boards_failed", {}).items()]
    if not summary["firmware"] or not any(f["verified"] for f in summary["firmware"]):
        bad.append("no firmware project could be synthesized and verified")
    summary["ok"] = not bad
    summary["problems"] = bad
    if results:
        from fpgaflow.demo.plot import plot

        summary["plot"] = str(plot(results, out))
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    if args.json:
        print(json.dumps(summary, indent=1, default=str))
    else:
        print_summary(summary, out)
    return 0 if not bad else 1
