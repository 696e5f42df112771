"""What conifer needs from the machine, set up here so users never do it by hand:
the ap_fixed headers (``XILINX_AP_INCLUDE``, taken from the copy hls4ml ships), a
``python3`` that has pybind11 (conifer's VHDL backend compiles its fixed-point
converter with whatever ``python3`` is first on PATH), and the open-source tools."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

from fpgaflow.errors import UserError


class ToolError(UserError):
    """A required external tool is missing; the message says which and how to get it."""


def ap_include_dir() -> Path:
    """hls4ml's bundled ``ap_types`` folder (``ap_fixed.h`` and friends)."""
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.origin:
        raise ToolError("hls4ml is not installed: its bundled ap_fixed headers are needed (pip install hls4ml)")
    path = Path(spec.origin).parent / "templates" / "vivado" / "ap_types"
    if not (path / "ap_fixed.h").is_file():
        raise ToolError(f"{path}: ap_fixed.h not found in the installed hls4ml")
    return path


def prepare_conifer_environment() -> None:
    """Point conifer at the ap_fixed headers and this interpreter's pybind11 (idempotent)."""
    if not os.environ.get("XILINX_AP_INCLUDE"):
        os.environ["XILINX_AP_INCLUDE"] = str(ap_include_dir())
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[:1] != [bindir]:
        os.environ["PATH"] = bindir + os.pathsep + path
    import logging

    # conifer warns on every xgboost>=2 conversion and every estimate; we check those ourselves
    logging.getLogger("conifer").setLevel(logging.ERROR)


def require(tool: str, package: str | None = None) -> str:
    """Full path of ``tool`` on PATH, or a :class:`ToolError` naming the Debian package."""
    found = shutil.which(tool)
    if not found:
        raise ToolError(f"'{tool}' not found on PATH; install the Debian package '{package or tool}' (./run.sh setup)")
    return found
