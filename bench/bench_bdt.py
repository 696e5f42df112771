"""BDT emulator throughput against conifer's compiled ``cpp`` backend, in one run.

An xgboost classifier of 100 trees of depth 4 (6 features, trained on generated data),
converted by ``fpgaflow synth`` (xilinxhls, ap_fixed<18,8>), on 100,000 inputs: the
emulator's ``predict`` (NumPy, no compile) against conifer's ``decision_function`` on
its g++-compiled C++ (a fresh compile, timed apart).  Checks on the way that the two
agree bit for bit.  Writes the ``## BDT emulator`` section of docs/benchmarks.md
(``--write``); prints a JSON summary.

    .venv/bin/python bench/bench_bdt.py [--samples 100000] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from benchdoc import DOC, machine, now_utc, replace_section

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
SECTION = "## BDT emulator"
PRECISION = "ap_fixed<18,8>"


def bench(n: int, tmp: Path) -> dict:
    from argparse import Namespace

    from bdt_helpers import make_project, xgb_binary

    import sim
    from fpgaflow.bdt.config import read_config
    from fpgaflow.bdt.inputs import probe_inputs
    from fpgaflow.bdt.load import load_model
    from fpgaflow.bdt.project_writer import conifer_model, working_directory
    from fpgaflow.bdt.synth import synth
    from fpgaflow.project import load_project

    project = load_project(make_project(tmp / "bdt", xgb_binary(100, 4), precision=PRECISION))
    synth(project, Namespace(open_synth=False, vendor=False))
    cfg, source = read_config(project), load_model(project)
    x = probe_inputs(source.ensemble, cfg.types["input"], n, seed=0).astype(np.float64)

    t0 = time.perf_counter()
    emulator = sim.load(project.build_dir / "emulator")
    pred = emulator.predict(x)
    t_emu = time.perf_counter() - t0

    config = {"Backend": "cpp", "ProjectName": "bench", "OutputDir": str(tmp / "cpp"), "Precision": PRECISION}
    model = conifer_model(source.ensemble, config, tmp / "cpp")
    t0 = time.perf_counter()
    with working_directory(tmp / "cpp"):
        model.compile()
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    values = np.asarray(model.decision_function(x), dtype=np.float64).reshape(n, -1)
    t_cpp = time.perf_counter() - t0
    exact = float(np.mean(np.all(np.ldexp(values, emulator.sum_type.frac_bits) == pred.raw, axis=1)))
    return {
        "model": "xgboost 100 trees x depth 4, 6 features",
        "precision": PRECISION,
        "samples": n,
        "emulator_s": t_emu,
        "cpp_s": t_cpp,
        "cpp_compile_s": t_compile,
        "emulator_samples_per_s": n / t_emu,
        "cpp_samples_per_s": n / t_cpp,
        "emulator_vs_cpp": t_cpp / t_emu,
        "bit_exact_fraction": exact,
        "load_average": os.getloadavg()[0],
    }


def write_section(r: dict, path: Path) -> None:
    now = now_utc()
    lines = [
        SECTION,
        "",
        f"`bench/bench_bdt.py`, {now}, {machine()} (shared), "
        f"NumPy {np.__version__}. One run each on the same inputs (on thresholds, one LSB off, outside and across "
        "the input type's range). The emulator time includes loading the manifest and casting float inputs; "
        "conifer's time is its `decision_function` (one C++ call per sample) after a g++ compile listed apart. "
        f"The ratio is measured in the same run; 1-minute load average {r.get('load_average', float('nan')):.1f} "
        "(other jobs shared the cores with both sides).",
        "",
        "| model | precision | samples | emulator (samples/s) | conifer cpp (samples/s) | cpp compile (s) "
        "| emulator / cpp | bit-exact vs cpp |",
        "|---|---|---|---|---|---|---|---|",
        f"| {r['model']} | `{r['precision']}` | {r['samples']:,} | {r['emulator_samples_per_s']:,.0f} "
        f"| {r['cpp_samples_per_s']:,.0f} | {r['cpp_compile_s']:.1f} | {r['emulator_vs_cpp']:.1f}x "
        f"| {r['bit_exact_fraction'] * 100:.2f}% |",
    ]
    replace_section(SECTION, "\n".join(lines), path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=100_000)
    p.add_argument("--write", action="store_true", help="rewrite the BDT section of docs/benchmarks.md")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-bdt-") as tmp:
        result = bench(args.samples, Path(tmp))
    print(json.dumps(result, indent=1))
    if args.write:
        write_section(result, DOC)
    return 0


if __name__ == "__main__":
    sys.exit(main())
