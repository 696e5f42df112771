"""Standalone BatchNormalization / QBatchNormalization (not folded by hls4ml)."""

from __future__ import annotations

from fpgaflow.network.exporters import exporter, written_raw
from fpgaflow.network.types import layer_type


@exporter("BatchNormalization", keras=("BatchNormalization", "QBatchNormalization"))
def export_batchnorm(layer, ctx) -> dict:
    spec = {"kind": "batchnorm", "n_filt": int(layer.get_attr("n_filt", -1))}
    for key in ("scale", "bias"):
        t = layer_type(layer, f"{key}_t")
        ctx.add_array(layer, key, written_raw(layer.weights[key], t).reshape(-1), spec)
        spec[f"{key}_type"] = t
    return spec
