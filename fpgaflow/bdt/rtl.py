"""RTL check: conifer's VHDL, simulated with GHDL on raw fixed-point inputs.

conifer's own testbench (``BDTTestbench.vhd``) reads one sample per line of integers
from ``SimulationInput.txt`` and writes the valid outputs to ``SimulationOutput.txt``;
we drive it from Python with captured logs, a timeout, and clear errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from fpgaflow.bdt.toolchain import ToolError, require


def _run(cmd: list[str], cwd: Path, log: Path, timeout: float) -> None:
    with open(log, "w") as out:
        try:
            done = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ToolError(f"{' '.join(cmd)} timed out after {timeout:.0f} s (log: {log})") from None
    if done.returncode != 0:
        tail = log.read_text().strip().splitlines()[-5:]
        raise ToolError(f"{' '.join(cmd)} failed in {cwd} (log: {log}):\n  " + "\n  ".join(tail))


def analyse(hls_dir: Path, timeout: float = 600) -> None:
    """``ghdl -a`` / ``-e`` of the project and testbench (conifer's ghdl_compile.sh)."""
    require("ghdl")
    script = hls_dir / "ghdl_compile.sh"
    if not script.is_file():
        raise ToolError(f"{hls_dir}: no ghdl_compile.sh; this is not a conifer vhdl project (Backend: vhdl)")
    _run(["sh", "ghdl_compile.sh"], hls_dir, hls_dir / "ghdl_compile.log", timeout)


def simulate(hls_dir: Path, x_raw: np.ndarray, n_outputs: int, timeout: float = 1800) -> np.ndarray:
    """Raw outputs of the RTL for raw inputs, shape (n, outputs)."""
    hls_dir = Path(hls_dir)
    analyse(hls_dir)
    np.savetxt(hls_dir / "SimulationInput.txt", np.asarray(x_raw, dtype=np.int64), fmt="%d", delimiter=" ")
    out_file = hls_dir / "SimulationOutput.txt"
    out_file.unlink(missing_ok=True)
    _run(["ghdl", "-r", "--std=08", "--work=xil_defaultlib", "testbench"], hls_dir, hls_dir / "ghdl.log", timeout)
    if not out_file.is_file():
        raise ToolError(f"GHDL wrote no {out_file} (log: {hls_dir / 'ghdl.log'})")
    y = np.loadtxt(out_file, dtype=np.int64, ndmin=2)
    if y.shape != (len(x_raw), n_outputs):
        raise ToolError(f"{out_file}: GHDL gave {y.shape} outputs for {len(x_raw)} samples x {n_outputs} outputs")
    return y
