"""Shared pieces of the end-to-end tests: a real firmware manifest (a tiny BDT through
``fpgaflow synth``), board stand-ins as subprocesses, and reading what they report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from node_helpers import ROOT, wait_for

BDT_MODEL = """
import numpy as np, xgboost as xgb
rng = np.random.default_rng(0)
x = rng.normal(size=(600, 6))
y = (x[:, 0] + x[:, 1] * x[:, 2] - x[:, 4] > 0).astype(int)
m = xgb.XGBClassifier(n_estimators=8, max_depth=3, n_jobs=1)
m.fit(x, y)
m.get_booster().save_model("model.json")
"""


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")


def make_bdt_project(d: Path, n_features: int = 6, precision: str = "ap_fixed<16,6>") -> Path:
    """A tiny xgboost BDT project folder (not yet synthesized)."""
    d.mkdir(parents=True, exist_ok=True)
    code = BDT_MODEL.replace("size=(600, 6)", f"size=(600, {n_features})").replace("- x[:, 4]", "- x[:, 3]")
    subprocess.run([sys.executable, "-c", code], cwd=d, check=True)
    name = d.name.replace("-", "_")
    (d / "project.yml").write_text(f"ProjectName: {name}\nXGBoostModel: model.json\nInputPrecision: {precision}\n")
    return d


def synth(project: Path) -> Path:
    out = subprocess.run([sys.executable, "-m", "fpgaflow.cli", "synth", str(project)], cwd=ROOT,
                         capture_output=True, text=True, env=env())  # fmt: skip
    assert out.returncode == 0, out.stderr
    return project / "build" / "emulator"


def shared_manifest(tmp_path_factory, name: str, **project) -> Path:
    """A synthesized tiny BDT, built once per test run even across xdist workers
    (a file lock in the run's common temporary folder)."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of this run
    project_dir = root / f"shared-{name}"
    with open(root / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = project_dir / "build" / "emulator"
        if not (manifest / "manifest.json").is_file():
            synth(make_bdt_project(project_dir, **project))
    return manifest


class BoardProc:
    """``python -m sim.board`` as a real subprocess."""

    def __init__(self, directory: Path, manifest: Path, source: int, *args: str):
        self.source = source
        self.status_file = directory / f"board-{source}.json"
        self.status_file.unlink(missing_ok=True)
        self.log_path = directory / f"board-{source}.log"
        self.log = open(self.log_path, "w")
        cmd = [sys.executable, "-m", "sim.board", "--manifest", str(manifest), "--source", str(source),
               "--status", str(self.status_file), *args]  # fmt: skip
        self.proc = subprocess.Popen(cmd, cwd=directory, stderr=self.log, env=env())

    def status(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return None

    def counter(self, name: str) -> int:
        s = self.status()
        return int(s["counters"].get(name, 0)) if s else 0

    def wait(self, timeout: float = 120.0) -> dict[str, Any]:
        code = self.proc.wait(timeout)
        self.log.close()
        assert code == 0, f"board {self.source} exit status {code}: {self.log_path.read_text()}"
        s = self.status()
        assert s is not None and s["state"] in ("finished", "stopped-by-fault", "stopped"), s
        return s

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        self.log.close()

    def faults(self) -> dict[str, np.ndarray]:
        path = self.status_file.with_name(self.status_file.name + ".faults.npz")
        with np.load(path) as f:
            return {k: f[k] for k in f.files}


def wait_started(boards: list[BoardProc], timeout: float = 60.0) -> None:
    for b in boards:
        wait_for(lambda b=b: b.status() is not None or b.proc.poll() is not None, timeout, f"board {b.source}")
        assert b.proc.poll() in (None, 0), b.log_path.read_text()


def random_raw_inputs(emu, n: int, seed: int) -> np.ndarray:
    """``n`` samples of normal inputs, as the firmware's raw input integers."""
    return emu.input_type.to_raw(np.random.default_rng(seed).normal(size=(n, int(np.prod(emu.input_shape)))))


def missing_bit(events: dict[str, np.ndarray], index: int) -> np.ndarray:
    return ((events["missing"].astype(np.uint64) >> np.uint64(index)) & np.uint64(1)) == 1


def by_event(events: dict[str, np.ndarray]) -> dict[int, int]:
    return {int(e): k for k, e in enumerate(events["event"])}
