"""The demo's second stage: boards and a node on loopback, real processes.

A *trigger path* is a node (``python -m node.daemon``) and the boards
(``python -m sim.board``) that feed it, all triggered together (same event numbers,
same rate, same start time).  Boards may run different firmware (a network and a BDT):
they then pad their fragments to one layout and the node's CPU fallback runs each
source's own manifest (``fallback.source_manifests``).
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class BoardPlan:
    source: int
    manifest_dir: Path  # the firmware this board runs
    project: str = ""
    faults: dict[str, Any] = field(default_factory=dict)  # sim.board.cli option -> value


@dataclass
class TriggerPath:
    """One node and its boards."""

    name: str
    boards: list[BoardPlan]
    dir: Path
    layout: tuple[int, int, int] | None = None  # the padded fragment layout when the firmwares differ
    port: int = 0
    node: subprocess.Popen | None = None
    board_procs: dict[int, subprocess.Popen] = field(default_factory=dict)
    validate_every: int = 100
    timeout_s: float = 3.0  # generous: on a busy machine a board can stall for a while

    @property
    def status_file(self) -> Path:
        return self.dir / "node-status.json"

    def board_status(self, source: int) -> Path:
        return self.dir / f"board-{source}.json"

    @property
    def sources(self) -> list[int]:
        return [b.source for b in self.boards]

    @property
    def mixed(self) -> bool:
        return len({b.manifest_dir.resolve() for b in self.boards}) > 1


def padded_layout(emulators: list[Any]) -> tuple[int, int, int]:
    """The fragment layout that holds every firmware's fragments (as the node computes it)."""
    from sim.wire.protocol import raw_bytes_for

    n_in = max(int(math.prod(e.input_shape)) for e in emulators)
    n_out = max(int(math.prod(e.output_shape)) for e in emulators)
    raw = max(raw_bytes_for(t.width, t.signed) for e in emulators for t in (e.input_type, e.output_type))
    return n_in, n_out, raw


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_node_config(path: TriggerPath) -> Path:
    path.dir.mkdir(parents=True, exist_ok=True)
    path.port = path.port or free_port()
    if path.mixed:
        fallback = "source_manifests = [" + ", ".join(f'"{b.manifest_dir.resolve()}"' for b in path.boards) + "]"
    else:
        fallback = f'manifest = "{path.boards[0].manifest_dir.resolve()}"'
    text = f"""# written by fpgaflow demo: the node of path {path.name}
[node]
name = "{path.name}"
sources = {path.sources}
status_interval_s = 0.5
status_file = "node-status.json"

[builder]
window = 65536
timeout_s = {path.timeout_s}

[fallback]
{fallback}
validate_every = {path.validate_every}

[sink]
directory = "events"
format = "hdf5"

[[input]]
endpoint = "tcp://127.0.0.1:{path.port}"
hwm = 1000
"""
    cfg = path.dir / "node.toml"
    cfg.write_text(text)
    return cfg


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))


def start_node(path: TriggerPath) -> None:
    cfg = write_node_config(path)
    path.status_file.unlink(missing_ok=True)
    log = open(path.dir / "node.log", "wb")
    path.node = subprocess.Popen([sys.executable, "-m", "node.daemon", str(cfg)], cwd=path.dir, stderr=log, env=_env())
    log.close()


def wait_nodes_up(paths: list[TriggerPath], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for p in paths:
        while not p.status_file.exists():
            if p.node.poll() is not None:
                raise RuntimeError(f"the node {p.name!r} exited with {p.node.returncode}: {tail(p.dir / 'node.log')}")
            if time.monotonic() > deadline:
                why = tail(p.dir / "node.log")
                raise RuntimeError(f"the node {p.name!r} did not start within {timeout:.0f} s: {why}")
            time.sleep(0.05)


def start_boards(path: TriggerPath, *, events: int, rate: float, start_at: float, pool: int, seed: int) -> None:
    for b in path.boards:
        status = path.board_status(b.source)
        status.unlink(missing_ok=True)
        cmd = [
            sys.executable, "-m", "sim.board", "--manifest", str(b.manifest_dir), "--source", str(b.source),
            "--node", f"tcp://127.0.0.1:{path.port}", "--events", str(events), "--rate", str(rate),
            "--start-at", repr(start_at), "--pool", str(pool), "--seed", str(seed), "--status", str(status),
            "--sndhwm", "100", "--queue", "100",
        ]  # fmt: skip
        if path.layout is not None:
            cmd += ["--layout", ",".join(map(str, path.layout))]
        for option, value in b.faults.items():
            cmd += [f"--{option}", str(value)]
        log = open(path.dir / f"board-{b.source}.log", "wb")
        path.board_procs[b.source] = subprocess.Popen(cmd, stderr=log, env=_env())
        log.close()


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def tail(path: Path, n: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return "(no log)"


def stop_node(path: TriggerPath, timeout: float = 60.0) -> dict[str, Any]:
    """SIGTERM (the node drains what is in flight), then its final counters."""
    if path.node.poll() is None:
        path.node.send_signal(signal.SIGTERM)
    try:
        code = path.node.wait(timeout)
    except subprocess.TimeoutExpired:
        path.node.kill()
        code = path.node.wait()
    snap = read_json(path.status_file) or {}
    snap["exit_code"] = code
    return snap


def kill_all(paths: list[TriggerPath]) -> None:
    """Leave no process behind (after an error or ^C)."""
    for p in paths:
        for proc in [*p.board_procs.values(), p.node]:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
