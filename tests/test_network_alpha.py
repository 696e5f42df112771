"""QKeras's default kernel alpha ('auto_po2'): hls4ml's ApplyAlpha layer against QKeras
(hls4ml's C simulation equal to QKeras's layer) and the emulator against the firmware."""

from __future__ import annotations

import numpy as np
import pytest
from network_oracle import keras_project, synth_and_build

pytestmark = pytest.mark.oracle

INPUT_SHAPES = {"QDense": (8,), "QConv1D": (6, 2), "QConv2D": (4, 4, 2)}


def po2_alpha_model(kind: str):
    """One layer with QKeras's default kernel alpha (per-output power-of-two scales from
    below 1 up to 4: hls4ml's scale quantizer held 4 as 2) and a quantized bias; its outputs
    reach +-100 with 14 fraction bits, beyond the Model default ap_fixed<16,6> both ways."""
    import tensorflow as tf
    from qkeras import QConv1D, QConv2D, QDense
    from qkeras.quantizers import quantized_bits

    k = tf.keras
    inp = k.Input(INPUT_SHAPES[kind], name="x")
    q = {"kernel_quantizer": quantized_bits(4, 0), "bias_quantizer": quantized_bits(8, 3, alpha=1)}
    layer = {
        "QDense": lambda: QDense(6, **q),
        "QConv1D": lambda: QConv1D(6, 3, **q),
        "QConv2D": lambda: QConv2D(6, 2, **q),
    }
    model = k.Model(inp, layer[kind]()(inp))
    fc = model.layers[-1]
    kernel, bias = fc.get_weights()
    rng = np.random.default_rng(3)
    kernel = rng.normal(0, 1, kernel.shape) * 2.0 ** (np.arange(6) - 3)  # one scale per output
    fc.set_weights([kernel.astype("f4"), rng.normal(0, 2, bias.shape).astype("f4")])
    return model


@pytest.mark.parametrize("kind", list(INPUT_SHAPES))
def test_po2_alpha_layer_computes_as_qkeras(tmp_path_factory, kind):
    from fpgaflow.network.verify import csim_trace

    model = po2_alpha_model(kind)
    scale = model.layers[-1].kernel_quantizer_internal
    scale(model.layers[-1].kernel)
    scales = set(np.ravel(scale.scale).tolist())
    assert 4.0 in scales and min(scales) < 1
    folder = tmp_path_factory.mktemp(f"alpha_{kind}")
    oracle = synth_and_build(keras_project(folder, model, "alpha", {"Model": {"Precision": "ap_fixed<16,6>"}}))
    # every input a value of the input type ap_fixed<16,6> (steps of 2**-10) within [-8, 8)
    x = np.random.default_rng(5).integers(-8 * 1024, 8 * 1024, (3000, *INPUT_SHAPES[kind])) / 1024.0
    csim_y, _ = csim_trace(oracle.hls_model, x)
    qkeras_y = model.predict(x, verbose=0).astype(np.float64)
    assert np.abs(qkeras_y).max() > 64  # beyond ap_fixed<16,6>
    np.testing.assert_array_equal(csim_y.reshape(qkeras_y.shape), qkeras_y)
    for inputs in (x, oracle.random_inputs(3000)):
        result = oracle.compare(inputs)
        assert result["first_divergence"] is None, result["first_divergence"]
        assert result["bit_exact_fraction"] == 1.0
        assert result["predict_bit_exact"] == {"scipy": True, "numpy": True}


# hls4ml's ApplyAlpha layers typed by their LayerName entries (fpgaflow.network.alpha_layers):
# 'auto_po2' scales with a narrow rounding, saturating result; a numeric alpha with its scale
# type and a wrapping result; 'auto' scales and no bias quantizer, every type from one string
ALPHA_ENTRIES = {
    "fpo2_alpha": {"Precision": {"result": "ap_fixed<12,5,AP_RND_CONV,AP_SAT>"}},
    "f03_alpha": {"Precision": {"scale": "ap_fixed<20,1,AP_RND>", "result": "ap_fixed<10,4,AP_RND,AP_WRAP>"}},
    "fauto_alpha": {"Precision": "ap_fixed<14,6,AP_RND,AP_SAT>"},
}


def alpha_branches_model():
    """Three QDense branches on one input, kernels with per-output scales from 1/4 to 2."""
    import tensorflow as tf
    from qkeras import QDense
    from qkeras.quantizers import quantized_bits

    k = tf.keras
    inp = k.Input((8,), name="x")
    kinds = {"fpo2": ("auto_po2", True), "f03": (0.3, True), "fauto": ("auto", False)}
    outs = [
        QDense(4, name=name, kernel_quantizer=quantized_bits(4, 0, alpha=alpha),
               bias_quantizer=quantized_bits(8, 3, alpha=1) if biased else None)(inp)
        for name, (alpha, biased) in kinds.items()
    ]  # fmt: skip
    cat = k.layers.Concatenate(name="c1")(outs[:2])
    model = k.Model(inp, k.layers.Concatenate(name="cat")([cat, outs[2]]))
    rng = np.random.default_rng(3)
    for name in kinds:
        kernel = rng.normal(0, 1, (8, 4)) * 2.0 ** (np.arange(4) - 2)
        model.get_layer(name).set_weights([kernel.astype("f4"), rng.normal(0, 2, 4).astype("f4")])
    return model


def test_alpha_layer_types_a_layername_entry_sets_are_built_and_emulated(tmp_path_factory):
    """A LayerName entry for hls4ml's ApplyAlpha layer (``<layer>_alpha``) sets its types:
    the firmware holds them (csim's 'auto_po2' layer output is QKeras's cast into the
    entry's result type, saturated and rounded; the others lie on their result grid) and
    the emulator equals csim on every layer."""
    import tensorflow as tf

    from fpgaflow.network.types import layer_type, result_type
    from fpgaflow.network.verify import csim_trace
    from sim.fixed import FixedType

    model = alpha_branches_model()
    folder = tmp_path_factory.mktemp("alpha_entries")
    hls = {"Model": {"Precision": "ap_fixed<16,6>"}, "LayerName": ALPHA_ENTRIES}
    oracle = synth_and_build(keras_project(folder, model, "alpha", hls))
    graph = {node.name: node for node in oracle.hls_model.get_layers()}
    for name, entry in ALPHA_ENTRIES.items():
        asked = entry["Precision"]
        asked = asked if isinstance(asked, dict) else dict.fromkeys(("scale", "bias", "result"), asked)
        for var, text in asked.items():
            built = result_type(graph[name]) if var == "result" else layer_type(graph[name], f"{var}_t")
            assert FixedType.parse(built) == FixedType.parse(text), (name, var, built)
    x = np.random.default_rng(5).integers(-8 * 1024, 8 * 1024, (3000, 8)) / 1024.0  # ap_fixed<16,6> values
    _, trace = csim_trace(oracle.hls_model, x)
    po2 = tf.keras.Model(model.input, model.get_layer("fpo2").output).predict(x, verbose=0).astype(np.float64)
    result = FixedType.parse("ap_fixed<12,5,AP_RND_CONV,AP_SAT>")
    assert np.abs(po2).max() > 16 and np.any(po2 * 128 != np.round(po2 * 128))  # saturated and rounded
    np.testing.assert_array_equal(np.reshape(trace["fpo2_alpha"], po2.shape), result.quantize(po2))
    dense = tf.keras.Model(model.input, model.get_layer("f03").output).predict(x, verbose=0)
    wrapped = np.reshape(trace["f03_alpha"], dense.shape)
    assert np.abs(dense).max() > 8 and wrapped.min() >= -8 and wrapped.max() < 8  # wrapped into ap_fixed<10,4>
    assert np.array_equal(wrapped * 64, np.round(wrapped * 64))
    for inputs in (x, oracle.random_inputs(3000)):
        compared = oracle.compare(inputs)
        assert compared["first_divergence"] is None, compared["first_divergence"]
        assert compared["bit_exact_fraction"] == 1.0
        assert compared["predict_bit_exact"] == {"scipy": True, "numpy": True}
