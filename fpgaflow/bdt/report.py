"""``build/report.json`` and ``build/report.md`` for a BDT project."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def conifer_estimates(model: Any) -> dict[str, Any]:
    """conifer's own performance estimates (latency in clock cycles, LUT, FF) — fits to
    earlier builds, not synthesis results."""
    from conifer.utils.performance import performance_estimates

    try:
        return {k: int(v) for k, v in performance_estimates(model).items()}
    except Exception as exc:  # estimation is "experimental" in conifer: never fail synth on it
        return {"error": f"{type(exc).__name__}: {exc}"}


def write_report(build_dir: Path, report: dict[str, Any]) -> None:
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (build_dir / "report.md").write_text(markdown(report))


def markdown(r: dict[str, Any]) -> str:
    m, t, p = r["model"], r["types"], r["precision"]
    lines = [
        f"# {r['project']} — BDT firmware ({r['backend']})",
        "",
        f"Model: `{m['file']}` ({m['library']} {m['estimator']}), {m['n_trees']} trees x {m['n_outputs']} "
        f"output(s), max depth {m['max_depth']}, {m['n_features']} features, {m['n_nodes']} nodes; "
        f"splits `x {r['splitting_convention']} threshold`.",
        "",
        "| type | precision |",
        "|---|---|",
        *[f"| {k} | `{v}` |" for k, v in t.items()],
        "",
        f"Sum of tree scores: {r['reduction']['order']} order, init_predict {r['reduction']['init_predict']}.",
        "",
        "## Precision check",
        "",
        f"{p['collapsed_thresholds']} of {p['distinct_thresholds']} distinct thresholds collapse, "
        f"{p['thresholds_outside_range']} lie outside the threshold type; "
        f"{p['leaves_outside_range']} leaves outside the score type.",
        "",
        "## Float conversion vs the library",
        "",
        _float_line(r.get("float_check", {})),
        "",
        "## Resources",
        "",
        "| source | latency (clk) | LUT | FF | CARRY | DSP |",
        "|---|---|---|---|---|---|",
    ]
    est = r.get("conifer_estimates", {})
    estimates = " | ".join(str(est.get(k, "-")) for k in ("latency", "lut", "ff"))
    lines.append(f"| conifer estimate | {estimates} | - | - |")
    o = r.get("open_synth")
    if o and "lut" in o:
        counts = " | ".join(str(o[k]) for k in ("lut", "ff", "carry", "dsp"))
        lines.append(f"| GHDL + yosys `synth_xilinx` ({o['family']}) | - | {counts} |")
    elif o:
        lines.append(f"| open synthesis | {o.get('error', 'not run')} | | | | |")
    v = r.get("vendor")
    if v and v.get("ran") and v.get("success"):
        rep = v.get("report") or {}
        cells = " | ".join(str(rep.get(k, "-")) for k in ("latency", "lut", "ff")) + f" | - | {rep.get('dsp', '-')}"
        lines.append(f"| vendor ({v['tool']}) | {cells} |")
    elif v:
        source = f"vendor ({v['tool']})" if v.get("tool") else "vendor"
        state = "failed" if v.get("tool") else "skipped"
        lines.append(f"| {source} | {state}: {_cell(v.get('reason', 'no reason given'))} | | | | |")
    if r.get("warnings"):
        lines += ["", "## Warnings", "", *[f"- {w}" for w in r["warnings"]]]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Free text (an exception message) as one markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _float_line(fc: dict[str, Any]) -> str:
    if not fc:
        return "not checked"
    return (
        f"{fc['agree']}/{fc['samples']} probe inputs agree with {fc['reference']} "
        f"(max |difference| {fc['max_abs_diff']:.3g}); {fc.get('note', '')}"
    )
