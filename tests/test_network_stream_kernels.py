"""Where the io_stream kernels (``nnet_activation_stream.h``) compute differently from
io_parallel's, and the lookup-table index's conversion to ``int``, against hls4ml's C
simulation: one small io_stream model (one compile) holds every case, and each test
checks its layer on csim's own input to that layer, so that a bug upstream does not
show as one here.

* sigmoid on an ``ap_fixed<34,30>`` input: ``int data_round = x * table_size / 16``
  keeps the low 32 bits of the quotient (it wraps);
* selu: the stream kernel casts lambda into the input type (io_parallel: ap_ufixed<16,1>);
* softmax on a (4, 3) tensor: the stream kernels normalise each stream word (a row of 3);
* legacy softmax with TableSize 512: the stream kernel's tables have
  ``CONFIG_T::table_size`` entries, nnet::activ_config's 1024."""

from __future__ import annotations

import json

import numpy as np
import pytest
from network_oracle import keras_project, synth_and_build

N_SAMPLES = 2000


def _project(tmp_path, model, name, hls_config, io_type):
    return keras_project(tmp_path, model, name, hls_config, io_type)


def _stream_model():
    import tensorflow as tf

    k = tf.keras
    rng = np.random.default_rng(7)
    inp = k.Input((4,), name="x")
    h = k.layers.Activation("sigmoid", name="sigmoid")(inp)
    h = k.layers.Dense(12, name="fc0")(h)
    h = k.layers.Activation("selu", name="selu")(h)
    h = k.layers.Dense(12, name="fc1")(h)
    h = k.layers.Reshape((4, 3), name="resh")(h)
    h = k.layers.Activation("softmax", name="sm_rows")(h)
    h = k.layers.Flatten(name="flat")(h)
    h = k.layers.Dense(6, name="fc2")(h)
    h = k.layers.Activation("softmax", name="sm_legacy")(h)
    model = k.Model(inp, h)
    for name, scale in (("fc0", 3.0), ("fc1", 1.0), ("fc2", 6.0)):
        layer = model.get_layer(name)
        layer.set_weights([rng.normal(0, scale, w.shape).astype(np.float32) for w in layer.get_weights()])
    return model


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    """The io_stream model synthesized, its csim compiled and run once (with every layer's output)."""
    from fpgaflow.network.verify import csim_trace

    hls_config = {
        "Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"},
        "LayerName": {
            "x": {"Precision": {"result": "ap_fixed<34,30>"}},
            "sm_legacy": {"Implementation": "legacy", "TableSize": 512},
        },
    }
    oracle = synth_and_build(
        _project(tmp_path_factory.mktemp("stream_kernels"), _stream_model(), "sk", hls_config, "io_stream")
    )
    x = oracle.net._input_raw(oracle.random_inputs(N_SAMPLES, seed=3))
    y, trace = csim_trace(oracle.hls_model, x)
    return oracle, x, y, trace


def _check_layer(stream, name: str) -> None:
    """The emulator's layer on csim's input to it gives csim's output, bit for bit."""
    from fpgaflow.network.verify import raw_of
    from sim.fixed import Fixed

    oracle, x, _, trace = stream
    layers = {layer.name: layer for layer in oracle.net.layers}
    layer = layers[name]
    (source,) = layer.spec["inputs"]
    prev = layers[source]
    given = trace[source] if source in trace else oracle.net.trace(x)[source].values
    got = layer.forward(Fixed(raw_of(given, prev.result_type).reshape(len(x), *prev.output_shape), prev.result_type))
    expected = raw_of(trace[name], layer.result_type).reshape(got.raw.shape)
    bad = np.flatnonzero((got.raw != expected).reshape(len(x), -1).any(axis=1))
    assert bad.size == 0, (
        f"layer {name}: {bad.size}/{len(x)} samples differ from csim; first sample {bad[:1]}: "
        f"emulator {got.raw[bad[0]].ravel()[:12]} csim {expected[bad[0]].ravel()[:12]}"
    )


def _assert_branches_equal_csim(oracle, x: np.ndarray, y: np.ndarray, trace: dict, branches) -> None:
    """The emulator equals csim on each branch's output (values that differ, per branch,
    in the message) and on the model's outputs, through both matrix-product paths."""
    from fpgaflow.network.verify import compare, raw_of

    ours, layers = oracle.net.trace(x), {layer.name: layer for layer in oracle.net.layers}
    differ = {
        name: int(np.sum(ours[name].raw.reshape(len(x), -1) != raw_of(trace[name], layers[name].result_type)))
        for name in branches
    }
    assert not any(differ.values()), differ
    result = compare(oracle.net, x, y, trace, None)
    assert result["first_divergence"] is None, result["first_divergence"]
    assert result["bit_exact_fraction"] == 1.0
    assert oracle.predict_agrees(x, y) == {"scipy": True, "numpy": True}


@pytest.mark.oracle
def test_table_index_wraps_like_the_conversion_to_int(stream):
    oracle = stream[0]
    assert str(oracle.net.input_type).startswith("ap_fixed<34,30")
    _check_layer(stream, "sigmoid")


def _wide_index_model():
    import tensorflow as tf

    k = tf.keras
    inp = k.Input((8,), name="x")
    branches = [k.layers.Activation(kind, name=kind)(inp) for kind in ("sigmoid", "tanh", "softplus", "softsign")]
    branches.append(k.layers.Activation("softmax", name="sm_legacy")(inp))
    cat = k.layers.Concatenate(name="cat0")(branches[:2])
    cat = k.layers.Concatenate(name="cat1")([cat, k.layers.Concatenate(name="cat2")(branches[2:4])])
    return k.Model(inp, k.layers.Concatenate(name="cat3")([cat, branches[4]]))


# where int index = data_round + (R/2)*N/R wraps: data_round = x*N/R in [2**31 - N/2, 2**31)
# (and again 2**32 on either side); each branch's x*N/R = 2**31 at x = 2**31*R/N
WRAP_POINTS = {"sigmoid": 2.0**25, "softplus": 2.0**25, "sm_legacy": 2.0**25, "tanh": 2.0**22, "softsign": 2.0**26}


@pytest.mark.oracle
@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_table_index_sum_wraps_in_unsigned_int(tmp_path, io_type):
    """``int index = data_round + 8 * table_size / 16`` adds an ``unsigned`` (hls4ml's
    ``static const unsigned table_size``): the sum wraps modulo 2**32, so where
    ``data_round`` lies within ``table_size / 2`` below 2**31 the index is negative and
    the clamp reads entry 0 (sigmoid(2**25 - 1) is 0 in the firmware, g++ -O0 to -O3
    alike).  The emulator added in 64 bits and read the last entry.  Inputs of an
    ``ap_fixed<40,36>`` on a grid through each branch's wrap points (tanh with 4096
    entries, softsign with 512, the legacy softmax on differences of inputs)."""
    from fpgaflow.network.verify import csim_trace

    hls_config = {
        "Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"},
        "LayerName": {
            "x": {"Precision": {"result": "ap_fixed<40,36>"}},
            "tanh": {"TableSize": 4096},
            "softsign": {"TableSize": 512},
            "sm_legacy": {"Implementation": "legacy"},
        },
    }
    oracle = synth_and_build(_project(tmp_path, _wide_index_model(), "wide", hls_config, io_type))
    offsets = np.arange(-16 * 16, 16 * 16 + 1) / 16  # the input type's every value within 16 of a point
    points = sorted({k * p for p in WRAP_POINTS.values() for k in (-3, -1, 1, 3)})
    pool = (np.asarray(points)[:, None] + offsets[None, :]).ravel()
    pool = np.concatenate([pool, np.zeros(-len(pool) % 7)])
    rng = np.random.default_rng(11)
    small = rng.integers(-32, 33, size=(len(pool) // 7, 1)) / 16  # the softmax differences from it
    x = np.concatenate([small, rng.permutation(pool).reshape(-1, 7)], axis=1)
    y, trace = csim_trace(oracle.hls_model, x)
    at = x == 2.0**25 - 1
    assert at.any() and np.all(np.asarray(trace["sigmoid"]).reshape(x.shape)[at] == 0)  # entry 0, not 1
    _assert_branches_equal_csim(oracle, x, y, trace, WRAP_POINTS)


@pytest.mark.oracle
def test_selu_stream_lambda_in_the_input_type(stream):
    _check_layer(stream, "selu")


@pytest.mark.oracle
def test_softmax_on_2d_tensor_in_stream_normalises_each_row(stream):
    _check_layer(stream, "sm_rows")
    oracle, x, _, _ = stream
    rows = oracle.net.trace(x)["sm_rows"].values.reshape(len(x), 4, 3).sum(axis=-1)
    assert np.abs(rows - 1).max() < 0.1  # each row sums to about 1, as Keras's softmax


@pytest.mark.oracle
def test_legacy_softmax_stream_tables_have_activ_config_table_size(stream):
    _check_layer(stream, "sm_legacy")
    spec = next(layer.spec for layer in stream[0].net.layers if layer.name == "sm_legacy")
    assert (spec["exp_table_size"], spec["table_size"]) == (512, 1024)


@pytest.mark.oracle
def test_stream_model_bit_exact_end_to_end(stream):
    from fpgaflow.network.verify import compare

    oracle, x, y, trace = stream
    result = compare(oracle.net, x, y, trace, None)
    assert result["first_divergence"] is None, result["first_divergence"]
    assert result["bit_exact_fraction"] == 1.0
    assert oracle.predict_agrees(x, y) == {"scipy": True, "numpy": True}


@pytest.mark.oracle
def test_manifest_without_stream_fields_reads_the_network_io_type(stream, tmp_path):
    """Manifests written before activation and softmax entries said their io type: the
    emulator takes the network's ``io_type`` and computes as the stream kernels do."""
    import sim
    from sim.manifest import read_manifest, write_manifest

    oracle, x, _, _ = stream
    m = read_manifest(oracle.net.manifest.path)
    meta = {k: v for k, v in m.meta.items() if k not in ("id", "format", "format_version")}
    new_fields = {"activation": ("stream",), "softmax": ("stream", "stream_word", "table_size")}
    meta["layers"] = [
        {k: v for k, v in spec.items() if k not in new_fields.get(spec["kind"], ())} for spec in meta["layers"]
    ]
    assert not any("stream" in spec for spec in meta["layers"] if spec["kind"] in new_fields)
    write_manifest(tmp_path / "old", meta, m.arrays)
    old = sim.load(tmp_path / "old")
    then, now = old.trace(x), oracle.net.trace(x)
    assert [name for name in now if not np.array_equal(then[name].raw, now[name].raw)] == []


def test_softmax_on_2d_tensor_in_parallel_warns(tmp_path, capsys):
    """io_parallel builds one softmax over all values of a 2-D tensor (hls4ml 1.3 sets no
    n_outer/n_inner): synth says so in its output and its report."""
    import tensorflow as tf

    from fpgaflow.network.synth import synth

    k = tf.keras
    inp = k.Input((6,), name="x")
    h = k.layers.Reshape((2, 3), name="resh")(k.layers.Dense(6, name="fc")(inp))
    model = k.Model(inp, k.layers.Activation("softmax", name="sm")(h))
    config = _project(tmp_path, model, "p2d", {"Model": {"Precision": "ap_fixed<16,6>"}}, "io_parallel")
    from fpgaflow.project import load_project

    project = load_project(config)
    assert synth(project) == 0
    said = "layer 'sm' (Softmax, stable) on a 2-D tensor (2, 3) in io_parallel: hls4ml"
    assert said in capsys.readouterr().err
    report = json.loads((project.build_dir / "report.json").read_text())
    assert any(said in w and "over all 6 values" in w for w in report["warnings"])
    assert said in (project.build_dir / "report.md").read_text()


def _elu_model():
    import tensorflow as tf

    k = tf.keras
    inp = k.Input((6,), name="x")
    elu = k.layers.Activation("elu", name="elu")(inp)
    elu_alpha = k.layers.ELU(alpha=0.7, name="elu_alpha")(inp)
    selu = k.layers.Activation("selu", name="selu")(inp)
    cat = k.layers.Concatenate(name="cat0")([elu, elu_alpha])
    return k.Model(inp, k.layers.Concatenate(name="cat1")([cat, selu]))


# where int index = x * N / -8 wraps (x < 0): the quotient crosses k * 2**31 at x = -k * 2**34 / N
ELU_TABLE_SIZES = {"elu": 1024, "elu_alpha": 4096, "selu": 512}


@pytest.mark.oracle
@pytest.mark.parametrize("io_type", ["io_parallel", "io_stream"])
def test_elu_and_selu_wrapped_negative_index_reads_the_last_entry(tmp_path, io_type):
    """elu (both io types) and io_stream selu clamp ``int index = x * table_size / -8``
    above only, ``if (index > CONFIG_T::table_size - 1)``; ``table_size`` is ``static const
    unsigned``, so the comparison is unsigned and a negative index (the quotient wrapped
    past 2**31 by the conversion to ``int``) reads the last entry, not outside the table
    (g++ -O0 to -O3 alike); past 2**32 the index starts again from 0.  io_parallel selu
    clamps a negative index to 0.  These input types were refused, with the reason that
    the firmware read outside its table.  Inputs of an ``ap_fixed<40,36>``: every value
    within 16 of each point where a branch's index wraps (elu 1024 entries, ELU(alpha=0.7)
    4096, selu 512), and far below."""
    from fpgaflow.network.verify import csim_trace

    hls_config = {
        "Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1, "Strategy": "Latency"},
        "LayerName": {
            "x": {"Precision": {"result": "ap_fixed<40,36>"}},
            "elu_alpha": {"TableSize": ELU_TABLE_SIZES["elu_alpha"]},
            "selu": {"TableSize": ELU_TABLE_SIZES["selu"]},
        },
    }
    oracle = synth_and_build(_project(tmp_path, _elu_model(), "elu_wide", hls_config, io_type))
    offsets = np.arange(-16 * 16, 16 * 16 + 1) / 16  # the input type's every value within 16 of a point
    points = sorted({-k * 2.0**34 / n for n in ELU_TABLE_SIZES.values() for k in (1, 2, 3)})
    pool = np.concatenate([(np.asarray(points)[:, None] + offsets[None, :]).ravel(), [-100.0, -(2.0**35)]])
    pool = np.concatenate([pool, np.full(-len(pool) % 6, -100.0)])
    x = np.random.default_rng(13).permutation(pool).reshape(-1, 6)
    y, trace = csim_trace(oracle.hls_model, x)
    csim = {name: np.asarray(trace[name]).reshape(x.shape) for name in ELU_TABLE_SIZES}
    last = {name: csim[name][x == -100.0][0] for name in ELU_TABLE_SIZES}  # deep below: the last entry
    assert last["elu"] == -1.0 and last["selu"] < -1.75
    wrapped = {name: x == -(2.0**34) / n for name, n in ELU_TABLE_SIZES.items()}  # the index is -2**31
    assert np.all(csim["elu"][wrapped["elu"]] == last["elu"])
    assert np.all(csim["elu_alpha"][wrapped["elu_alpha"]] == last["elu_alpha"])
    assert np.all(csim["selu"][wrapped["selu"]] == (last["selu"] if io_type == "io_stream" else 0))
    assert np.all(csim["elu"][x == -(2.0**25)] == 0)  # the index 2**32 wraps to 0: entry 0, e**0 - 1
    _assert_branches_equal_csim(oracle, x, y, trace, ELU_TABLE_SIZES)
