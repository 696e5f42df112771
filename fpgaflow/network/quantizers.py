"""QKeras quantizers hls4ml 1.3 maps to a type that is not the quantizer's function.

hls4ml gives a QActivation the result type ``utils/config.py``'s
``_get_precision_from_quantizer`` derives, and a QDense/QConv's weights the type
``QKerasQuantizer._get_type`` derives, from ``bits`` and ``integer`` alone; QKeras's
values (``qkeras/quantizers.py``) also depend on ``keep_negative``, ``symmetric``,
``alpha``, ``qnoise_factor``, ``negative_slope``, ``use_sigmoid``.  Where an activation's
function is one fixed-point cast, synth gives the layer that type; where it is not
(or a weight type cannot hold the quantizer's values), synth refuses by layer.  A
weight quantized_bits whose values hls4ml's type does not hold (``keep_negative=False``,
or signed with integer == bits) gets the type that holds them (``exact_weight_types``).
Checked against QKeras on grids of inputs in ``tests/test_network_frontend.py``."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from fpgaflow.network import hls4ml_version
from fpgaflow.network.patching import replaced
from fpgaflow.project import ProjectError
from sim.fixed import FixedType


def _spelt(class_name: str, config: dict[str, Any]) -> str:
    """The quantizer as QKeras prints it (``quantized_bits(6,2,0,keep_negative=False,alpha=1)``)."""
    from qkeras.quantizers import get_quantizer

    try:
        return str(get_quantizer({"class_name": class_name, "config": dict(config)}))
    except Exception:  # an odd config: name it by class
        return class_name


def _built(quantizer: Any) -> str:
    """The type hls4ml builds for an activation quantizer (``{'class_name', 'config'}``)."""
    from hls4ml.utils.config import _get_precision_from_quantizer

    return str(FixedType.parse(str(_get_precision_from_quantizer(quantizer))))


def _alpha_is_one(alpha: Any) -> bool:
    return alpha is None or (not isinstance(alpha, str) and float(alpha) == 1.0)


def _unsigned(config: dict[str, Any]) -> bool:
    return config.get("keep_negative", True) in (False, 0)


def _qnoise(config: dict[str, Any]) -> str | None:
    qnoise = config.get("qnoise_factor", 1.0)
    if qnoise is not None and float(qnoise) != 1.0:
        return (
            f"qnoise_factor={float(qnoise):g} mixes the unquantized value into QKeras's output (a training "
            "setting), which hls4ml ignores; set it to 1 for the model you export"
        )
    return None


def activation_type(quantizer: dict[str, Any]) -> tuple[str | None, str | None]:
    """For a QActivation's (or a layer's ``activation=``) quantizer as hls4ml parses it:
    the fixed-point type whose cast is QKeras's function (None: not one of the
    quantizers checked here), or why no type is (None when one is)."""
    cls, config = quantizer.get("class_name"), quantizer.get("config") or {}
    if cls == "quantized_sigmoid" and config.get("symmetric"):
        step = 2.0 ** -int(config["bits"])
        if config.get("use_real_sigmoid"):
            where = f"sigmoid is below {step / 2:g} (inputs below about {float(np.log(step / 2 / (1 - step / 2))):.3g})"
        else:  # QKeras's hard sigmoid, clip(x/2 + 1/2, 0, 1); half a step rounds to 0 (ties to even)
            where = f"the hard sigmoid (x + 1)/2 is at most {step / 2:g} (inputs up to {step - 1:g})"
        return None, (
            f"symmetric=True makes {step:g} (one step) QKeras's smallest value, which no fixed-point type's cast "
            f"gives: the firmware's type goes down to 0, which it gives where {where}; symmetric=False gives 0 there"
        )
    if cls in ("binary_tanh", "ternary_tanh") and "alpha" in config:  # QKeras's binary() / ternary()
        return None, _binary_refusal(cls.split("_")[0], config)
    if cls == "quantized_tanh" and int(config["bits"]) == 1:
        # round(tanh(x)) clipped to [-1 + symmetric, 0]; hls4ml types it ap_int<1> (truncating, wrapping)
        if config.get("symmetric"):
            return None, "1 bit with symmetric=True clips QKeras's output to [0, 0]: it is 0 for every input"
        return str(FixedType(1, 1, True, "AP_RND_CONV", "AP_SAT")), None
    if cls not in ("linear", "quantized_relu"):  # hls4ml renames quantized_bits 'linear'
        return None, None
    bits, integer = int(config["bits"]), int(config.get("integer", 0))
    why = _qnoise(config)
    if why:
        return None, why
    if cls == "quantized_relu":
        slope = float(config.get("negative_slope") or 0.0)
        if slope:
            return None, (
                f"negative_slope={slope:g}: QKeras clips the negative side at -{slope:g}*2**integer = "
                f"{-slope * 2.0**integer:g}, hls4ml's leaky relu at the type's minimum "
                f"{FixedType(bits, integer + 1).min_value:g} (they differ for inputs below {-(2.0**integer):g})"
            )
        if config.get("use_sigmoid"):
            return None, (
                "use_sigmoid=1 quantizes 2**integer*(2*sigmoid(x/2**integer)-1), which hls4ml ignores (it builds "
                "a plain relu)"
            )
        return str(FixedType(bits, integer, False, "AP_RND_CONV", "AP_SAT")), None
    alpha = config.get("alpha")
    if not _alpha_is_one(alpha):
        if isinstance(alpha, str):
            return None, (
                f"alpha={alpha!r} scales by the largest |value| of each batch QKeras sees, which no firmware "
                "type reproduces; use alpha=1"
            )
        return None, (
            f"alpha={float(alpha):g} multiplies QKeras's output by {float(alpha):g}, which hls4ml drops; use "
            "alpha=1 (the next layer's weights can absorb the scale)"
        )
    if _unsigned(config):
        # bits unsigned bits: 0 .. 2**integer - step, step 2**(integer - bits)
        return str(FixedType(bits, integer, False, "AP_RND_CONV", "AP_SAT")), None
    if bits == 1:
        return None, (
            "a 1-bit signed quantized_bits is QKeras's sign function (-1 or +1), which no 1-bit type holds; "
            "binary(alpha=1) computes the same and hls4ml builds it as binary_tanh"
        )
    overflow = "AP_SAT_SYM" if config.get("symmetric") else "AP_SAT"
    return str(FixedType(bits, integer + 1, True, "AP_RND_CONV", overflow)), None


def weight_precision(quantizer: dict[str, Any]) -> Any | None:
    """The hls4ml precision holding a weight ``quantized_bits``'s values where hls4ml
    1.3's own does not; None where it does (or for any other quantizer).

    * ``keep_negative=False``: 0 .. 2**integer - step in steps of ``2**(integer - bits)``,
      ``ap_ufixed<bits, integer>`` (``ap_uint<bits>`` when integer == bits);
    * signed with ``integer == bits > 1``: -2**bits .. 2**bits - 2 in steps of 2 (QKeras's
      ``2**integer * k / 2**(bits - 1)``, ``k`` in ``-2**(bits-1) .. 2**(bits-1) - 1``;
      ``symmetric`` drops the lowest), ``ap_fixed<bits, bits + 1>``: hls4ml's
      ``ap_int<bits>`` holds half of them, and for bits == 2 selects its ternary product.
      Every other signed ``integer`` gets hls4ml's ``fixed<bits, integer + 1>``, whose range
      and step are QKeras's (a 1-bit signed one is refused: ``weight_refusal``)."""
    from hls4ml.model.types import FixedPrecisionType, IntegerPrecisionType

    config = quantizer.get("config") or {}
    if quantizer.get("class_name") != "quantized_bits":
        return None
    bits, integer = int(config["bits"]), int(config.get("integer", 0))
    if _unsigned(config):
        if bits == integer:
            return IntegerPrecisionType(width=bits, signed=False)
        return FixedPrecisionType(width=bits, integer=integer, signed=False)
    if bits == integer and bits > 1:
        return FixedPrecisionType(width=bits, integer=bits + 1, signed=True)
    return None


@contextmanager
def exact_weight_types() -> Iterator[None]:
    """While hls4ml parses or converts a model, a weight ``quantized_bits`` whose values
    hls4ml's type would not hold (``weight_precision``: ``keep_negative=False``, or
    signed with integer == bits) gets the type that holds them.

    hls4ml 1.3's ``QKerasQuantizer._get_type`` gives every quantized_bits the signed
    ``fixed<bits, integer + 1>``, except ``ap_int<bits>`` when integer == bits (its binary
    type when both are 1): half the values of ``keep_negative=False`` lose their last bit;
    with integer == bits, QKeras's steps of 2 (``-2**bits .. 2**bits - 2``) wrap in
    ``ap_int<bits>``, and ``ap_int<2>`` also makes hls4ml multiply as by ternary weights
    (``weight_ternary``: 0, -1, anything else +1).  The weights hls4ml writes are QKeras's
    values (it quantizes them with QKeras itself), printed with the type's number of
    fraction digits, which the type given here holds exactly; the accumulator and result
    types hls4ml infers, and the product it picks, are derived from the weight type, hence
    the type must be right when the quantizer is made (``add_weights_variable``, the
    precision inference and ``product_type`` read ``quantizer.hls_type``), not patched onto
    the built graph."""
    from hls4ml.model.quantizers import QKerasQuantizer

    with replaced(QKerasQuantizer, "_get_type", _exact_get_type()):
        yield


@functools.cache
def _exact_get_type() -> Callable[..., Any]:
    """``QKerasQuantizer._get_type`` with ``weight_precision`` first: one function for the
    process, so that a nested ``exact_weight_types`` is re-entry (``replaced``), not a
    wrapper around the wrapper; ``inspect.unwrap`` finds hls4ml's own."""
    from hls4ml.model.quantizers import QKerasQuantizer

    built = QKerasQuantizer._get_type

    @functools.wraps(built)
    def _get_type(self: Any, quantizer_config: dict[str, Any]) -> Any:
        right = weight_precision(quantizer_config)
        return built(self, quantizer_config) if right is None else right

    return _get_type


def _hls4ml_weight_type(quantizer: Any) -> str:
    """The type hls4ml 1.3 itself gives a weight quantizer (``exact_weight_types`` aside)."""
    from hls4ml.model.types import XnorPrecisionType

    precision = inspect.unwrap(type(quantizer)._get_type)(quantizer, quantizer.qkeras_config)
    if isinstance(precision, XnorPrecisionType):
        return "its binary type (ap_uint<1>, 0 standing for -1)"
    text = ap(precision)
    t = FixedType.parse(text)
    return f"the signed {text} ({t.min_value:g}..{t.max_value:g} in steps of {t.lsb:g})"


def _binary_refusal(kind: str, config: dict[str, Any]) -> str | None:
    """Why a binary() / ternary() activation is not hls4ml's binary_tanh / ternary_tanh
    (-1 or +1; -1, 0 or +1), or None."""
    if config.get("use_01"):
        return (
            "use_01=True gives 0 or 1 (1 where x >= 0), which no hls4ml activation builds: its binary_tanh gives -1 "
            "or +1; binary(alpha=1) computes that (the next layer's weights and bias can absorb (y + 1) / 2)"
        )
    alpha = config.get("alpha")
    if _alpha_is_one(alpha):
        return None
    if isinstance(alpha, str):
        return (
            f"alpha={alpha!r} scales QKeras's output by a factor computed from each batch it sees, which no "
            f"firmware reproduces (hls4ml's {kind}_tanh gives {'-1 or +1' if kind == 'binary' else '-1, 0 or +1'}); "
            "use alpha=1"
        )
    return (
        f"alpha={float(alpha):g} multiplies QKeras's output by {float(alpha):g}, which hls4ml drops; use alpha=1 "
        "(the next layer's weights can absorb the scale)"
    )


# QKeras functions hls4ml 1.3 builds as its binary_tanh (its converter matches 'binary' in
# the function's name), which tests x >= 0: +1 or -1
_BINARY_FUNCTIONS = {
    "binary_tanh": (
        "QKeras's binary_tanh is 2 * round(hard_sigmoid(x)) - 1, which is -1 at x = 0 (round(0.5) is 0, ties to even), "
        "where hls4ml's binary_tanh gives +1 (it tests x >= 0): the firmware differs from QKeras on every input that "
        "is exactly 0; binary(alpha=1) is +1 at 0, as the firmware"
    ),
    "binary_sigmoid": (
        "QKeras's binary_sigmoid is round(hard_sigmoid(x)), 0 or 1 (1 where x > 0), but hls4ml builds it as its "
        "binary_tanh, -1 or +1"
    ),
}
# the activation quantizers hls4ml 1.3's converter builds (converters/keras/qkeras.py)
_CONVERTED = "quantized_bits, quantized_relu, quantized_tanh, quantized_sigmoid, binary and ternary"


def activation_refusal(layer: Any) -> str | None:
    """Why hls4ml cannot build a Keras layer's QKeras activation (a QActivation's, or a
    QDense/QConv's ``activation=``) as QKeras computes it, before hls4ml parses the model:
    QKeras functions it builds as another function, and activations its converter does
    not know (it raises, naming neither the layer nor what it knows)."""
    from hls4ml.converters.keras.qkeras import get_activation_quantizer

    activation = layer.get_config().get("activation")
    if type(layer).__name__ != "QActivation" and not isinstance(activation, dict):
        return None  # a Keras activation: not a QKeras one
    function = layer.quantizer if type(layer).__name__ == "QActivation" else layer.activation
    name = getattr(function, "__name__", None) if not hasattr(function, "get_config") else None
    if name in _BINARY_FUNCTIONS:
        return f"activation {name} is not supported: {_BINARY_FUNCTIONS[name]}"
    try:
        get_activation_quantizer(
            {"class_name": "QActivation", "config": {"name": layer.name, "activation": activation}}, None
        )
    except Exception as exc:
        return (
            f"activation {name or _spelt_quantizer(activation)} is not supported: hls4ml {hls4ml_version()} does "
            f"not convert it ({exc}); it converts {_CONVERTED}"
        )
    return None


def weight_refusal(quantizer: Any, role: str) -> str | None:
    """Why a weight quantizer (hls4ml's ``QKerasQuantizer``) cannot be built as QKeras
    computes it, or None.  hls4ml quantizes the weights with QKeras itself, then holds
    them in ``fixed<bits, integer + 1>`` (``exact_weight_types``: ``ufixed<bits,
    integer>`` for keep_negative=False, ``fixed<bits, bits + 1>`` for integer == bits)."""
    if type(quantizer).__name__ != "QKerasQuantizer":
        return None  # binary, ternary, power-of-two: their own types
    config = quantizer.qkeras_config.get("config") or {}
    if quantizer.qkeras_config.get("class_name") != "quantized_bits":
        return None
    bits = int(config["bits"])
    built = ap(quantizer.hls_type)
    why = _qnoise(config)
    if why:
        return why
    unsigned = _unsigned(config)
    alpha = config.get("alpha")
    if unsigned and isinstance(alpha, str):
        return (
            f"with alpha={alpha!r} QKeras ignores keep_negative=False (its scaled values are those of "
            f"keep_negative=True, negative ones included), but hls4ml {hls4ml_version()} divides the scale out and "
            "quantizes the weights again with keep_negative=False, which sets the negative ones to 0; "
            "keep_negative=True computes the same in QKeras, and hls4ml builds it"
        )
    if bits == 1 and not unsigned:
        return (
            f"a 1-bit signed quantized_bits gives -1 or +1 (QKeras's sign), which hls4ml {hls4ml_version()}'s "
            f"{built} cannot hold; binary(alpha=1) computes the same, and hls4ml holds it exactly"
        )
    if role == "bias" and not _alpha_is_one(alpha):
        return (
            f"alpha={alpha!r} on a bias scales its values, which hls4ml {hls4ml_version()} then "
            f"holds in {built} (the unscaled quantizer's type); use alpha=1 for the bias"
        )
    return None


def weight_type_note(quantizer: Any) -> str | None:
    """What ``exact_weight_types`` changes for this weight quantizer, or None."""
    if type(quantizer).__name__ != "QKerasQuantizer":
        return None
    right = weight_precision(quantizer.qkeras_config)
    if right is None:
        return None
    config = quantizer.qkeras_config.get("config") or {}
    bits, integer, alpha = int(config["bits"]), int(config.get("integer", 0)), config.get("alpha")
    scaled = "" if _alpha_is_one(alpha) else f" (before the alpha={alpha!r} scale, which hls4ml multiplies back in)"
    if _unsigned(config):
        step = 2.0 ** (integer - bits)
        values = f"keep_negative=False gives values 0..{2.0**integer - step:g} in steps of {step:g}"
    else:
        symmetric = bool(config.get("symmetric")) or isinstance(alpha, str)  # QKeras: 'auto*' is symmetric
        low = -(2.0**bits) + 2 * symmetric
        values = f"integer == bits gives values {low:g}..{2.0**bits - 2:g} in steps of 2"
    hls4ml_type = _hls4ml_weight_type(quantizer)
    if bits == 2 and not _unsigned(config):
        hls4ml_type += (
            " and multiply as by ternary weights (its weight_ternary product: 0 gives 0, -1 the negated input, any "
            "other value the input)"
        )
    return (
        f"{values}{scaled}, which hls4ml {hls4ml_version()} would hold in {hls4ml_type}; fpgaflow holds them in "
        f"{ap(right)}, which holds each exactly"
    )


def ap(precision: Any) -> str:
    from fpgaflow.network.types import UnsupportedType, ap_type

    try:
        return ap_type(precision, "quantizer")
    except UnsupportedType:
        return str(precision)


def quantizer_types(layer_list: list[dict[str, Any]], where: str) -> tuple[dict[str, str], list[str]]:
    """The result types to give layers whose activation quantizer hls4ml maps to another
    type, and the notes saying so; a ProjectError for a quantizer no type builds."""
    fixes: dict[str, str] = {}
    notes: list[str] = []
    for layer in layer_list:
        name = layer["name"]
        for key, quantizer in layer.items():
            if "quantizer" not in key or quantizer is None:
                continue
            if key == "activation_quantizer" and isinstance(quantizer, dict):
                right, why = activation_type(quantizer)
                if why is None and right is None:
                    continue
                spelt = _spelt(_qkeras_class(quantizer), quantizer.get("config") or {})
                built = _built(quantizer)
                what = f"layer {name!r} ({spelt})"
                if why:
                    raise ProjectError(
                        f"{where}: {what} is not supported: {why}; hls4ml {hls4ml_version()} would build "
                        f"{_activation_kind(layer)} with result type {built}, which is not the model's function"
                    )
                if FixedType.parse(right) != FixedType.parse(built):
                    fixes[name] = right
                    notes.append(
                        f"{what}: hls4ml {hls4ml_version()} would give it the type {built} ({describe(built)}), "
                        f"which is not the quantizer's function; fpgaflow gives it {right} ({describe(right)}), "
                        "which is"
                    )
            elif hasattr(quantizer, "qkeras_config") and layer["class_name"] != "QBatchNormalization":
                # (a QBatchNormalization's quantizer types hold nothing: quantized_batchnorm_parameters)
                role = {"weight": "kernel"}.get(key.split("_quantizer")[0], key.split("_quantizer")[0])
                why = weight_refusal(quantizer, role)
                spelt = _spelt(quantizer.qkeras_config["class_name"], quantizer.qkeras_config.get("config") or {})
                what = f"layer {name!r} ({layer['class_name']}, {role} quantizer {spelt})"
                if why:
                    raise ProjectError(f"{where}: {what} is not supported: {why}")
                note = weight_type_note(quantizer)
                if note:
                    notes.append(f"{what}: {note}")
    return fixes, notes


def _qkeras_class(quantizer: dict[str, Any]) -> str:
    """The QKeras class of an activation quantizer hls4ml renamed (quantized_bits 'linear',
    binary() 'binary_tanh', ternary() 'ternary_tanh')."""
    cls, config = quantizer["class_name"], quantizer.get("config") or {}
    if cls in ("binary_tanh", "ternary_tanh") and "alpha" in config:
        return cls.split("_")[0]
    return {"linear": "quantized_bits"}.get(cls, cls)


def _activation_kind(layer: dict[str, Any]) -> str:
    cls = layer.get("class_name")
    return f"a {layer.get('activation')} {cls}" if cls in ("Activation", "LeakyReLU") else f"a {cls}"


def describe(text: str) -> str:
    """``-4..3.875 in steps of 0.125, rounding to nearest even, saturating``."""
    t = FixedType.parse(text)
    rounding = {"AP_RND_CONV": "rounding to the nearest (ties to even)", "AP_TRN": "truncating"}.get(
        t.quantization, t.quantization
    )
    if t.integer:
        rounding = "truncating towards zero"
    overflow = {"AP_SAT": "saturating", "AP_SAT_SYM": "saturating symmetrically", "AP_WRAP": "wrapping"}.get(
        t.overflow, t.overflow
    )
    low = -t.max_value if t.overflow == "AP_SAT_SYM" and t.signed else t.min_value  # the cast never gives the minimum
    return f"{low:g}..{t.max_value:g} in steps of {t.lsb:g}, {rounding}, {overflow}"


_BATCHNORM_PARAMETERS = (("gamma", "gamma"), ("beta", "beta"), ("mean", "moving_mean"), ("variance", "moving_variance"))


@contextmanager
def quantized_batchnorm_parameters(model: Any) -> Iterator[list[str]]:
    """While hls4ml converts ``model``, each QBatchNormalization holds the parameters
    QKeras computes with: its quantizers' outputs.

    hls4ml 1.3 reads a QBatchNormalization's stored gamma, beta, moving mean and variance
    and folds them into the scale and bias without applying the layer's quantizers (it
    only names their types, which no BatchNormalization type uses); QKeras's output is
    ``(x - q(mean)) / sqrt(q(variance) + epsilon) * q(gamma) + q(beta)``.  The values are
    restored afterwards; yields the notes naming the layers whose values changed."""
    changed: list[tuple[Any, Any, np.ndarray]] = []
    notes: list[str] = []
    try:
        for layer in model.layers:
            if type(layer).__name__ != "QBatchNormalization":
                continue
            moved = []
            for short, attr in _BATCHNORM_PARAMETERS:
                variable = getattr(layer, attr, None)
                spec = getattr(layer, f"{short}_quantizer", None)
                quantizer = getattr(layer, f"{short}_quantizer_internal", None)
                if variable is None or not spec or quantizer is None:
                    continue
                stored = np.asarray(variable.numpy())
                quantized = np.asarray(quantizer(variable.numpy()), dtype=stored.dtype)
                if np.array_equal(stored, quantized):
                    continue
                changed.append((variable, stored))
                variable.assign(quantized)
                worst = int(np.argmax(np.abs(quantized - stored)))
                moved.append(
                    f"{attr} by {_spelt_quantizer(spec)} ({int(np.count_nonzero(quantized != stored))} of "
                    f"{stored.size} values; largest change {stored.flat[worst]:.6g} -> {quantized.flat[worst]:.6g})"
                )
            if moved:
                notes.append(
                    f"layer {layer.name!r} (QBatchNormalization): hls4ml {hls4ml_version()} folds its stored "
                    "parameters into the scale and bias without the layer's quantizers, which QKeras applies: "
                    f"{'; '.join(moved)}; fpgaflow gives hls4ml the quantized values, as QKeras computes (the "
                    "firmware rounds the folded scale and bias into their types, as for any BatchNormalization)"
                )
        yield notes
    finally:
        for variable, stored in reversed(changed):
            variable.assign(stored)


def _spelt_quantizer(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict):
        return _spelt(spec.get("class_name", "?"), spec.get("config") or {})
    return str(spec)


# QKeras quantizers hls4ml 1.3 builds from its tanh/sigmoid lookup tables: the flag, the
# table's function and the input range the table covers (nnet_activation.h)
_TABLES = {"quantized_tanh": ("use_real_tanh", "tanh", 4.0), "quantized_sigmoid": ("use_real_sigmoid", "sigmoid", 8.0)}


def table_notes(hls_model: Any, layer_list: list[dict[str, Any]]) -> list[str]:
    """``quantized_tanh(use_real_tanh=True)`` / ``quantized_sigmoid(use_real_sigmoid=True)``
    are QKeras's ``round(f(x) * 2**k) / 2**k`` (clipped to the result type, which hls4ml
    types right); hls4ml builds them as its tanh/sigmoid activation, i.e. ``f`` looked up
    in a table: entry ``i`` is ``f`` at its input interval's end nearer 0 (the interval
    around 0 is twice as wide), cast into table_t, then into the result type.  Per interval,
    QKeras's value ranges between its values at the two ends (``f`` is monotone), so
    where those differ from the entry's the firmware differs from QKeras: the note says
    in how many intervals, by how many steps, and which settings narrow them."""
    from qkeras.quantizers import get_quantizer

    from fpgaflow.network.types import result_type
    from sim.network.layers.activations import table_values

    graph = {layer.name: layer for layer in hls_model.get_layers()}
    notes = []
    for layer in layer_list:
        quantizer = layer.get("activation_quantizer")
        if not isinstance(quantizer, dict) or quantizer.get("class_name") not in _TABLES:
            continue
        config = quantizer.get("config") or {}
        flag, kind, half = _TABLES[quantizer["class_name"]]
        node = graph.get(layer["name"])
        if not config.get(flag) or node is None or node.get_attr("activation") != kind:
            continue
        n = int(node.get_attr("table_size"))
        table_t = FixedType.parse(ap(node.get_attr("table_t").precision))
        out_t = FixedType.parse(result_type(node))
        entries = table_values(kind, n).astype(np.float64)
        firmware = out_t.from_raw(out_t.to_raw(table_t.from_raw(table_t.to_raw(entries)).astype(np.float64)))
        # index i = trunc(x * n / (2 * half)) + n / 2, clamped: the inputs of the input type each entry serves
        in_t = FixedType.parse(ap(node.get_input_variable().type.precision))
        width, lsb = 2 * half / n, in_t.lsb
        k = np.arange(n) - n // 2
        low = np.ceil(np.where(k > 0, k * width, (k - 1) * width) / lsb)  # in steps of the input type
        low += (k <= 0) & (low * lsb == np.where(k > 0, k * width, (k - 1) * width))  # open below
        high = np.floor(np.where(k < 0, k * width, (k + 1) * width) / lsb)
        high -= (k >= 0) & (high * lsb == np.where(k < 0, k * width, (k + 1) * width))  # open above
        low[0], high[-1] = in_t.min_raw, in_t.max_raw
        low, high = np.maximum(low, in_t.min_raw) * lsb, np.minimum(high, in_t.max_raw) * lsb
        served = low <= high
        ends = np.stack([low, high])[:, served].astype(np.float32)
        qkeras = np.asarray(get_quantizer({"class_name": quantizer["class_name"], "config": dict(config)})(ends))
        steps = np.round(np.abs(qkeras - firmware[None, served]).max(axis=0) / out_t.lsb).astype(int)
        if not steps.any():
            continue
        spelt = _spelt(quantizer["class_name"], config)
        most, where = int(steps.max()), int((steps > 0).sum())
        notes.append(
            f"layer {layer['name']!r} ({spelt}): hls4ml {hls4ml_version()} builds it from its {kind} lookup table "
            f"({n} entries over [{-half:g}, {half:g}), TableSize; each entry {kind} at the end nearer 0 of its "
            f"input interval of width {width:g}, held in table_t {table_t}), then cast into {out_t}: in {where} of the "
            f"{n} intervals QKeras's rounded {kind} takes a value the entry does not on the input type {in_t}'s "
            f"values, and there the firmware differs from QKeras by up to {most} step{'s' if most > 1 else ''} "
            f"({most * out_t.lsb:g}); a larger TableSize (and a table_t as fine as the result type) narrows them"
        )
    return notes


def alpha_notes(hls_model: Any, layer_list: list[dict[str, Any]], user_names: dict[str, Any]) -> list[str]:
    """A kernel quantizer with a numeric or ``'auto'`` alpha: hls4ml 1.3 divides the scale
    out of the weights and multiplies it back in an ApplyAlpha layer (``<name>_alpha``)
    whose scale type is the Model's default precision (it sets that layer's Precision to
    auto itself), or the one its LayerName entry (``user_names``) gives.  A scale that
    type cannot hold is rounded: the layer's output before the bias is QKeras's times
    ``held / scale``.  The note names the layer, the scales, the type and the largest
    relative change."""
    from fpgaflow.network.types import UnsupportedType, ap_type

    graph = {layer.name: layer for layer in hls_model.get_layers()}
    notes = []
    for layer in layer_list:
        quantizer = layer.get("weight_quantizer")
        node = graph.get(f"{layer['name']}_alpha")
        if node is None or node.class_name != "ApplyAlpha" or not hasattr(quantizer, "qkeras_config"):
            continue
        try:
            t = FixedType.parse(ap_type(node.weights["scale"].type.precision, "scale"))
        except UnsupportedType:  # alpha='auto_po2': power-of-two scales, held exactly
            continue
        scale = np.asarray(node.weights["scale"].data, dtype=np.float64).ravel()
        held = t.from_raw(t.to_raw(scale)).astype(np.float64)
        if np.array_equal(held, scale):
            continue
        changed = np.flatnonzero(held != scale)
        relative = float(np.max(np.abs(held - scale)[changed] / np.abs(scale[changed])))
        shown = ", ".join(f"{scale[i]:.6g} -> {held[i]:.6g}" for i in changed[:4])
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        config = quantizer.qkeras_config
        precision = (user_names.get(node.name) or {}).get("Precision")
        given = precision.get("scale", precision.get("default")) if isinstance(precision, dict) else precision
        source = (
            f"HLSConfig.LayerName.{node.name} gives it"
            if given not in (None, "auto")
            else f"the Model's default precision: hls4ml sets that layer's types itself, unless "
            f"HLSConfig.LayerName.{node.name}.Precision.scale gives one"
        )
        notes.append(
            f"layer {layer['name']!r} ({layer['class_name']}, kernel quantizer "
            f"{_spelt(config['class_name'], config.get('config') or {})}): hls4ml {hls4ml_version()} divides the "
            f"kernel's scale out of the weights and multiplies it back in its layer {node.name!r}, which holds it in "
            f"{t} ({source}), so {len(changed)} of {scale.size} scales are rounded ({shown}{more}) and the layer's "
            f"output before the bias differs from QKeras's by up to {relative:.2g} of its value; a wider scale type "
            "holds the scale closer, alpha='auto_po2' (power-of-two scales) exactly"
        )
    return notes


@contextmanager
def exact_alpha_results() -> Iterator[None]:
    """While hls4ml converts, an ApplyAlpha with power-of-two scales (a kernel quantizer's
    ``alpha='auto_po2'``, QKeras's default for a QDense/QConv kernel) holds QKeras's
    scales and gets an automatic result type that holds ``x * 2**e + bias`` exactly.

    hls4ml 1.3 quantizes the scales with ``quantized_po2(bits)``, ``bits`` one more than
    the largest ``|log2(scale)|``, which holds exponents -2**(bits-2) .. 2**(bits-2) - 1
    only: scales 2 and 4 became 1 and 2.  It sets the layer's Precision to auto and
    infers its result type from the input, scale and bias types, but not from a
    power-of-two scale type: there it takes the Model's default precision, which
    truncates the layer's output (QKeras's dense or convolution output) below its step
    and wraps it beyond its range.  A result type not left automatic (a LayerName entry
    hls4ml reads) is not inferred, so it stays."""
    from hls4ml.model.layers import ApplyAlpha
    from hls4ml.model.optimizer.passes.infer_precision import InferPrecisionTypes

    initialize, infer_bn_precision = _exact_alpha_functions()
    with (
        replaced(InferPrecisionTypes, "_infer_bn_precision", infer_bn_precision),
        replaced(ApplyAlpha, "initialize", initialize),
    ):
        yield


@functools.cache
def _exact_alpha_functions() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``ApplyAlpha.initialize`` and ``InferPrecisionTypes._infer_bn_precision`` as
    ``exact_alpha_results`` has them: one pair for the process, so that a nested
    ``exact_alpha_results`` is re-entry (``replaced``), not a wrapper around the wrapper."""
    from hls4ml.model.layers import ApplyAlpha
    from hls4ml.model.optimizer.passes.infer_precision import InferPrecisionTypes

    built = InferPrecisionTypes._infer_bn_precision
    built_initialize = ApplyAlpha.__dict__["initialize"]

    def initialize(node: Any) -> None:
        node.set_attr("scale_quantizer", _po2_scale_quantizer(node))
        built_initialize(node)

    @functools.wraps(built)
    def _infer_bn_precision(self: Any, node: Any, types_to_infer: list[str]) -> list[str]:
        inferred = built(self, node, types_to_infer)
        if node.class_name == "ApplyAlpha" and "result_t" in types_to_infer:
            exact = _exact_po2_alpha_result(node)
            if exact is not None:
                node.types["result_t"].precision = exact
        return inferred

    return initialize, _infer_bn_precision


def _po2_scale_quantizer(node: Any) -> Any:
    """hls4ml's power-of-two scale quantizer, with as many bits as its scales need."""
    from hls4ml.model.quantizers import QKerasPO2Quantizer

    quantizer, scale = node.get_attr("scale_quantizer"), node.get_attr("scale_data")
    if not isinstance(quantizer, QKerasPO2Quantizer) or scale is None:
        return quantizer
    wanted = np.asarray(scale, dtype=np.float32)
    bits = quantizer.bits
    while bits < 32 and not np.array_equal(quantizer(wanted), wanted):
        bits += 1
        quantizer = QKerasPO2Quantizer({"class_name": "quantized_po2", "config": {"bits": bits}})
    return quantizer


def _exact_po2_alpha_result(node: Any) -> Any:
    """The fixed-point type of ``x * (+-2**e) + bias`` for the layer's input type, its
    exponents (as hls4ml writes them: ``int(log2|scale|)``) and bias type; None unless
    the scale type is hls4ml's power-of-two one and the others are fixed-point."""
    from hls4ml.model.types import ExponentPrecisionType, FixedPrecisionType, IntegerPrecisionType

    scale = node.weights["scale"]
    x, b = node.get_input_variable().type.precision, node.types["bias_t"].precision
    y = np.asarray(scale.data, dtype=np.float64)
    if (
        not isinstance(scale.type.precision, ExponentPrecisionType)
        or not all(isinstance(p, (FixedPrecisionType, IntegerPrecisionType)) for p in (x, b))
        or not y.size
        or np.any(y == 0)
        or not np.all(np.isfinite(y))
    ):
        return None
    exps = (np.log2(np.abs(y)) / np.log2(2.0)).astype("int")
    negative = bool(np.any(y < 0))
    x_int = x.width if isinstance(x, IntegerPrecisionType) else x.integer
    b_int = b.width if isinstance(b, IntegerPrecisionType) else b.integer
    signed = bool(x.signed) or negative
    integer = x_int + int(exps.max()) + (negative and not x.signed)
    frac = x.width - x_int - int(exps.min())
    out_signed = signed or bool(b.signed)  # the sum, as hls4ml infers a BatchNormalization's
    out_integer = max(integer + (b.signed and not signed), b_int + (signed and not b.signed)) + 1
    out_frac = max(frac, b.width - b_int)
    return FixedPrecisionType(out_integer + out_frac, out_integer, out_signed)
