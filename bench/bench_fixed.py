"""Quantize 10 million doubles into a few ap_fixed types: sim.fixed vs fxpmath vs apytypes.

Each library does the same work -- float64 values in, the values the fixed-point type
holds out (float64) -- for the same type, rounding and overflow mode where it has them;
every number below is measured in the same run on the same inputs, and each peer's
output is compared with sim.fixed's (which tests/test_fixed_oracle.py proves bit-exact
against ap_fixed.h).  A peer that would take more than ~30 s for the full set gets
fewer values, and the table says so.

    .venv/bin/python bench/bench_fixed.py              # print, and rewrite its section of docs/benchmarks.md
    .venv/bin/python bench/bench_fixed.py --no-write   # print only
    .venv/bin/python bench/bench_fixed.py -n 1000000   # fewer values

The last line printed is a JSON summary (read by bench/run_all.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from benchdoc import DOC, machine, now_utc, replace_section

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.fixed import FixedType  # noqa: E402

SECTION = "## Fixed-point core"
PEER_BUDGET_S = 30.0


@dataclass(frozen=True)
class Case:
    """One type, and how each peer spells it (None: the peer cannot)."""

    type: str
    fxpmath_rounding: str | None
    apytypes_quantization: str | None
    note: str = ""


CASES = [
    Case("ap_fixed<16,6>", "floor", "TO_NEG"),
    Case("ap_fixed<8,3,AP_RND,AP_SAT>", "nearest_posinf", "TIES_POS"),
    Case(
        "ap_ufixed<12,4,AP_RND_CONV,AP_SAT>",
        "around",
        "TIES_EVEN",
        "apytypes has no unsigned type: it gets max(x, 0) into a signed <13,5> (same values, one more pass)",
    ),
    Case("ap_fixed<18,8,AP_RND_INF,AP_SAT>", "nearest_away", "TIES_AWAY"),
]


def inputs(t: FixedType, n: int, seed: int = 0) -> np.ndarray:
    """Values spanning the type's range and 25% beyond it on both sides, plus exact ties."""
    rng = np.random.default_rng(seed)
    span = max(abs(t.min_value), t.max_value)
    x = rng.uniform(-1.25 * span, 1.25 * span, n)
    ties = rng.integers(0, n, n // 10)
    x[ties] = (np.floor(x[ties] / t.lsb) + 0.5) * t.lsb  # exactly half an LSB
    return x


def timed(fn: Callable[[], np.ndarray], repeat: int) -> tuple[float, np.ndarray]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run_sim(t: FixedType, x: np.ndarray) -> np.ndarray:
    return t.quantize(x)


def run_fxpmath(t: FixedType, rounding: str, x: np.ndarray) -> np.ndarray:
    from fxpmath import Fxp

    overflow = "saturate" if t.overflow == "AP_SAT" else "wrap"
    v = Fxp(x, signed=t.signed, n_word=t.width, n_int=t.int_bits - t.signed, rounding=rounding, overflow=overflow)
    return np.asarray(v.get_val(), dtype=np.float64)


def run_apytypes(t: FixedType, quantization: str, x: np.ndarray) -> np.ndarray:
    import apytypes as apy

    overflow = apy.OverflowMode.SAT if t.overflow == "AP_SAT" else apy.OverflowMode.WRAP
    int_bits, frac_bits = t.int_bits, t.frac_bits
    if not t.signed:
        x, int_bits = np.maximum(x, 0.0), int_bits + 1
    # from_float rounds (ties away) on a grid 30 bits finer than the target, wide enough
    # not to wrap; the cast then does the type's rounding and overflow.
    wide = apy.APyFixedArray.from_float(x, int_bits=int_bits + 2, frac_bits=frac_bits + 30)
    q = wide.cast(int_bits=int_bits, frac_bits=frac_bits, quantization=getattr(apy.QuantizationMode, quantization),
                  overflow=overflow)  # fmt: skip
    return np.asarray(q.to_numpy(), dtype=np.float64)


def peer_size(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> int:
    """How many values the peer gets: all, unless the full set would exceed the budget."""
    probe = x[:200_000]
    t0 = time.perf_counter()
    fn(probe)
    rate = probe.size / max(time.perf_counter() - t0, 1e-9)
    if rate * PEER_BUDGET_S >= x.size:
        return x.size
    return max(probe.size, int(rate * PEER_BUDGET_S) // 100_000 * 100_000)


def bench_case(case: Case, n: int, repeat: int) -> dict:
    t = FixedType.parse(case.type)
    x = inputs(t, n)
    row: dict = {"name": case.type, "values": n, "note": case.note}
    sim_s, ours = timed(lambda: run_sim(t, x), repeat)
    row["sim_values_per_s"] = n / sim_s
    print(f"{case.type:38s} sim.fixed  {n:>10,} values  {n / sim_s / 1e6:8.2f} M/s", flush=True)
    peers = {
        "fxpmath": (case.fxpmath_rounding, lambda v, r=case.fxpmath_rounding: run_fxpmath(t, r, v)),
        "apytypes": (case.apytypes_quantization, lambda v, q=case.apytypes_quantization: run_apytypes(t, q, v)),
    }
    for peer, (mode, fn) in peers.items():
        if mode is None:
            row[peer] = None
            continue
        m = peer_size(fn, x)
        peer_s, theirs = timed(lambda fn=fn, m=m: fn(x[:m]), 1 if m < n else repeat)
        rate = m / peer_s
        agree = float(np.mean(theirs == ours[:m]))
        row[peer] = {"mode": mode, "values": m, "values_per_s": rate, "agreement": agree}
        row[f"sim_vs_{peer}"] = row["sim_values_per_s"] / rate
        print(
            f"{'':38s} {peer:10s} {m:>10,} values  {rate / 1e6:8.2f} M/s   sim.fixed is "
            f"{row[f'sim_vs_{peer}']:.1f}x   same values as sim.fixed: {agree * 100:.4f}%",
            flush=True,
        )
    return row


def versions() -> str:
    import apytypes
    import fxpmath

    return f"NumPy {np.__version__}, fxpmath {fxpmath.__version__}, apytypes {apytypes.__version__}"


def section(rows: list[dict], when: str) -> str:
    lines = [
        SECTION,
        "",
        f"`bench/bench_fixed.py`, {when}, on {machine()} (shared; load average {os.getloadavg()[0]:.1f} "
        f"when written); {versions()}.",
        "",
        "Quantize float64 values into each type (float64 in, the values the type holds out): "
        "`FixedType.quantize` vs `fxpmath.Fxp(...).get_val()` vs apytypes "
        "`APyFixedArray.from_float(...).cast(...).to_numpy()`, same rounding and overflow mode, same inputs "
        "(uniform over the range and 25% beyond on both sides, 10% exact ties), best of the repeats, measured "
        "in the same run. \"Same values\" compares each peer's output with sim.fixed's, which "
        "`tests/test_fixed_oracle.py` proves bit-exact against `ap_fixed.h`.",
        "",
        "| type | values | sim.fixed (M values/s) | fxpmath mode | fxpmath (M values/s) | sim.fixed / fxpmath "
        "| same values | apytypes mode | apytypes (M values/s) | sim.fixed / apytypes | same values |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for r in rows:
        cells = [f"`{r['name']}`", f"{r['values']:,}", f"{r['sim_values_per_s'] / 1e6:.1f}"]
        for peer in ("fxpmath", "apytypes"):
            p = r[peer]
            if p is None:
                cells += ["(none)", "-", "-", "-"]
                continue
            fewer = "" if p["values"] == r["values"] else f" ({p['values']:,} values)"
            cells += [
                f"`{p['mode']}`",
                f"{p['values_per_s'] / 1e6:.2f}{fewer}",
                f"{r[f'sim_vs_{peer}']:.1f}x",
                f"{p['agreement'] * 100:.4f}%",
            ]
        lines.append("| " + " | ".join(cells) + " |")
        if r["note"]:
            notes.append(f"- `{r['name']}`: {r['note']}.")
    lines += ["", *notes] if notes else []
    lines += [
        "- Where a peer has fewer values than sim.fixed it would have needed more than "
        f"{PEER_BUDGET_S:.0f} s for all of them; its rate is measured on the values it got.",
        "- Neither peer has AP_SAT_ZERO, AP_SAT_SYM, AP_WRAP_SM or saturation bits N; apytypes has no "
        "unsigned types and its `from_float` itself rounds (ties away) on the finer grid used here.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--values", type=int, default=10_000_000, help="values per type (default 10,000,000)")
    p.add_argument("--repeat", type=int, default=3, help="timed repeats, best kept (default 3)")
    p.add_argument(
        "--write", action=argparse.BooleanOptionalAction, default=True, help="rewrite its section of docs/benchmarks.md"
    )
    args = p.parse_args(argv)
    when = now_utc()
    print(f"bench_fixed: {args.values:,} values per type; {machine()}; {versions()}; {when}", flush=True)
    rows = [bench_case(c, args.values, args.repeat) for c in CASES]
    if args.write:
        replace_section(SECTION, section(rows, when))
        print(f"bench_fixed: wrote '{SECTION}' in {DOC.relative_to(ROOT)}", flush=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
