"""Two-input merges (Add, Subtract, Multiply, Average, Maximum, Minimum,
Concatenate)."""

from __future__ import annotations

from fpgaflow.network.exporters import exporter, keras_check

MERGE_OPS = ("add", "subtract", "multiply", "average", "maximum", "minimum")


@keras_check("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate")
def two_inputs(layer) -> str | None:
    """hls4ml 1.3.0's merge parser raises a bare Exception for more than two inputs."""
    n = len(layer.input) if isinstance(layer.input, (list, tuple)) else 1
    if n > 2:
        return f"it merges {n} inputs, hls4ml merges two (chain two-input {type(layer).__name__} layers instead)"
    return None


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
