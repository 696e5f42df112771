"""``report.md`` (for people) and ``report.json`` (for machines) of a profile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def write_report(profile: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(profile, indent=1) + "\n")
    lines = [
        f"# Precision profile: {profile['project']}",
        "",
        f"Firmware manifest `{profile['manifest_id']}`, {profile['samples']} samples from `{profile['input']}`"
        + (" (raw features, scaled by the manifest's preprocessing)." if profile["preprocessing"] else "."),
        "",
    ]
    acc = profile.get("accuracy")
    if acc:
        lines += [
            "## Accuracy: float model vs firmware",
            "",
            "| | float model (Keras/QKeras) | firmware (bit-exact emulator) |",
            "|---|---|---|",
            f"| accuracy | {acc['float']:.4f} | {acc['firmware']:.4f} |",
            "",
            f"The firmware's top class agrees with the float model's for {acc['argmax_agreement'] * 100:.2f}% "
            "of the samples.",
            "",
        ]
    else:
        lines += ["No labels were given, so there is no accuracy or ROC (pass --labels).", ""]
    if profile.get("auc"):
        lines += ["## ROC area under the curve, one class vs the rest", ""]
        lines += ["| class | float | firmware | firmware - float |", "|---|---|---|---|"]
        for name, a in profile["auc"].items():
            lines.append(f"| {name} | {a['float']:.4f} | {a['firmware']:.4f} | {a['firmware'] - a['float']:+.4f} |")
        lines += ["", "![ROC curves](roc.png)", ""]
    lines += [
        "## Layer outputs: ranges, overflows, suggested types",
        "",
        "| layer | kind | type | type range | float model range | firmware range before the cast "
        "| overflow | underflow | suggested type |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in profile["layers"]:
        fl = f"[{_fmt(row['float_low'])}, {_fmt(row['float_high'])}]" if row.get("float_low") is not None else "-"
        fw = f"[{_fmt(row['low'])}, {_fmt(row['high'])}]" if not row.get("note") else row["note"]
        ov = f"{row['overflow']} ({row['overflow'] / max(row['values'], 1) * 100:.2f}%)"
        un = f"{row['underflow']} ({row['underflow'] / max(row['values'], 1) * 100:.2f}%)"
        lines.append(
            f"| {row['name']} | {row['kind']} | `{row['type']}` | [{_fmt(row['type_low'])}, {_fmt(row['type_high'])}] "
            f"| {fl} | {fw} | {ov} | {un} | {row['suggestion']} |"
        )
    lines += [
        "",
        "*overflow*: outputs the firmware changed by saturation or wrap-around (of the result or of a dense "
        "layer's accumulator); *underflow*: nonzero values that became 0 (below the type's LSB). Both are "
        "measured by the emulator, which re-runs each layer on its real inputs with a wider result type. "
        "The suggested type keeps the fractional bits and modes and has just enough integer bits for the "
        "largest value seen (float model or firmware); a QKeras-trained activation that saturates (e.g. "
        "`quantized_relu` clipping at 1) was trained with that clipping and may be left as it is.",
        "",
        "## Weights and biases",
        "",
        "| layer | tensor | type | type range | float range | fits |",
        "|---|---|---|---|---|---|",
    ]
    for w in profile["weights"]:
        lines.append(
            f"| {w['layer']} | {w['what']} | `{w['type']}` | [{_fmt(w['type_low'])}, {_fmt(w['type_high'])}] "
            f"| [{_fmt(w['low'])}, {_fmt(w['high'])}] | {'yes' if w['fits'] else 'no (clipped by the quantizer)'} |"
        )
    lines += ["", "![Ranges vs types](ranges.png)", ""]
    path = directory / "report.md"
    path.write_text("\n".join(lines))
    return path
