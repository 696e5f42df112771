"""The network to train: QKeras layers from the project file's declaration, or
whatever a user's ``build_model`` returns for anything more exotic."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from typing import Any

from fpgaflow.train.config import LayerSpec, TrainingConfig, TrainingError, refuse_untrainable_output

INPUT_NAME = "inputs"  # hls4ml reserves "input"


def build_declared_model(layers: list[LayerSpec], n_features: int) -> Any:
    """Dense QKeras network: ``QDense`` with quantized weights and biases, each
    followed by its activation (``QActivation(quantized_relu)`` for relu; softmax,
    sigmoid and tanh stay float, as hls4ml implements them with lookup tables)."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    x = inputs = tf.keras.Input(shape=(n_features,), name=INPUT_NAME)
    for spec in layers:
        q = quantized_bits(spec.bits, spec.integer_bits, alpha=1)
        x = QDense(spec.units, kernel_quantizer=q, bias_quantizer=q, name=spec.name)(x)
        if spec.activation == "relu":
            bits = spec.activation_bits or spec.bits
            relu = quantized_relu(bits, spec.activation_integer_bits)
            x = QActivation(relu, name=spec.activation_layer_name)(x)
        elif spec.activation != "linear":
            x = tf.keras.layers.Activation(spec.activation, name=spec.activation_layer_name)(x)
    return tf.keras.Model(inputs, x, name="model")


def load_build_model(path: Path) -> Any:
    """The ``build_model`` function of a user's Python file."""
    spec = importlib.util.spec_from_file_location(f"fpgaflow_user_model_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise TrainingError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: report where it failed, without our stack
        raise TrainingError(f"{path}: failed to import ({type(exc).__name__}: {exc})") from exc
    fn = getattr(module, "build_model", None)
    if not callable(fn):
        defined = sorted(n for n in vars(module) if callable(vars(module)[n]) and not n.startswith("_"))
        raise TrainingError(f"{path}: defines no function build_model (it defines: {', '.join(defined) or 'none'})")
    return fn


def build_model(cfg: TrainingConfig, n_features: int, n_classes: int) -> Any:
    """The model of ``cfg``; checks that its input and output fit the data."""
    import tensorflow as tf

    if cfg.layers is not None:
        units = cfg.layers[-1].units
        if units != n_classes and not (n_classes == 2 and units == 1):
            raise TrainingError(
                f"{cfg.where}.Model: the last layer has {units} units but the data has {n_classes} classes"
            )
        return build_declared_model(cfg.layers, n_features)
    fn = load_build_model(cfg.build_model)
    kwargs = dict(cfg.model_options)
    params = inspect.signature(fn).parameters
    if "seed" in params and "seed" not in kwargs:
        kwargs["seed"] = cfg.seed
    try:
        model = fn(n_features, n_classes, **kwargs)
    except Exception as exc:  # the user's code: say where, not our stack
        args = ", ".join([str(n_features), str(n_classes)] + [f"{k}={v!r}" for k, v in kwargs.items()])
        raise TrainingError(f"{cfg.build_model}: build_model({args}) failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, tf.keras.Model):
        raise TrainingError(f"{cfg.build_model}: build_model returned {type(model).__name__}, not a Keras model")
    outputs = model.output_shape[-1] if isinstance(model.output_shape, tuple) else None
    if outputs not in (n_classes, 1 if n_classes == 2 else n_classes):
        raise TrainingError(
            f"{cfg.build_model}: the model has {outputs} outputs per sample but the data has {n_classes} classes"
        )
    if tuple(model.input_shape[1:]) != (n_features,):
        raise TrainingError(
            f"{cfg.build_model}: the model takes inputs of shape {model.input_shape[1:]}, the data has {n_features} "
            "features"
        )
    layer = model.layers[-1]
    where = f"{cfg.build_model}: build_model's layer {layer.name!r}"
    refuse_untrainable_output(outputs, output_activation(layer), where)
    return model


def output_activation(layer: Any) -> str:
    """The name of the activation a Keras/QKeras layer applies: ``softmax``, ``sigmoid``,
    ``linear``, a QKeras quantizer's name (``quantized_relu``)..."""
    import tensorflow as tf

    if isinstance(layer, tf.keras.layers.Softmax):
        return "softmax"
    act = getattr(layer, "activation", None)
    if act is None:
        return f"none ({type(layer).__name__})"
    name = act if isinstance(act, str) else getattr(act, "__name__", None) or type(act).__name__
    return name.split("(")[0].strip().lower()  # QActivation("quantized_relu(4)")
