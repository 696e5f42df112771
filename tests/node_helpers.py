"""Shared pieces of the node tests: free loopback ports, configs, a daemon subprocess,
waiting for conditions (never fixed sleeps), and reading what the node wrote."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def kill_when_written(script: str, *args: str, settle: float = 0.0) -> None:
    """Run ``script`` (``python -c``) until it prints ``written``, let it go on for ``settle``
    seconds, then SIGKILL it: a writer killed as the OOM killer would, mid-file."""
    proc = subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
        time.sleep(settle)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> int:
    """A base port with ``n`` consecutive free ports (for multi-worker nodes)."""
    for _ in range(50):
        base = free_port()
        ok = True
        for k in range(1, n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", base + k))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no run of free ports")


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return repr(v)


def write_config(directory: Path, sections: dict[str, dict[str, Any]], inputs: list[dict[str, Any]]) -> Path:
    lines = []
    for name, keys in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in keys.items()]
    for inp in inputs:
        lines.append("[[input]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in inp.items()]
    path = directory / "node.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def basic_config(tmp: Path, port: int, *, sources=(0, 1, 2, 3), n_inputs=8, n_outputs=2, **sections) -> Path:
    s: dict[str, dict[str, Any]] = {
        "node": {"sources": list(sources), "status_interval_s": 0.2, "log_level": "info"},
        "fragment": {"n_inputs": n_inputs, "n_outputs": n_outputs, "raw_bytes": 4},
        "builder": {"timeout_s": 1.0},
        "sink": {"directory": "out"},
    }
    for k, v in sections.items():
        s.setdefault(k, {}).update(v)
    return write_config(tmp, s, [{"endpoint": f"tcp://127.0.0.1:{port}"}])


def wait_for(condition, timeout: float = 30.0, what: str = "condition", interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class Daemon:
    """The node as a real subprocess (``python -m node.daemon``)."""

    def __init__(self, config: Path):
        self.config = config
        self.dir = config.parent
        self.status_file = self.dir / "node-status.json"
        self.status_file.unlink(missing_ok=True)
        self.log = open(self.dir / "node.log", "w")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node.daemon", str(config)], cwd=self.dir, stderr=self.log, env=env
        )
        wait_for(lambda: self.status_file.exists() or self.proc.poll() is not None, 60, "the node to start")
        if self.proc.poll() is not None:
            raise AssertionError(f"node exited with {self.proc.returncode}: {self.logs()}")

    def status(self) -> dict[str, Any]:
        return wait_for(lambda: read_status(self.status_file), 10, "a status file")

    def counter(self, name: str) -> int:
        return self.status()["counters"].get(name, 0)

    def wait_counter(self, name: str, at_least: int, timeout: float = 60.0) -> None:
        wait_for(lambda: self.counter(name) >= at_least, timeout, f"{name} >= {at_least}")

    def stop(self, timeout: float = 90.0) -> dict[str, Any]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.log.close()
        assert code == 0, f"node exit status {code}: {self.logs()}"
        status = read_status(self.status_file)
        assert status and status.get("final"), status
        return status

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()

    def logs(self) -> str:
        return (self.dir / "node.log").read_text()

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs().splitlines() if line.startswith("{")]


def read_sink(directory: Path, pattern: str, tree: str) -> dict[str, np.ndarray]:
    """All records in the closed sink files matching ``pattern``, concatenated."""
    from node.sinks import read_events

    parts = [read_events(p, tree) for p in sorted(directory.glob(pattern))]
    parts = [p for p in parts if p]
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def filesystem(path: Path) -> str:
    """The type of the filesystem holding ``path`` (the longest mount point above it)."""
    best, kind = "", ""
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fstype = line.split()[:3]
        if (str(path.resolve()) + "/").startswith(mount.rstrip("/") + "/") and len(mount) >= len(best):
            best, kind = mount, fstype
    return kind


def needs_o_direct(path: Path) -> None:
    if not hasattr(os, "O_DIRECT") or not Path("/proc/mounts").exists():
        pytest.skip("no O_DIRECT on this platform")
    if filesystem(path) == "tmpfs":
        pytest.skip(f"{path} is on tmpfs (O_DIRECT may be refused there): use --basetemp on a disk")
