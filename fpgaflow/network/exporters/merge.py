"""Two-input merges (Add, Subtract, Multiply, Average, Maximum, Minimum,
Concatenate)."""

from __future__ import annotations

from fpgaflow.network.exporters import exporter

MERGE_OPS = ("add", "subtract", "multiply", "average", "maximum", "minimum")


@exporter("Merge", keras=("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"))
def export_merge(layer, ctx) -> dict:
    op = str(layer.get_attr("op")).lower()
    if op not in MERGE_OPS:
        raise ValueError(
            f"layer {layer.name!r} ({layer.class_name}): merge {op!r} is not supported "
            f"(supported: {', '.join(MERGE_OPS)})"
        )
    return {"kind": "merge", "op": op}


@exporter("Concatenate", keras=("Concatenate",))
def export_concatenate(layer, ctx) -> dict:
    return {"kind": "concatenate", "axis": int(layer.get_attr("axis"))}
