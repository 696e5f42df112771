"""Open-source synthesis of conifer's VHDL: GHDL's synthesis to Verilog, then yosys
``synth_xilinx`` and ``stat`` for LUT/FF/CARRY/DSP counts — resource numbers without
vendor tools (neither conifer nor hls4ml offers this).

Known snag: GHDL leaves the zero padding of ``AddReduce.vhd`` (``dInt``'s unassigned
tail, whose VHDL initial value is 0) as ``'bZ`` in the Verilog; yosys would then treat
those adder inputs as undriven.  We write them as the zeros the VHDL means."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fpgaflow.bdt.config import BDTConfig
from fpgaflow.bdt.toolchain import ToolError, require

SOURCES = ("Constants", "Split", "Types", "Tree", "AddReduce")  # then Arrays*, BDT, BDTTop (conifer's order)
CELL_GROUPS = {
    "lut": re.compile(r"^LUT[1-6]$"),
    "ff": re.compile(r"^FD[A-Z]*$"),
    "carry": re.compile(r"^CARRY[48]$"),
    "dsp": re.compile(r"^DSP48E[12]?$"),
    "srl": re.compile(r"^SRL"),
    "muxf": re.compile(r"^MUXF[789]$"),
}


def yosys_family(part: str) -> str:
    """synth_xilinx family for a Xilinx part name (UltraScale+ parts end the series in 'p')."""
    p = part.lower()
    if re.match(r"^xc(vu|ku)\d+p", p) or p.startswith(("xczu", "xck26")):
        return "xcup"
    if p.startswith(("xcvu", "xcku")):
        return "xcu"
    return "xc7"


def _run(cmd: list[str], cwd: Path, log: Path, timeout: float, stdout: Path | None = None) -> None:
    with open(log, "w") as err, open(stdout or log.with_suffix(".out"), "w") as out:
        try:
            done = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=err, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ToolError(f"{cmd[0]} timed out after {timeout:.0f} s (log: {log})") from None
    if done.returncode != 0:
        tail = "\n  ".join(log.read_text().strip().splitlines()[-5:])
        raise ToolError(f"{' '.join(cmd[:3])}... failed (log: {log}):\n  {tail}")


def ghdl_to_verilog(hls_dir: Path, workdir: Path, timeout: float = 600) -> Path:
    """``ghdl -a`` the firmware into library BDT, ``ghdl --synth --out=verilog BDTTop``."""
    require("ghdl")
    firmware = hls_dir / "firmware"
    if not (firmware / "BDTTop.vhd").is_file():
        raise ToolError(f"{hls_dir}: no firmware/BDTTop.vhd; open synthesis needs a conifer vhdl project")
    arrays = sorted(firmware.glob("Arrays*.vhd"), key=lambda p: int(p.stem[6:]))
    files = [firmware / f"{s}.vhd" for s in SOURCES] + arrays + [firmware / "BDT.vhd", firmware / "BDTTop.vhd"]
    log = workdir / "ghdl_synth.log"
    _run(["ghdl", "-a", "--std=08", "--work=BDT", *map(str, files)], workdir, log, timeout)
    raw = workdir / "BDTTop.ghdl.v"
    _run(["ghdl", "--synth", "--std=08", "--work=BDT", "--out=verilog", "BDTTop"], workdir, log, timeout, raw)
    verilog = workdir / "BDTTop.v"
    text, n = re.subn(r"(\d+)'bZ", r"\1'b0", raw.read_text())
    verilog.write_text(text)
    (workdir / "z_padding_fixed.txt").write_text(f"{n}\n")
    return verilog


def parse_stat(text: str) -> dict[str, int]:
    """Cell counts of the top level (the last ``stat`` block, the whole hierarchy)."""
    block = text.rsplit("Number of cells:", 1)[-1].splitlines()[1:]
    counts = {k: 0 for k in CELL_GROUPS}
    for line in block:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break  # end of the cell table
        for group, pattern in CELL_GROUPS.items():
            if pattern.match(parts[0]):
                counts[group] += int(parts[1])
    return counts


def open_synthesis(cfg: BDTConfig, log: Callable[[str], None] = print, timeout: float = 3600) -> dict[str, Any]:
    """Run GHDL + yosys on ``build/hls`` and return the resource counts for the report."""
    if cfg.backend != "vhdl":
        raise ToolError(
            f"{cfg.project.file}: --open-synth synthesizes conifer's VHDL with GHDL + yosys, but Backend is "
            f"{cfg.backend}; HLS C++ needs Vivado/Vitis HLS (use Backend: vhdl for open synthesis)"
        )
    require("yosys")
    workdir = cfg.project.build_dir / "open_synth"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    start = time.monotonic()
    log("open synthesis: GHDL VHDL -> Verilog")
    verilog = ghdl_to_verilog(cfg.hls_dir, workdir)
    family = yosys_family(str(cfg.conifer.get("XilinxPart", "")))
    log(f"open synthesis: yosys synth_xilinx -family {family} (minutes for 100 trees; log in {workdir})")
    script = f"read_verilog {verilog.name}; synth_xilinx -top BDTTop -family {family}; tee -q -o stat.txt stat"
    _run(["yosys", "-q", "-p", script], workdir, workdir / "yosys.log", timeout)
    counts = parse_stat((workdir / "stat.txt").read_text())
    result: dict[str, Any] = {"tool": "ghdl --synth + yosys synth_xilinx", "family": family, **counts}
    result["z_padding_fixed"] = int((workdir / "z_padding_fixed.txt").read_text())
    result["seconds"] = round(time.monotonic() - start, 1)
    log(f"open synthesis: {counts['lut']} LUT, {counts['ff']} FF, {counts['carry']} CARRY, {counts['dsp']} DSP")
    return result
