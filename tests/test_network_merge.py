"""Bit-exactness of the merge layers (Add, Subtract, Multiply, Average, Maximum,
Minimum, Concatenate in 1-d, 2-d and 3-d along every axis) against hls4ml's C
simulation, in io_parallel and io_stream, with inputs of different signedness and
precision so that hls4ml's inferred result types are exercised, and some result
types set narrow with rounding and saturation."""

from __future__ import annotations

import pytest
from test_network_conv import assert_every_layer_exact, randomize_weights, synth

pytestmark = pytest.mark.oracle

MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")


def merge_model(with_3d: bool):
    """Two branches of different types, every merge of them, then concatenations of
    2-d and 3-d reshapes of merge results along each axis, all joined into one output."""
    import tensorflow as tf

    k = tf.keras
    inp = k.Input(shape=(6,), name="x")
    a = k.layers.Dense(8, name="da")(inp)
    b = k.layers.Activation("relu", name="rb")(k.layers.Dense(8, name="db")(inp))
    parts = [getattr(k.layers, cls)(name=cls.lower())([a, b]) for cls in MERGES]
    parts.append(k.layers.Concatenate(name="cat1d")([a, b]))  # 7 uses of a and b: io_stream's clone limit
    add, sub, mx, mn = parts[0], parts[1], parts[4], parts[5]
    a2, b2 = k.layers.Reshape((2, 4), name="a2")(add), k.layers.Reshape((2, 4), name="b2")(mx)
    for axis in (1, -1):
        cat = k.layers.Concatenate(axis=axis, name=f"cat2d_{axis % 3}")([a2, b2])
        parts.append(k.layers.Flatten(name=f"flat2d_{axis % 3}")(cat))
    if with_3d:
        a3, b3 = k.layers.Reshape((2, 2, 2), name="a3")(sub), k.layers.Reshape((2, 2, 2), name="b3")(mn)
        for axis in (1, 2, 3):
            cat = k.layers.Concatenate(axis=axis, name=f"cat3d_{axis}")([a3, b3])
            parts.append(k.layers.Flatten(name=f"flat3d_{axis}")(cat))
    h = parts[0]
    for i, p in enumerate(parts[1:]):
        h = k.layers.Concatenate(name=f"join{i}")([h, p])
    model = k.Model(inp, h)
    randomize_weights(model, seed=8, scale=1.5)
    return model


HLS_CONFIG = {
    "Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"},
    "LayerName": {
        "da": {"Precision": {"result": "ap_fixed<12,4>"}},
        "db": {"Precision": {"result": "ap_fixed<14,5>"}},
        "rb": {"Precision": {"result": "ap_ufixed<10,3,AP_RND,AP_SAT>"}},
        "average": {"Precision": {"result": "ap_fixed<8,3,AP_RND,AP_SAT>"}},
        "multiply": {"Precision": {"result": "ap_fixed<10,4,AP_RND_CONV,AP_SAT>"}},
        "subtract": {"Precision": {"result": "ap_fixed<9,3,AP_TRN,AP_WRAP>"}},
    },
}


def check_merges(oracle) -> None:
    spec = {layer.name: layer.spec for layer in oracle.net.layers}
    assert {spec[m.lower()]["op"] for m in MERGES} == {m.lower() for m in MERGES}
    # hls4ml's inferred result types for ap_fixed<16,6> (da's linear activation, the
    # model default) with ap_ufixed<10,3,AP_RND,AP_SAT> (rb):
    assert spec["da_linear"]["result_type"] == "ap_fixed<16,6>"
    assert spec["rb"]["result_type"] == "ap_ufixed<10,3,AP_RND,AP_SAT>"
    assert spec["add"]["result_type"] == "ap_fixed<17,7>"
    assert spec["maximum"]["result_type"] == "ap_fixed<16,6>"  # the unsigned input needs one more bit
    assert spec["cat1d"]["result_type"] == "ap_fixed<16,6,AP_RND,AP_SAT>"  # modes taken from the non-default input
    result = assert_every_layer_exact(oracle)
    assert {m.lower() for m in MERGES} | {"cat1d", "cat2d_1", "cat2d_2"} <= set(result["compared_layers"])


@pytest.fixture(scope="module")
def merges_parallel(tmp_path_factory):
    return synth(tmp_path_factory, merge_model(with_3d=True), "merges_parallel", HLS_CONFIG, "io_parallel")


def test_merges_io_parallel(merges_parallel):
    check_merges(merges_parallel)
    spec = {layer.name: layer.spec for layer in merges_parallel.net.layers}
    assert [spec[f"cat3d_{axis}"]["axis"] for axis in (1, 2, 3)] == [1, 2, 3]


@pytest.fixture(scope="module")
def merges_stream(tmp_path_factory):
    return synth(tmp_path_factory, merge_model(with_3d=True), "merges_stream", HLS_CONFIG, "io_stream")


@pytest.mark.slow  # the stream merge kernels also run by default inside test_network_conv's stream model
def test_merges_io_stream(merges_stream):
    assert "clone" in {layer.spec["kind"] for layer in merges_stream.net.layers}
    check_merges(merges_stream)
