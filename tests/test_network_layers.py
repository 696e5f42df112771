"""Bit-exactness of every emulated layer and mode against hls4ml's C simulation, on
small purpose-built models (one compile each, several layers per model; every layer's
output is compared through hls4ml's trace).

The models chain a Dense layer with large weights before each activation so that its
input spans the whole lookup-table range (and beyond, for the clipping)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from network_oracle import bn_activation_model, keras_project, save_keras, synth_and_build, write_project

pytestmark = pytest.mark.oracle

N_SAMPLES = 3000


def _dense(keras, units, name, scale, rng, n_in):
    layer = keras.layers.Dense(units, name=name)
    w = rng.normal(0, scale / np.sqrt(n_in), size=(n_in, units))
    b = rng.normal(0, 0.5, size=units)
    return layer, [w, b]


def _build(keras, n_in, blocks, seed):
    """Sequential model: [Dense -> block] for each block; returns model after setting weights."""
    rng = np.random.default_rng(seed)
    inp = keras.Input(shape=(n_in,), name="x")
    h, width, weights = inp, n_in, []
    for i, (units, block, scale) in enumerate(blocks):
        dense, wb = _dense(keras, units, f"fc{i}", scale, rng, width)
        h = dense(h)
        weights.append((dense, wb))
        if block is not None:
            h = block(h)
        width = units
    model = keras.Model(inp, h)
    for layer, wb in weights:
        layer.set_weights([a.astype(np.float32) for a in wb])
    return model


def _synth(tmp_path_factory, model, name, hls_config, io_type="io_parallel"):
    return synth_and_build(keras_project(tmp_path_factory.mktemp(name), model, name, hls_config, io_type))


def _assert_exact(oracle, n=N_SAMPLES, seed=0):
    result = oracle.compare(oracle.random_inputs(n, seed=seed))
    assert result["first_divergence"] is None, result["first_divergence"]
    assert result["bit_exact_fraction"] == 1.0
    assert result["predict_bit_exact"] == {"scipy": True, "numpy": True}
    return result


def test_table_and_elementwise_activations(tmp_path_factory):
    import tensorflow as tf

    k = tf.keras
    blocks = [
        (8, k.layers.Activation("sigmoid", name="sigmoid"), 12.0),
        (8, k.layers.Activation("tanh", name="tanh"), 6.0),
        (8, k.layers.Activation("softplus", name="softplus"), 12.0),
        (8, k.layers.Activation("softsign", name="softsign"), 12.0),
        (8, k.layers.Activation("elu", name="elu"), 12.0),
        (8, k.layers.Activation("selu", name="selu"), 8.0),
        (8, k.layers.LeakyReLU(alpha=0.3, name="leaky"), 6.0),
        (8, k.layers.ELU(alpha=0.7, name="elu_alpha"), 6.0),
        (8, k.layers.Activation("hard_sigmoid", name="hard_sigmoid"), 6.0),
        (8, k.layers.ThresholdedReLU(theta=0.4, name="thresholded"), 4.0),
        (8, lambda h: k.layers.BatchNormalization(name="bn")(k.layers.Activation("relu", name="relu")(h)), 4.0),
        (4, k.layers.Activation("linear", name="linear"), 2.0),
    ]
    model = _build(k, 6, blocks, seed=11)
    bn = model.get_layer("bn")
    rng = np.random.default_rng(3)
    bn.set_weights([rng.uniform(0.5, 2, 8), rng.normal(0, 1, 8), rng.normal(0, 1, 8), rng.uniform(0.5, 2, 8)])
    hls_config = {
        "Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"},
        "LayerName": {
            # non-default table sizes/types and rounding/saturating results
            "tanh": {"TableSize": 512, "table_t": "ap_fixed<12,2,AP_RND,AP_SAT>"},  # not Precision: hls4ml ignores it
            "sigmoid": {"Precision": {"result": "ap_ufixed<10,1,AP_RND_CONV,AP_SAT>"}},
            "softsign": {"TableSize": 2048},
            "selu": {"Precision": {"result": "ap_fixed<12,4,AP_RND,AP_SAT>"}},
        },
    }
    oracle = _synth(tmp_path_factory, model, "activations", hls_config)
    kinds = {layer.spec.get("activation") for layer in oracle.net.layers}
    assert {"sigmoid", "tanh", "softplus", "softsign", "elu", "selu", "leaky_relu", "hard_sigmoid"} <= kinds
    tanh = next(layer.spec for layer in oracle.net.layers if layer.name == "tanh")
    assert (tanh["table_type"], tanh["table_size"]) == ("ap_fixed<12,2,AP_RND,AP_SAT>", 512)
    assert "batchnorm" in {layer.spec["kind"] for layer in oracle.net.layers}  # standalone, not folded
    _assert_exact(oracle)


def test_every_softmax_implementation(tmp_path_factory):
    import tensorflow as tf

    k = tf.keras
    impls = ["stable", "latency", "legacy", "argmax"]
    blocks = [(6, k.layers.Activation("softmax", name=f"softmax_{impl}"), 8.0) for impl in impls]
    model = _build(k, 5, blocks, seed=5)
    hls_config = {
        "Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"},
        "LayerName": {f"softmax_{impl}": {"Implementation": impl} for impl in impls},
    }
    hls_config["LayerName"]["softmax_latency"].update(  # *_t keys: hls4ml ignores a Precision exp_table/inv_table
        {"exp_table_t": "ap_fixed<18,10,AP_RND,AP_SAT>", "inv_table_t": "ap_fixed<18,6,AP_RND,AP_SAT>"}
    )
    hls_config["LayerName"]["softmax_stable"].update({"TableSize": 512})
    oracle = _synth(tmp_path_factory, model, "softmax", hls_config)
    found = [layer.spec.get("implementation") for layer in oracle.net.layers if layer.spec["kind"] == "softmax"]
    assert found == impls
    latency = next(layer.spec for layer in oracle.net.layers if layer.name == "softmax_latency")
    assert latency["exp_table_type"] == "ap_fixed<18,10,AP_RND,AP_SAT>"
    assert latency["inv_table_type"] == "ap_fixed<18,6,AP_RND,AP_SAT>"
    _assert_exact(oracle)


def test_keras_softmax_layer_compiles_and_matches(tmp_path_factory):
    """A ``keras.layers.Softmax()`` (not ``Activation('softmax')``): hls4ml 1.3 wrote
    ``struct Softmax_config2`` and called ``softmax_config2``, so csim did not compile
    (audit).  synth spells it as the Activation's; the emulator matches csim."""
    import tensorflow as tf

    k = tf.keras
    model = _build(k, 5, [(6, k.layers.Softmax(name="sm"), 8.0)], seed=7)
    hls_config = {"Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"}}
    oracle = _synth(tmp_path_factory, model, "softmax_layer", hls_config)
    parameters = (oracle.project.build_dir / "hls" / "firmware" / "parameters.h").read_text()
    assert "struct softmax_config" in parameters and "Softmax_config" not in parameters
    _assert_exact(oracle)


def test_strategies_reuse_factors_and_accumulators(tmp_path_factory):
    import tensorflow as tf

    k = tf.keras
    blocks = [
        (12, None, 4.0),  # Resource, RF <= n_in
        (8, None, 4.0),  # Resource, RF > n_in with RF % n_in == 0
        (6, None, 4.0),  # Resource, RF > n_in otherwise
        (6, None, 4.0),  # Latency, RF 2
        (6, k.layers.BatchNormalization(name="bn_folded"), 4.0),  # lossy accumulator; BatchNorm after a Dense
        (5, None, 4.0),  # Latency, saturating narrow accumulator: summed in firmware order
        (5, k.layers.Activation("relu", name="out_relu"), 2.0),
    ]
    model = _build(k, 16, blocks, seed=7)
    rng = np.random.default_rng(8)
    model.get_layer("bn_folded").set_weights(
        [rng.uniform(0.5, 2, 6), rng.normal(0, 1, 6), rng.normal(0, 1, 6), rng.uniform(0.5, 2, 6)]
    )
    names = {
        "fc0": {"Strategy": "Resource", "ReuseFactor": 4},
        "fc1": {"Strategy": "Resource", "ReuseFactor": 24},
        "fc2": {"Strategy": "Resource", "ReuseFactor": 16},
        "fc3": {"Strategy": "Latency", "ReuseFactor": 2},
        "fc4": {"Precision": {"accum": "ap_fixed<20,8>", "result": "ap_fixed<14,6,AP_RND,AP_SAT>"}},
        "fc5": {"Precision": {"accum": "ap_fixed<14,4,AP_RND,AP_SAT>", "result": "ap_fixed<10,3,AP_RND_ZERO,AP_SAT>"}},
    }
    for i in range(4):  # chained Dense layers: bound the inferred result widths
        names[f"fc{i}"]["Precision"] = {"result": "ap_fixed<18,8>"}
    hls_config = {"Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"}, "LayerName": names}
    oracle = _synth(tmp_path_factory, model, "strategies", hls_config)
    by_name = {layer.name: layer.spec for layer in oracle.net.layers}
    assert by_name["fc0"]["strategy"] == "resource" and by_name["fc0"]["reuse_factor"] == 4
    assert by_name["fc1"]["reuse_factor"] > 16 and by_name["fc2"]["reuse_factor"] > 12
    assert by_name["fc5"]["accum_type"] == "ap_fixed<14,4,AP_RND,AP_SAT>"
    # BatchNorm after a Dense: folded into its weights where hls4ml's optimizer does so, else standalone
    assert by_name.get("bn_folded", {"kind": "batchnorm"})["kind"] == "batchnorm"
    _assert_exact(oracle)


def test_qkeras_layers_and_quantizers(tmp_path_factory):
    """QConv1D, QBatchNormalization, QDense with quantized_bits / binary / ternary
    weights, QActivation with quantized_relu and quantized_bits."""
    import tensorflow as tf
    from qkeras import QActivation, QBatchNormalization, QConv1D, QDense
    from qkeras.quantizers import binary, quantized_bits, ternary

    from sim.fixed import FixedType

    k = tf.keras
    inp = k.Input(shape=(12, 3), name="x")
    h = QConv1D(
        4,
        3,
        strides=2,
        padding="valid",
        name="qconv",
        kernel_quantizer=quantized_bits(6, 0, alpha=1),
        bias_quantizer=quantized_bits(6, 0, alpha=1),
    )(inp)
    h = QActivation("quantized_relu(6,2)", name="qrelu0")(h)
    h = QBatchNormalization(name="qbn")(h)
    h = k.layers.Flatten(name="flat")(h)
    h = QDense(
        10, name="qd_bits", kernel_quantizer=quantized_bits(4, 0, alpha=1), bias_quantizer=quantized_bits(4, 0, alpha=1)
    )(h)
    h = QActivation("quantized_bits(8,3,alpha=1)", name="qbits")(h)
    h = QDense(8, name="qd_binary", kernel_quantizer=binary(alpha=1), bias_quantizer=quantized_bits(8, 3, alpha=1))(h)
    h = QActivation("quantized_relu(8,3)", name="qrelu1")(h)
    h = QDense(6, name="qd_ternary", kernel_quantizer=ternary(alpha=1), bias_quantizer=quantized_bits(8, 3, alpha=1))(h)
    h = k.layers.Activation("softmax", name="out")(h)
    model = k.Model(inp, h)
    rng = np.random.default_rng(17)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            new = [rng.normal(0, 0.6, w.shape) for w in ws]
            if layer.name == "qbn":  # gamma, beta, mean, variance
                new = [rng.uniform(0.5, 1.5, 4), rng.normal(0, 0.3, 4), rng.normal(0, 0.3, 4), rng.uniform(0.5, 2, 4)]
            layer.set_weights([w.astype(np.float32) for w in new])
    oracle = _synth(tmp_path_factory, model, "qkeras", {"Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1}})
    products = {layer.name: layer.spec.get("product") for layer in oracle.net.layers}
    assert products.get("qd_binary") == "weight_binary", products
    # hls4ml removes qbits (MergeLinearActivation); synth gives qd_bits its type, so the firmware quantizes
    types = {layer.name: str(layer.result_type) for layer in oracle.net.layers}
    assert "qbits" not in types and types["qd_bits"] == "ap_fixed<8,4,AP_RND_CONV,AP_SAT>", types
    _assert_exact(oracle)
    # on csim's own input to it, QKeras's QBatchNormalization (its default po2 quantizers) is csim's within a
    # step of the scale and bias types per value
    from fpgaflow.network.verify import csim_trace

    _, trace = csim_trace(oracle.hls_model, oracle.random_inputs(500, seed=1))
    bn_in = np.asarray(trace["qrelu0"], dtype=np.float32).reshape(-1, 5, 4)
    bn_out = model.get_layer("qbn")(bn_in, training=False).numpy()
    qbn = next(layer for layer in oracle.net.layers if layer.name == "qbn")
    step = {key: FixedType.parse(qbn.spec[f"{key}_type"]).lsb for key in ("scale", "bias")}
    got = np.asarray(trace["qbn"]).reshape(bn_out.shape)
    assert np.all(np.abs(got - bn_out) <= np.abs(bn_in) * step["scale"] + step["bias"] + 1e-5)


def test_qkeras_quantizers_hls4ml_types_wrongly(tmp_path_factory):
    """QActivations hls4ml 1.3 gives another type (keep_negative=False, symmetric=True,
    integer >= bits - 1, one merged into a QDense): with the types synth gives them the
    emulator equals csim on every layer, and each layer's csim output equals QKeras's on
    a grid of inputs through both saturations and every rounding tie."""
    from network_oracle import (
        QUANTIZER_BRANCHES,
        QUANTIZER_GRID_TYPE,
        quantizer_grid,
        quantizer_layer_outputs,
        quantizer_type_model,
    )

    from fpgaflow.network.verify import csim_trace

    oracle = _synth(tmp_path_factory, quantizer_type_model(), "qtypes", {"Model": {"Precision": QUANTIZER_GRID_TYPE}})
    x = quantizer_grid()
    result = oracle.compare(x)
    assert result["first_divergence"] is None, result["first_divergence"]
    assert result["bit_exact_fraction"] == 1.0
    _, trace = csim_trace(oracle.hls_model, x)
    keras = quantizer_layer_outputs(oracle.keras_model, x)
    for name in QUANTIZER_BRANCHES:
        layer = "fc" if name == "qb_dense" else name
        assert np.array_equal(np.asarray(trace[layer]).reshape(len(x), -1), keras[name]), name
    _assert_exact(oracle, n=1000)


def test_unsigned_weight_quantizers_hold_qkeras_values(tmp_path_factory):
    """Kernel and bias quantized_bits(keep_negative=False) (QKeras: 0 .. 2**integer - step):
    hls4ml 1.3 held them in the signed fixed<bits, integer+1> (ap_int<bits> when integer ==
    bits, its binary type when both are 1), which dropped the last bit of odd steps, wrapped
    8..15 to negative and read 0 as -1; synth gives them ap_ufixed<bits, integer>.  The
    emulator equals csim on every layer, and each layer's csim output equals QKeras's on
    csim's own input to it (the merged quantizing activations included; ``d_alpha``
    through hls4ml's ApplyAlpha layer, within float32's rounding of QKeras's sum)."""
    from network_oracle import UNSIGNED_WEIGHT_LAYERS, unsigned_weight_model

    from fpgaflow.network.verify import csim_trace

    model = unsigned_weight_model()
    oracle = _synth(tmp_path_factory, model, "unsigned_w", {"Model": {"Precision": "ap_fixed<16,6>"}})
    specs = {layer.name: layer.spec for layer in oracle.net.layers}
    for name, (*_, types, _) in UNSIGNED_WEIGHT_LAYERS.items():
        assert (specs[name]["weight_type"], specs[name]["bias_type"]) == types, name
    _assert_exact(oracle)
    x = oracle.random_inputs(2000, seed=2)
    _, trace = csim_trace(oracle.hls_model, oracle.net._input_raw(x))
    given = oracle.net.input_type.quantize(oracle.net._input_raw(x)).astype(np.float32)
    for name, (*_, activation) in UNSIGNED_WEIGHT_LAYERS.items():
        layer = model.get_layer(name)
        keras = layer(given.reshape(len(x), *layer.input_shape[1:])).numpy()
        if activation:
            keras = model.get_layer(f"{name}_q")(keras).numpy()
            got = np.asarray(trace[name]).reshape(keras.shape)
            assert np.array_equal(got, keras), (name, np.abs(got - keras).max())
        else:  # hls4ml's ApplyAlpha multiplies the scale back in
            got = np.asarray(trace[f"{name}_alpha"]).reshape(keras.shape)
            assert np.allclose(got, keras, rtol=2**-20, atol=0), (name, np.abs(got - keras).max())
        given = np.asarray(trace[name if activation else f"{name}_alpha"], dtype=np.float32)


# hard quantized_tanh / quantized_sigmoid (hls4ml's hard_tanh / hard_sigmoid), few bits
HARD_BRANCHES = {f"tanh{b}": f"quantized_tanh({b})" for b in range(1, 7)}
HARD_BRANCHES.update({f"tanh{b}_sym": f"quantized_tanh({b},symmetric=True)" for b in range(2, 7)})
HARD_BRANCHES.update({f"sigmoid{b}": f"quantized_sigmoid({b})" for b in range(1, 7)})
# io_stream: hls4ml 1.3.0 clones a stream at most 7 times
HARD_STREAM = ("tanh1", "tanh2", "tanh3_sym", "tanh5", "sigmoid1", "sigmoid2", "sigmoid5")


@pytest.mark.parametrize(
    ("backend", "io_type"),
    [("Vivado", "io_parallel"), pytest.param("Vitis", "io_stream", marks=pytest.mark.slow)],
)
def test_hard_tanh_and_sigmoid_quantizers_equal_qkeras(tmp_path_factory, backend, io_type):
    """quantized_tanh / quantized_sigmoid with 1 to 6 bits, symmetric or not, on every
    input of the input type from -3 to 3 (every rounding tie of every bit count) and
    beyond: csim equals QKeras, the emulator csim.  hls4ml 1.3 typed quantized_tanh(1)
    ap_int<1>, truncating and wrapping where QKeras rounds and clips (off by 1 on 5,121 of
    12,296 inputs, audit); synth gives it ap_fixed<1,1,AP_RND_CONV,AP_SAT> and says so."""
    import json

    import tensorflow as tf
    from qkeras import QActivation

    from fpgaflow.network.verify import csim_trace

    k = tf.keras
    inp = k.Input((8,), name="x")
    names = list(HARD_STREAM if io_type == "io_stream" else HARD_BRANCHES)
    outs = [QActivation(HARD_BRANCHES[name], name=name)(inp) for name in names]
    h = k.layers.Concatenate(name="hcat0")(outs[:2])
    for i, out in enumerate(outs[2:]):
        h = k.layers.Concatenate(name=f"hcat{i + 1}")([h, out])
    name = f"hard_{backend}_{io_type}".lower()
    config = {"Model": {"Precision": "ap_fixed<18,7>"}}
    project = keras_project(tmp_path_factory.mktemp(name), k.Model(inp, h), name, config, io_type, backend)
    oracle = synth_and_build(project)
    beyond = [-64, -9, -1.0001, -1e-9, 1e-9, 1.0001, 9, 63.9995]
    x = np.concatenate([np.arange(-3 * 2048, 3 * 2048) / 2048, beyond]).reshape(-1, 8)
    result = oracle.compare(x)
    assert result["first_divergence"] is None and result["bit_exact_fraction"] == 1.0, result["first_divergence"]
    _, trace = csim_trace(oracle.hls_model, x)
    model = oracle.keras_model
    keras = tf.keras.Model(model.inputs, [model.get_layer(n).output for n in names]).predict(x, verbose=0)
    for name, expected in zip(names, keras, strict=True):
        got = np.asarray(trace[name]).reshape(expected.shape)
        assert np.array_equal(got, expected), (name, int(np.sum(got != expected)))
    warnings = json.loads((oracle.project.build_dir / "report.json").read_text())["warnings"]
    note = "layer 'tanh1' (quantized_tanh(1)): hls4ml 1.3.0 would give it the type ap_int<1>"
    assert any(note in w for w in warnings), warnings
    _assert_exact(oracle, n=1000)


@pytest.mark.parametrize("activation", ["binary(alpha=1)", "ternary(alpha=1)", "ternary(alpha=1,threshold=0.2)"])
def test_batchnorm_thresholds_equal_qkeras(tmp_path_factory, activation):
    """hls4ml 1.3 rounds a merged BatchNormalization + binary threshold down to the input's
    step and compares x >= t: the firmware gave +1 one step below QKeras's threshold in
    every channel (audit); synth rounds it up and says so.  On every input of the input
    type from -4 to 4 csim equals QKeras, the emulator csim."""
    import json

    from fpgaflow.network.verify import csim_trace

    model = bn_activation_model(activation, [1.3, 0.7, 0.9, 1.6])
    name = "bnt_" + activation.split("(")[0]
    oracle = _synth(tmp_path_factory, model, name, {"Model": {"Precision": "ap_fixed<16,6>"}})
    assert [layer.spec["kind"] for layer in oracle.net.layers] == ["input", "bn_quantized_tanh"]
    x = np.repeat((np.arange(-4 * 1024, 4 * 1024) / 1024)[:, None], 4, axis=1)
    result = oracle.compare(x)
    assert result["first_divergence"] is None and result["bit_exact_fraction"] == 1.0, result["first_divergence"]
    y, _ = csim_trace(oracle.hls_model, x)
    y = np.asarray(y).reshape(x.shape)
    if activation.startswith("binary"):
        y = 2 * y - 1  # ap_uint<1>: 0 is -1
    keras = model.predict(x, verbose=0)
    assert np.array_equal(y, keras), [int(np.sum(y[:, c] != keras[:, c])) for c in range(4)]
    warnings = json.loads((oracle.project.build_dir / "report.json").read_text())["warnings"]
    moved = [w for w in warnings if "hls4ml rounds the threshold down" in w]
    assert len(moved) == activation.startswith("binary"), moved


def test_signed_integer_weight_quantizers_hold_qkeras_values(tmp_path_factory):
    """Kernel and bias quantized_bits(bits, bits) (QKeras: -2**bits .. 2**bits - 2 in steps
    of 2): hls4ml 1.3 held them in ap_int<bits>, which wraps half of them, and multiplied by
    an ap_int<2> kernel as by ternary weights; synth gives them ap_fixed<bits, bits+1> (and
    the product is the plain one).  QConv2D, QConv1D and QDense, symmetric, alpha='auto_po2'
    and a numeric alpha, beside the signed quantizers hls4ml types right.  The emulator
    equals csim on every layer, and each layer's csim output equals QKeras's on csim's own
    input to it (the merged quantizing activations included; the alpha layers through
    hls4ml's ApplyAlpha)."""
    from network_oracle import SIGNED_WEIGHT_LAYERS, signed_weight_model

    from fpgaflow.network.verify import csim_trace

    model = signed_weight_model()
    # hls4ml gives an alpha='auto_po2' ApplyAlpha layer the Model's default precision as its result type
    hls_config = {"Model": {"Precision": "ap_fixed<32,22>"}, "LayerName": {"x": {"Precision": "ap_fixed<8,3>"}}}
    oracle = _synth(tmp_path_factory, model, "signed_w", hls_config)
    specs = {layer.name: layer.spec for layer in oracle.net.layers}
    for name, (*_, types, _) in SIGNED_WEIGHT_LAYERS.items():
        assert (specs[name]["weight_type"], specs[name]["bias_type"]) == types, name
        assert specs[name].get("product", "mult") == "mult", name
    _assert_exact(oracle)
    x = oracle.random_inputs(2000, seed=2)
    _, trace = csim_trace(oracle.hls_model, oracle.net._input_raw(x))
    outputs = {"x": oracle.net.input_type.quantize(oracle.net._input_raw(x))}
    for name, (*_, activation) in SIGNED_WEIGHT_LAYERS.items():
        layer = model.get_layer(name)
        given = outputs[{"c2d": "x", "c1d": "c2d"}.get(name, "c1d")]
        keras = layer(np.asarray(given, dtype=np.float32).reshape(len(x), *layer.input_shape[1:])).numpy()
        if activation:
            keras = model.get_layer(f"{name}_q")(keras).numpy()
        got = np.asarray(trace[name if activation else f"{name}_alpha"]).reshape(keras.shape)  # ApplyAlpha: the scale
        assert np.array_equal(got, keras), (name, np.abs(got - keras).max(), np.mean(got != keras))
        outputs[name] = got


def test_ternary_product_multiplies_a_minus_two_weight_as_plus_one(tmp_path_factory):
    """A 2-bit signed integer weight type (``ap_int<2>``, e.g. a LayerName weight
    precision) makes hls4ml multiply with its weight_ternary product: 0 gives 0, -1 the
    negated input, any other value (the type's -2) the input.  The emulator multiplied by
    -2; it now reads -2 as +1 as the firmware does, and synth says so naming the layer
    (``ap_fixed<2,2>`` holds the same values and multiplies by them: csim equals Keras)."""
    import tensorflow as tf

    from fpgaflow.network.verify import csim_trace

    k = tf.keras
    inp = k.Input((6,), name="x")
    heads = [k.layers.Dense(5, name=name)(inp) for name in ("fc_int", "fc_fixed")]
    model = k.Model(inp, k.layers.Concatenate(name="cat")(heads))
    weights = np.random.default_rng(41).integers(-2, 2, (6, 5)).astype(np.float32)  # -2..1, each value taken
    for name in ("fc_int", "fc_fixed"):
        model.get_layer(name).set_weights([weights, np.zeros(5, np.float32)])
    types = {"fc_int": "ap_int<2>", "fc_fixed": "ap_fixed<2,2>"}
    hls_config = {
        "Model": {"Precision": "ap_fixed<16,6>"},
        "LayerName": {name: {"Precision": {"weight": t, "bias": "ap_int<2>"}} for name, t in types.items()},
    }
    oracle = _synth(tmp_path_factory, model, "ternary_product", hls_config)
    specs = {layer.name: layer.spec for layer in oracle.net.layers}
    assert (specs["fc_int"]["product"], specs["fc_fixed"]["product"]) == ("weight_ternary", "mult")
    _assert_exact(oracle)
    x = oracle.random_inputs(500, seed=4)
    _, trace = csim_trace(oracle.hls_model, oracle.net._input_raw(x))
    given = oracle.net.input_type.quantize(oracle.net._input_raw(x)).astype(np.float32)
    assert np.array_equal(np.asarray(trace["fc_fixed"]).reshape(-1, 5), given @ weights)
    assert np.array_equal(np.asarray(trace["fc_int"]).reshape(-1, 5), given @ np.where(weights == -2, 1, weights))
    warnings = json.loads((oracle.project.build_dir / "report.json").read_text())["warnings"]
    minus_two = int(np.sum(weights == -2))
    assert any(
        "layer 'fc_int' (Dense): its weight type ap_int<2> makes hls4ml 1.3.0 multiply by its weight_ternary product"
        in w
        and f"{minus_two} of 30 weights are -2, which it multiplies as +1" in w
        and "ap_fixed<2,2>" in w
        for w in warnings
    ), warnings
    assert not any("'fc_fixed'" in w for w in warnings)


def test_dense_model_io_stream(tmp_path_factory):
    import tensorflow as tf

    k = tf.keras
    blocks = [
        (10, k.layers.Activation("relu", name="relu0"), 4.0),
        (8, k.layers.Activation("sigmoid", name="sigmoid"), 8.0),
        (6, k.layers.Activation("tanh", name="tanh"), 6.0),
        (5, k.layers.Activation("softmax", name="softmax"), 4.0),
    ]
    model = _build(k, 8, blocks, seed=23)
    hls_config = {
        "Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"},
        "LayerName": {"fc1": {"Strategy": "Resource", "ReuseFactor": 2}},
    }
    oracle = _synth(tmp_path_factory, model, "stream", hls_config, io_type="io_stream")
    assert oracle.net.manifest.meta["io_type"] == "io_stream"
    _assert_exact(oracle)


def test_conv1d_modes_vitis_and_verify_cli(tmp_path_factory, capsys):
    """Conv1D with 'same' padding and strides, Resource strategy, a pointwise conv, a
    softmax over the channel axis of a 2-D tensor, QKeras binary and quantized_tanh
    activations (a ternary QActivation gets no function call from hls4ml 1.3.0: see
    test_network_frontend); Vitis backend; checked end to end by ``fpgaflow verify --json``."""
    import json

    import tensorflow as tf
    from qkeras import QActivation

    from fpgaflow.cli import main

    k = tf.keras
    inp = k.Input(shape=(11, 3), name="x")
    h = k.layers.Conv1D(4, 3, strides=2, padding="same", name="conv_same")(inp)
    h = k.layers.Activation("relu", name="relu_a")(h)
    h = k.layers.Conv1D(3, 1, name="conv_pw")(h)
    h = k.layers.Activation("softmax", name="softmax_2d")(h)
    h = k.layers.Conv1D(4, 2, padding="valid", name="conv_res")(h)
    h = k.layers.Flatten(name="flat")(h)
    h = k.layers.Dense(8, name="d0")(h)
    h = QActivation("quantized_tanh(6)", name="qtanh")(h)
    h = k.layers.Dense(8, name="d1")(h)
    h = QActivation("binary(alpha=1)", name="qbinary")(h)
    h = k.layers.Dense(3, name="d2")(h)
    model = k.Model(inp, h)
    rng = np.random.default_rng(29)
    for layer in model.layers:
        if layer.get_weights():
            layer.set_weights([rng.normal(0, 1.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    folder = tmp_path_factory.mktemp("conv")
    files = save_keras(model, folder / "src", "conv")
    config = {
        "KerasJson": "conv.json",
        "KerasH5": "conv_weights.h5",
        "Backend": "Vitis",
        "IOType": "io_parallel",
        "HLSConfig": {
            "Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"},
            "LayerName": {"conv_res": {"Strategy": "Resource", "ReuseFactor": 2}},
        },
    }
    project = write_project(folder / "project", config, files)
    assert main(["synth", str(project)]) == 0
    capsys.readouterr()
    status = main(["verify", str(project), "--samples", "3000", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["first_divergence"] is None, result["first_divergence"]
    assert result["bit_exact_fraction"] == 1.0 and result["samples"] == 3000
    assert 0.0 <= result["float_model"]["argmax_agreement"] <= 1.0
    assert status == 0


def test_resource_kernels_with_saturating_accumulators(tmp_path_factory):
    """A saturating accumulator makes the order of additions visible: the
    dense_resource kernels (RF <= n_in; RF > n_in, which hls4ml's valid reuse factors
    make a multiple of n_in) add each output's products in their own order."""
    import tensorflow as tf

    k = tf.keras
    blocks = [(12, None, 6.0), (8, None, 6.0), (6, None, 6.0), (4, None, 3.0)]
    model = _build(k, 16, blocks, seed=31)
    sat = {"accum": "ap_fixed<12,3,AP_TRN,AP_SAT>", "result": "ap_fixed<12,3,AP_RND,AP_SAT>"}
    names = {
        "fc0": {"Strategy": "Resource", "ReuseFactor": 4, "Precision": dict(sat)},
        "fc1": {"Strategy": "Resource", "ReuseFactor": 24, "Precision": dict(sat)},
        "fc2": {"Strategy": "Resource", "ReuseFactor": 16, "Precision": dict(sat)},
        "fc3": {"Strategy": "Resource", "ReuseFactor": 3, "Precision": dict(sat)},
    }
    hls_config = {"Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"}, "LayerName": names}
    oracle = _synth(tmp_path_factory, model, "resource_sat", hls_config)
    specs = {layer.name: layer.spec for layer in oracle.net.layers}
    rfs = [(specs[f"fc{i}"]["reuse_factor"], specs[f"fc{i}"]["n_in"]) for i in range(3)]
    assert rfs == [(4, 16), (24, 12), (16, 8)], rfs
    _assert_exact(oracle)


def test_power_of_two_weights_and_alpha_scales(tmp_path_factory):
    """QKeras po2 weights (``weight_exponential`` shift products) and quantizers with
    ``alpha='auto'`` / ``'auto_po2'`` (hls4ml's ApplyAlpha layers, po2 scales included)."""
    import tensorflow as tf
    from qkeras import QActivation, QDense
    from qkeras.quantizers import quantized_bits, quantized_po2

    k = tf.keras
    inp = k.Input((8,), name="x")
    h = QDense(
        6,
        name="q_po2alpha",
        kernel_quantizer=quantized_bits(6, 0, alpha="auto_po2"),
        bias_quantizer=quantized_bits(6, 0, alpha=1),
    )(inp)
    h = QActivation("quantized_relu(6,2)", name="r0")(h)
    h = QDense(
        6,
        name="q_auto",
        kernel_quantizer=quantized_bits(8, 1, alpha="auto"),
        bias_quantizer=quantized_bits(8, 3, alpha=1),
    )(h)
    h = QActivation("quantized_relu(8,3)", name="r1")(h)
    h = QDense(4, name="q_po2", kernel_quantizer=quantized_po2(4), bias_quantizer=quantized_bits(8, 3, alpha=1))(h)
    model = k.Model(inp, h)
    rng = np.random.default_rng(41)
    for layer in model.layers:
        if layer.get_weights():
            layer.set_weights([rng.normal(0, 0.8, w.shape).astype(np.float32) for w in layer.get_weights()])
    oracle = _synth(tmp_path_factory, model, "po2", {"Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1}})
    classes = [layer.spec["class_name"] for layer in oracle.net.layers]
    assert classes.count("ApplyAlpha") == 2, classes
    _assert_exact(oracle)


def test_power_of_two_weights_whose_shift_drops_bits(tmp_path_factory):
    """po2 weights small enough that ``weight_exponential``'s right shift drops bits below
    its product type's LSB (``floor``, then the sign), as in the public
    qkeras_mnist_dense example (quantized_po2(4) on quantized_relu(2) inputs): a QConv1D,
    a Resource QDense (transposed weights) and a Latency QDense."""
    import tensorflow as tf
    from qkeras import QActivation, QConv1D, QDense
    from qkeras.quantizers import quantized_bits, quantized_po2

    k = tf.keras
    inp = k.Input((12, 3), name="x")
    h = QActivation("quantized_relu(2)", name="r_in")(inp)
    h = QConv1D(4, 3, name="q_conv", kernel_quantizer=quantized_po2(4, 1), bias_quantizer=quantized_bits(4, 0))(h)
    h = QActivation("quantized_relu(3)", name="r0")(h)
    h = k.layers.Flatten(name="flat")(h)
    h = QDense(8, name="q_res", kernel_quantizer=quantized_po2(4, 1), bias_quantizer=quantized_bits(4, 0))(h)
    h = QActivation("quantized_relu(3,1)", name="r1")(h)
    h = QDense(4, name="q_lat", kernel_quantizer=quantized_po2(5, 1), bias_quantizer=quantized_bits(4, 0))(h)
    model = k.Model(inp, h)
    rng = np.random.default_rng(43)
    for layer in model.layers:
        if layer.get_weights():
            kernel, bias = layer.get_weights()
            layer.set_weights([rng.normal(0, 0.05, kernel.shape).astype(np.float32), rng.normal(0, 0.3, bias.shape)])
    hls_config = {
        "Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"},
        "LayerName": {"q_res": {"Strategy": "Resource", "ReuseFactor": 4}},
    }
    oracle = _synth(tmp_path_factory, model, "po2_lossy", hls_config)
    specs = {layer.name: layer.spec for layer in oracle.net.layers}
    for name in ("q_conv", "q_res", "q_lat"):  # the lossy shift path is the one under test
        assert "weight_shift" in specs[name]["arrays"], name
    _assert_exact(oracle, n=2000)


def test_batchnorm_merged_with_binary_and_ternary_tanh(tmp_path_factory):
    """BatchNormalization followed by a binary/ternary QActivation: hls4ml merges them
    into threshold layers (BatchNormalizationQuantizedTanh); the Dense after the binary
    one multiplies 1-bit data (``data_binary``)."""
    import tensorflow as tf
    from qkeras import QActivation, QDense
    from qkeras.quantizers import quantized_bits

    k = tf.keras
    q = {"kernel_quantizer": quantized_bits(6, 0, alpha=1), "bias_quantizer": quantized_bits(6, 0, alpha=1)}
    inp = k.Input((10,), name="x")
    h = k.layers.BatchNormalization(name="bn0")(QDense(8, name="q0", **q)(inp))
    h = QActivation("binary(alpha=1)", name="binary")(h)
    h = k.layers.BatchNormalization(name="bn1")(QDense(8, name="q1", **q)(h))
    h = QActivation("ternary(alpha=1)", name="ternary")(h)
    model = k.Model(inp, k.layers.Dense(3, name="out")(h))
    rng = np.random.default_rng(43)
    for layer in model.layers:
        ws = layer.get_weights()
        if layer.name.startswith("bn"):
            n = ws[0].shape[0]
            layer.set_weights(
                [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.5, n), rng.normal(0, 0.5, n), rng.uniform(0.5, 2, n)]
            )
        elif ws:
            layer.set_weights([rng.normal(0, 0.8, w.shape).astype(np.float32) for w in ws])
    oracle = _synth(tmp_path_factory, model, "bnq", {"Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1}})
    modes = [layer.spec.get("mode") for layer in oracle.net.layers if layer.spec["kind"] == "bn_quantized_tanh"]
    assert modes == ["binary", "ternary"]
    assert {layer.spec.get("product") for layer in oracle.net.layers} >= {"data_binary"}
    _assert_exact(oracle)


def test_argmax_softmax_with_a_saturating_result_type(tmp_path_factory):
    """An argmax softmax whose result type saturates (``Model: {Precision:
    ap_fixed<12,4,AP_RND,AP_SAT>}``, or its own result type): the emulator's cast of its
    1 went through sim.fixed's clip on a 0-d value and raised numpy's TypeError ('return
    arrays must be of ArrayType'; AP_SAT_ZERO: item assignment) before any output (found
    by fuzzing); it now equals csim."""
    import tensorflow as tf

    k = tf.keras
    blocks = [(6, k.layers.Activation("softmax", name=f"argmax_{mode}"), 8.0) for mode in ("sat", "sat_zero")]
    model = _build(k, 5, blocks, seed=13)
    hls_config = {
        "Model": {"Precision": "ap_fixed<12,4,AP_RND,AP_SAT>"},
        "LayerName": {
            "argmax_sat": {"Implementation": "argmax"},
            "argmax_sat_zero": {
                "Implementation": "argmax",
                "Precision": {"result": "ap_fixed<4,2,AP_TRN,AP_SAT_ZERO>"},
            },
        },
    }
    oracle = _synth(tmp_path_factory, model, "argmax_sat", hls_config)
    types = {layer.name: str(layer.result_type) for layer in oracle.net.layers}
    assert types["argmax_sat"] == "ap_fixed<12,4,AP_RND,AP_SAT>", types
    assert types["argmax_sat_zero"] == "ap_fixed<4,2,AP_TRN,AP_SAT_ZERO>", types
    _assert_exact(oracle)
