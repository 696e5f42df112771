"""Shared helpers for the network oracle tests: synthesize a project into a tmp dir,
run hls4ml's C simulation (the real firmware sources, g++) and our emulator on the
same inputs, and compare them with ``fpgaflow.network.verify.compare``."""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODELS = Path(__file__).parent / "data" / "models"


@dataclass
class Oracle:
    """One synthesized project with its emulator and compiled C simulation."""

    project: Any
    net: Any
    hls_model: Any
    keras_model: Any

    def compare(self, x: np.ndarray) -> dict:
        from fpgaflow.network.verify import compare, csim_trace

        x = self.net._input_raw(np.asarray(x, dtype=np.float64))
        y, trace = csim_trace(self.hls_model, x)
        result = compare(self.net, x, y, trace, None)
        result["predict_bit_exact"] = self.predict_agrees(x, y)
        return result

    def predict_agrees(self, x: np.ndarray, csim_y: np.ndarray) -> dict[str, bool]:
        """``predict`` (chunked, threaded, the float64 domain) against csim's outputs, on
        each BLAS the emulator can use (``compare`` checks ``trace``, one chunk)."""
        from fpgaflow.network.verify import raw_of
        from sim.network import blas

        expected = raw_of(csim_y, self.net.output_type).reshape(len(x), *self.net.output_shape)
        before, agrees = blas.backend(), {}
        try:
            for name in ("scipy", "numpy"):
                blas.use(name)
                agrees[name] = bool(np.array_equal(self.net.predict(x).raw, expected))
        finally:
            blas.use(before)
        return agrees

    def random_inputs(self, n: int, seed: int = 0) -> np.ndarray:
        from fpgaflow.network.verify import random_inputs

        return random_inputs(self.net.input_type, self.net.input_shape, n, seed)


def write_project(folder: Path, config: dict, files: dict[str, Path] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for rel, src in (files or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, folder / rel)
    path = folder / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def synth_and_build(config_file: Path) -> Oracle:
    """``fpgaflow synth`` the project, then a traced csim copy of it (not yet compiled:
    ``trace()`` compiles on first use)."""
    import sim
    from fpgaflow.network.config import read_settings
    from fpgaflow.network.model import load_keras_model
    from fpgaflow.network.synth import synth
    from fpgaflow.network.verify import csim_model
    from fpgaflow.project import load_project

    project = load_project(config_file)
    assert synth(project, argparse.Namespace(vendor=False)) == 0
    net = sim.load(project.build_dir / "emulator")
    model = load_keras_model(project)
    hls_model = csim_model(model, read_settings(project), project.root / "csim")
    return Oracle(project, net, hls_model, model)


def save_keras(model: Any, folder: Path, name: str) -> dict[str, Path]:
    """A Keras model as JSON + weights .h5 (the format of the shared models)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(model.to_json())
    model.save_weights(str(folder / f"{name}_weights.h5"))
    return {f"{name}.json": folder / f"{name}.json", f"{name}_weights.h5": folder / f"{name}_weights.h5"}


def keras_project(folder: Path, model: Any, name: str, hls_config: dict | None = None,
                  io_type: str = "io_parallel", backend: str = "Vivado") -> Path:  # fmt: skip
    """A project for a Keras model: the model saved under ``folder/src``, the project file
    (``config.yml``) under ``folder/project``."""
    files = save_keras(model, folder / "src", name)
    config = {"KerasJson": f"{name}.json", "KerasH5": f"{name}_weights.h5", "Backend": backend, "IOType": io_type}
    if hls_config is not None:
        config["HLSConfig"] = hls_config
    return write_project(folder / "project", config, files)


# QKeras activation quantizers hls4ml 1.3 maps to another type (its quantized_bits types
# ignore keep_negative and symmetric, and integer >= bits - 1 becomes a truncating,
# wrapping ap_int), each a branch off the input; "qb_dense" follows a QDense, so hls4ml's
# MergeLinearActivation removes it and synth gives the QDense its type
QUANTIZER_BRANCHES = {
    "qb_unsigned": ("quantized_bits(6,2,keep_negative=False,alpha=1)", "ap_ufixed<6,2,AP_RND_CONV,AP_SAT>"),
    "qb_symmetric": ("quantized_bits(6,2,symmetric=True,alpha=1)", "ap_fixed<6,3,AP_RND_CONV,AP_SAT_SYM>"),
    "qb_int": ("quantized_bits(4,3,alpha=1)", "ap_fixed<4,4,AP_RND_CONV,AP_SAT>"),
    "qb_wide": ("quantized_bits(4,5,keep_negative=False,alpha=1)", "ap_ufixed<4,5,AP_RND_CONV,AP_SAT>"),
    "qrelu_int": ("quantized_relu(4,5)", "ap_ufixed<4,5,AP_RND_CONV,AP_SAT>"),
    "qb_dense": ("quantized_bits(5,1,keep_negative=False,alpha=1)", "ap_ufixed<5,1,AP_RND_CONV,AP_SAT>"),
}
# the input: every 1/64 from -40 to 40 (ties of each quantizer's rounding, both saturations)
QUANTIZER_GRID_TYPE = "ap_fixed<18,7>"


def quantizer_type_model() -> Any:
    import tensorflow as tf
    from qkeras import QActivation, QDense
    from qkeras.quantizers import quantized_bits

    k = tf.keras
    inp = k.Input((8,), name="x")
    outs = []
    for name, (quantizer, _) in QUANTIZER_BRANCHES.items():
        h = inp
        if name == "qb_dense":
            q = quantized_bits(4, 0, alpha=1)
            h = QDense(4, name="fc", kernel_quantizer=q, bias_quantizer=q)(h)
        outs.append(QActivation(quantizer, name=name)(h))
    while len(outs) > 1:  # hls4ml's Concatenate takes two inputs
        outs = [
            k.layers.Concatenate(name=f"cat{len(outs)}_{i}")(outs[i : i + 2]) for i in range(0, len(outs) - 1, 2)
        ] + (outs[-1:] if len(outs) % 2 else [])
    model = k.Model(inp, outs[0])
    rng = np.random.default_rng(5)
    model.get_layer("fc").set_weights([rng.normal(0, 0.3, (8, 4)).astype("f4"), rng.normal(0, 0.5, 4).astype("f4")])
    return model


def quantizer_grid() -> np.ndarray:
    return np.arange(-40 * 64, 40 * 64).reshape(-1, 8) / 64.0


def quantizer_layer_outputs(model: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """Each QUANTIZER_BRANCHES layer's output as QKeras computes it."""
    import tensorflow as tf

    names = list(QUANTIZER_BRANCHES)
    probe = tf.keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    outputs = probe.predict(x, verbose=0)
    return {n: np.asarray(y, dtype=np.float64).reshape(len(x), -1) for n, y in zip(names, outputs, strict=True)}


# weight quantizers with keep_negative=False (QKeras: 0 .. 2**integer - step, negative weights
# clipped to 0), each layer followed by a quantized_bits QActivation hls4ml merges into it:
# name: (kernel, bias, the weight and bias types synth gives, the QActivation or None)
UNSIGNED_WEIGHT_LAYERS = {
    "qconv": ("quantized_bits(5,1,keep_negative=False,alpha=1)", "quantized_bits(4,2,keep_negative=False,alpha=1)",
              ("ap_ufixed<5,1>", "ap_ufixed<4,2>"), "quantized_bits(8,3,alpha=1)"),
    "d_uint": ("quantized_bits(4,4,keep_negative=False,alpha=1)", "quantized_bits(6,2,alpha=1)",
               ("ap_uint<4>", "ap_fixed<6,3>"), "quantized_bits(8,4,alpha=1)"),
    "d_bit": ("quantized_bits(1,1,keep_negative=False,alpha=1)", "quantized_bits(1,0,keep_negative=False,alpha=1)",
              ("ap_uint<1>", "ap_ufixed<1,0>"), "quantized_bits(8,4,alpha=1)"),
    "d_wide": ("quantized_bits(6,2,keep_negative=False,alpha=1)", "quantized_bits(3,5,keep_negative=False,alpha=1)",
               ("ap_ufixed<6,2>", "ap_ufixed<3,5>"), "quantized_bits(8,2,alpha=1)"),
    "d_alpha": ("quantized_bits(5,1,keep_negative=False,alpha=0.5)", "quantized_bits(6,2,alpha=1)",
                ("ap_ufixed<5,1>", "ap_fixed<6,3>"), None),
}  # fmt: skip


def unsigned_weight_model() -> Any:
    """A QConv1D and QDense chain with the UNSIGNED_WEIGHT_LAYERS quantizers; the weights
    span negative values (QKeras gives 0), every step of the unsigned range (odd steps:
    hls4ml's signed type drops their last bit) and, for ``d_uint``, values from 8 up
    (hls4ml's ap_int<4> wraps them negative); ``d_bit``'s 0 is -1 to hls4ml's binary type."""
    import tensorflow as tf
    from qkeras import QActivation, QConv1D, QDense
    from qkeras.quantizers import get_quantizer

    k = tf.keras
    inp = k.Input((10, 2), name="x")
    h = inp
    for name, (kernel, bias, _, activation) in UNSIGNED_WEIGHT_LAYERS.items():
        q = {"kernel_quantizer": get_quantizer(kernel), "bias_quantizer": get_quantizer(bias)}
        h = QConv1D(3, 3, name=name, **q)(h) if name == "qconv" else QDense(6, name=name, **q)(h)
        if activation:
            h = QActivation(activation, name=f"{name}_q")(h)
        if name == "qconv":
            h = k.layers.Flatten(name="flat")(h)
    model = k.Model(inp, h)
    rng = np.random.default_rng(29)
    for name in UNSIGNED_WEIGHT_LAYERS:
        layer = model.get_layer(name)
        kernel, bias = layer.get_weights()
        centre, spread = (6.0, 6.0) if name == "d_uint" else (0.5, 1.5)
        layer.set_weights([rng.normal(centre, spread, kernel.shape).astype("f4"), rng.normal(0.5, 2, bias.shape)])
    return model


def bn_activation_model(activation: str, gamma) -> Any:
    """BatchNormalization (4 channels) -> a binary or ternary QActivation, which hls4ml
    merges into thresholds."""
    import tensorflow as tf
    from qkeras import QActivation

    k = tf.keras
    inp = k.Input((4,), name="x")
    model = k.Model(inp, QActivation(activation, name="q")(k.layers.BatchNormalization(name="bn")(inp)))
    params = [gamma, [0.31, -0.2, 0.05, 0.4], [0.113, 0.37, -0.52, 0.2], [0.8, 1.7, 0.4, 2.2]]
    model.get_layer("bn").set_weights([np.asarray(p, dtype=np.float32) for p in params])
    return model


# signed weight quantizers: integer == bits (QKeras: -2**bits .. 2**bits - 2 in steps of 2,
# symmetric from -2**bits + 2; hls4ml 1.3 holds them in ap_int<bits>, which wraps half of
# them, and multiplies by an ap_int<2> as by ternary weights), and beside them the signed
# ones hls4ml types right (integer > bits, integer == bits - 1 symmetric, a 2-bit fixed<2,2>);
# name: (kernel, bias, the weight and bias types, the QActivation or None).  c2d (QConv2D)
# feeds c1d (QConv1D), whose flattened output feeds each QDense; the QActivations' ranges
# follow each layer's sums, so that QKeras's float32 sums are exact
SIGNED_WEIGHT_LAYERS = {
    "c2d": ("quantized_bits(4,4,alpha=1)", "quantized_bits(3,3,alpha=1)",
            ("ap_fixed<4,5>", "ap_fixed<3,4>"), "quantized_bits(8,7,alpha=1)"),
    "c1d": ("quantized_bits(3,3,symmetric=True,alpha=1)", "quantized_bits(2,2,alpha=1)",
            ("ap_fixed<3,4>", "ap_fixed<2,3>"), "quantized_bits(8,12,alpha=1)"),
    "d22": ("quantized_bits(2,2,alpha=1)", "quantized_bits(6,2,alpha=1)",
            ("ap_fixed<2,3>", "ap_fixed<6,3>"), "quantized_bits(8,16,alpha=1)"),
    "d_wide": ("quantized_bits(3,5,alpha=1)", "quantized_bits(4,3,symmetric=True,alpha=1)",
               ("ap_fixed<3,6>", "ap_fixed<4,4>"), "quantized_bits(8,19,alpha=1)"),
    "d21": ("quantized_bits(2,1,symmetric=True,alpha=1)", "quantized_bits(5,5,alpha=1)",
            ("ap_fixed<2,2>", "ap_fixed<5,6>"), "quantized_bits(8,14,alpha=1)"),
    "d_po2": ("quantized_bits(4,4,alpha='auto_po2')", "quantized_bits(4,3,alpha=1)",
              ("ap_fixed<4,5>", "ap_fixed<4,4>"), None),
    "d_alpha": ("quantized_bits(3,3,alpha=0.5)", "quantized_bits(6,2,alpha=1)",
                ("ap_fixed<3,4>", "ap_fixed<6,3>"), None),
}  # fmt: skip


def signed_weight_model() -> Any:
    """The SIGNED_WEIGHT_LAYERS model (input (5, 5, 1)); each layer's weights and biases
    span its quantizer's range evenly and beyond both ends, so every QKeras value is taken,
    the clipped ends included.  The QDense outputs are concatenated."""
    import tensorflow as tf
    from qkeras import QActivation, QConv1D, QConv2D, QDense
    from qkeras.quantizers import get_quantizer

    k = tf.keras

    def quantized(name: str, layer: Any, *args: Any) -> Any:
        kernel, bias, _, activation = SIGNED_WEIGHT_LAYERS[name]
        q = {"kernel_quantizer": get_quantizer(kernel), "bias_quantizer": get_quantizer(bias)}

        def apply(h: Any) -> Any:
            h = layer(*args, name=name, **q)(h)
            return QActivation(activation, name=f"{name}_q")(h) if activation else h

        return apply

    inp = k.Input((5, 5, 1), name="x")
    h = quantized("c2d", QConv2D, 8, (2, 2))(inp)
    h = quantized("c1d", QConv1D, 2, 2)(k.layers.Reshape((16, 8), name="rows")(h))
    flat = k.layers.Flatten(name="flat")(h)
    branches = [quantized(name, QDense, 4)(flat) for name in SIGNED_WEIGHT_LAYERS if name.startswith("d")]
    while len(branches) > 1:  # hls4ml's Concatenate takes two inputs
        pairs = range(0, len(branches) - 1, 2)
        tail = branches[-1:] if len(branches) % 2 else []
        branches = [k.layers.Concatenate(name=f"cat{len(branches)}_{i}")(branches[i : i + 2]) for i in pairs] + tail
    model = k.Model(inp, branches[0])
    rng = np.random.default_rng(31)
    for name, (kernel, bias, *_) in SIGNED_WEIGHT_LAYERS.items():
        layer = model.get_layer(name)
        values = []
        for array, spec in zip(layer.get_weights(), (kernel, bias), strict=True):
            q = get_quantizer(spec)
            top = 16.0 if isinstance(q.alpha, str) else float(q.max())  # a numeric alpha scales after
            spread = rng.permutation(np.linspace(-1.2, 1.2, array.size)).reshape(array.shape) * top
            values.append(spread.astype("f4"))
        layer.set_weights(values)
    return model
