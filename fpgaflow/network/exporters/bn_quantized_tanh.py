"""BatchNormalization merged with a binary or ternary tanh (hls4ml's
BatchNormalizationQuantizedTanh): thresholds in the input's type."""

from __future__ import annotations

from fpgaflow.network.exporters import exporter, written_raw
from fpgaflow.network.types import ap_type


@exporter("BatchNormalizationQuantizedTanh")
def export_bn_quantized_tanh(layer, ctx) -> dict:
    quantize = int(layer.get_attr("quantize"))
    if quantize not in (2, 3):
        raise ValueError(f"layer {layer.name!r}: quantize={quantize} is neither binary (2) nor ternary (3)")
    in_type = ap_type(layer.get_input_variable().type.precision, f"layer {layer.name!r} input")
    spec = {
        "kind": "bn_quantized_tanh",
        "mode": "binary" if quantize == 2 else "ternary",
        "n_filt": int(layer.get_attr("n_filt", -1)),
        "threshold_type": in_type,
    }
    names = ("threshold",) if quantize == 2 else ("threshold_hi", "threshold_lo")
    for name in names:
        ctx.add_array(layer, name, written_raw(layer.weights[name], in_type).reshape(-1), spec)
    return spec
