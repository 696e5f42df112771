"""Bit-exactness of Conv2D/QConv2D, pooling (max, average, global; 1-d and 2-d),
zero padding, Flatten and merges inside conv pipelines, against hls4ml's C
simulation, in io_parallel and io_stream, Latency and Resource strategies.

One compile per model (module-scoped fixtures); every layer's output is compared
through hls4ml's trace, not only the network output."""

from __future__ import annotations

import json

import numpy as np
import pytest
from network_oracle import keras_project, synth_and_build

pytestmark = pytest.mark.oracle

N_SAMPLES = 10_000


def synth(tmp_path_factory, model, name: str, hls_config: dict, io_type: str, backend: str = "Vivado"):
    return synth_and_build(keras_project(tmp_path_factory.mktemp(name), model, name, hls_config, io_type, backend))


def randomize_weights(model, seed: int, scale: float = 0.5) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([rng.normal(0, scale, w.shape).astype(np.float32) for w in ws])


def assert_every_layer_exact(oracle, n: int = N_SAMPLES, seed: int = 0) -> dict:
    """The network output and every traced layer bit-identical to the C simulation."""
    from fpgaflow.network.verify import csim_trace, first_divergence, raw_of

    x = oracle.net._input_raw(oracle.random_inputs(n, seed=seed))
    csim_y, csim_layers = csim_trace(oracle.hls_model, x)
    ours = oracle.net.trace(x)
    assert first_divergence(oracle.net, ours, csim_layers) is None, first_divergence(oracle.net, ours, csim_layers)
    out = ours[oracle.net.output_name].raw
    expected = raw_of(csim_y, oracle.net.output_type).reshape(out.shape)
    np.testing.assert_array_equal(out, expected)
    assert oracle.predict_agrees(x, csim_y) == {"scipy": True, "numpy": True}
    compared = [layer.name for layer in oracle.net.layers if layer.name in csim_layers]
    return {"compared_layers": compared, "outputs": out}


def kinds(oracle) -> dict[str, str]:
    return {layer.name: layer.spec["kind"] for layer in oracle.net.layers}


# ---------------------------------------------------------------- io_parallel
@pytest.fixture(scope="module")
def conv2d_parallel(tmp_path_factory):
    """Conv2D (same, Latency) -> relu -> MaxPooling2D -> QConv2D (valid, strided,
    Resource) -> AveragePooling2D (same, narrow saturating accumulator) -> Flatten,
    a 1x1 (pointwise) Conv2D, GlobalAverage/GlobalMax pooling, concatenations, Dense."""
    import tensorflow as tf
    from qkeras import QConv2D
    from qkeras.quantizers import quantized_bits

    k = tf.keras
    inp = k.Input(shape=(8, 8, 2), name="x")
    c1 = k.layers.Conv2D(3, 3, padding="same", name="c1")(inp)
    r1 = k.layers.Activation("relu", name="r1")(c1)
    p1 = k.layers.MaxPooling2D(2, name="p1")(r1)
    c2 = QConv2D(
        4,
        (2, 3),
        strides=(1, 2),
        name="c2",
        kernel_quantizer=quantized_bits(6, 0, alpha=1),
        bias_quantizer=quantized_bits(6, 0, alpha=1),
    )(p1)
    p2 = k.layers.AveragePooling2D(2, padding="same", name="p2")(c2)
    f2 = k.layers.Flatten(name="f2")(p2)
    pw = k.layers.Conv2D(2, 1, name="pw")(p1)
    p3 = k.layers.MaxPooling2D((3, 2), strides=(1, 2), padding="same", name="p3")(pw)
    f3 = k.layers.Flatten(name="f3")(p3)
    g1 = k.layers.GlobalAveragePooling2D(name="g1")(r1)
    g2 = k.layers.GlobalMaxPooling2D(name="g2")(c1)
    # the 1-d family on the same features: (16, 3) sequence
    seq = k.layers.Reshape((16, 3), name="seq")(p1)
    zp1 = k.layers.ZeroPadding1D((1, 2), name="zp1")(seq)
    mp1 = k.layers.MaxPooling1D(3, strides=2, padding="same", name="mp1")(zp1)
    ap1 = k.layers.AveragePooling1D(4, strides=3, padding="same", name="ap1")(seq)
    gm1 = k.layers.GlobalMaxPooling1D(name="gm1")(mp1)
    ga1 = k.layers.GlobalAveragePooling1D(name="ga1")(ap1)
    add1 = k.layers.Add(name="add1")([gm1, ga1])
    fa1 = k.layers.Flatten(name="fa1")(ap1)
    h = k.layers.Concatenate(name="cat1")([f2, g1])
    h = k.layers.Concatenate(name="cat2")([h, g2])
    h = k.layers.Concatenate(name="cat3")([h, f3])
    h = k.layers.Concatenate(name="cat4")([h, add1])
    h = k.layers.Concatenate(name="cat5")([h, fa1])
    zp2 = k.layers.ZeroPadding2D(((1, 0), (0, 2)), name="zp2")(p1)
    c4 = k.layers.Conv2D(2, 2, strides=2, name="c4")(zp2)
    h = k.layers.Concatenate(name="cat6")([h, k.layers.Flatten(name="f4")(c4)])
    # max pooling with padding on an unsigned type: the firmware pads with 2**(W-1)
    mpu = k.layers.MaxPooling2D(3, strides=2, padding="same", name="mpu")(r1)
    h = k.layers.Concatenate(name="cat7")([h, k.layers.Flatten(name="f5")(mpu)])
    # 1-d depthwise and separable (hls4ml: depthwise + pointwise) convolutions; the 2-d ones
    # cannot share an io_parallel model with them (hls4ml 1.3.0's nnet_sepconv1d_latency.h
    # and nnet_sepconv2d_latency.h have the same include guard), see the geometries test
    dw1 = k.layers.Activation("relu", name="rdw1")(k.layers.DepthwiseConv1D(3, padding="same", name="dw1")(seq))
    sep1 = k.layers.Activation("relu", name="rsep1")(k.layers.SeparableConv1D(2, 3, strides=2, name="sep1")(dw1))
    h = k.layers.Concatenate(name="cat8")([h, k.layers.Flatten(name="f7")(sep1)])
    out = k.layers.Dense(5, name="out")(h)
    model = k.Model(inp, out)
    randomize_weights(model, seed=3)
    hls_config = {
        "Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"},
        "LayerName": {
            "c1": {"ParallelizationFactor": 16, "Precision": {"result": "ap_fixed<16,6,AP_RND,AP_SAT>"}},
            "r1": {"Precision": {"result": "ap_ufixed<8,4,AP_RND,AP_SAT>"}},
            "c2": {"Strategy": "Resource", "ReuseFactor": 6, "Precision": {"result": "ap_fixed<18,8>"}},
            "p2": {"Precision": {"accum": "ap_fixed<14,5,AP_RND,AP_SAT>", "result": "ap_fixed<10,4,AP_RND,AP_SAT>"}},
            "pw": {"Strategy": "Resource", "ReuseFactor": 3},
            "g1": {"Precision": {"result": "ap_fixed<12,4,AP_RND_CONV,AP_SAT>"}},
            "out": {"Strategy": "Resource", "ReuseFactor": 7},
            "ap1": {"Precision": {"accum": "ap_fixed<15,6,AP_RND,AP_SAT>", "result": "ap_fixed<11,5,AP_RND,AP_SAT>"}},
            "ga1": {"Precision": {"result": "ap_fixed<10,4,AP_RND,AP_SAT>"}},
        },
    }
    return synth(tmp_path_factory, model, "conv2d_parallel", hls_config, "io_parallel")


def test_conv2d_pipeline_io_parallel(conv2d_parallel):
    found = kinds(conv2d_parallel)
    assert found["c1"] == "conv2d" and found["pw"] == "conv2d"
    assert found["p1"] == "pooling2d" and found["g1"] == "global_pooling2d"
    spec = {layer.name: layer.spec for layer in conv2d_parallel.net.layers}
    assert spec["c2"]["strategy"] == "resource" and spec["c2"]["reuse_factor"] == 6
    assert spec["c1"]["parallelization_factor"] == 16
    assert spec["p2"]["pool_op"] == "average" and spec["p2"]["pad_bottom"] + spec["p2"]["pad_right"] > 0
    assert spec["c1"]["pad_top"] == 1 and not spec["p1"]["stream"] and found["zp2"] == "zeropad2d"
    result = assert_every_layer_exact(conv2d_parallel)
    layers_1d = {
        "zp1",
        "mp1",
        "ap1",
        "gm1",
        "ga1",
        "add1",
        "zp2",
        "c4",
        "mpu",
        "dw1",
        "sep1_depthwise",
    }
    assert {"c1", "p1", "c2", "p2", "pw", "p3", "g1", "g2", "cat3", "out"} | layers_1d <= set(result["compared_layers"])
    assert len(np.unique(result["outputs"][:, 0])) > 100  # the inputs exercise the network
    mpu = conv2d_parallel.net.trace(conv2d_parallel.random_inputs(200, seed=1))["mpu"].values
    assert (mpu[:, -1, :, :] == 8.0).any()  # windows over the padding do show the pad value


# ---------------------------------------------------------------- io_stream
@pytest.fixture(scope="module")
def conv2d_stream(tmp_path_factory):
    """The same kinds of layers through hls4ml's stream kernels: zero padding inserted
    before the padded convolutions, line-buffer pooling, clones for reused outputs."""
    import tensorflow as tf

    k = tf.keras
    inp = k.Input(shape=(8, 8, 2), name="x")
    c1 = k.layers.Conv2D(3, 3, padding="same", name="c1")(inp)
    r1 = k.layers.Activation("relu", name="r1")(c1)
    p1 = k.layers.MaxPooling2D(2, name="p1")(r1)
    c2 = k.layers.Conv2D(4, (3, 3), padding="same", name="c2")(p1)
    p2 = k.layers.AveragePooling2D(2, name="p2")(c2)
    f2 = k.layers.Flatten(name="f2")(p2)
    c3 = k.layers.Conv2D(2, (2, 3), strides=(2, 1), name="c3")(p1)
    g1 = k.layers.GlobalAveragePooling2D(name="g1")(c2)
    g2 = k.layers.GlobalMaxPooling2D(name="g2")(c3)
    # the 1-d family: Conv1D (zero padding inserted), pooling, merges, on a (16, 3) sequence
    seq = k.layers.Reshape((16, 3), name="seq")(p1)
    c1d = k.layers.Conv1D(2, 3, padding="same", name="c1d")(seq)
    mp1 = k.layers.MaxPooling1D(2, name="mp1")(c1d)
    ap1 = k.layers.AveragePooling1D(2, name="ap1")(mp1)
    gm1 = k.layers.GlobalMaxPooling1D(name="gm1")(ap1)
    ga1 = k.layers.GlobalAveragePooling1D(name="ga1")(c1d)
    mul1 = k.layers.Multiply(name="mul1")([gm1, ga1])
    max1 = k.layers.Maximum(name="max1")([gm1, ga1])
    h = k.layers.Concatenate(name="cat1")([f2, g1])
    h = k.layers.Concatenate(name="cat2")([h, g2])
    h = k.layers.Concatenate(name="cat3")([h, mul1])
    h = k.layers.Concatenate(name="cat4")([h, max1])
    dw = k.layers.Activation("relu", name="rdw")(k.layers.DepthwiseConv2D(3, padding="same", name="dw")(p1))
    sep = k.layers.Activation("relu", name="rsep")(k.layers.SeparableConv2D(2, (2, 3), name="sep")(dw))
    h = k.layers.Concatenate(name="cat5")([h, k.layers.Flatten(name="f6")(sep)])
    # 'valid': hls4ml 1.3.0 mis-wires two padded convolutions reading one cloned stream
    dw1 = k.layers.Activation("relu", name="rdw1")(k.layers.DepthwiseConv1D(3, name="dw1")(seq))
    sep1 = k.layers.Activation("relu", name="rsep1")(k.layers.SeparableConv1D(2, 3, name="sep1")(dw1))
    h = k.layers.Concatenate(name="cat6")([h, k.layers.Flatten(name="f7")(sep1)])
    out = k.layers.Dense(5, name="out")(h)
    model = k.Model(inp, out)
    randomize_weights(model, seed=4)
    hls_config = {
        "Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"},
        "LayerName": {
            "c1": {"ConvImplementation": "Encoded"},
            "p1": {"ConvImplementation": "Encoded"},
            "c2": {"Strategy": "Resource", "ReuseFactor": 4, "Precision": {"result": "ap_fixed<18,8>"}},
            "p2": {"Precision": {"accum": "ap_fixed<14,5,AP_RND,AP_SAT>", "result": "ap_fixed<10,4,AP_RND,AP_SAT>"}},
            "c3": {"Strategy": "Resource", "ReuseFactor": 2, "Precision": {"result": "ap_fixed<16,7,AP_RND,AP_SAT>"}},
            "g1": {"Precision": {"accum": "ap_fixed<20,9,AP_RND,AP_SAT>", "result": "ap_fixed<12,4,AP_RND,AP_SAT>"}},
            "c1d": {"Strategy": "Resource", "ReuseFactor": 3, "Precision": {"result": "ap_fixed<14,6,AP_RND,AP_SAT>"}},
            "ap1": {"Precision": {"accum": "ap_fixed<13,5,AP_RND,AP_SAT>", "result": "ap_fixed<10,4,AP_RND,AP_SAT>"}},
            "ga1": {"Precision": {"accum": "ap_fixed<18,8>", "result": "ap_fixed<10,4,AP_RND,AP_SAT>"}},
            "mul1": {"Precision": {"result": "ap_fixed<12,5,AP_RND,AP_SAT>"}},
            "dw": {"Strategy": "Resource", "ReuseFactor": 3},
            "sep": {"Strategy": "Resource", "ReuseFactor": 6},
            "dw1": {"Strategy": "Resource", "ReuseFactor": 3},
        },
    }
    return synth(tmp_path_factory, model, "conv2d_stream", hls_config, "io_stream")


def test_conv2d_pipeline_io_stream(conv2d_stream):
    found = kinds(conv2d_stream)
    assert {"zeropad2d", "zeropad1d", "clone"} <= set(found.values())
    spec = {layer.name: layer.spec for layer in conv2d_stream.net.layers}
    assert spec["p2"]["stream"] and spec["c1"]["pad_left"] == 0  # padding moved into the zeropad layer
    assert spec["c1"]["implementation"] == spec["p1"]["implementation"] == "encoded"
    assert spec["c2"]["implementation"] == "linebuffer"
    result = assert_every_layer_exact(conv2d_stream)
    layers_1d = {"c1d", "mp1", "ap1", "gm1", "ga1", "mul1", "max1", "dw", "sep_depthwise", "sep_pointwise", "dw1"}
    assert {"c1", "p1", "c2", "p2", "c3", "g1", "g2", "out"} | layers_1d <= set(result["compared_layers"])


def test_stream_pooling_with_padding_is_refused(tmp_path_factory):
    """hls4ml's stream pooling asserts 'valid' padding: the export says so by name."""
    import tensorflow as tf

    from fpgaflow.project import ProjectError

    k = tf.keras
    inp = k.Input(shape=(5, 5, 1), name="x")
    out = k.layers.MaxPooling2D(2, padding="same", name="bad_pool")(inp)
    model = k.Model(inp, out)
    with pytest.raises((ProjectError, ValueError), match="bad_pool.*io_stream pooling"):
        synth(tmp_path_factory, model, "bad_pool", {"Model": {"Precision": "ap_fixed<16,6>"}}, "io_stream")


# ------------------------------------------------- a typical physicist's CNN
def physics_cnn():
    """Conv2D -> BatchNorm (folded into the conv) -> relu -> MaxPooling2D ->
    QConv2DBatchnorm -> quantized_relu -> BatchNorm (standalone) -> Flatten -> QDense
    -> softmax, on a 10x10 one-channel image."""
    import tensorflow as tf
    from qkeras import QActivation, QConv2DBatchnorm, QDense
    from qkeras.quantizers import quantized_bits

    k = tf.keras
    inp = k.Input(shape=(10, 10, 1), name="x")
    h = k.layers.Conv2D(4, 3, use_bias=False, name="c1")(inp)
    h = k.layers.BatchNormalization(name="bn1")(h)
    h = k.layers.Activation("relu", name="r1")(h)
    h = k.layers.MaxPooling2D(2, name="mp")(h)
    h = QConv2DBatchnorm(
        4,
        3,
        padding="same",
        name="qcbn",
        kernel_quantizer=quantized_bits(8, 0, alpha=1),
        bias_quantizer=quantized_bits(8, 3, alpha=1),
    )(h)
    h = QActivation("quantized_relu(8,3)", name="qr")(h)
    h = k.layers.BatchNormalization(name="bn2")(h)
    h = k.layers.Flatten(name="fl")(h)
    h = QDense(
        10, name="d", kernel_quantizer=quantized_bits(8, 0, alpha=1), bias_quantizer=quantized_bits(8, 0, alpha=1)
    )(h)
    h = k.layers.Activation("softmax", name="sm")(h)
    model = k.Model(inp, h)
    randomize_weights(model, seed=5)
    for layer in model.layers:  # positive variances and scales
        names = [v.name for v in layer.weights]
        if any("variance" in n for n in names):
            ws = layer.get_weights()
            fixed = [
                np.abs(w) + 0.5 if ("variance" in n or "gamma" in n) else w for w, n in zip(ws, names, strict=True)
            ]
            layer.set_weights([w.astype(np.float32) for w in fixed])
    return model


PHYSICS_CONFIG = {"Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Resource"}}


def test_physics_cnn_resource_io_parallel(tmp_path_factory):
    """Resource strategy everywhere; hls4ml 1.3.0 transposes QConv2DBatchnorm's kernel
    twice for Resource, and the emulator must read it as the firmware does."""
    oracle = synth(tmp_path_factory, physics_cnn(), "physics_cnn", PHYSICS_CONFIG, "io_parallel")
    found = kinds(oracle)
    assert found["qcbn"] == "conv2d" and found["bn2"] == "batchnorm" and "bn1" not in found  # bn1 folded
    result = assert_every_layer_exact(oracle)
    assert {"c1", "mp", "qcbn", "bn2", "d", "sm"} <= set(result["compared_layers"])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["Vivado", "Vitis"])
def test_physics_cnn_resource_io_stream(tmp_path_factory, backend):
    name = f"physics_cnn_stream_{backend.lower()}"
    oracle = synth(tmp_path_factory, physics_cnn(), name, PHYSICS_CONFIG, "io_stream", backend=backend)
    assert oracle.net.manifest.meta["backend"] == backend
    assert_every_layer_exact(oracle)


# ------------------------------------------- QConv2DBatchnorm as QKeras folds it
# branches: (kernel quantizer, bias quantizer, use_bias); quantized_bits(6,0) is QKeras's
# default alpha, which it turns into per-filter 'auto_po2' scales (hls4ml's ApplyAlpha)
FOLDED_BRANCHES = {
    "qcbn": ("quantized_bits(6,0,alpha=1)", "quantized_bits(8,3,alpha=1)", True),
    "qcbn_nobq": ("quantized_bits(6,0,alpha=1)", None, True),
    "qcbn_nob": ("quantized_bits(6,0,alpha=1)", "quantized_bits(8,3,alpha=1)", False),
    "qcbn_nokq": (None, "quantized_bits(8,3,alpha=1)", True),
    "qcbn_po2": ("quantized_bits(6,0)", "quantized_bits(8,3,alpha=1)", True),
}


def folded_conv_model():
    """QConv2DBatchnorm branches (3 filters on 2 channels) trained for a few steps, so
    that the moving statistics, gamma and beta are far from their initial values."""
    import tensorflow as tf
    from qkeras import QConv2DBatchnorm

    k = tf.keras
    tf.keras.utils.set_random_seed(2)
    inp = k.Input(shape=(6, 6, 2), name="x")
    outs = []
    for name, (kq, bq, use_bias) in FOLDED_BRANCHES.items():
        quantizers = {"kernel_quantizer": kq} if kq else {}
        quantizers.update({"bias_quantizer": bq} if bq else {})
        outs.append(QConv2DBatchnorm(3, 3, name=name, use_bias=use_bias, momentum=0.5, **quantizers)(inp))
    h = outs[0]
    for i, out in enumerate(outs[1:]):
        h = k.layers.Concatenate(name=f"fcat{i}")([h, out])
    model = k.Model(inp, h)
    rng = np.random.default_rng(2)
    model.compile("adam", "mse")
    x = rng.normal(1.0, 1.5, (256, 6, 6, 2)).astype("f4")
    model.fit(x, rng.normal(0, 1, (256, 4, 4, 3 * len(outs))).astype("f4"), epochs=3, batch_size=32, verbose=0)
    return model


@pytest.mark.parametrize(
    ("backend", "io_type"),
    [
        ("Vivado", "io_parallel"),
        pytest.param("Vivado", "io_stream", marks=pytest.mark.slow),
        pytest.param("Vitis", "io_parallel", marks=pytest.mark.slow),
    ],
)
def test_qconv2dbatchnorm_computes_as_qkeras_folds_it(tmp_path_factory, backend, io_type):
    """hls4ml 1.3.0's Conv2DBatchnorm folded its own way: for Vivado's Resource strategy the
    kernel was transposed twice (the firmware off QKeras by up to 9.5 on inputs in [-4, 4];
    with alpha scales, one per input channel, the emulator raised IndexError), without a bias quantizer
    it kept the stored bias (off by 0.73), with use_bias=False it held the folded bias in
    ap_uint<1> (off by 1.75), without a kernel quantizer it raised TypeError (audit).
    synth gives hls4ml QKeras's folded kernel and bias and says so: csim equals QKeras's
    layer (its quantized folded kernel and bias exactly; unquantized ones rounded into
    their types, alpha scales' products into the ApplyAlpha type), the emulator csim."""
    import tensorflow as tf

    from fpgaflow.network.verify import csim_trace
    from sim.fixed import FixedType

    name = f"folded_{backend}_{io_type}".lower()
    config = {"Model": {"Precision": "ap_fixed<16,6>", "Strategy": "Resource", "ReuseFactor": 2}}
    oracle = synth(tmp_path_factory, folded_conv_model(), name, config, io_type, backend=backend)
    assert_every_layer_exact(oracle, n=3000)
    rng = np.random.default_rng(4)
    x = np.round(rng.uniform(-4, 4, (2000, 6, 6, 2)) * 64) / 64  # QKeras's float32 products are exact
    _, trace = csim_trace(oracle.hls_model, x)
    model = oracle.keras_model
    names = list(FOLDED_BRANCHES)
    keras = dict(zip(names, tf.keras.Model(model.inputs, [model.get_layer(n).output for n in names])(x), strict=True))
    layers = {layer.name: layer for layer in oracle.net.layers}
    warnings = "\n".join(json.loads((oracle.project.build_dir / "report.json").read_text())["warnings"])
    field = tf.nn.conv2d(np.abs(x), np.ones((3, 3, 2, 1)), 1, "VALID").numpy()  # sum |x| per output
    for branch, (kq, bq, _) in FOLDED_BRANCHES.items():
        out = f"{branch}_alpha" if f"{branch}_alpha" in layers else branch
        got = np.asarray(trace[out], dtype=np.float64).reshape(keras[branch].shape)
        spec = layers[branch].spec
        bound = 0.0  # quantized kernel and bias: the firmware holds QKeras's values exactly
        if kq is None:
            bound = bound + field * FixedType.parse(spec["weight_type"]).lsb
        if bq is None:
            bound = bound + FixedType.parse(spec["bias_type"]).lsb
        if out != branch:  # the ApplyAlpha result type (the Model's precision) truncates
            bound = bound + layers[out].result_type.lsb
        off = np.abs(got - keras[branch].numpy())
        assert np.all(off <= bound + 1e-9), (branch, off.max())
        if branch in ("qcbn_nobq", "qcbn_nob") or (backend == "Vivado" and kq):  # (no kq: hls4ml raised)
            assert f"layer '{branch}' (QConv2DBatchnorm): hls4ml 1.3.0 does not fold it as QKeras does" in warnings
    assert "without a bias_quantizer it keeps the stored bias" in warnings
    assert "with use_bias=False it holds the folded bias in ap_uint<1>" in warnings
    assert ("transposes the folded kernel and its resource pass transposes it again" in warnings) == (
        backend == "Vivado"
    )


def test_depthwise_resource_io_parallel_is_refused(tmp_path_factory):
    """hls4ml's io_parallel depthwise kernel asserts against the Resource strategy."""
    import tensorflow as tf

    from fpgaflow.project import ProjectError

    k = tf.keras
    inp = k.Input(shape=(5, 5, 2), name="x")
    out = k.layers.DepthwiseConv2D(3, name="dw_res")(inp)
    config = {"Model": {"Precision": "ap_fixed<16,6>", "Strategy": "Resource"}}
    with pytest.raises((ProjectError, ValueError), match="'dw_res' .*resource strategy is not supported"):
        synth(tmp_path_factory, k.Model(inp, out), "dw_res", config, "io_parallel")


def test_dilated_convolution_is_refused(tmp_path_factory):
    """hls4ml ignores dilation_rate (its firmware would be a plain convolution): synth
    refuses it by layer name before converting."""
    import tensorflow as tf

    from fpgaflow.project import ProjectError

    k = tf.keras
    inp = k.Input(shape=(9, 9, 1), name="x")
    out = k.layers.Conv2D(2, 3, dilation_rate=2, name="dilated")(inp)
    with pytest.raises(ProjectError, match=r"'dilated' of type Conv2D: dilation_rate \(2, 2\)"):
        synth(tmp_path_factory, k.Model(inp, out), "dilated", {"Model": {"Precision": "ap_fixed<16,6>"}}, "io_parallel")


@pytest.mark.slow
@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_conv_and_pool_geometries(tmp_path_factory, io_type):
    """Odd image sizes: strided 'same' convolutions with asymmetric padding, 1xN and
    4x2 kernels with unequal strides, non-square pools."""
    import tensorflow as tf

    k = tf.keras
    inp = k.Input(shape=(9, 9, 2), name="x")
    branches = [
        k.layers.Conv2D(3, 3, strides=2, padding="same", name="cs")(inp),
        k.layers.MaxPooling2D(3, name="mp3")(inp),
        k.layers.AveragePooling2D((2, 3), name="ap23")(inp),
        k.layers.Conv2D(2, (1, 3), strides=(1, 2), padding="same", name="c13")(inp),
        k.layers.Conv2D(2, (4, 2), strides=(3, 2), padding="same", name="c42")(inp),
        k.layers.DepthwiseConv2D(3, strides=2, name="dw")(inp),
        k.layers.SeparableConv2D(3, (2, 3), name="sep")(inp),
    ]
    flat = [k.layers.Flatten(name=f"f{i}")(b) for i, b in enumerate(branches)]
    h = flat[0]
    for i, f in enumerate(flat[1:]):
        h = k.layers.Concatenate(name=f"j{i}")([h, f])
    model = k.Model(inp, h)
    randomize_weights(model, seed=7)
    config = {"Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"}}
    oracle = synth(tmp_path_factory, model, f"geometries_{io_type}", config, io_type)
    result = assert_every_layer_exact(oracle)
    assert {"cs", "mp3", "ap23", "c13", "c42", "dw", "sep_depthwise", "sep_pointwise"} <= set(result["compared_layers"])


def test_miswired_stream_graph_is_refused(tmp_path_factory):
    """hls4ml 1.3.0 mis-wires two padded convolutions reading one cloned stream (the
    second zero padding reads the first one's output); synth names the layer."""
    import tensorflow as tf

    from fpgaflow.project import ProjectError

    k = tf.keras
    inp = k.Input(shape=(16, 3), name="x")
    a = k.layers.Conv1D(2, 3, padding="same", name="ca")(inp)
    b = k.layers.Conv1D(2, 3, padding="same", name="cb")(inp)
    out = k.layers.Concatenate(name="cat")([a, b])
    with pytest.raises((ProjectError, ValueError), match="hls4ml wired it to an input of shape"):
        synth(tmp_path_factory, k.Model(inp, out), "miswired", {"Model": {"Precision": "ap_fixed<16,6>"}}, "io_stream")


@pytest.mark.slow
@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_qconv2d_ternary_and_binary_weights(tmp_path_factory, io_type):
    import tensorflow as tf
    from qkeras import QActivation, QConv2D
    from qkeras.quantizers import binary, quantized_bits, ternary

    k = tf.keras
    inp = k.Input(shape=(6, 6, 2), name="x")
    bias = quantized_bits(8, 3, alpha=1)
    h = QConv2D(3, 3, padding="same", name="qt", kernel_quantizer=ternary(alpha=1), bias_quantizer=bias)(inp)
    h = QActivation("quantized_relu(6,3)", name="r")(h)
    h = QConv2D(2, 2, name="qb", kernel_quantizer=binary(alpha=1), bias_quantizer=bias)(h)
    model = k.Model(inp, k.layers.Flatten(name="f")(h))
    randomize_weights(model, seed=3)
    config = {"Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"}}
    oracle = synth(tmp_path_factory, model, f"qconv_{io_type}", config, io_type)
    products = {layer.name: layer.spec.get("product") for layer in oracle.net.layers}
    assert products["qb"] == "weight_binary", products
    assert_every_layer_exact(oracle)
