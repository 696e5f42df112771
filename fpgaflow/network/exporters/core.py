"""Input and Flatten/Reshape layers."""

from __future__ import annotations

from fpgaflow.network.exporters import exporter


@exporter("Input", keras=("InputLayer",))
def export_input(layer, ctx) -> dict:
    return {"kind": "input"}


@exporter("Reshape", keras=("Flatten", "Reshape", "Dropout"))
def export_reshape(layer, ctx) -> dict:
    return {"kind": "reshape"}
