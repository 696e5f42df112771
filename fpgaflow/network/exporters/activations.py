"""Activation layers (Keras activations, QActivation quantizers, advanced activations)."""

from __future__ import annotations

from fpgaflow.network import hls4ml_version
from fpgaflow.network.exporters import exporter, keras_check
from fpgaflow.network.types import layer_type

TABLE_ACTIVATIONS = ("sigmoid", "tanh", "softplus", "softsign", "elu", "selu")
NAMES = {
    "linear",
    "relu",
    "leaky_relu",
    "thresholded_relu",
    "hard_sigmoid",
    "hard_tanh",
    "binary_tanh",
    *TABLE_ACTIVATIONS,
}


ALIASES = {"leakyrelu": "leaky_relu", "thresholdedrelu": "thresholded_relu", "hardsigmoid": "hard_sigmoid"}


def _activation_name(layer) -> str:
    name = str(layer.get_attr("activation")).lower()
    name = ALIASES.get(name, name)
    if name not in NAMES:
        raise ValueError(
            f"layer {layer.name!r} ({layer.class_name}): activation {name!r} is not supported "
            f"(supported: {', '.join(sorted(NAMES))}, softmax)"
        )
    return name


@exporter(
    "Activation",
    "ParametrizedActivation",
    "HardActivation",
    "TernaryTanh",
    keras=("Activation", "QActivation", "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU"),
)
def export_activation(layer, ctx) -> dict:
    from sim.fixed import FixedType

    if not layer.get_attr("function_cpp"):
        raise ValueError(
            f"layer {layer.name!r} ({layer.class_name}, {layer.get_attr('activation')}): hls4ml {hls4ml_version()} "
            "generates no call for this layer, so the firmware would read an uninitialised array; not supported"
        )
    name = _activation_name(layer)
    spec: dict = {"kind": "activation", "activation": name, "stream": ctx.io_type == "io_stream"}
    if name in TABLE_ACTIVATIONS:
        spec["table_size"] = int(layer.get_attr("table_size"))
        spec["table_type"] = layer_type(layer, "table_t")
    if layer.class_name == "ParametrizedActivation" or (
        name in ("leaky_relu", "thresholded_relu", "elu") and layer.get_attr("param_t") is not None
    ):
        param_type = layer_type(layer, "param_t")
        value = float(str(layer.get_attr("activ_param", 1.0)))  # printed into the C++ call
        spec.update(param_type=param_type, param_raw=int(FixedType.parse(param_type).to_raw(value)))
    if layer.class_name == "HardActivation":
        for key in ("slope", "shift"):
            t = layer_type(layer, f"{key}_t")
            value = float(str(layer.get_attr(key)))
            spec.update({f"{key}_type": t, f"{key}_raw": int(FixedType.parse(t).to_raw(value))})
    return spec


@keras_check("QActivation", "QDense", "QConv1D", "QConv2D", "QConv2DBatchnorm")
def qkeras_activation(layer) -> str | None:
    """A QKeras activation hls4ml builds as another function (binary_tanh's +1 at 0), or
    whose conversion fails without naming the layer (stochastic_binary, hard_tanh...)."""
    from fpgaflow.network.quantizers import activation_refusal

    return activation_refusal(layer)


# Keras ReLU options hls4ml 1.3 drops (converters/keras/core.py builds a plain relu),
# with what gives the function instead
RELU_OPTIONS = {
    "max_value": (None, "for a capped relu, QKeras's quantized_relu(bits, integer) saturates at the top of its range"),
    "negative_slope": (0.0, "use LeakyReLU(negative_slope) for a leaky relu"),
    "threshold": (0.0, "ThresholdedReLU(theta) is x for x > theta, else 0 (0 at x == theta, where ReLU gives theta)"),
}


@keras_check("ReLU")
def relu_options(layer) -> str | None:
    """``ReLU(max_value=1)`` built an unbounded relu without a word."""
    import math

    config = layer.get_config()
    given = []
    for option, (default, hint) in RELU_OPTIONS.items():
        value = config.get(option, default)
        if option == "max_value" and value is not None and math.isinf(float(value)):
            continue  # unbounded: what relu computes
        if value is not None and (default is None or float(value) != default):
            given.append((option, value, hint))
    if not given:
        return None
    options = ", ".join(f"{option}={float(value):g}" for option, value, _ in given)
    hints = "; ".join(hint for *_, hint in given)
    return (
        f"{options} is not supported: hls4ml {hls4ml_version()} ignores it and builds a plain relu, "
        f"which is not the model's function ({hints})"
    )
