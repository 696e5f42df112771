"""Dense / QDense and Conv1D / QConv1D: weights, bias and the MAC types."""

from __future__ import annotations

import numpy as np

from fpgaflow.network.exporters import exporter, written_raw
from fpgaflow.network.types import layer_type

SUPPORTED_STRATEGIES = ("latency", "resource", "resource_unrolled")
PRODUCTS = ("mult", "weight_binary", "weight_ternary", "data_binary")


def product_kind(layer) -> str:
    """The ``nnet::product::...`` the config struct selects (binary/ternary specialisations)."""
    import re

    m = re.search(r"product::(\w+)<", layer.get_attr("config_cpp") or "")
    kind = m.group(1) if m else "mult"
    if kind not in PRODUCTS:
        raise ValueError(
            f"layer {layer.name!r} ({layer.class_name}): product {kind!r} is not emulated "
            f"(supported: {', '.join(PRODUCTS)})"
        )
    return kind


def _mac_fields(layer, ctx, spec: dict, weight_axes: tuple[int, ...] | None) -> dict:
    strategy = str(layer.get_attr("strategy", "latency")).lower()
    if strategy not in SUPPORTED_STRATEGIES:
        raise ValueError(
            f"layer {layer.name!r} ({layer.class_name}): strategy {strategy!r} is not supported "
            f"(supported: {', '.join(SUPPORTED_STRATEGIES)})"
        )
    w_var, b_var = layer.weights["weight"], layer.weights["bias"]
    w_type = layer_type(layer, "weight_t")
    b_type = layer_type(layer, "bias_t")
    w = written_raw(w_var, w_type)
    product = product_kind(layer)
    if product == "weight_binary":  # ap_uint<1> weights: 0 means -1 (the kernel returns -a), 1 means +1
        w, w_type = np.where(w == 0, -1, 1), "ap_int<2>"
    if layer.get_attr("_weights_transposed", False) and weight_axes is not None:
        w = np.transpose(w, weight_axes)  # back from the Resource kernel's layout
    ctx.add_array(layer, "weight", w, spec)
    ctx.add_array(layer, "bias", written_raw(b_var, b_type).reshape(-1), spec)
    spec.update(
        weight_type=w_type,
        bias_type=b_type,
        accum_type=layer_type(layer, "accum_t"),
        strategy=strategy,
        product=product,
        reuse_factor=int(layer.get_attr("reuse_factor", 1)),
    )
    return spec


@exporter("Dense", keras=("Dense", "QDense"))
def export_dense(layer, ctx) -> dict:
    spec = {"kind": "dense", "n_in": int(layer.get_attr("n_in")), "n_out": int(layer.get_attr("n_out"))}
    return _mac_fields(layer, ctx, spec, (1, 0))


@exporter("Conv1D", "PointwiseConv1D", keras=("Conv1D", "QConv1D"))
def export_conv1d(layer, ctx) -> dict:
    spec = {"kind": "conv1d"}
    for key in ("in_width", "n_chan", "filt_width", "n_filt", "stride_width", "pad_left", "pad_right", "out_width"):
        spec[key] = int(layer.get_attr(key))
    return _mac_fields(layer, ctx, spec, (1, 2, 0))
