"""``report.json`` / ``report.md``: per layer kind, shapes, types, reuse factor, strategy,
multiplications, and an *estimate* of DSP/LUT/FF/BRAM, latency and II.

The estimate is a deliberately simple analytic model, stated in the report
(``ESTIMATION_METHOD``); it ranks designs and flags the expensive layer, it does not
replace vendor synthesis.  Vendor numbers appear only with ``--vendor`` and a vendor
tool on PATH.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sim.fixed import FixedType

ESTIMATION_METHOD = (
    "analytic model (fpgaflow, docs/network.md): multipliers = ceil(non-zero products / reuse factor); "
    "a product whose narrower operand has > 4 bits and whose operand widths sum to > 12 bits uses "
    "ceil(wa/27)*ceil(wb/18) DSP48 slices, otherwise wa*wb LUTs; accumulation costs one adder "
    "(accumulator width LUTs) per multiplier; FF = result bits of every multiplier stage plus outputs; "
    "weights go to BRAM18 (18 kbit each) only with the Resource strategy and reuse factor > 1; "
    "latency: Dense/Conv = reuse factor + ceil(log2(n_in)) + 2 cycles, table activations 2, "
    "element-wise 1, softmax 4 + ceil(log2(n)); II = reuse factor (1 for element-wise layers)"
)


def _width(t: str | None) -> int:
    return FixedType.parse(t).width if t else 0


def _mac_estimate(spec: dict, arrays: dict, in_type: str) -> dict[str, Any]:
    """Any layer with a weight matrix and an accumulator (dense, conv...): the weight's
    last axis is the outputs, the rest one output's inputs; the same MAC repeats over
    the output's other positions (pixels)."""
    weight = arrays[spec["arrays"]["weight"]]
    n_out = weight.shape[-1]
    n_in = weight.size // max(1, n_out)
    pixels = max(1, math.prod(spec["output_shape"]) // max(1, n_out))
    nonzero = int((weight != 0).sum())
    rf = max(1, int(spec.get("reuse_factor", 1)))
    mults = math.ceil(nonzero / rf)
    wa, wb = sorted((_width(in_type), _width(spec["weight_type"])), reverse=True)
    dsp_each = math.ceil(wa / 27) * math.ceil(wb / 18) if wb > 4 and wa + wb > 12 else 0
    acc_w = _width(spec["accum_type"])
    lut = mults * (acc_w + (0 if dsp_each else wa * wb))
    ff = mults * (wa + wb) + weight.shape[-1] * _width(spec["result_type"])
    bram = 0
    if spec.get("strategy") == "resource" and rf > 1:
        bram = math.ceil(weight.size * _width(spec["weight_type"]) / 18432)
    latency = rf + math.ceil(math.log2(max(2, n_in))) + 2
    return {
        "multiplications": nonzero * pixels,
        "multipliers": mults,
        "dsp": mults * dsp_each,
        "lut": lut,
        "ff": ff,
        "bram18": bram,
        "latency_cycles": latency * (pixels if rf > 1 else 1),
        "ii_cycles": rf,
    }


def layer_estimate(spec: dict, arrays: dict, in_type: str | None) -> dict[str, Any]:
    size = int(math.prod(spec["output_shape"]))
    kind = spec["kind"]
    if "weight" in spec.get("arrays", {}) and "accum_type" in spec:
        return _mac_estimate(spec, arrays, in_type or spec["result_type"])
    base = {"multiplications": 0, "multipliers": 0, "dsp": 0, "bram18": 0, "ii_cycles": 1}
    out_w = _width(spec["result_type"])
    if kind == "softmax":
        n = spec.get("n_slice", size)
        return {
            **base,
            "multiplications": size,
            "multipliers": size,
            "dsp": size,
            "lut": size * 2 * out_w,
            "ff": size * 3 * out_w,
            "bram18": 0,
            "latency_cycles": 4 + math.ceil(math.log2(max(2, n))),
        }
    if kind == "batchnorm":
        return {
            **base,
            "multiplications": size,
            "multipliers": size,
            "lut": size * out_w,
            "ff": size * out_w,
            "latency_cycles": 2,
        }
    if kind == "activation" and "table_size" in spec:
        return {**base, "lut": size * out_w, "ff": size * out_w, "latency_cycles": 2}
    if kind in ("input", "reshape"):
        return {**base, "lut": 0, "ff": 0, "latency_cycles": 0, "ii_cycles": 0}
    return {**base, "lut": size * out_w // 2, "ff": size * out_w, "latency_cycles": 1}


def build_report(
    meta: dict,
    arrays: dict,
    vendor: dict | None,
    warnings: list[str] | None = None,
    weight_checks: list[dict] | None = None,
) -> dict[str, Any]:
    rows = []
    types_of = {s["name"]: s["result_type"] for s in meta["layers"]}
    for spec in meta["layers"]:
        in_type = types_of.get(spec["inputs"][0]) if spec["inputs"] else None
        est = layer_estimate(spec, arrays, in_type)
        types = {k: v for k, v in spec.items() if k.endswith("_type")}
        rows.append(
            {
                "name": spec["name"],
                "kind": spec["kind"],
                "hls4ml_class": spec.get("class_name"),
                "input_shape": None,
                "output_shape": spec["output_shape"],
                "types": types,
                "reuse_factor": spec.get("reuse_factor", 1),
                "strategy": spec.get("strategy"),
                **est,
            }
        )
    shapes = {s["name"]: s["output_shape"] for s in meta["layers"]}
    for row, spec in zip(rows, meta["layers"], strict=True):
        row["input_shape"] = shapes.get(spec["inputs"][0]) if spec["inputs"] else spec["output_shape"]
    totals = {k: sum(r[k] for r in rows) for k in ("multiplications", "dsp", "lut", "ff", "bram18", "latency_cycles")}
    totals["ii_cycles"] = max(r["ii_cycles"] for r in rows)
    return {
        "name": meta["name"],
        "manifest_id": meta.get("id"),
        "backend": meta["backend"],
        "part": meta.get("part"),
        "clock_period_ns": meta.get("clock_period"),
        "io_type": meta["io_type"],
        "estimation_method": ESTIMATION_METHOD,
        "layers": rows,
        "totals": totals,
        "vendor": vendor,
        "warnings": list(warnings or []),
        "weights_not_held": list(weight_checks or []),  # fpgaflow/network/precision.py
    }


def write_report(report: dict, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [
        f"# {report['name']} — firmware report",
        "",
        f"Backend {report['backend']}, part {report['part']}, clock {report['clock_period_ns']} ns, "
        f"{report['io_type']}, manifest {report['manifest_id']}.",
        "",
        f"**Estimates** — {report['estimation_method']}.",
        "",
        "| layer | kind | in → out | types | RF | strategy | mults | DSP | LUT | FF | BRAM18 | latency | II |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["layers"]:
        types = "<br>".join(f"{k[:-5]}: `{v}`" for k, v in r["types"].items())
        lines.append(
            f"| {r['name']} | {r['kind']} | {r['input_shape']} → {r['output_shape']} | {types} | {r['reuse_factor']} "
            f"| {r['strategy'] or ''} | {r['multiplications']} | {r['dsp']} | {r['lut']} | {r['ff']} | {r['bram18']} "
            f"| {r['latency_cycles']} | {r['ii_cycles']} |"
        )
    t = report["totals"]
    lines += [
        f"| **total** | | | | | | {t['multiplications']} | {t['dsp']} | {t['lut']} | {t['ff']} | {t['bram18']} "
        f"| {t['latency_cycles']} | {t['ii_cycles']} |",
        "",
        "## Vendor synthesis",
        "",
    ]
    vendor = report["vendor"] or {}
    if vendor.get("ran") and vendor.get("success"):
        c = vendor["results"]["CSynthesisReport"]
        lines += [
            f"{vendor['tool']} C synthesis beside the estimate (clock period: target "
            f"{c.get('TargetClockPeriod', '?')} ns, estimated {c.get('EstimatedClockPeriod', '?')} ns):",
            "",
            "| source | DSP | LUT | FF | BRAM18 | latency | II |",
            "|---|---|---|---|---|---|---|",
            "| estimate | "
            + " | ".join(str(t[k]) for k in ("dsp", "lut", "ff", "bram18", "latency_cycles", "ii_cycles"))
            + " |",
            f"| {vendor['tool']} | "
            + " | ".join(str(c.get(k, "-")) for k in ("DSP", "LUT", "FF", "BRAM_18K"))
            + f" | {_span(c, 'BestLatency', 'WorstLatency')} | {_span(c, 'IntervalMin', 'IntervalMax')} |",
            "",
            "```\n" + json.dumps(vendor["results"], indent=1) + "\n```",
        ]
    elif vendor.get("tool"):  # the tool was there and was run, but gave no report
        lines.append(f"Failed: {vendor.get('reason', 'no reason given').rstrip('.')}.")
    else:
        lines.append(f"Skipped: {vendor.get('reason', 'not requested')}.")
    if report.get("warnings"):
        lines += ["", "## Warnings", "", *[f"- {w}" for w in report["warnings"]]]
    (directory / "report.md").write_text("\n".join(lines) + "\n")


def _span(c: dict, low: str, high: str) -> str:
    """A best/worst pair from the csynth report: one number when they agree."""
    lo, hi = c.get(low, "-"), c.get(high, "-")
    return str(lo) if lo == hi else f"{lo}–{hi}"
