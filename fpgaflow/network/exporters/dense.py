"""Dense / QDense and Conv1D / QConv1D: weights, bias and the MAC types."""

from __future__ import annotations

import numpy as np

from fpgaflow.network.exporters import exporter, written_raw
from fpgaflow.network.types import ap_type, layer_type

SUPPORTED_STRATEGIES = ("latency", "resource", "resource_unrolled")
PRODUCTS = ("mult", "weight_binary", "weight_ternary", "data_binary", "weight_exponential")


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


def exponent_weights(
    layer, var, x_type_text: str, allow_shift: bool = False
) -> tuple[np.ndarray, str, np.ndarray | None]:
    """Power-of-two weights (QKeras po2 / ``alpha='auto_po2'``) as ordinary fixed-point
    weights, plus, where the firmware drops bits, the right shift of the input each
    product makes.

    The firmware's ``product::weight_exponential`` casts ``x`` into
    ``r_T = ap_fixed<2(We+Wx), We+Wx>``, shifts it by the exponent (right for negative
    exponents: the bits below r_T's LSB are dropped, a floor; left within r_T's width)
    and negates for sign 0.  In r_T's LSBs the product is ``s * floor(x_raw * 2**c)``
    with ``c = e + frac(r_T) - frac(x)``, i.e. ``(s * 2**max(c, 0)) * (x_raw >> max(-c, 0))``.
    When no product drops a bit this is the exact ``x * (+-2**e)`` and the weights are
    returned as they are; otherwise (``allow_shift``) the weights ``s * 2**max(c, 0)``
    in units of ``2**-(frac(r_T) - frac(x))`` and the shifts ``max(-c, 0)`` (the
    emulator's MAC shifts its inputs per weight).  An r_T overflow, or an input with
    more fraction bits than r_T, is refused.  The exponents and signs are those
    hls4ml writes (``int(log2|y|)``, sign ``y >= 0``)."""
    from sim.fixed import FixedType

    y = np.asarray(var.data, dtype=np.float64)
    if np.any(y == 0) or not np.all(np.isfinite(y)):
        raise ValueError(f"layer {layer.name!r}: power-of-two weights contain 0 or non-finite values")
    exps = (np.log2(np.abs(y)) / np.log2(2.0)).astype("int")
    signs = np.where(y < 0, -1, 1)
    we = int(var.type.precision.width)
    x_type = FixedType.parse(x_type_text)
    wr, fr = 2 * (we + x_type.width), we + x_type.width
    c = (fr - x_type.frac_bits + exps).astype(np.int64)
    worst = max(abs(x_type.min_raw), abs(x_type.max_raw)) << max(0, int(c.max()))
    lossless = int(c.min()) >= 0  # the net shift from x's raw to r_T's never drops bits
    if (not lossless and not allow_shift) or worst >= (1 << (wr - 1)) or fr < x_type.frac_bits:
        raise ValueError(
            f"layer {layer.name!r}: power-of-two weights with exponents {int(exps.min())}..{int(exps.max())} "
            f"on input {x_type} would {'overflow' if lossless or allow_shift else 'lose bits or overflow'} "
            "in the firmware's shift product; not emulated"
        )
    if lossless:
        e_min = int(exps.min())
        frac = max(0, -e_min)
        raw = signs * (np.ones_like(exps, dtype=np.int64) << (exps + frac).astype(np.int64))
        width = int(np.abs(raw).max()).bit_length() + 1
        return raw.astype(np.int64), str(FixedType(width, width - frac)), None
    raw = signs * (np.ones_like(c) << np.maximum(c, 0))
    frac = fr - x_type.frac_bits
    width = int(np.abs(raw).max()).bit_length() + 1
    return raw.astype(np.int64), str(FixedType(width, width - frac)), np.maximum(-c, 0)


def _ternary_weights(layer, ctx, w: np.ndarray, w_type: str) -> np.ndarray:
    """hls4ml picks ``product::weight_ternary`` for any 2-bit signed integer weight type
    (``ap_int<2>``: a ternary quantizer's, or a Precision the user sets), whose kernel
    returns 0 for 0, ``-a`` for -1 and ``a`` for anything else: the type's -2 multiplies
    as +1.  The weights as the kernel uses them, and a warning where one is -2."""
    from fpgaflow.network import hls4ml_version

    minus_two = int(np.count_nonzero(w == -2))
    if minus_two:
        ctx.warnings.append(
            f"layer {layer.name!r} ({layer.class_name}): its weight type {w_type} makes hls4ml {hls4ml_version()} "
            "multiply by its weight_ternary product (0 gives 0, -1 the negated input, anything else the input): "
            f"{minus_two} of {w.size} weights are -2, which it multiplies as +1; the weight type ap_fixed<2,2> holds "
            "the same values and multiplies by them"
        )
    return np.where(w == -2, 1, w)


def _mac_fields(layer, ctx, spec: dict, weight_axes: tuple[int, ...] | None) -> dict:
    strategy = str(layer.get_attr("strategy", "latency")).lower()
    if strategy not in SUPPORTED_STRATEGIES:
        raise ValueError(
            f"layer {layer.name!r} ({layer.class_name}): strategy {strategy!r} is not supported "
            f"(supported: {', '.join(SUPPORTED_STRATEGIES)})"
        )
    w_var, b_var = layer.weights["weight"], layer.weights["bias"]
    b_type = layer_type(layer, "bias_t")
    product, shift = product_kind(layer), None
    if product == "weight_exponential":
        in_type = ap_type(layer.get_input_variable().type.precision, f"layer {layer.name!r} input")
        w, w_type, shift = exponent_weights(layer, w_var, in_type, allow_shift=True)
        product = "mult"
    else:
        w_type = layer_type(layer, "weight_t")
        w = written_raw(w_var, w_type)
    if product == "weight_binary":  # ap_uint<1> weights: 0 means -1 (the kernel returns -a), 1 means +1
        w, w_type = np.where(w == 0, -1, 1), "ap_int<2>"
    if product == "weight_ternary":
        w = _ternary_weights(layer, ctx, w, w_type)
    if layer.get_attr("_weights_transposed", False) and weight_axes is not None:
        w = np.transpose(w, weight_axes)  # back from the Resource kernel's layout
        shift = None if shift is None else np.transpose(shift, weight_axes)
    ctx.add_array(layer, "weight", w, spec)
    if shift is not None:  # lossy power-of-two products: the input's right shift per weight
        from sim.fixed import FixedType
        from sim.network.mac import is_wrapping

        accum = layer_type(layer, "accum_t")
        if not is_wrapping(FixedType.parse(accum)):
            raise ValueError(
                f"layer {layer.name!r}: power-of-two weights whose shift drops bits with a saturating "
                f"accumulator ({accum}) are not emulated; use AP_WRAP for accum"
            )
        ctx.add_array(layer, "weight_shift", shift, spec)
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
