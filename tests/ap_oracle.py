"""Build and drive the g++-compiled ``ap_fixed.h`` oracle (``tests/oracle/``).

Template parameters are compile-time, so every type combination a test wants is
instantiated in generated translation units; the binary is cached under
``.pytest_cache`` by the hash of its sources and compiler command, so a re-run with the
same (derandomized) combinations does not recompile.  Inputs and outputs are raw bit
patterns in hex: nothing passes through a decimal float on the way.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sim.fixed import FixedType

HERE = Path(__file__).resolve().parent / "oracle"
CACHE = Path(os.environ.get("FPGAFLOW_ORACLE_CACHE", HERE.parents[1] / ".pytest_cache" / "ap_oracle"))
CXXFLAGS = ["-O1", "-std=c++14", "-w"]
NDEBUG = "-DNDEBUG"
"""The oracle is built without assertions: ``ap_fixed_base::operator=`` reads the
rounding bit ``get_bit(F2-F-1)`` before it checks whether that bit lies beyond the
source (it then uses the sign instead), which trips ap_private's "read bit beyond MSB"
assert -- hls4ml's csim build (``-O3``, asserts on) aborts there.  Without asserts the
stray read is discarded and the result is the one the code means (and the hardware
computes); ``build(..., debug=True)`` keeps the asserts to show the abort."""
COST = {"double": 1, "cast": 1, "arith": 4}
"""Relative compile cost of one instantiation, to balance the translation units."""


def ap_types_dir() -> Path:
    """The ``ap_types`` headers shipped inside the installed hls4ml package."""
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or spec.origin is None:
        raise RuntimeError("hls4ml is not installed: the ap_fixed oracle needs its ap_types headers")
    path = Path(spec.origin).parent / "templates" / "vivado" / "ap_types"
    if not (path / "ap_fixed.h").exists():
        raise RuntimeError(f"{path}: no ap_fixed.h in the installed hls4ml package")
    return path


def cpp_type(t: FixedType) -> str:
    """The C++ spelling of ``t`` with every template parameter explicit."""
    u = "" if t.signed else "u"
    if t.integer:
        return f"ap_{u}int<{t.width}>"
    return f"ap_{u}fixed<{t.width},{t.int_bits},{t.quantization},{t.overflow},{t.sat_bits}>"


@dataclass(frozen=True)
class Combo:
    """One instantiation: ``kind`` is "double" (dst), "cast" (src -> dst) or
    "arith" (a op b, each cast into dst)."""

    kind: str
    dst: FixedType | None
    a: FixedType | None = None
    b: FixedType | None = None
    cpp: str = ""
    """C++ target type spelled out, for types ``FixedType`` itself refuses."""

    def runner(self) -> str:
        if self.kind == "double":
            return f"run_double< {self.cpp or cpp_type(self.dst)} >"
        if self.kind == "cast":
            return f"run_cast< {cpp_type(self.a)}, {cpp_type(self.dst)} >"
        return f"run_arith< {cpp_type(self.a)}, {cpp_type(self.b)}, {cpp_type(self.dst)} >"


def _sources(combos: list[Combo], units: int) -> dict[str, str]:
    bins: list[list[tuple[int, Combo]]] = [[] for _ in range(units)]
    loads = [0] * units
    for i, c in sorted(enumerate(combos), key=lambda ic: -COST[ic[1].kind]):
        k = loads.index(min(loads))
        bins[k].append((i, c))
        loads[k] += COST[c.kind]
    files = {}
    for k, entries in enumerate(bins):
        rows = ",\n".join(f"    {{{i}, {c.runner()}}}" for i, c in sorted(entries)) or "    {-1, 0}"
        files[f"tu{k}.cpp"] = (
            '#include "harness.h"\n\n'
            f"extern const combo_entry table{k}[] = {{\n{rows}\n}};\n"
            f"extern const int table{k}_size = {len(entries) or 1};\n"
        )
    decls = "".join(f"extern const combo_entry table{k}[];\nextern const int table{k}_size;\n" for k in range(units))
    rows = ", ".join(f"{{table{k}, table{k}_size}}" for k in range(units))
    files["registry.cpp"] = (
        '#include "harness.h"\n\n'
        f"{decls}\n"
        "struct table_ref { const combo_entry* rows; int size; };\n"
        f"static const table_ref tables[] = {{{rows}}};\n\n"
        "const combo_entry* oracle_find(int id) {\n"
        "    for (const table_ref& t : tables)\n"
        "        for (int i = 0; i < t.size; ++i)\n"
        "            if (t.rows[i].id == id) return &t.rows[i];\n"
        "    return 0;\n"
        "}\n"
    )
    return files


def build(combos: list[Combo], units: int = 8, jobs: int | None = None, debug: bool = False) -> Path:
    """The oracle binary for ``combos`` (compiled once, then taken from the cache)."""
    include = ap_types_dir()
    flags = CXXFLAGS if debug else [*CXXFLAGS, NDEBUG]
    files = _sources(combos, units)
    static = {name: (HERE / name).read_text() for name in ("harness.h", "main.cpp")}
    digest = hashlib.sha256()
    for name, text in sorted({**files, **static}.items()):
        digest.update(f"{name}\0{text}\0".encode())
    digest.update(" ".join(flags + [str(include), shutil.which("g++") or "g++"]).encode())
    for header in sorted(include.glob("*.h")):
        digest.update(header.read_bytes())
    workdir = CACHE / digest.hexdigest()[:20]
    binary = workdir / "ap_oracle"
    if binary.exists():
        return binary
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest worker may be building it
        if binary.exists():
            return binary
        for name, text in {**files, "main.cpp": static["main.cpp"]}.items():
            (workdir / name).write_text(text)
        cmd = ["g++", *flags, f"-I{HERE}", f"-I{include}"]
        sources = sorted(files) + ["main.cpp"]
        print(f"[ap_oracle] compiling {len(combos)} type combinations in {len(sources)} units", file=sys.stderr)

        def compile_one(name: str) -> None:
            out = subprocess.run([*cmd, "-c", name, "-o", name + ".o"], cwd=workdir, capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(f"g++ failed on {workdir / name}:\n{out.stderr[-4000:]}")

        with ThreadPoolExecutor(jobs or min(2, os.cpu_count() or 1)) as pool:
            list(pool.map(compile_one, sources))
        tmp = workdir / "ap_oracle.tmp"
        subprocess.run(["g++", "-o", str(tmp), *[s + ".o" for s in sources]], cwd=workdir, check=True)
        tmp.rename(binary)
        for name in sources:
            (workdir / f"{name}.o").unlink()
    return binary


def run(binary: Path, records: list[tuple[int, list[str]]]) -> list[list[str]]:
    """Feed ``(combo id, input lines)`` records; one list of output lines per record."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.txt", Path(tmp) / "out.txt"
        with open(src, "w") as f:
            for combo_id, lines in records:
                f.write(f"{combo_id} {len(lines)}\n")
                f.write("".join(line + "\n" for line in lines))
        done = subprocess.run([str(binary), str(src), str(dst)], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"oracle {binary} exited with {done.returncode}: {done.stderr[-2000:]}")
        out = dst.read_text().splitlines()
    answers, pos = [], 0
    for _, lines in records:
        answers.append(out[pos : pos + len(lines)])
        pos += len(lines)
    if pos != len(out):
        raise RuntimeError(f"oracle answered {len(out)} lines for {pos} cases")
    return answers


def hex_word(value: int, width: int) -> str:
    """Two's-complement bits of ``value`` in ``width`` bits, as the harness reads them."""
    return format(value & ((1 << width) - 1), "x")


def parse_bits(text: str) -> int:
    """Raw bits from the harness's little-endian ``word:word`` hex."""
    return sum(int(w, 16) << (64 * k) for k, w in enumerate(text.split(":")))
