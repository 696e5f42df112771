"""Standalone BatchNormalization / QBatchNormalization (not folded by hls4ml), ApplyAlpha."""

from __future__ import annotations

from fpgaflow.network.exporters import exporter, written_raw
from fpgaflow.network.types import layer_type


@exporter("BatchNormalization", "ApplyAlpha", keras=("BatchNormalization", "QBatchNormalization"))
def export_batchnorm(layer, ctx) -> dict:
    """Also hls4ml's ApplyAlpha (the scale of a QKeras quantizer with alpha != 1, added
    after the layer and computed by the same ``nnet::normalize``)."""
    from fpgaflow.network.exporters.dense import exponent_weights, product_kind
    from fpgaflow.network.types import ap_type

    product = product_kind(layer)
    if product not in ("mult", "weight_exponential"):
        raise ValueError(f"layer {layer.name!r} ({layer.class_name}): product {product!r} is not emulated here")
    spec = {"kind": "batchnorm", "n_filt": int(layer.get_attr("n_filt", -1))}
    for key in ("scale", "bias"):
        if key == "scale" and product == "weight_exponential":
            in_type = ap_type(layer.get_input_variable().type.precision, f"layer {layer.name!r} input")
            raw, t, _ = exponent_weights(layer, layer.weights[key], in_type)
        else:
            t = layer_type(layer, f"{key}_t")
            raw = written_raw(layer.weights[key], t)
        ctx.add_array(layer, key, raw.reshape(-1), spec)
        spec[f"{key}_type"] = t
    return spec
