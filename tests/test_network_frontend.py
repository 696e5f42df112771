"""The network front end without a compiler: project files, model formats, errors
that name the culprit, the manifest and report contents, the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import fake_vendor
import numpy as np
import pytest
from network_oracle import MODELS, keras_project, save_keras, write_project

ROOT = Path(__file__).resolve().parents[1]

JET = {"KerasJson": "KERAS_3layer.json", "KerasH5": "KERAS_3layer_weights.h5", "IOType": "io_parallel"}
JET_FILES = {
    "KERAS_3layer.json": MODELS / "KERAS_3layer.json",
    "KERAS_3layer_weights.h5": MODELS / "KERAS_3layer_weights.h5",
}


def _synth(config_file):
    import argparse

    from fpgaflow.network.synth import synth
    from fpgaflow.project import load_project

    project = load_project(config_file)
    assert synth(project, argparse.Namespace(vendor=False)) == 0
    return project


def _cli(*argv) -> int:
    from fpgaflow.cli import main

    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def jet_project(tmp_path_factory):
    return _synth(write_project(tmp_path_factory.mktemp("jet"), dict(JET), JET_FILES))


def test_manifest_describes_the_firmware(jet_project):
    from sim.fixed import FixedType
    from sim.manifest import read_manifest

    m = read_manifest(jet_project.build_dir / "emulator")
    assert m.kind == "network" and len(m.meta["source_sha256"]) == 64
    layers = m.meta["layers"]
    assert [spec["kind"] for spec in layers] == ["input"] + ["dense", "activation"] * 3 + ["dense", "softmax"]
    for spec in layers:
        for key, value in spec.items():
            if key.endswith("_type"):
                FixedType.parse(value)  # every precision is a parseable ap_ type
    fc1 = layers[1]
    weight = m.array(fc1["arrays"]["weight"])
    assert weight.shape == (16, 64) and weight.dtype == np.int64
    # the HLS weights header holds the same values
    header = (jet_project.build_dir / "hls" / "firmware" / "weights" / "w2.h").read_text()
    body = header.split("= {")[-1].split("}")[0]
    written = np.array([float(v) for v in body.split(",")])
    assert np.array_equal(FixedType.parse(fc1["weight_type"]).to_raw(written), weight.ravel())


def test_report_states_estimates_and_vendor_skip(jet_project):
    report = json.loads((jet_project.build_dir / "report.json").read_text())
    assert "analytic model" in report["estimation_method"]
    fc1 = next(r for r in report["layers"] if r["name"] == "fc1_relu")
    assert fc1["multiplications"] > 0 and fc1["dsp"] > 0 and fc1["latency_cycles"] > 0
    assert fc1["input_shape"] == [16] and fc1["output_shape"] == [64]
    assert set(fc1["types"]) >= {"weight_type", "bias_type", "accum_type", "result_type"}
    assert report["vendor"]["ran"] is False and "--vendor" in report["vendor"]["reason"]
    assert "Skipped" in (jet_project.build_dir / "report.md").read_text()


def test_vendor_synthesis_with_a_stand_in_vivado_hls_reports_its_numbers(tmp_path, monkeypatch, capfd):
    """A fake vivado_hls (tests/fake_vendor.py) writes the files hls4ml's report parser reads."""
    fake_vendor.install(tmp_path, monkeypatch, "vivado_hls", fake_vendor.HLS4ML_SUCCEEDS)
    config = write_project(tmp_path / "p", dict(JET), JET_FILES)
    assert _cli("synth", config, "--vendor") == 0
    out, err = capfd.readouterr()
    assert "fake vivado_hls called with: -f build_prj.tcl reset=False csim=False synth=True cosim=False" in out
    assert "Traceback" not in err
    build = tmp_path / "p" / "build"
    report = json.loads((build / "report.json").read_text())
    vendor = report["vendor"]
    assert (vendor["ran"], vendor["success"], vendor["tool"]) == (True, True, "vivado_hls")
    c = fake_vendor.CSYNTH
    csynth = vendor["results"]["CSynthesisReport"]
    assert {k: csynth[k] for k in ("BestLatency", "WorstLatency", "IntervalMin", "IntervalMax")} == {
        "BestLatency": str(c["best"]),
        "WorstLatency": str(c["worst"]),
        "IntervalMin": str(c["ii_min"]),
        "IntervalMax": str(c["ii_max"]),
    }
    assert {k: csynth[k] for k in ("LUT", "FF", "DSP", "BRAM_18K")} == {
        k: str(c[k]) for k in ("LUT", "FF", "DSP", "BRAM_18K")
    }
    md = (build / "report.md").read_text()
    t = report["totals"]
    assert f"| estimate | {t['dsp']} | {t['lut']} | {t['ff']} | {t['bram18']} | {t['latency_cycles']} |" in md
    vendor_row = f"| vivado_hls | {c['DSP']} | {c['LUT']} | {c['FF']} | {c['BRAM_18K']} | {c['best']}–{c['worst']} |"
    assert vendor_row in md and "target 5.00 ns, estimated 4.25 ns" in md


def test_vendor_synthesis_that_fails_is_reported_and_synth_still_succeeds(tmp_path, monkeypatch, capfd):
    """hls4ml's Vivado build ignores the tool's exit code: synth notices the missing report."""
    fake_vendor.install(tmp_path, monkeypatch, "vivado_hls", fake_vendor.FAILS)
    config = write_project(tmp_path / "p", dict(JET), JET_FILES)
    assert _cli("synth", config, "--vendor") == 0
    out, err = capfd.readouterr()
    assert "fake vivado_hls called with: -f build_prj.tcl" in out and "Traceback" not in err
    build = tmp_path / "p" / "build"
    report = json.loads((build / "report.json").read_text())
    vendor = report["vendor"]
    assert (vendor["ran"], vendor["success"], vendor["tool"]) == (True, False, "vivado_hls")
    assert f"vivado_hls left no C synthesis report in {build / 'hls'}" in vendor["reason"]
    assert report["totals"]["lut"] > 0 and report["totals"]["latency_cycles"] > 0  # the estimate stays
    md = (build / "report.md").read_text()
    assert f"Failed: vivado_hls left no C synthesis report in {build / 'hls'}" in md and "Skipped" not in md


def test_cli_synth_and_emulate(tmp_path):
    import sim

    config = write_project(tmp_path / "p", dict(JET), JET_FILES)
    assert _cli("synth", config) == 0
    x = np.random.default_rng(0).uniform(-40, 40, size=(300, 16))
    np.save(tmp_path / "x.npy", x)
    assert _cli("emulate", config, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npz") == 0
    with np.load(tmp_path / "y.npz") as out:
        expected = sim.load(tmp_path / "p" / "build" / "emulator").predict(x)
        assert np.array_equal(out["raw"], expected.raw)


def test_synth_writes_only_into_an_output_dir_of_its_own(tmp_path, capsys):
    """``OutputDir: mywork`` holding the user's ``hls/firmware/ap_types/precious.h``:
    hls4ml replaced ``ap_types`` with its own, and synth overwrote ``report.md``, in any
    folder.  Now a folder synth did not write is refused before any work; its own is
    replaced (a stale file in ``hls`` goes, a file beside it stays)."""
    config = write_project(tmp_path / "p", {**JET, "OutputDir": "mywork"}, JET_FILES)
    mine = tmp_path / "p" / "mywork" / "hls" / "firmware" / "ap_types" / "precious.h"
    mine.parent.mkdir(parents=True)
    mine.write_text("keep me\n")
    assert _cli("synth", config) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"OutputDir {tmp_path / 'p' / 'mywork'} is not empty (it holds hls/) and was not written by" in line
    assert mine.read_text() == "keep me\n" and sorted(p.name for p in (tmp_path / "p" / "mywork").iterdir()) == ["hls"]
    (tmp_path / "p" / "mywork" / "hls").rename(tmp_path / "kept")  # an empty folder: synth's to fill
    assert _cli("synth", config) == 0
    (tmp_path / "p" / "mywork" / "hls" / "stale.txt").write_text("from the last synth\n")
    (tmp_path / "p" / "mywork" / "notes.txt").write_text("mine\n")
    assert _cli("synth", config) == 0
    assert not (tmp_path / "p" / "mywork" / "hls" / "stale.txt").exists()
    assert (tmp_path / "p" / "mywork" / "notes.txt").read_text() == "mine\n"
    assert (tmp_path / "p" / "mywork" / "emulator" / "manifest.json").is_file()


def test_model_formats_give_the_same_firmware(tmp_path):
    """JSON + weights, a full .h5 and a SavedModel of one model: same manifest layers and arrays."""
    import tensorflow as tf

    from sim.manifest import read_manifest

    model = tf.keras.models.model_from_json((MODELS / "KERAS_3layer.json").read_text())
    model.load_weights(str(MODELS / "KERAS_3layer_weights.h5"))
    src = tmp_path / "src"
    files = save_keras(model, src, "m")
    model.save(str(src / "full.h5"))
    model.save(str(src / "saved"), save_format="tf")
    variants = {
        "json": ({"KerasJson": "m.json", "KerasH5": "m_weights.h5"}, files),
        "h5": ({"KerasH5": str(src / "full.h5")}, {}),
        "savedmodel": ({"KerasModel": str(src / "saved")}, {}),
    }
    manifests = {}
    for name, (keys, extra) in variants.items():
        project = _synth(write_project(tmp_path / name, {**keys, "IOType": "io_parallel"}, extra))
        manifests[name] = read_manifest(project.build_dir / "emulator")
    ref = manifests["json"]
    for m in manifests.values():
        assert m.meta["layers"] == ref.meta["layers"]
        assert all(np.array_equal(m.arrays[k], ref.arrays[k]) for k in ref.arrays)


def test_unsupported_layer_is_named(tmp_path):
    import tensorflow as tf

    from fpgaflow.project import ProjectError

    inp = tf.keras.Input((8, 3))
    h = tf.keras.layers.LSTM(4, name="my_lstm")(inp)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(2)(h))
    files = save_keras(model, tmp_path / "src", "rnn")
    config = write_project(tmp_path / "p", {"KerasJson": "rnn.json", "KerasH5": "rnn_weights.h5"}, files)
    with pytest.raises(ProjectError, match=r"layer 'my_lstm' of type LSTM is not supported \(supported: .*Dense"):
        _synth(config)


def test_layer_class_unknown_to_keras_is_named(tmp_path):
    """A model JSON with a layer class neither Keras nor QKeras defines (the public
    example-models hold GarNet and hls4ml FixedPointQuantizer models): Keras's own
    error is "'str' object is not callable"; ours names the layers and the class."""
    import tensorflow as tf

    from fpgaflow.project import ProjectError

    inp = tf.keras.Input((16,), name="x")
    h = tf.keras.layers.Activation("linear", name="inp_q")(inp)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(5, name="fc")(h))
    config = json.loads(model.to_json())
    for layer in config["config"]["layers"]:
        if layer["name"] == "inp_q":
            layer.update(class_name="FixedPointQuantizer", module="hls4ml.utils.fixed_point_quantizer")
    (tmp_path / "proxy.json").write_text(json.dumps(config))
    model.save_weights(tmp_path / "proxy_weights.h5")
    project = write_project(tmp_path, {"KerasJson": "proxy.json", "KerasH5": "proxy_weights.h5"})
    with pytest.raises(
        ProjectError,
        match=r"layer 'inp_q' is of class FixedPointQuantizer \(module hls4ml.utils.fixed_point_quantizer\), "
        "which neither Keras nor QKeras defines",
    ):
        _synth(project)


@pytest.mark.parametrize(
    "broken, message",
    [
        # said "cannot load the model from m.json, m_weights.h5", not which of the two
        ("m_weights.h5", r"cannot load the model's weights from \S*m_weights\.h5 \(KerasH5\) into the architecture "
         r"of m\.json: OSError: .*file signature not found"),
        ("m.json", r"cannot load the model's architecture from \S*m\.json \(KerasJson\): JSONDecodeError: "),
    ],
)  # fmt: skip
def test_the_model_file_that_fails_to_load_is_named(tmp_path, broken, message):
    from fpgaflow.network.model import load_keras_model
    from fpgaflow.project import ProjectError, load_project

    files = {"m.json": MODELS / "KERAS_3layer.json", "m_weights.h5": MODELS / "KERAS_3layer_weights.h5"}
    config = write_project(tmp_path, {"KerasJson": "m.json", "KerasH5": "m_weights.h5"}, files)
    (tmp_path / broken).write_text('{"class_name": "Model", "config": ' if broken == "m.json" else "not HDF5\n")
    with pytest.raises(ProjectError, match=message) as info:
        load_keras_model(load_project(config))
    assert "\n" not in str(info.value) and "m.json, " not in str(info.value)


def test_keras_warning_about_qkeras_quantizers_is_silenced_and_no_other(tmp_path):
    """Every QKeras synth/verify printed Keras's two-line UserWarning that
    `keras.constraints.serialize()` found a QKeras quantizer: noise about QKeras, not the
    user's model.  Only it goes: a warning raised during the conversion still shows."""
    import tensorflow as tf
    from qkeras import QDense

    inp = tf.keras.Input((4,), name="x")
    model = tf.keras.Model(inp, QDense(2, name="q", kernel_quantizer="quantized_bits(6,0,alpha=1)")(inp))
    config = keras_project(tmp_path, model, "m")
    script = f"""
import argparse, warnings
import fpgaflow.network.convert as convert
from fpgaflow.network.synth import synth
from fpgaflow.project import load_project

def noisy(*args, **kwargs):
    warnings.warn("a warning of the conversion's own", UserWarning)
    return plain(*args, **kwargs)

plain, convert.convert = convert.convert, noisy
assert synth(load_project({str(config)!r}), argparse.Namespace(vendor=False)) == 0
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "constraints.serialize" not in out.stderr and "qkeras.quantizers" not in out.stderr, out.stderr
    assert "UserWarning: a warning of the conversion's own" in out.stderr, out.stderr


def test_lossy_power_of_two_weights_with_saturating_accumulator_are_refused(tmp_path):
    import tensorflow as tf
    from qkeras import QActivation, QDense
    from qkeras.quantizers import quantized_po2

    from fpgaflow.project import ProjectError

    inp = tf.keras.Input((8,), name="x")
    h = QActivation("quantized_relu(2)", name="r")(inp)
    model = tf.keras.Model(inp, QDense(2, name="q_po2", kernel_quantizer=quantized_po2(4, 1))(h))
    model.get_layer("q_po2").set_weights([np.full((8, 2), 2.0**-7, np.float32), np.zeros(2, np.float32)])
    files = save_keras(model, tmp_path / "src", "po2")
    sat = {"LayerName": {"q_po2": {"Precision": {"accum": "ap_fixed<16,6,AP_TRN,AP_SAT>"}}}}
    project = {"KerasJson": "po2.json", "KerasH5": "po2_weights.h5", "HLSConfig": sat}
    config = write_project(tmp_path / "p", project, files)
    with pytest.raises((ProjectError, ValueError), match=r"'q_po2': power-of-two weights whose shift drops bits"):
        _synth(config)


@pytest.mark.parametrize(
    ("io_type", "layer", "precision", "message"),
    [
        (  # wide inputs times 30-bit weights: products over 62 bits, an accumulator with fewer fraction bits
            "io_parallel",
            "fc",
            {"weight": "ap_fixed<30,10>", "accum": "ap_fixed<64,30>", "result": "ap_fixed<24,12,AP_RND,AP_SAT>"},
            r"'fc': products of \d+ bits with accumulator ap_fixed<64,30> are beyond this emulator's exact slow path",
        ),
        (  # a Resource convolution adds in generated code's order
            "io_stream",
            "conv",
            {"accum": "ap_fixed<18,6,AP_RND,AP_SAT>"},
            r"'conv': a saturating accumulator \(ap_fixed<18,6,AP_RND,AP_SAT>\) with the resource strategy",
        ),
    ],
)
def test_an_accumulator_the_emulator_cannot_replay_is_refused_by_synth(tmp_path, capsys, io_type, layer, precision,
                                                                       message):  # fmt: skip
    """synth accepted these and wrote the firmware; the emulator refused them only when it first
    ran the layer (verify after the C simulation, a node's first fallback batch): found by
    fuzzing.  synth now builds the emulator before it writes anything, exit 2 naming the layer."""
    import tensorflow as tf

    k = tf.keras
    inp = k.Input((6, 2), name="x")
    h = k.layers.Conv1D(3, 3, name="conv")(inp)
    model = k.Model(inp, k.layers.Dense(4, name="fc")(k.layers.Flatten(name="flat")(h)))
    files = save_keras(model, tmp_path / "src", "m")
    names = {
        "x": {"Precision": "ap_fixed<40,20>" if layer == "fc" else "ap_fixed<8,3>"},
        layer: {"Precision": precision},
    }
    names["conv"] = {**names.get("conv", {}), "Strategy": "Resource", "ReuseFactor": 2}
    hls = {"Model": {"Precision": "ap_fixed<16,6>"}, "LayerName": names}
    project = {"KerasJson": "m.json", "KerasH5": "m_weights.h5", "IOType": io_type, "HLSConfig": hls}
    config = write_project(tmp_path / "p", project, files)
    assert _cli("synth", config) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err, err
    assert not (tmp_path / "p" / "build" / "emulator").exists()


def test_a_functional_model_ending_in_dropout_is_refused_by_layer(tmp_path, capsys):
    """hls4ml 1.3.0 skips Dropout layers, and in a functional model the output named after
    one with it: the firmware had no output (its csim does not compile), and synth said
    'networks with 0 outputs are not supported (outputs: [])' (found by fuzzing).  A
    Sequential model takes its last layer as the output, so a Dropout there builds."""
    import tensorflow as tf

    k = tf.keras
    inp = k.Input((4,), name="x")
    functional = k.Model(inp, k.layers.Dropout(0.5, name="do")(k.layers.Dense(3, name="fc")(inp)))
    sequential = k.Sequential([k.Input((4,)), k.layers.Dense(3, name="fc"), k.layers.Dropout(0.5, name="do")])
    for name, model in (("functional", functional), ("sequential", sequential)):
        config = keras_project(tmp_path / name, model, name)
        status, err = _cli("synth", config), capsys.readouterr().err
        if name == "sequential":
            assert status == 0, err
            continue
        assert status == 2 and "Traceback" not in err and "0 outputs" not in err, err
        assert "layer 'do' (Dropout) is the model's output" in err, err


def test_config_naming_a_missing_layer_is_an_error(tmp_path):
    from fpgaflow.project import ProjectError

    cfg = {**JET, "HLSConfig": {"LayerName": {"fc9": {"ReuseFactor": 2}}}}
    with pytest.raises(ProjectError, match=r"LayerName names layer 'fc9', which the model does not have"):
        _synth(write_project(tmp_path, cfg, JET_FILES))


def test_missing_model_file_names_the_path(tmp_path):
    config = write_project(tmp_path, dict(JET), {"KERAS_3layer.json": MODELS / "KERAS_3layer.json"})
    from fpgaflow.project import ProjectError

    with pytest.raises(ProjectError, match=r"KerasH5 names 'KERAS_3layer_weights.h5', but .*KERAS_3layer_weights.h5"):
        _synth(config)


def test_keras_json_without_weights_is_refused(tmp_path, capsys):
    """Keras builds a JSON-only model with random weights: synth built firmware from them
    (exit 0), and verify, loading the model again, drew other ones and reported a false
    emulator divergence."""
    config = write_project(tmp_path, {"KerasJson": "KERAS_3layer.json"}, JET_FILES)
    assert _cli("synth", config) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(f"fpgaflow synth: error: {config}: KerasJson is set without KerasH5"), err
    assert "Traceback" not in err
    assert not (tmp_path / "build").exists()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("Backend", "Quartus", "Backend 'Quartus' is not supported"), ("IOType", "io_serial", "IOType 'io_serial'")],
)
def test_bad_settings_exit_2_with_one_line(tmp_path, capsys, key, value, message):
    config = write_project(tmp_path, {**JET, key: value}, JET_FILES)
    assert _cli("synth", config) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_user_precision_overlays_hls4ml_defaults(tmp_path):
    from sim.manifest import read_manifest

    cfg = {
        **JET,
        "HLSConfig": {
            "Model": {"Precision": "ap_fixed<18,8>"},
            "LayerName": {
                "fc1_relu": {"Precision": {"weight": "ap_fixed<8,2>"}, "ReuseFactor": 4, "Strategy": "Resource"}
            },
        },
    }
    project = _synth(write_project(tmp_path, cfg, JET_FILES))
    layers = {s["name"]: s for s in read_manifest(project.build_dir / "emulator").meta["layers"]}
    assert layers["fc1_relu"]["weight_type"] == "ap_fixed<8,2>"
    assert layers["fc1_relu"]["bias_type"] == "ap_fixed<18,8>"  # the rest of the layer keeps the default
    assert layers["fc1_relu"]["strategy"] == "resource" and layers["fc1_relu"]["reuse_factor"] == 4
    assert (project.build_dir / "hls" / "firmware" / "myproject.cpp").is_file()


def test_verify_reports_the_first_diverging_layer(jet_project):
    """``compare`` on a doctored oracle trace: one element changed in fc2_relu (and so
    in the output) must be reported at that layer, sample and element, with both raws."""
    import sim
    from fpgaflow.network.verify import compare, random_inputs

    net = sim.load(jet_project.build_dir / "emulator")
    x = random_inputs(net.input_type, net.input_shape, 50, seed=4)
    theirs = {name: p.values.copy() for name, p in net.trace(x).items()}
    fc2_type = next(layer.result_type for layer in net.layers if layer.name == "fc2_relu")
    theirs["fc2_relu"][7, 3] += fc2_type.lsb
    y = theirs[net.output_name].copy()
    y[7, 1] += net.output_type.lsb
    result = compare(net, x, y, theirs, None)
    assert result["bit_exact_fraction"] == 1 - 1 / y.size
    d = result["first_divergence"]
    assert (d["layer"], d["sample"], d["index"]) == ("fc2_relu", 7, 3)
    assert d["expected_raw"] == d["got_raw"] + 1


def test_verify_refuses_a_model_changed_since_synth(tmp_path, capsys):
    """New weights after synth read as '97.5000% ... first divergence at layer fc2_relu',
    an emulator bug; verify now checks the manifest's source_sha256 before anything runs."""
    from fpgaflow.network.model import load_keras_model
    from fpgaflow.network.verify import refuse_changed_model

    config = write_project(tmp_path / "p", dict(JET), JET_FILES)
    project = _synth(config)
    synthesized = json.loads((project.build_dir / "emulator" / "manifest.json").read_text())["source_sha256"]
    refuse_changed_model(project, synthesized)  # unchanged: no complaint
    model = load_keras_model(project)
    model.set_weights([w * 1.01 for w in model.get_weights()])
    model.save_weights(tmp_path / "p" / "KERAS_3layer_weights.h5")
    capsys.readouterr()
    assert _cli("verify", config, "--samples", "10") == 2
    (line,) = capsys.readouterr().err.splitlines()
    files = f"{tmp_path / 'p' / 'KERAS_3layer.json'}, {tmp_path / 'p' / 'KERAS_3layer_weights.h5'}"
    assert line == (
        f"fpgaflow verify: error: {files}: the model files changed since `fpgaflow synth` (the hash it recorded in "
        f"the manifest differs); re-run `fpgaflow synth {config}`"
    )


def test_verify_refuses_a_manifest_whose_weights_differ_from_the_model(tmp_path, capsys):
    """Only the layer metadata was compared: a manifest whose weights are not what hls4ml
    builds from the model now (a model that loads with other weights each time, another
    hls4ml) went on to the C simulation and read as an emulator divergence."""
    from sim.manifest import read_manifest, write_manifest

    config = write_project(tmp_path / "p", dict(JET), JET_FILES)
    project = _synth(config)
    emulator = project.build_dir / "emulator"
    m = read_manifest(emulator)
    arrays = dict(m.arrays)
    name = next(s for s in m.meta["layers"] if s["name"] == "fc2_relu")["arrays"]["weight"]
    arrays[name] = arrays[name].copy()
    arrays[name].flat[5] += 1
    write_manifest(emulator, {k: v for k, v in m.meta.items() if k != "id"}, arrays)
    capsys.readouterr()
    assert _cli("verify", config, "--samples", "10") == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"fpgaflow verify: error: {emulator}: the manifest does not match the project any more (the weights of "
        "'fc2_relu' differ from what hls4ml builds from the model now); re-run `fpgaflow synth`"
    ), err


@pytest.mark.parametrize(("name", "suggestion"), [("jet-tagger", "jet_tagger"), ("my project", "my_project"),
                                                    (123, "n_123"), ("int", "n_int")])  # fmt: skip
def test_a_project_name_that_is_not_a_cpp_identifier_is_refused(tmp_path, capsys, name, suggestion):
    """hls4ml names the top function, the files and the csim library after ProjectName:
    synth built `jet-tagger` (exit 0), verify then failed with g++ errors and a traceback."""
    config = write_project(tmp_path, {**JET, "ProjectName": name}, JET_FILES)
    assert _cli("synth", config) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"fpgaflow synth: error: {config}: ProjectName {str(name)!r} is not a C++ identifier, and hls4ml names the "
        "firmware's functions, types and variables after it (letters, digits and _, not starting with a digit, "
        f"not a keyword): give another name, e.g. {suggestion!r}"
    ]
    assert not (tmp_path / "build").exists()


@pytest.mark.parametrize("name", ["fc-1", "out.put"])
def test_a_layer_name_that_is_not_a_cpp_identifier_is_refused(tmp_path, capsys, name):
    """hls4ml names the layer's variables and types after it (`fc-1_weight_t`): synth
    built the project, verify failed with g++ errors and a traceback."""
    import tensorflow as tf

    inp = tf.keras.Input((4,), name="inp")
    h = tf.keras.layers.Dense(3, activation="relu", name="fc")(inp)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(2, name=name)(h))
    files = save_keras(model, tmp_path / "src", "m")
    config = write_project(tmp_path / "p", {"KerasJson": "m.json", "KerasH5": "m_weights.h5"}, files)
    assert _cli("synth", config) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(
        f"fpgaflow synth: error: {config}: layer {name!r} (Dense): its name is not a C++ identifier"
    ), err
    assert err.splitlines()[-1].endswith(
        f"rename the layer in the model, e.g. {name.replace('-', '_').replace('.', '_')!r}"
    )
    assert "Traceback" not in err and not (tmp_path / "p" / "build").exists()


def test_a_merge_of_three_inputs_is_refused_by_layer(tmp_path, capsys):
    """hls4ml's parser raised 'Merging more than two tensors is not yet supported' as a
    raw traceback (exit 1)."""
    import tensorflow as tf

    inp = tf.keras.Input((4,), name="inp")
    branches = [tf.keras.layers.Dense(3, name=f"d{i}")(inp) for i in range(3)]
    model = tf.keras.Model(inp, tf.keras.layers.Add(name="sum3")(branches))
    files = save_keras(model, tmp_path / "src", "m")
    config = write_project(tmp_path / "p", {"KerasJson": "m.json", "KerasH5": "m_weights.h5"}, files)
    assert _cli("synth", config) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"fpgaflow synth: error: {config}: layer 'sum3' of type Add: it merges 3 inputs, hls4ml merges two "
        "(chain two-input Add layers instead)"
    ), err


def test_an_hls4ml_parser_error_is_one_line_naming_the_layer(tmp_path, capsys):
    """hls4ml's per-layer parsers raise bare Exceptions ('ERROR: Concatenation of tensors
    with rank > 3 is not yet supported.', 'Unsupported QKeras activation: ...'), which
    escaped as raw tracebacks (exit 1): they ran outside the conversion's error handling
    (the parse for the configuration).  (The QKeras activations hls4ml does not know are
    now refused by layer before hls4ml parses the model: a limit fpgaflow does not
    check itself stands in here.)"""
    import tensorflow as tf

    inp = tf.keras.Input((1, 1, 1, 2), name="inp")
    a, b = (tf.keras.layers.Dense(2, name=name)(inp) for name in ("fa", "fb"))
    model = tf.keras.Model(inp, tf.keras.layers.Concatenate(name="cat")([a, b]))
    model.save(tmp_path / "m.h5")
    config = write_project(tmp_path / "p", {"KerasH5": str(tmp_path / "m.h5")})
    assert _cli("synth", config) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"fpgaflow synth: error: {config}: hls4ml could not convert the model: layer 'cat' (Concatenate): "
        "Concatenation of tensors with rank > 3 is not yet supported."
    ), err
    from hls4ml.converters import get_supported_keras_layers
    from hls4ml.converters.keras_v2_to_hls import layer_handlers

    assert all(h.__name__ != "parse" for h in layer_handlers.values())  # hls4ml's own parsers again
    assert "QActivation" in get_supported_keras_layers()


@pytest.mark.parametrize("layer", ["Conv2D", "MaxPooling2D"])
def test_channels_first_layers_are_refused_by_layer(tmp_path, capsys, layer):
    """A channels_first Conv2D reached hls4ml, which failed with 'cannot reshape array of
    size 0 into shape (0,newaxis)'; the docs list channels_first among the layers synth
    refuses by name and type."""
    import tensorflow as tf

    k = tf.keras.layers
    inp = tf.keras.Input((2, 6, 6), name="inp")
    made = k.Conv2D(3, 3, data_format="channels_first", name="c") if layer == "Conv2D" else None
    made = made or k.MaxPooling2D(2, data_format="channels_first", name="c")
    model = tf.keras.Model(inp, k.Dense(2, name="out")(k.Flatten(name="flat")(made(inp))))
    files = save_keras(model, tmp_path / "src", "m")
    config = write_project(tmp_path / "p", {"KerasJson": "m.json", "KerasH5": "m_weights.h5"}, files)
    assert _cli("synth", config) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"fpgaflow synth: error: {config}: layer 'c' of type {layer}: data_format 'channels_first' is not "
        "supported (supported: channels_last)"
    ), err


def test_a_scaling_for_another_number_of_features_is_refused(tmp_path, capsys):
    """synth exported a 8-feature scaling with the 16-input network; every consumer of
    the manifest (emulate, verify, the board) refused it later."""
    from fpgaflow.data import fit_scaling

    fit_scaling("none", np.zeros((1, 8)), [f"f{i}" for i in range(8)]).save(tmp_path / "scaling8.json")
    config = write_project(tmp_path, {**JET, "Preprocessing": "scaling8.json"}, JET_FILES)
    assert _cli("synth", config) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"fpgaflow synth: error: {config}: the input scaling {tmp_path / 'scaling8.json'} is for 8 features, but "
        "the network takes 16 per sample (input shape (16,)); name the scaling fitted for this model with the "
        "Preprocessing key, or re-run `fpgaflow train`"
    ), err
    assert not (tmp_path / "build").exists()


def test_own_model_with_a_data_block_and_no_training_synthesizes(tmp_path):
    """A model trained elsewhere with a Data block for profile: synth asked for
    scaling.json and `fpgaflow train`, which cannot run without a Training block."""
    from sim.manifest import read_manifest

    np.savez(tmp_path / "data.npz", X=np.zeros((4, 16)), y=np.zeros(4, dtype=int))
    data = {"File": "data.npz", "Features": "X", "Labels": "y", "Scaling": "none"}
    project = _synth(write_project(tmp_path, {**JET, "Data": data}, JET_FILES))
    assert "preprocessing" not in read_manifest(project.build_dir / "emulator").meta


def test_ternary_qactivation_without_firmware_call_is_refused(tmp_path):
    """hls4ml 1.3.0 emits no call for a TernaryTanh layer (its output array is read
    uninitialised by the next layer): synth must refuse, naming the layer."""
    import tensorflow as tf
    from qkeras import QActivation

    from fpgaflow.project import ProjectError

    inp = tf.keras.Input((4,))
    h = QActivation("ternary(alpha=1)", name="my_ternary")(tf.keras.layers.Dense(4)(inp))
    model = tf.keras.Model(inp, tf.keras.layers.Dense(2)(h))
    files = save_keras(model, tmp_path / "src", "t")
    config = write_project(tmp_path / "p", {"KerasJson": "t.json", "KerasH5": "t_weights.h5"}, files)
    with pytest.raises((ProjectError, ValueError), match=r"'my_ternary' \(TernaryTanh.*generates no call"):
        _synth(config)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_emulator_threads_survive_fork(jet_project):
    """predict runs chunks in a thread pool; a forked child (a node worker, a board
    stand-in) must get a working pool, not the parent's dead one."""
    import os

    import sim

    net = sim.load(jet_project.build_dir / "emulator")
    x = np.random.default_rng(1).uniform(-40, 40, size=(20_000, 16))
    expected = net.predict(x).raw  # the parent's pool now exists
    pid = os.fork()
    if pid == 0:  # child: same answer, no hang
        os._exit(0 if np.array_equal(net.predict(x).raw, expected) else 3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.oracle
def test_verify_exits_1_and_names_the_layer_when_the_firmware_differs(tmp_path, capsys, monkeypatch):
    """An emulator that computes fc2_relu otherwise than the firmware (a manifest whose fc2
    weights are off by one LSB, standing in for an emulator bug; verify's stale-manifest
    check, which refuses such a manifest, is bypassed): ``fpgaflow verify`` (real csim)
    must exit 1 and report fc2_relu as the first diverging layer."""
    from fpgaflow.network import verify
    from sim.manifest import read_manifest, write_manifest

    monkeypatch.setattr(verify, "refuse_stale_manifest", lambda *args: None)

    config = write_project(tmp_path / "p", dict(JET), JET_FILES)
    _synth(config)
    emulator = tmp_path / "p" / "build" / "emulator"
    m = read_manifest(emulator)
    key = next(s for s in m.meta["layers"] if s["name"] == "fc2_relu")["arrays"]["weight"]
    arrays = dict(m.arrays)
    arrays[key] = arrays[key].copy()
    arrays[key] += 1  # one LSB on every weight
    write_manifest(emulator, {k: v for k, v in m.meta.items() if k not in ("id", "format", "format_version")}, arrays)
    capsys.readouterr()
    status = _cli("verify", config, "--samples", "500", "--json")
    result = json.loads(capsys.readouterr().out)
    assert status == 1
    assert result["bit_exact_fraction"] < 1.0
    assert result["first_divergence"]["layer"] == "fc2_relu"
    # no Data: block: the float model is compared on the random inputs, and the JSON says so
    assert result["inputs"] == {"random": 500} and result["float_model"]["inputs"] == "random"


def test_two_input_network_is_refused(tmp_path):
    import tensorflow as tf

    from fpgaflow.project import ProjectError

    a, b = tf.keras.Input((4,), name="a"), tf.keras.Input((4,), name="b")
    model = tf.keras.Model([a, b], tf.keras.layers.Dense(2)(tf.keras.layers.Add()([a, b])))
    files = save_keras(model, tmp_path / "src", "two")
    config = write_project(tmp_path / "p", {"KerasJson": "two.json", "KerasH5": "two_weights.h5"}, files)
    with pytest.raises(ProjectError, match="networks with 2 inputs are not supported"):
        _synth(config)


def _hls_config(tmp_path, project: dict, files: dict):
    """The hls4ml configuration synth would convert with (no conversion: fast)."""
    from fpgaflow.network.config import read_settings
    from fpgaflow.network.convert import hls_config
    from fpgaflow.network.model import load_keras_model
    from fpgaflow.project import load_project

    loaded = load_project(write_project(tmp_path, project, files))
    settings = read_settings(loaded)
    return hls_config(load_keras_model(loaded), settings), settings


def test_model_reuse_factor_reaches_every_layer(tmp_path):
    """hls4ml's generated per-name entries carry ReuseFactor 1, which hls4ml reads before
    Model: the user's Model.ReuseFactor must win over them (it was silently 1)."""
    from sim.manifest import read_manifest

    model = {"Precision": "ap_fixed<16,6>", "Strategy": "Resource", "ReuseFactor": 4}
    project = _synth(write_project(tmp_path, {**JET, "HLSConfig": {"Model": model}}, JET_FILES))
    dense = [s for s in read_manifest(project.build_dir / "emulator").meta["layers"] if s["kind"] == "dense"]
    assert [(s["strategy"], s["reuse_factor"]) for s in dense] == [("resource", 4)] * 4
    parameters = (project.build_dir / "hls" / "firmware" / "parameters.h").read_text()
    assert "reuse_factor = 4;" in parameters and "reuse_factor = 1;" not in parameters
    report = json.loads((project.build_dir / "report.json").read_text())
    assert {r["reuse_factor"] for r in report["layers"] if r["kind"] == "dense"} == {4}


def test_layer_type_entries_apply_under_layer_name_ones(tmp_path):
    """user LayerName > user LayerType > user Model > hls4ml's generated defaults."""
    from sim.manifest import read_manifest

    hls = {
        "Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 2},
        "LayerType": {"Dense": {"Precision": "ap_fixed<8,3>", "ReuseFactor": 4}},
        "LayerName": {"fc2_relu": {"Precision": {"weight": "ap_fixed<10,4>"}, "ReuseFactor": 8}},
    }
    project = _synth(write_project(tmp_path, {**JET, "HLSConfig": hls}, JET_FILES))
    layers = {s["name"]: s for s in read_manifest(project.build_dir / "emulator").meta["layers"]}
    fc1, fc2 = layers["fc1_relu"], layers["fc2_relu"]
    assert fc1["reuse_factor"] == 4 and fc2["reuse_factor"] == 8
    assert {fc1[k] for k in ("weight_type", "bias_type", "accum_type", "result_type")} == {"ap_fixed<8,3>"}
    assert (fc2["weight_type"], fc2["bias_type"], fc2["accum_type"]) == ("ap_fixed<10,4>",) + ("ap_fixed<8,3>",) * 2
    assert layers["fc1_relu_relu"]["result_type"] == "ap_fixed<16,6>"  # activations: Model's


def test_quantizer_types_survive_model_and_layer_type_settings(tmp_path):
    """A QKeras quantizer's type is the layer's own: LayerType and Model entries leave it
    (and say so), a LayerName entry replaces it."""
    files = {n: MODELS / n for n in ("qkeras_3layer.json", "qkeras_3layer_weights.h5")}
    hls = {
        "Model": {"Precision": {"default": "ap_fixed<16,6>", "result": "ap_fixed<20,8>"}},
        "LayerType": {"Activation": {"Precision": "ap_fixed<8,3>"}},
        "LayerName": {"relu2": {"Precision": {"result": "ap_ufixed<4,0>"}}},
    }
    project = {"KerasJson": "qkeras_3layer.json", "KerasH5": "qkeras_3layer_weights.h5", "HLSConfig": hls}
    config, settings = _hls_config(tmp_path, project, files)
    names = config["LayerName"]
    assert names["relu1"]["Precision"]["result"] == "ufixed<6,0,RND_CONV,SAT,0>"  # the quantizer's
    assert names["relu2"]["Precision"]["result"] == "ap_ufixed<4,0>"
    assert names["fc1_linear"]["Precision"]["result"] == "ap_fixed<8,3>"  # LayerType over Model
    assert names["fc1"]["Precision"]["result"] == "ap_fixed<20,8>"  # Model's named variable over 'auto'
    assert names["fc1"]["Precision"]["weight"] == "fixed<6,1,TRN,WRAP,0>"
    assert any("LayerType.Activation.Precision is not applied to layer 'relu1'" in w for w in settings.warnings)
    assert not any("'relu2'" in w for w in settings.warnings)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"IOtype": "io_stream"}, r"yml: unknown key\(s\) IOtype \(did you mean IOType\?\)"),
        ({"ClockPeriode": 3}, r"yml: unknown key\(s\) ClockPeriode \(did you mean ClockPeriod\?\)"),
        ({"InputData": "x.dat"}, r"unknown key\(s\) InputData \(hls4ml's test-bench data"),
        (
            {"HLSConfig": {"Model": {"Precison": "ap_fixed<8,3>", "ReuseFacter": 4}}},
            r"HLSConfig.Model: unknown key\(s\) Precison \(did you mean Precision\?\), "
            r"ReuseFacter \(did you mean ReuseFactor\?\)",
        ),
        (
            {"HLSConfig": {"Model": {"Precision": {"defualt": "ap_fixed<8,3>"}}}},
            r"HLSConfig.Model.Precision: unknown variable\(s\) defualt \(did you mean default\?\)",
        ),
        (
            {"HLSConfig": {"LayerName": {"fc1_relu": {"Precision": {"wieght": "ap_fixed<4,1>"}}}}},
            r"HLSConfig.LayerName.fc1_relu.Precision: unknown variable\(s\) wieght \(did you mean weight\?\)",
        ),
        (
            {"HLSConfig": {"LayerName": {"fc1_relu": {"ReuseFacter": 4}}}},
            r"HLSConfig.LayerName.fc1_relu: unknown key\(s\) ReuseFacter \(did you mean ReuseFactor\?\)",
        ),
        (  # YAML's flow mapping `{weight: ap_fixed<4,1>}` ends the value at the comma
            {"HLSConfig": {"LayerName": {"fc1_relu": {"Precision": {"weight": "ap_fixed<4", "1>": None}}}}},
            r"HLSConfig.LayerName.fc1_relu.Precision.weight: ap_fixed<4: not a fixed-point type; expected e.g. .* "
            r"\(a type split at its comma: quote types inside \{...\}\)$",
        ),
        (  # a '>' left out, not a split: no such hint
            {"HLSConfig": {"LayerName": {"fc1_relu": {"Precision": {"weight": "ap_fixed<4,1"}}}}},
            r"HLSConfig.LayerName.fc1_relu.Precision.weight: ap_fixed<4,1: not a fixed-point type; expected e.g. .* "
            r"or uint<4>$",
        ),
        (
            {"HLSConfig": {"LayerName": {"fc1relu": {"ReuseFactor": 4}}}},
            r"LayerName names layer 'fc1relu', which the model does not have \(did you mean fc1_relu\?\)",
        ),
        (  # hls4ml's own lookup ignores case; the suggestion did not
            {"HLSConfig": {"LayerName": {"FC1_RELU": {"ReuseFactor": 4}}}},
            r"LayerName names layer 'FC1_RELU', which the model does not have \(did you mean fc1_relu\?\); its",
        ),
        (
            {"HLSConfig": {"LayerType": {"Dens": {"Precision": "ap_fixed<8,3>"}}}},
            r"HLSConfig.LayerType: unknown layer class\(es\) Dens \(did you mean Dense\?\)",
        ),
        (
            {"HLSConfig": {"LayerType": {"Dense": {"TableSize": 512}}}},
            r"HLSConfig.LayerType.Dense: unknown key\(s\) TableSize; known: ",
        ),
        (
            {"HLSConfig": {"Model": {"Precision": "ap_fixed<16", "6>": None}}},
            r"unknown key\(s\) 6> \(the end of a type split at its comma: quote types inside \{...\}\)",
        ),
    ],
)
def test_misspelt_keys_are_refused_with_their_path(tmp_path, capsys, change, message):
    """A key hls4ml would not read (a typo) silently gave the defaults: exit 2, one line
    naming the file, the key's path and the key it resembles."""
    config = write_project(tmp_path, {**JET, **change}, JET_FILES)
    assert _cli("synth", config) == 2
    err = capsys.readouterr().err
    assert re.search(message, err, re.M) and str(config) in err and "Traceback" not in err
    assert not (tmp_path / "build").exists()


def test_hls4ml_snake_case_keys_are_accepted(tmp_path):
    """hls4ml snake-cases layer keys (its own example configs write table_size, exp_table_t)."""
    names = {"fc1_relu_relu": {"table_size": 512}, "output_softmax_softmax": {"exp_table_t": "ap_fixed<18,8>"}}
    config, _ = _hls_config(tmp_path, {**JET, "HLSConfig": {"LayerName": names}}, JET_FILES)
    assert config["LayerName"]["fc1_relu_relu"]["TableSize"] == 512
    assert "table_size" not in config["LayerName"]["fc1_relu_relu"]
    assert config["LayerName"]["output_softmax_softmax"]["exp_table_t"] == "ap_fixed<18,8>"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"HLSConfig": {"Model": {"Precision": "ap_fixed<8>"}}},
            r"yml: HLSConfig.Model.Precision: ap_fixed<8>: expected 2 to 5 parameters",
        ),
        (
            {"HLSConfig": {"LayerName": {"fc1_relu": {"Precision": {"result": "ap_fixed<16,6,AP_RND,AP_SATT>"}}}}},
            r"yml: HLSConfig.LayerName.fc1_relu.Precision.result: ap_fixed<16,6,AP_RND,AP_SATT>: "
            r"unknown overflow mode 'AP_SATT'",
        ),
        (
            {"HLSConfig": {"Model": {"Precision": 16}}},
            r"yml: HLSConfig.Model.Precision: 16: a fixed-point type must be given as a string",
        ),
        (
            {"HLSConfig": {"Model": {"Precision": "auto"}}},
            r"HLSConfig.Model.Precision: the model default must be a type such as ap_fixed<16,6>, not auto",
        ),
        (
            {"HLSConfig": {"LayerName": {"output_softmax_softmax": {"exp_table_t": "ap_fixed<18>"}}}},
            r"HLSConfig.LayerName.output_softmax_softmax.exp_table_t: ap_fixed<18>: expected 2 to 5",
        ),
        (
            {"HLSConfig": {"LayerName": {"fc1_relu": {"Precision": {"weight": "ap_fixed<6,2,AP_RND,AP_WRAP_SM>"}}}}},
            r"yml: HLSConfig.LayerName.fc1_relu.Precision.weight: ap_fixed<6,2,AP_RND,AP_WRAP_SM>: hls4ml has "
            r"no AP_WRAP_SM .*AP_WRAP, AP_SAT, AP_SAT_ZERO or AP_SAT_SYM",
        ),
        (
            {"HLSConfig": {"Model": {"Strategy": "distributed_arithmetic"}}},
            r"yml: HLSConfig.Model.Strategy is 'distributed_arithmetic', which the emulator does not compute",
        ),
        ({"ClockPeriod": "5ns"}, r"yml: ClockPeriod is '5ns'; give the period in ns as a positive number"),
        (
            {"HLSConfig": {"Model": {"Strategy": "Resourse"}}},
            r"HLSConfig.Model.Strategy is 'Resourse' \(did you mean Resource\?\)",
        ),
        (
            {"HLSConfig": {"LayerType": {"Dense": {"ReuseFactor": 0}}}},
            r"HLSConfig.LayerType.Dense.ReuseFactor is 0; it must be a whole number >= 1",
        ),
        (
            {"HLSConfig": {"LayerName": {"fc1_relu_relu": {"TableSize": 0}}}},
            r"HLSConfig.LayerName.fc1_relu_relu.TableSize is 0; a table size must be a whole number >= 1",
        ),
        (
            {"HLSConfig": {"LayerType": {"Activation": {"table_size": 512.5}}}},
            r"HLSConfig.LayerType.Activation.table_size is 512.5; a table size must be a whole number >= 1",
        ),
        (
            {"HLSConfig": {"LayerName": {"output_softmax_softmax": {"TableSize": 1000}}}},
            r"HLSConfig.LayerName.output_softmax_softmax.TableSize is 1000, but layer 'output_softmax_softmax' is a "
            r"softmax with Implementation stable, which addresses its exp and inverse tables by the top 10 bits .*"
            r"give a power of two, e.g. 512 or 1024",
        ),
        (
            {
                "HLSConfig": {
                    "LayerType": {"Softmax": {"TableSize": 768}},
                    "LayerName": {"output_softmax_softmax": {"Implementation": "latency"}},
                }
            },
            r"HLSConfig.LayerType.Softmax.TableSize is 768, but layer 'output_softmax_softmax' is a softmax with "
            r"Implementation latency",
        ),
    ],
)
def test_bad_values_are_refused_before_hls4ml(tmp_path, capsys, change, message):
    """Bad types reached hls4ml's parser (IndexError, KeyError 'SATT', AttributeError),
    '5ns' float(), a misspelt strategy silently meant Latency: exit 2 naming the path."""
    config = write_project(tmp_path, {**JET, **change}, JET_FILES)
    assert _cli("synth", config) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "hls4ml could not convert" not in err and "Traceback" not in err


def test_softmax_tables_indexed_by_value_take_any_size(tmp_path):
    """Only latency/stable softmax address their tables by the word's top bits: a legacy
    softmax or a sigmoid clips its index into the table, so 1000 entries are fine."""
    names = {"output_softmax_softmax": {"Implementation": "legacy", "TableSize": 1000}}
    config, _ = _hls_config(tmp_path, {**JET, "HLSConfig": {"LayerName": names}}, JET_FILES)
    assert config["LayerName"]["output_softmax_softmax"]["TableSize"] == 1000


def test_weights_their_type_cannot_hold_are_reported(tmp_path, capsys):
    """|w| up to 3.37 in ap_fixed<6,1> wrapped silently (136 of 1024), and fixed<3,8>
    (step 32) made every weight raw -1 or 0: synth warns, per layer, and reports them."""
    names = {
        "fc1_relu": {"Precision": {"weight": "ap_fixed<6,1>"}},
        "fc2_relu": {"Precision": {"weight": "ap_fixed<6,1,AP_RND,AP_SAT>"}},
        "fc3_relu": {"Precision": {"weight": "fixed<3,8>"}},
    }
    config = write_project(tmp_path, {**JET, "HLSConfig": {"LayerName": names}}, JET_FILES)
    assert _cli("synth", config) == 0
    err = capsys.readouterr().err
    wrap = (
        "layer 'fc1_relu': weight type ap_fixed<6,1>: 136 of 1024 values lie outside its range [-1, 0.96875] "
        "(largest |value| 3.37) and wrap in the firmware"
    )
    assert wrap in err
    assert re.search(r"layer 'fc2_relu': weight type ap_fixed<6,1,AP_RND,AP_SAT>: \d+ of 2048 .* and saturate", err)
    coarse = "layer 'fc3_relu': weight type ap_fixed<3,8>: 1024 of 1024 non-zero values become 0 or cross zero"
    assert coarse in err
    report = json.loads((tmp_path / "build" / "report.json").read_text())
    rows = {r["layer"]: r for r in report["weights_not_held"]}
    assert set(rows) == {"fc1_relu", "fc2_relu", "fc3_relu"} and rows["fc1_relu"]["outside_range"] == 136
    assert rows["fc1_relu"]["range"] == [-1.0, 0.96875] and rows["fc3_relu"]["lost_to_step"] == 1024
    assert wrap in "\n".join(report["warnings"]) and wrap in (tmp_path / "build" / "report.md").read_text()


def test_weights_their_type_holds_raise_no_warning(jet_project):
    """No weight warning; the one warning is the softmax's (hls4ml's default types for this
    plain Keras model give it a wide automatic input: see the coarse exp table test)."""
    report = json.loads((jet_project.build_dir / "report.json").read_text())
    assert report["weights_not_held"] == []
    assert [w.split(":")[0] for w in report["warnings"]] == ["layer 'output_softmax_softmax' (Softmax, stable)"]


@pytest.mark.parametrize("model", ["qkeras", "keras"])
def test_a_layer_name_weight_type_a_quantizer_overrides_is_reported(tmp_path, model):
    """hls4ml keeps a QKeras layer's quantizer types for its weights over a LayerName
    entry: ``fc1: {Precision: {weight: ap_fixed<10,2>}}`` built fixed<6,1> without a word
    (review).  On a plain Keras layer the entry is applied, and nothing is said."""
    from fpgaflow.network.config import read_settings
    from fpgaflow.network.convert import convert
    from fpgaflow.network.model import load_keras_model
    from fpgaflow.network.precision import unapplied_weight_types
    from fpgaflow.project import load_project

    stem, layer = ("qkeras_3layer", "fc1") if model == "qkeras" else ("KERAS_3layer", "fc1_relu")
    files = {n: MODELS / n for n in (f"{stem}.json", f"{stem}_weights.h5")}
    hls = {"LayerName": {layer: {"Precision": {"weight": "ap_fixed<10,2>"}}}}
    project = {"KerasJson": f"{stem}.json", "KerasH5": f"{stem}_weights.h5", "HLSConfig": hls}
    loaded = load_project(write_project(tmp_path, project, files))
    settings = read_settings(loaded)
    hls_model = convert(load_keras_model(loaded), settings, tmp_path / "hls")
    notes = unapplied_weight_types(hls_model, settings.hls_config)
    if model == "qkeras":
        (note,) = notes
        assert (
            f"LayerName.{layer}.Precision asks for weight ap_fixed<10,2>, but hls4ml built it as ap_fixed<6,1>" in note
        )
    else:
        assert notes == []


def test_synth_names_the_project_file_in_an_unapplied_weight_type_warning(tmp_path, capsys):
    """The warning names a key of the project file: it was the one synth warning without
    the file (``synth: warning: HLSConfig.LayerName.fc1.Precision asks for ...``)."""
    from fpgaflow.cli import main

    files = {n: MODELS / n for n in ("qkeras_3layer.json", "qkeras_3layer_weights.h5")}
    hls = {"LayerName": {"fc1": {"Precision": {"weight": "ap_fixed<10,2>"}}}}
    project = {"KerasJson": "qkeras_3layer.json", "KerasH5": "qkeras_3layer_weights.h5", "HLSConfig": hls}
    config = write_project(tmp_path, project, files)
    assert main(["synth", str(config)]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "asks for weight" in line]
    assert warned == [
        f"synth: warning: {config}: HLSConfig.LayerName.fc1.Precision asks for weight ap_fixed<10,2>, but hls4ml "
        "built it as ap_fixed<6,1>: the layer's QKeras quantizer sets its weights' types (change the quantizer and "
        "retrain)"
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_value": 1.0}, r"max_value=1 is not supported: hls4ml .* builds a plain relu.*quantized_relu"),
        ({"negative_slope": 0.25}, r"negative_slope=0.25 is not supported: .*LeakyReLU"),
        ({"threshold": 1.0}, r"threshold=1 is not supported: .*ThresholdedReLU"),
        ({"max_value": 6.0, "threshold": 0.5}, r"max_value=6, threshold=0.5 is not supported"),
        ({}, None),
        ({"max_value": float("inf")}, None),
    ],
)
def test_relu_options_hls4ml_drops_are_refused(tmp_path, options, message):
    """hls4ml 1.3 turns every Keras ReLU into a plain relu: ReLU(max_value=1) was built
    unbounded, silently (audit).  Refused by layer and option; the plain ReLU passes."""
    import tensorflow as tf

    from fpgaflow.network.convert import check_supported
    from fpgaflow.project import ProjectError

    inp = tf.keras.Input((4,), name="x")
    model = tf.keras.Model(inp, tf.keras.layers.ReLU(name="act", **options)(tf.keras.layers.Dense(3)(inp)))
    if message is None:
        check_supported(model, "config.yml")
    else:
        with pytest.raises(ProjectError, match=r"config.yml: layer 'act' of type ReLU: " + message):
            check_supported(model, "config.yml")


@pytest.mark.parametrize(
    ("kind", "activation", "message"),
    [
        (
            "activation",
            "binary_tanh",
            r"activation binary_tanh is not supported: QKeras's binary_tanh is 2 \* round\(hard_sigmoid\(x\)\) - 1, "
            r"which is -1 at x = 0 .* hls4ml's binary_tanh gives \+1 \(it tests x >= 0\).* "
            r"binary\(alpha=1\) is \+1 at 0",
        ),
        ("activation", "binary_sigmoid", r"activation binary_sigmoid is not supported: .* 0 or 1 \(1 where x > 0\)"),
        (
            "activation",
            "stochastic_binary()",
            r"activation stochastic_binary\(\) is not supported: hls4ml 1.3.0 does not convert it \(Unsupported "
            r"QKeras activation: stochastic_binary\); it converts quantized_bits, quantized_relu, quantized_tanh, "
            r"quantized_sigmoid, binary and ternary",
        ),
        ("activation", "stochastic_ternary()", r"activation stochastic_ternary\(\) is not supported: hls4ml 1.3.0"),
        ("activation", "bernoulli()", r"activation bernoulli\(\) is not supported"),
        ("activation", "hard_tanh", r"activation hard_tanh is not supported: .*\(Unsupported QKeras activation"),
        ("activation", "quantized_po2(4)", r"activation quantized_po2\(4\) is not supported"),
        ("activation", "quantized_hswish(4,1)", r"activation quantized_hswish\(4,1\) is not supported"),
        ("dense_activation", "stochastic_binary()", r"activation stochastic_binary\(.*\) is not supported"),
        ("activation", "binary(alpha=1)", None),
        ("activation", "ternary(alpha=1)", None),
        ("activation", "quantized_tanh(3)", None),
        ("dense_activation", "quantized_relu(4)", None),
        ("dense_activation", "relu", None),
    ],
)
def test_qkeras_activations_hls4ml_builds_otherwise_are_refused(kind, activation, message):
    """QKeras's binary_tanh (-1 at 0) and binary_sigmoid (0 or 1) were built as hls4ml's
    binary_tanh (+1 at 0; -1 or +1) without a word; stochastic_binary, hard_tanh... made
    hls4ml raise 'Unsupported QKeras activation', naming no layer (audit).  Refused by
    layer before conversion; the activations hls4ml builds pass."""
    import tensorflow as tf
    from qkeras import QActivation, QDense
    from qkeras.quantizers import get_quantizer

    from fpgaflow.network.convert import check_supported
    from fpgaflow.project import ProjectError

    inp = tf.keras.Input((4,), name="x")
    if kind == "activation":
        name, model = "q", tf.keras.Model(inp, QActivation(activation, name="q")(inp))
    else:
        act = activation if activation == "relu" else get_quantizer(activation)
        name, model = "fc", tf.keras.Model(inp, QDense(3, name="fc", activation=act)(inp))
    if message is None:
        check_supported(model, "config.yml")
    else:
        with pytest.raises(ProjectError, match=rf"config.yml: layer '{name}' of type Q\w+: " + message):
            check_supported(model, "config.yml")


@pytest.mark.parametrize(
    ("activation", "message"),
    [
        (
            "binary(alpha=1)",
            r"layer 'bnbt_bn' \(hls4ml 1.3.0's merge of the BatchNormalization 'bn' and the binary activation 'q'\) is "
            r"not supported: its scale \(gamma / sqrt\(variance \+ epsilon\)\) is negative in 2 of 4 channels "
            r"\(1, 3\), where QKeras's output is \+1 below the threshold",
        ),
        ("ternary(alpha=1)", r"layer 'bnbt_q_scale' \(.* the ternary activation 'q' .* negative in 2 of 4 channels"),
    ],
)
def test_batchnorm_thresholds_with_a_negative_scale_are_refused(tmp_path, activation, message):
    """hls4ml 1.3 merges a BatchNormalization and a binary/ternary activation into
    thresholds compared as x >= t: with a negative gamma QKeras's output is +1 below t,
    and the firmware gave the opposite sign on 8,191 of 8,192 inputs of those channels,
    without a word (audit).  Refused by layer, naming the channels."""
    from network_oracle import bn_activation_model, keras_project

    from fpgaflow.project import ProjectError

    model = bn_activation_model(activation, [1.3, -0.7, 0.9, -1.6])
    config = keras_project(tmp_path, model, "bnt", {"Model": {"Precision": "ap_fixed<16,6>"}})
    with pytest.raises(ProjectError, match=r"config.yml: " + message):
        _synth(config)


def test_a_legacy_softmax_table_type_is_reported_as_not_applied(tmp_path, capsys):
    """hls4ml's softmax config has no table_t: a legacy softmax's Precision table was
    silently replaced by nnet::activ_config::table_t (audit).  synth warns, in its
    output and the report; the default table type raises nothing."""
    names = {"output_softmax_softmax": {"Implementation": "legacy", "Precision": {"table": "ap_fixed<12,4>"}}}
    config = write_project(tmp_path, {**JET, "HLSConfig": {"LayerName": names}}, JET_FILES)
    assert _cli("synth", config) == 0
    note = (
        "layer 'output_softmax_softmax' (Softmax, Implementation legacy): its table type ap_fixed<12,4> is not "
        "applied: hls4ml's softmax config has no table_t, so the firmware's exp and inverse tables are "
        "nnet::activ_config::table_t, ap_fixed<18,8>"
    )
    assert note in capsys.readouterr().err
    report = json.loads((tmp_path / "build" / "report.json").read_text())
    assert any(note in w for w in report["warnings"]) and note in (tmp_path / "build" / "report.md").read_text()
    parameters = (tmp_path / "build" / "hls" / "firmware" / "parameters.h").read_text()
    assert " table_t;" not in parameters.split("struct softmax_config")[1].split("};")[0]
    names["output_softmax_softmax"]["Precision"] = {"table": "ap_fixed<18,8>"}
    config = write_project(tmp_path / "default", {**JET, "HLSConfig": {"LayerName": names}}, JET_FILES)
    assert _cli("synth", config) == 0
    assert "Implementation legacy" not in capsys.readouterr().err


def _qbits_model(shape: str):
    import tensorflow as tf
    from qkeras import QActivation, QDense

    k = tf.keras
    inp = k.Input((6,), name="x")
    h = QDense(4, name="fc", activation="relu" if shape == "relu" else None)(inp)
    if shape == "batchnorm":
        h = k.layers.BatchNormalization(name="bn")(h)
    q = QActivation("quantized_bits(6,2,alpha=1)", name="qb")(h)
    if shape == "branch":
        q = k.layers.Concatenate(name="cat")([q, k.layers.Dense(3, name="fc2")(h)])
    return k.Model(inp, q)


@pytest.mark.parametrize(
    ("shape", "typed", "message"),
    [
        (
            "dense",
            "fc",
            r"layer 'qb' \(QActivation quantized_bits\(6,2,alpha=1\)\) is removed by hls4ml's MergeLinearActivation, "
            r"which would leave layer 'fc''s automatic type ap_fixed<\d+,\d+>: fpgaflow gives 'fc', 'fc_linear' the "
            r"result type ap_fixed<6,3,AP_RND_CONV,AP_SAT> instead, so the firmware applies 'qb''s type",
        ),
        ("relu", "fc_relu", r"layer 'qb' .* which would leave layer 'fc_relu''s automatic type ap_fixed<16,6>: "),
        (
            "branch",
            None,
            r"layer 'qb' \(QActivation quantized_bits\(6,2,alpha=1\), type ap_fixed<6,3,AP_RND_CONV,AP_SAT>\) is "
            r"removed by hls4ml's MergeLinearActivation and not applied: the firmware uses layer 'fc''s type "
            r"ap_fixed<\d+,\d+> instead; fpgaflow does not give 'fc' that type because 'fc''s output also feeds",
        ),
        ("batchnorm", None, r"not applied: .* because hls4ml folds 'bn' between them"),
    ],
)
def test_a_quantized_bits_activation_hls4ml_merges_gets_its_type(tmp_path, shape, typed, message):
    """hls4ml 1.3's MergeLinearActivation removes a QActivation(quantized_bits) after a
    layer with an automatic result type and keeps that type (ap_fixed<36,16> after a
    Dense): the quantization was silently not done (audit).  synth gives the layer the
    quantizer's type where only the QActivation reads it, and says so; otherwise it warns."""
    from fpgaflow.network.config import read_settings
    from fpgaflow.network.convert import convert
    from fpgaflow.network.types import result_type
    from fpgaflow.project import load_project

    files = save_keras(_qbits_model(shape), tmp_path / "src", "q")
    hls = {"Model": {"Precision": "ap_fixed<16,6>"}}
    loaded = load_project(
        write_project(tmp_path, {"KerasJson": "q.json", "KerasH5": "q_weights.h5", "HLSConfig": hls}, files)
    )
    settings = read_settings(loaded)
    from fpgaflow.network.model import load_keras_model

    hls_model = convert(load_keras_model(loaded), settings, tmp_path / "hls")
    (warning,) = settings.warnings
    assert re.search(message, warning), warning
    layers = {layer.name: layer for layer in hls_model.get_layers()}
    assert "qb" not in layers
    if typed:
        assert result_type(layers[typed]) == "ap_fixed<6,3,AP_RND_CONV,AP_SAT>"


def test_quantizers_hls4ml_types_wrongly_get_their_own_type(tmp_path):
    """hls4ml 1.3 types a QActivation from bits and integer alone: quantized_bits(6,2,
    keep_negative=False) became the signed fixed<6,3> (-4..3.875 in steps of 1/8 where
    QKeras gives 0..3.9375 in steps of 1/16), symmetric=True reached -4, and integer >=
    bits - 1 an ap_int that truncates and wraps; emulator == csim, without a word (audit).
    synth gives each layer the type whose cast is the quantizer, says so, and the
    firmware's values equal QKeras's on a grid (csim: test_qkeras_quantizers_hls4ml_types_wrongly)."""
    from network_oracle import (
        QUANTIZER_BRANCHES,
        QUANTIZER_GRID_TYPE,
        quantizer_grid,
        quantizer_layer_outputs,
        quantizer_type_model,
    )

    import sim
    from fpgaflow.network.model import load_keras_model

    files = save_keras(quantizer_type_model(), tmp_path / "src", "q")
    hls = {"Model": {"Precision": QUANTIZER_GRID_TYPE}}
    project = _synth(
        write_project(tmp_path, {"KerasJson": "q.json", "KerasH5": "q_weights.h5", "HLSConfig": hls}, files)
    )
    net = sim.load(project.build_dir / "emulator")
    warnings = json.loads((project.build_dir / "report.json").read_text())["warnings"]
    x = quantizer_grid()
    trace = net.trace(x)
    keras = quantizer_layer_outputs(load_keras_model(project), x)
    types = {layer.name: str(layer.result_type) for layer in net.layers}
    for name, (_, right) in QUANTIZER_BRANCHES.items():
        layer = "fc" if name == "qb_dense" else name  # hls4ml merges qb_dense into the QDense
        assert types[layer] == right, (name, types)
        assert np.array_equal(trace[layer].values.reshape(len(x), -1), keras[name]), name
        assert any(f"layer {name!r} (" in w and f"fpgaflow gives it {right}" in w for w in warnings), (name, warnings)
    note = next(w for w in warnings if "layer 'qb_unsigned'" in w)
    assert note.endswith(
        "layer 'qb_unsigned' (quantized_bits(6,2,0,keep_negative=False,alpha=1)): hls4ml 1.3.0 would give it the "
        "type ap_fixed<6,3,AP_RND_CONV,AP_SAT> (-4..3.875 in steps of 0.125, rounding to the nearest (ties to "
        "even), saturating), which is not the quantizer's function; fpgaflow gives it "
        "ap_ufixed<6,2,AP_RND_CONV,AP_SAT> (0..3.9375 in steps of 0.0625, rounding to the nearest (ties to even), "
        "saturating), which is"
    )
    assert "ap_int<4> (-8..7 in steps of 1, truncating towards zero, wrapping)" in next(
        w for w in warnings if "layer 'qb_int'" in w
    )


def _synth_weight_quantizers(tmp_path, model, layers: dict, hls: dict) -> tuple[dict, list[str], dict]:
    """Synth ``model`` and check, for each of ``layers`` (name: (kernel, bias, the weight and
    bias types, ...)), that the firmware's weights and biases (the manifest's, i.e. the
    header's strings cast into the type) are QKeras's, in the types given; returns the
    manifest's layer specs, synth's warnings and the report."""
    from qkeras.quantizers import get_quantizer

    from sim.fixed import FixedType
    from sim.manifest import read_manifest

    files = save_keras(model, tmp_path / "src", "q")
    project = _synth(
        write_project(tmp_path, {"KerasJson": "q.json", "KerasH5": "q_weights.h5", "HLSConfig": hls}, files)
    )
    manifest = read_manifest(project.build_dir / "emulator")
    specs = {spec["name"]: spec for spec in manifest.meta["layers"]}
    report = json.loads((project.build_dir / "report.json").read_text())
    for name, (kernel_q, bias_q, types, _) in layers.items():
        kernel, bias = model.get_layer(name).get_weights()
        # hls4ml divides a kernel alpha out of the weights and moves the bias to its ApplyAlpha layer
        holders = {"weight": specs[name], "bias": specs.get(f"{name}_alpha", specs[name])}
        for short, quantizer, values in (("weight", kernel_q, kernel), ("bias", bias_q, bias)):
            q = get_quantizer(quantizer)
            expected = q(values).numpy()  # sets q.scale: 1, a numeric alpha, or 'auto_po2''s per-column scales
            spec = holders[short]
            held = FixedType.parse(spec[f"{short}_type"])
            firmware = held.from_raw(manifest.arrays[spec["arrays"][short]]).reshape(values.shape)
            assert np.array_equal(firmware * np.asarray(q.scale), expected), (name, short)
        assert (specs[name]["weight_type"], holders["bias"]["bias_type"]) == types, name
    return specs, report["warnings"], report


def test_unsigned_weight_quantizers_get_their_own_type(tmp_path):
    """Kernel and bias quantized_bits(keep_negative=False) were refused (hls4ml 1.3 holds
    them in a signed type that loses their values); synth gives them the unsigned type
    that holds QKeras's values, says so naming the layer, and the firmware's weights are
    QKeras's (csim: test_unsigned_weight_quantizers_hold_qkeras_values)."""
    from network_oracle import UNSIGNED_WEIGHT_LAYERS, unsigned_weight_model

    hls = {"Model": {"Precision": "ap_fixed<16,6>"}}
    _, warnings, _ = _synth_weight_quantizers(tmp_path, unsigned_weight_model(), UNSIGNED_WEIGHT_LAYERS, hls)
    note = next(w for w in warnings if "layer 'd_uint' (QDense, kernel quantizer" in w)
    assert note.endswith(
        "layer 'd_uint' (QDense, kernel quantizer quantized_bits(4,4,0,keep_negative=False,alpha=1)): "
        "keep_negative=False gives values 0..15 in steps of 1, which hls4ml 1.3.0 would hold in the signed "
        "ap_int<4> (-8..7 in steps of 1); fpgaflow holds them in ap_uint<4>, which holds each exactly"
    )
    assert any("layer 'd_bit' (QDense, kernel quantizer" in w and "its binary type (ap_uint<1>, 0 standing for -1)" in w
               for w in warnings)  # fmt: skip
    assert any("layer 'qconv' (QConv1D, bias quantizer" in w and "the signed ap_fixed<4,3>" in w for w in warnings)


def test_signed_integer_weight_quantizers_get_their_own_type(tmp_path):
    """Kernel and bias quantized_bits(bits, bits) (QKeras: -2**bits .. 2**bits - 2 in steps
    of 2) were held in ap_int<bits>, which wraps half of them, with only a warning that
    values lie outside the type; ap_int<2> also selected hls4ml's ternary product.  synth
    gives them ap_fixed<bits, bits+1>, says so naming the layer, hls4ml's type and its own,
    and the firmware's weights are QKeras's; the signed quantizers hls4ml types right keep
    its type, with no note (csim: test_signed_integer_weight_quantizers_hold_qkeras_values)."""
    from network_oracle import SIGNED_WEIGHT_LAYERS, signed_weight_model

    hls = {"Model": {"Precision": "ap_fixed<32,22>"}, "LayerName": {"x": {"Precision": "ap_fixed<8,3>"}}}
    specs, warnings, report = _synth_weight_quantizers(tmp_path, signed_weight_model(), SIGNED_WEIGHT_LAYERS, hls)
    assert report["weights_not_held"] == []
    assert {specs[name]["product"] for name in SIGNED_WEIGHT_LAYERS} == {"mult"}  # not weight_ternary
    notes = [w for w in warnings if "integer == bits gives values" in w]
    assert notes[0].endswith(
        "layer 'c2d' (QConv2D, kernel quantizer quantized_bits(4,4,0,alpha=1)): integer == bits gives values "
        "-16..14 in steps of 2, which hls4ml 1.3.0 would hold in the signed ap_int<4> (-8..7 in steps of 1); "
        "fpgaflow holds them in ap_fixed<4,5>, which holds each exactly"
    )
    assert any(
        "layer 'd22' (QDense, kernel quantizer quantized_bits(2,2,0,alpha=1)): integer == bits gives values -4..2 in "
        "steps of 2, which hls4ml 1.3.0 would hold in the signed ap_int<2> (-2..1 in steps of 1) and multiply as by "
        "ternary weights (its weight_ternary product: 0 gives 0, -1 the negated input, any other value the input); "
        "fpgaflow holds them in ap_fixed<2,3>" in w
        for w in notes
    )
    assert any("layer 'c1d' (QConv1D, kernel quantizer" in w and "values -6..6 in steps of 2" in w for w in notes)
    assert any("layer 'd_po2' (QDense, kernel quantizer" in w and "values -14..14 in steps of 2 (before the "
               "alpha='auto_po2' scale, which hls4ml multiplies back in)" in w for w in notes)  # fmt: skip
    noted = {(w.split("layer '")[1].split("'")[0], "bias" if "bias quantizer" in w else "kernel") for w in notes}
    assert noted == {("c2d", "kernel"), ("c2d", "bias"), ("c1d", "kernel"), ("c1d", "bias"), ("d22", "kernel"),
                     ("d21", "bias"), ("d_po2", "kernel"), ("d_alpha", "kernel")}  # fmt: skip


def _quantizer_model(kind: str, quantizer: str):
    import tensorflow as tf
    from qkeras import QActivation, QConv1D, QDense
    from qkeras.quantizers import get_quantizer

    k = tf.keras
    if kind == "conv":
        inp = k.Input((6, 2), name="x")
        q = {"kernel_quantizer": get_quantizer(quantizer), "bias_quantizer": get_quantizer("quantized_bits(6,2)")}
        return k.Model(inp, QConv1D(2, 3, name="conv", **q)(inp))
    inp = k.Input((6,), name="x")
    if kind == "activation":
        return k.Model(inp, QActivation(quantizer, name="q")(inp))
    if kind == "dense_activation":
        return k.Model(inp, QDense(3, name="fc", activation=quantizer)(inp))
    q = {
        "kernel_quantizer": get_quantizer("quantized_bits(6,2)"),
        "bias_quantizer": get_quantizer("quantized_bits(6,2)"),
    }
    q[f"{kind}_quantizer"] = get_quantizer(quantizer)
    return k.Model(inp, QDense(3, name="fc", **q)(inp))


@pytest.mark.parametrize(
    ("kind", "quantizer", "message"),
    [
        (
            "activation",
            "quantized_bits(6,2,alpha=0.5)",
            r"layer 'q' \(quantized_bits\(6,2,0,alpha=0.5\)\) is not supported: alpha=0.5 multiplies QKeras's "
            r"output by 0.5, which hls4ml drops; use alpha=1 .*; hls4ml 1.3.0 would build a linear Activation with "
            r"result type ap_fixed<6,3,AP_RND_CONV,AP_SAT>, which is not the model's function",
        ),
        ("activation", "quantized_bits(6,2,alpha='auto_po2')", r".*alpha='auto_po2' scales by the largest \|value\|"),
        ("activation", "quantized_bits(6,2,alpha=1,qnoise_factor=0.5)", r".*qnoise_factor=0.5 mixes the unquantized"),
        (
            "activation",
            "quantized_bits(1,0,alpha=1)",
            r".*QKeras's sign function \(-1 or \+1\), which no 1-bit type holds; binary\(alpha=1\) computes the same .*"
            r"would build a linear Activation with result type ap_int<1>",
        ),
        (
            "activation",
            "quantized_relu(6,2,negative_slope=0.25)",
            r"layer 'q' \(quantized_relu\(6,2,0.25\)\) is not supported: negative_slope=0.25: QKeras clips the "
            r"negative side at -0.25\*2\*\*integer = -1, hls4ml's leaky relu at the type's minimum -4 \(they differ "
            r"for inputs below -4\); hls4ml 1.3.0 would build a leaky_relu LeakyReLU with result type "
            r"ap_fixed<6,3,AP_RND_CONV,AP_SAT>",
        ),
        ("activation", "quantized_relu(6,2,use_sigmoid=1)", r".*use_sigmoid=1 quantizes 2\*\*integer\*\(2\*sigmoid"),
        (
            "activation",
            "quantized_sigmoid(6,symmetric=True,use_real_sigmoid=True)",
            r"layer 'q' \(quantized_sigmoid\(6,1,1\)\) is not supported: symmetric=True makes 0.015625 \(one step\) "
            r"QKeras's smallest value, which no fixed-point type's cast gives: the firmware's type goes down to 0, "
            r"which it gives where sigmoid is below 0.0078125 \(inputs below about -4.84\); symmetric=False gives 0 "
            r"there; hls4ml 1.3.0 would build a sigmoid Activation with result type ap_ufixed<6,0,AP_RND_CONV,AP_SAT>",
        ),
        (
            "activation",
            "quantized_sigmoid(4,symmetric=True)",
            r".*symmetric=True makes 0.0625 .* gives where the hard sigmoid \(x \+ 1\)/2 is at most 0.03125 "
            r"\(inputs up to -0.9375\); .* a HardActivation",
        ),
        (
            "activation",
            "quantized_tanh(1,symmetric=True)",
            r"layer 'q' \(quantized_tanh\(1,1\)\) is not supported: 1 bit with symmetric=True clips QKeras's output "
            r"to \[0, 0\]: it is 0 for every input; hls4ml 1.3.0 would build a HardActivation with result type "
            r"ap_int<1>",
        ),
        (
            "activation",
            "binary(use_01=True)",
            r"layer 'q' \(binary\(use_01=1\)\) is not supported: use_01=True gives 0 or 1 \(1 where x >= 0\), which no "
            r"hls4ml activation builds: its binary_tanh gives -1 or \+1; binary\(alpha=1\) computes that .*; hls4ml "
            r"1.3.0 would build a binary_tanh Activation with result type ap_int<2>",
        ),
        ("activation", "binary(alpha='auto')", r".*alpha='auto' scales QKeras's output by a factor computed from each"),
        ("activation", "binary(alpha=0.5)", r"layer 'q' \(binary\(alpha=0.5\)\) .*: alpha=0.5 multiplies QKeras's"),
        (
            "activation",
            "ternary(alpha=0.5)",
            r"layer 'q' \(ternary\(alpha=0.5\)\) is not supported: alpha=0.5 multiplies QKeras's output by 0.5, which "
            r"hls4ml drops; .* hls4ml 1.3.0 would build a TernaryTanh with result type ap_int<2>",
        ),
        ("activation", "ternary(alpha='auto_po2')", r".*alpha='auto_po2' scales QKeras's output by a factor computed"),
        ("dense_activation", "binary(use_01=True)", r"layer 'fc_binary' \(binary\(use_01=1\)\) is not supported"),
        ("dense_activation", "quantized_relu(4,1,negative_slope=0.5)", r"layer 'fc_quantized_relu' \(quantized_relu"),
        (
            "kernel",
            "quantized_bits(6,2,keep_negative=False,alpha='auto')",
            r"layer 'fc' \(QDense, kernel quantizer quantized_bits\(6,2,1,keep_negative=False,alpha='auto'\)\) is "
            r"not supported: with alpha='auto' QKeras ignores keep_negative=False \(its scaled values are those of "
            r"keep_negative=True, negative ones included\), but hls4ml 1.3.0 divides the scale out and quantizes the "
            r"weights again with keep_negative=False, which sets the negative ones to 0; keep_negative=True computes "
            r"the same in QKeras, and hls4ml builds it",
        ),
        ("kernel", "quantized_bits(4,0,keep_negative=False,alpha='auto_po2')", r".*alpha='auto_po2' QKeras ignores"),
        ("bias", "quantized_bits(4,1,keep_negative=False,alpha=0.5)", r".*bias quantizer .*: alpha=0.5 on a bias"),
        ("bias", "quantized_bits(4,0,alpha='auto')", r"layer 'fc' \(QDense, bias quantizer .* alpha='auto' on a bias"),
        ("bias", "quantized_bits(6,2,alpha=1,qnoise_factor=0)", r".*bias quantizer .*: qnoise_factor=0 mixes"),
        (
            "conv",
            "quantized_bits(1,0,alpha=1)",
            r"layer 'conv' \(QConv1D, kernel quantizer quantized_bits\(1,0,0,alpha=1\)\) is not supported: a 1-bit "
            r"signed quantized_bits gives -1 or \+1 \(QKeras's sign\), which hls4ml 1.3.0's ap_fixed<1,1> cannot hold",
        ),
    ],
)
def test_quantizers_no_type_builds_are_refused(tmp_path, kind, quantizer, message):
    """A quantizer whose function hls4ml 1.3 does not build (a scale it drops, a leaky
    relu saturating elsewhere, weights its type cannot hold) is refused by layer, with
    what hls4ml would build; the firmware differed from QKeras without a word (audit)."""
    from fpgaflow.project import ProjectError

    files = save_keras(_quantizer_model(kind, quantizer), tmp_path / "src", "q")
    with pytest.raises(ProjectError, match=r"config.yml: " + message):
        _hls_config(tmp_path, {"KerasJson": "q.json", "KerasH5": "q_weights.h5"}, files)


TABLE_BRANCHES = {  # name: (quantizer, hls4ml builds it from a lookup table)
    "tanh8": ("quantized_tanh(8,use_real_tanh=True)", True),
    "sigmoid8": ("quantized_sigmoid(8,use_real_sigmoid=True)", True),
    "tanh12": ("quantized_tanh(12,use_real_tanh=True)", True),
    "tanh6_sym": ("quantized_tanh(6,symmetric=True,use_real_tanh=True)", True),
    "hard_tanh6_sym": ("quantized_tanh(6,symmetric=True)", False),
    "hard_sigmoid6": ("quantized_sigmoid(6)", False),
}


def test_real_tanh_and_sigmoid_quantizers_are_table_lookups_and_say_so(tmp_path):
    """quantized_tanh(use_real_tanh=True) / quantized_sigmoid(use_real_sigmoid=True) are
    QKeras's tanh/sigmoid rounded into the result type (which hls4ml types right); hls4ml
    1.3 builds them from its lookup table, which differs from QKeras by a step or two
    where an entry's input interval straddles a rounding boundary or table_t's truncation
    moves the entry across one, without a word (audit).  synth says so, with how many
    intervals and steps; on every input of the input type over the tables' range the
    emulator (== csim: the table tests of test_network_layers) differs from QKeras by
    exactly the steps the note states.  The hard versions are QKeras's exactly."""
    import tensorflow as tf
    from network_oracle import QUANTIZER_GRID_TYPE
    from qkeras import QActivation

    import sim
    from fpgaflow.network.model import load_keras_model

    k = tf.keras
    inp = k.Input((8,), name="x")
    outs = [QActivation(q, name=name)(inp) for name, (q, _) in TABLE_BRANCHES.items()]
    h = k.layers.Concatenate(name="cat")(outs[:2])
    for i, out in enumerate(outs[2:]):
        h = k.layers.Concatenate(name=f"cat{i}")([h, out])
    files = save_keras(k.Model(inp, h), tmp_path / "src", "q")
    hls = {"Model": {"Precision": QUANTIZER_GRID_TYPE}}  # ap_fixed<18,7>: steps of 1/2048
    project = _synth(
        write_project(tmp_path, {"KerasJson": "q.json", "KerasH5": "q_weights.h5", "HLSConfig": hls}, files)
    )
    net = sim.load(project.build_dir / "emulator")
    warnings = json.loads((project.build_dir / "report.json").read_text())["warnings"]
    model = load_keras_model(project)
    x = np.concatenate([np.arange(-9 * 2048, 9 * 2048) / 2048.0, [-60, -30, 30, 60] * 2]).reshape(-1, 8)
    trace = net.trace(x)
    names = list(TABLE_BRANCHES)
    probe = k.Model(model.inputs, [model.get_layer(n).output for n in names])
    keras = dict(zip(names, probe.predict(x, verbose=0), strict=True))
    types = {layer.name: layer.result_type for layer in net.layers}
    for name, (_, table) in TABLE_BRANCHES.items():
        diff = np.abs(trace[name].values.reshape(len(x), -1) - keras[name]) / types[name].lsb
        notes = [w for w in warnings if f"layer {name!r} (" in w]
        if not table:
            assert not diff.any() and not notes, (name, notes)
            continue
        (note,) = notes
        most = int(re.search(r"the firmware differs from QKeras by up to (\d+) step", note).group(1))
        assert diff.max() == most, (name, diff.max(), note)
    assert "by up to 2 steps (0.015625)" in next(w for w in warnings if "layer 'tanh8'" in w)
    note = next(w for w in warnings if "layer 'sigmoid8'" in w)
    assert note.endswith(
        "layer 'sigmoid8' (quantized_sigmoid(8,1)): hls4ml 1.3.0 builds it from its sigmoid lookup table (1024 "
        "entries over [-8, 8), TableSize; each entry sigmoid at the end nearer 0 of its input interval of width "
        "0.015625, held in table_t ap_fixed<18,8>), then cast into ap_ufixed<8,0,AP_RND_CONV,AP_SAT>: in "
        + note.split(": in ")[1].split(" of")[0]
        + " of the 1024 intervals QKeras's rounded sigmoid takes a value the entry does not on the input type "
        "ap_fixed<18,7>'s values, and there the firmware "
        "differs from QKeras by up to 2 steps (0.0078125); a larger TableSize (and a table_t as fine as the result "
        "type) narrows them"
    ), note


def test_a_kernel_alpha_scale_its_type_rounds_is_reported(tmp_path):
    """A kernel alpha (0.3, or 'auto' with per-channel scales) is multiplied back by
    hls4ml 1.3's ApplyAlpha layer in the Model's default precision, which rounds it: the
    layer's output differed from QKeras's by that relative error, without a word (audit).
    synth names the layer, the scales, the type and the relative error, which bounds
    the emulator's difference from QKeras's arithmetic (float64) on a grid; a scale the
    type holds (0.25) or power-of-two scales ('auto_po2') give no note."""
    import tensorflow as tf
    from qkeras import QDense
    from qkeras.quantizers import quantized_bits

    import sim
    from fpgaflow.network.model import load_keras_model

    k = tf.keras
    inp = k.Input((8,), name="x")
    alphas = {"f03": 0.3, "fauto": "auto", "f025": 0.25, "fpo2": "auto_po2"}
    outs = [
        QDense(4, name=n, kernel_quantizer=quantized_bits(4, 0, alpha=a), bias_quantizer=quantized_bits(8, 3, alpha=1))(
            inp
        )
        for n, a in alphas.items()
    ]
    cat = [k.layers.Concatenate(name=f"cat{i}")(outs[2 * i : 2 * i + 2]) for i in range(2)]
    model = k.Model(inp, k.layers.Concatenate(name="cat")(cat))
    rng = np.random.default_rng(3)
    for name in alphas:
        model.get_layer(name).set_weights([rng.normal(0, 0.4, (8, 4)).astype("f4"), rng.normal(0, 0.5, 4).astype("f4")])
    files = save_keras(model, tmp_path / "src", "q")
    hls = {"Model": {"Precision": "ap_fixed<18,7>"}}
    project = _synth(
        write_project(tmp_path, {"KerasJson": "q.json", "KerasH5": "q_weights.h5", "HLSConfig": hls}, files)
    )
    net = sim.load(project.build_dir / "emulator")
    warnings = json.loads((project.build_dir / "report.json").read_text())["warnings"]
    model = load_keras_model(project)
    x = np.arange(-20 * 64, 20 * 64).reshape(-1, 8) / 64.0
    trace = net.trace(x)
    for name in alphas:
        layer = model.get_layer(name)
        kernel = layer.kernel_quantizer_internal(layer.kernel).numpy().astype(np.float64)
        product = x @ kernel
        expected = product + layer.bias_quantizer_internal(layer.bias).numpy()
        diff = np.abs(trace[f"{name}_alpha"].values.reshape(len(x), -1) - expected)
        notes = [w for w in warnings if f"layer {name!r} (QDense" in w]
        if name in ("f025", "fpo2"):
            assert not notes and diff.max() < 1e-6, (name, notes, diff.max())
            continue
        (note,) = notes
        relative = float(re.search(r"differs from QKeras's by up to ([0-9.e-]+) of its value", note).group(1))
        assert 1e-5 < diff.max() and np.all(diff <= relative * 1.05 * np.abs(product) + 1e-6), name
    note = next(w for w in warnings if "layer 'f03'" in w)
    assert note.endswith(
        "layer 'f03' (QDense, kernel quantizer quantized_bits(4,0,0,alpha=0.3)): hls4ml 1.3.0 divides the kernel's "
        "scale out of the weights and multiplies it back in its layer 'f03_alpha', which holds it in ap_fixed<18,7> "
        "(the Model's default precision: hls4ml sets that layer's types itself, unless "
        "HLSConfig.LayerName.f03_alpha.Precision.scale gives one), so 4 of 4 scales are rounded (0.3 -> 0.299805, "
        "0.3 -> 0.299805, 0.3 -> 0.299805, 0.3 -> 0.299805) and the layer's output before the bias differs from "
        "QKeras's by up to 0.00065 of its value; a wider scale type holds the scale closer, alpha='auto_po2' "
        "(power-of-two scales) exactly"
    ), note


def _alpha_entries_model():
    """QDense layers whose kernel alpha hls4ml turns into an ApplyAlpha (``<name>_alpha``):
    'auto_po2' (scales 1/4 to 2) and 0.3, both with a bias quantizer; one with alpha=1
    (no ApplyAlpha); one 'auto_po2' whose scales are all 1 and bias 0 (hls4ml removes its
    ApplyAlpha); and a Dense + QActivation(quantized_bits) that synth converts twice for."""
    import tensorflow as tf
    from qkeras import QActivation, QDense
    from qkeras.quantizers import quantized_bits

    k = tf.keras
    inp = k.Input((8,), name="x")
    bias = {"bias_quantizer": quantized_bits(8, 3, alpha=1)}
    outs = [
        QDense(4, name="fpo2", kernel_quantizer=quantized_bits(4, 0, alpha="auto_po2"), **bias)(inp),
        QDense(4, name="f03", kernel_quantizer=quantized_bits(4, 0, alpha=0.3), **bias)(inp),
        QDense(4, name="f1", kernel_quantizer=quantized_bits(4, 0, alpha=1), **bias)(inp),
        QDense(4, name="fone", kernel_quantizer=quantized_bits(4, 0, alpha="auto_po2"), use_bias=False)(inp),
        QActivation("quantized_bits(6,2,alpha=1)", name="qb")(k.layers.Dense(4, name="fc")(inp)),
    ]
    while len(outs) > 1:
        outs = [k.layers.Concatenate(name=f"cat{len(outs)}")(outs[:2]), *outs[2:]]
    model = k.Model(inp, outs[0])
    rng = np.random.default_rng(3)
    for name in ("fpo2", "f03", "f1"):
        kernel = rng.normal(0, 1, (8, 4)) * 2.0 ** (np.arange(4) - 2)
        model.get_layer(name).set_weights([kernel.astype("f4"), rng.normal(0, 2, 4).astype("f4")])
    kernel = rng.uniform(-0.8, 0.8, (8, 4))
    kernel[0] = 0.8  # QKeras's 'auto_po2' scale 1 in every column
    model.get_layer("fone").set_weights([kernel.astype("f4")])
    return model


def _synth_alpha_entries(tmp_path, hls: dict):
    files = save_keras(_alpha_entries_model(), tmp_path / "src", "q")
    hls = {"Model": {"Precision": "ap_fixed<16,6>"}, **hls}
    return _synth(write_project(tmp_path, {"KerasJson": "q.json", "KerasH5": "q_weights.h5", "HLSConfig": hls}, files))


def test_an_alpha_layer_takes_its_layername_precision(tmp_path):
    """hls4ml 1.3.0 reads a LayerName entry for the ApplyAlpha layer it inserts for a
    kernel alpha, but the name is in no generated configuration, and synth refused it as a
    layer the model does not have (audit).  The types it names are built (also through the
    second conversion synth makes for the QActivation: hls4ml replaces the entry in the
    configuration it is given); a result type the linear activation hls4ml then keeps
    after the layer does not hold is reported."""
    names = {
        "fpo2_alpha": {"Precision": {"result": "ap_fixed<30,12>"}},
        "f03_alpha": {"Precision": {"scale": "ap_fixed<20,1,AP_RND>", "result": "ap_fixed<12,5,AP_RND,AP_SAT>"}},
    }
    project = _synth_alpha_entries(tmp_path, {"LayerName": names})
    manifest = json.loads((project.build_dir / "emulator" / "manifest.json").read_text())
    layers = {layer["name"]: layer for layer in manifest["layers"]}
    assert layers["fpo2_alpha"]["result_type"] == "ap_fixed<30,12>"
    assert layers["f03_alpha"]["scale_type"] == "ap_fixed<20,1,AP_RND>"
    assert layers["f03_alpha"]["result_type"] == "ap_fixed<12,5,AP_RND,AP_SAT>"
    assert layers["fc"]["result_type"] == "ap_fixed<6,3,AP_RND_CONV,AP_SAT>"  # the second conversion's
    warnings = json.loads((project.build_dir / "report.json").read_text())["warnings"]
    assert any(
        w.endswith(
            "HLSConfig.LayerName.fpo2_alpha gives layer 'fpo2_alpha' the result type ap_fixed<30,12>, and hls4ml "
            "1.3.0 then keeps the linear activation 'fpo2_linear' after it (it removes it only after an automatic "
            "type), which casts that result again into its own automatic type ap_fixed<16,6>; give "
            "HLSConfig.LayerName.fpo2_linear.Precision.result a type too"
        )
        for w in warnings
    ), warnings
    assert not any("f03_linear" in w for w in warnings)  # ap_fixed<16,6> holds ap_fixed<12,5>
    assert any(
        "which holds it in ap_fixed<20,1,AP_RND> (HLSConfig.LayerName.f03_alpha gives it)" in w for w in warnings
    )


@pytest.mark.parametrize(
    ("hls", "message"),
    [
        (
            {"LayerName": {"fpo2_alpha": {"Precision": {"scale": "ap_fixed<8,3>"}}}},
            r"HLSConfig.LayerName.fpo2_alpha.Precision.scale asks for scale ap_fixed<8,3>, but hls4ml 1.3.0 builds "
            r"the scale of layer 'fpo2_alpha' as hls4ml's power-of-two type .*: the kernel quantizer's "
            r"alpha='auto_po2' gives 'fpo2' power-of-two scales, .*; remove it from the entry",
        ),
        (
            {"LayerName": {"f03_alpha": {"Precision": {"bias": "ap_fixed<12,4>"}}}},
            r"HLSConfig.LayerName.f03_alpha.Precision.bias asks for bias ap_fixed<12,4>, but hls4ml 1.3.0 builds the "
            r"bias of layer 'f03_alpha' as ap_fixed<8,4>: hls4ml moves 'f03''s bias into 'f03_alpha' with its QKeras "
            r"bias quantizer, which sets its type",
        ),
        (
            {"LayerName": {"fone_alpha": {"Precision": {"result": "ap_fixed<12,5>"}}}},
            r"HLSConfig.LayerName.fone_alpha sets the types of hls4ml's ApplyAlpha layer for layer 'fone''s alpha, "
            r"but hls4ml 1.3.0 built no such layer \(it removes one whose scales are all 1 and bias 0",
        ),
        (
            {"LayerName": {"f03_alpha": {"ReuseFactor": 2}}},
            r"HLSConfig.LayerName.f03_alpha: unknown key\(s\) ReuseFactor; known: Precision",
        ),
        (
            {"LayerName": {"f1_alpha": {"Precision": "ap_fixed<12,5>"}}},
            r"LayerName names layer 'f1_alpha', which the model does not have: hls4ml inserts the ApplyAlpha layer "
            r"'f1_alpha' only for a QDense/QConv whose kernel or bias quantizer has an alpha other than 1, and layer "
            r"'f1' has none; its layers: ",
        ),
        (  # hls4ml gives an ApplyAlpha its own default precision, which a LayerType entry does not reach
            {"LayerType": {"ApplyAlpha": {"Precision": "ap_fixed<12,5>"}}},
            r"HLSConfig.LayerType: unknown layer class\(es\) ApplyAlpha",
        ),
    ],
)
def test_an_alpha_layer_entry_hls4ml_would_not_apply_is_refused(tmp_path, hls, message):
    from fpgaflow.project import ProjectError

    with pytest.raises(ProjectError, match=message):
        _synth_alpha_entries(tmp_path, hls)


def _batchnorm_model():
    """Three QBatchNormalizations with parameters off their quantizers' grids: QKeras's
    default power-of-two quantizers, quantized_bits ones (keep_negative, symmetric,
    integer >= bits - 1, alpha='auto'), and one after a Dense (hls4ml folds it in)."""
    import tensorflow as tf
    from qkeras import QBatchNormalization

    k = tf.keras
    inp = k.Input((4,), name="x")
    bits = {
        "gamma_quantizer": "quantized_bits(4,1,alpha='auto')",
        "beta_quantizer": "quantized_bits(6,2,keep_negative=False,alpha=1)",
        "mean_quantizer": "quantized_bits(4,3,symmetric=True,alpha=1)",
        "variance_quantizer": "quantized_bits(6,2,keep_negative=False,alpha=1)",
    }
    a = QBatchNormalization(name="qbn_po2")(inp)
    b = QBatchNormalization(name="qbn_bits", **bits)(inp)
    c = QBatchNormalization(name="qbn_folded", **bits)(k.layers.Dense(4, name="fc")(inp))
    model = k.Model(inp, k.layers.Concatenate(name="cat2")([k.layers.Concatenate(name="cat1")([a, b]), c]))
    rng = np.random.default_rng(11)
    for name in ("qbn_po2", "qbn_bits", "qbn_folded"):
        params = [rng.uniform(0.3, 1.7, 4), rng.normal(0, 0.6, 4), rng.normal(0, 1.5, 4), rng.uniform(0.3, 3, 4)]
        model.get_layer(name).set_weights([p.astype("f4") for p in params])
    model.get_layer("fc").set_weights([rng.normal(0, 0.5, (4, 4)).astype("f4"), rng.normal(0, 0.5, 4).astype("f4")])
    return model


def test_qbatchnormalization_computes_with_its_quantized_parameters(tmp_path):
    """hls4ml 1.3 folded a QBatchNormalization's stored gamma, beta, mean and variance into
    its scale and bias without the layer's quantizers (QKeras's default po2 ones took
    gamma 1.35 to 1): the firmware was off QKeras by 2 on inputs of +-4, without a word
    (audit).  synth gives hls4ml the quantized values, says so, and the firmware is QKeras's
    layer with the scale and bias (or the folded Dense's weights) rounded into their types:
    within one step of those types per product, standalone and folded."""
    import sim
    from fpgaflow.network.model import load_keras_model

    files = save_keras(_batchnorm_model(), tmp_path / "src", "q")
    hls = {"Model": {"Precision": "ap_fixed<16,6>"}}
    project = _synth(
        write_project(tmp_path, {"KerasJson": "q.json", "KerasH5": "q_weights.h5", "HLSConfig": hls}, files)
    )
    net = sim.load(project.build_dir / "emulator")
    warnings = json.loads((project.build_dir / "report.json").read_text())["warnings"]
    model = load_keras_model(project)
    x = np.arange(-8 * 64, 8 * 64).reshape(-1, 4) / 64.0
    trace = net.trace(x)
    layers = {layer.name: layer for layer in net.layers}
    assert "qbn_folded" not in layers  # folded into fc
    import tensorflow as tf

    names = ["qbn_po2", "qbn_bits", "qbn_folded"]
    probe = tf.keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    keras = dict(zip(names, probe.predict(x, verbose=0), strict=True))
    for name in names:
        layer = layers["fc" if name == "qbn_folded" else name]
        types = {k: sim.fixed.FixedType.parse(v) for k, v in layer.spec.items() if k.endswith("_type")}
        if name == "qbn_folded":  # sum_j |x_j| * weight step + bias step
            bound = np.abs(x).sum(axis=1, keepdims=True) * types["weight_type"].lsb + types["bias_type"].lsb
        else:
            bound = np.abs(x) * types["scale_type"].lsb + types["bias_type"].lsb
        got = trace[layer.name].values.reshape(len(x), -1)
        assert np.all(np.abs(got - keras[name]) <= bound + 1e-5), (name, np.abs(got - keras[name]).max())
        note = next(w for w in warnings if f"layer {name!r} (QBatchNormalization)" in w)
        assert "without the layer's quantizers, which QKeras applies" in note and "moving_variance by" in note
    assert "gamma by quantized_relu_po2(6,2048) (4 of 4 values;" in next(w for w in warnings if "'qbn_po2'" in w)
    # the user's model is left as stored
    assert np.array_equal(
        model.get_layer("qbn_po2").get_weights()[0], _batchnorm_model().get_layer("qbn_po2").get_weights()[0]
    )


def test_the_quantizer_hints_compute_the_same():
    """The hints synth gives and docs/network.md states, checked with QKeras on a grid:
    binary(alpha=1) is quantized_bits(1,0) (0 -> +1 included), binary(use_01=True) its (y + 1) / 2, an alpha
    scales binary and ternary, a symmetric 1-bit quantized_tanh is 0, binary_tanh is -1 at 0 and
    binary_sigmoid 0 or 1; quantized_relu(b,i) is
    quantized_bits(b,i,keep_negative=False), whose values the weight type synth gives
    holds exactly; with alpha='auto'/'auto_po2' keep_negative=False computes the same as
    keep_negative=True (QKeras's scaled branch ignores it)."""
    from qkeras.quantizers import get_quantizer

    from fpgaflow.network.quantizers import weight_precision
    from fpgaflow.network.types import ap_type
    from sim.fixed import FixedType

    x = np.arange(-70 * 256, 70 * 256, dtype=np.float32) / 256

    def q(text, values=x):
        return get_quantizer(text)(values).numpy()

    assert np.array_equal(q("binary(alpha=1)"), q("quantized_bits(1,0,alpha=1)"))
    assert np.array_equal(q("binary(use_01=True)"), (q("binary(alpha=1)") + 1) / 2)  # 1 where x >= 0
    assert np.array_equal(q("binary(alpha=0.5)"), 0.5 * q("binary(alpha=1)"))
    assert np.array_equal(q("ternary(alpha=0.5)"), 0.5 * q("ternary(alpha=1)"))
    assert np.array_equal(q("quantized_tanh(1,symmetric=True)"), np.zeros_like(x))
    assert np.array_equal(q("binary_tanh"), np.where(x > 0, 1, -1))  # -1 at 0, where binary(alpha=1) is +1
    assert np.array_equal(q("binary_sigmoid"), (x > 0).astype(np.float32))
    for bits, integer in [(6, 2), (4, 6), (1, 0), (8, 3), (4, 4), (1, 1)]:
        text = f"quantized_bits({bits},{integer},keep_negative=False,alpha=1)"
        unsigned = q(text)
        assert np.array_equal(q(f"quantized_relu({bits},{integer})"), unsigned)
        config = {"class_name": "quantized_bits", "config": get_quantizer(text).get_config()}
        held = FixedType.parse(ap_type(weight_precision(config), "w"))
        assert np.array_equal(held.quantize(unsigned), unsigned), text
        assert held.max_value == unsigned.max() and unsigned.min() == 0, text  # the whole range, no more
    kernel = x.reshape(-1, 16) * np.linspace(0.1, 1, 16, dtype=np.float32)  # a scale per output column
    for alpha in ("auto", "auto_po2"):
        for bits, integer in [(6, 2), (4, 0), (8, 3)]:
            unsigned = q(f"quantized_bits({bits},{integer},keep_negative=False,alpha={alpha!r})", kernel)
            assert (unsigned < 0).any()
            assert np.array_equal(unsigned, q(f"quantized_bits({bits},{integer},alpha={alpha!r})", kernel))


@pytest.mark.parametrize(
    ("entry", "hls", "message"),
    [
        (
            {"exp_table": "ap_fixed<12,4>", "inv_table": "ap_fixed<14,6>"},
            {},
            "its exp_table type ap_fixed<12,4> and inv_table type ap_fixed<14,6> are not applied",
        ),
        (
            {},
            {"LayerType": {"Softmax": {"Precision": {"inv_table": "ap_ufixed<10,2>"}}}},
            "its inv_table type ap_ufixed<10,2> is not applied",
        ),
        (
            "ap_fixed<16,6>",
            {},
            "its table type ap_fixed<16,6>, exp_table type ap_fixed<16,6> and inv_table type ap_fixed<16,6> are not "
            "applied",
        ),
        ({"exp_table": "ap_fixed<18,8>"}, {}, None),
        ({}, {}, None),  # hls4ml's own exp_table/inv_table default (fixed<18,8,RND,SAT>) is not the user's
    ],
)
def test_legacy_softmax_exp_and_inv_table_types_are_reported_as_not_applied(tmp_path, entry, hls, message):
    """softmax_legacy (io_parallel and io_stream) declares both tables, and the exp
    results, as CONFIG_T::table_t: a Precision exp_table/inv_table entry, which the
    latency and stable kernels apply, was silently not applied (only `table` warned)."""
    from fpgaflow.network.config import read_settings
    from fpgaflow.network.convert import convert
    from fpgaflow.network.model import load_keras_model
    from fpgaflow.network.precision import unapplied_softmax_table_types
    from fpgaflow.project import load_project

    layer = {"Implementation": "legacy"}
    if entry:
        layer["Precision"] = entry
    loaded = load_project(
        write_project(
            tmp_path, {**JET, "HLSConfig": {**hls, "LayerName": {"output_softmax_softmax": layer}}}, JET_FILES
        )
    )
    settings = read_settings(loaded)
    hls_model = convert(load_keras_model(loaded), settings, tmp_path / "hls")
    notes = unapplied_softmax_table_types(hls_model, settings.hls_config)
    if message is None:
        assert notes == []
    else:
        (note,) = notes
        assert note.startswith(f"layer 'output_softmax_softmax' (Softmax, Implementation legacy): {message}: "), note
        assert "so the firmware's exp and inverse tables are nnet::activ_config::table_t, ap_fixed<18,8>" in note


def _table_model(tmp_path):
    """Dense -> sigmoid -> Dense -> softmax, saved as JSON + weights."""
    import tensorflow as tf

    k = tf.keras.layers
    inp = tf.keras.Input((4,), name="inp")
    h = k.Activation("sigmoid", name="sig")(k.Dense(6, name="fc1")(inp))
    model = tf.keras.Model(inp, k.Activation("softmax", name="sm")(k.Dense(3, name="fc2")(h)))
    return save_keras(model, tmp_path / "src", "t")


TABLE_MODEL = {"KerasJson": "t.json", "KerasH5": "t_weights.h5"}


@pytest.mark.parametrize(
    ("hls", "message"),
    [
        (
            {"LayerName": {"sig": {"Precision": {"table": "ap_fixed<10,2>"}}}},
            "HLSConfig.LayerName.sig.Precision.table is ap_fixed<10,2>, but hls4ml 1.3.0 does not apply a table type "
            "given in Precision: layer 'sig' (sigmoid) would use ap_fixed<18,8>; set `table_t: ap_fixed<10,2>` in "
            "HLSConfig.LayerName.sig instead",
        ),
        (
            {"LayerType": {"Activation": {"Precision": {"table": "ap_fixed<10,2>"}}}},
            "HLSConfig.LayerType.Activation.Precision.table is ap_fixed<10,2>, but hls4ml 1.3.0 does not apply a "
            "table type given in Precision: layer 'sig' (sigmoid) would use ap_fixed<18,8>; set `table_t: "
            "ap_fixed<10,2>` in HLSConfig.LayerType.Activation instead",
        ),
        (
            {"Model": {"Precision": {"default": "ap_fixed<16,6>", "table": "ap_fixed<10,2>"}}},
            "HLSConfig.Model.Precision.table is ap_fixed<10,2>, but hls4ml 1.3.0 does not apply a table type given "
            "in Precision: layer 'sig' (sigmoid) would use ap_fixed<18,8>; set `table_t: ap_fixed<10,2>` in a "
            "LayerType or LayerName entry instead",
        ),
        (
            {"LayerName": {"sm": {"Implementation": "latency", "Precision": {"exp_table": "ap_fixed<12,4>"}}}},
            "HLSConfig.LayerName.sm.Precision.exp_table is ap_fixed<12,4>, but hls4ml 1.3.0 does not apply a "
            "exp_table type given in Precision: layer 'sm' (Softmax, Implementation latency) would use "
            "ap_fixed<18,8,AP_RND,AP_SAT>; set `exp_table_t: ap_fixed<12,4>` in HLSConfig.LayerName.sm instead",
        ),
    ],
)
def test_a_table_type_given_in_precision_is_refused(tmp_path, hls, message):
    """hls4ml 1.3.0 reads table types only from their *_t keys: `Precision: {table:
    ap_fixed<10,2>}` on a sigmoid kept table_t ap_fixed<18,8> without a word (and a
    latency/stable softmax's exp_table and inv_table, which the docs said applied)."""
    from fpgaflow.project import ProjectError

    with pytest.raises(ProjectError) as err:
        _hls_config(tmp_path, {**TABLE_MODEL, "HLSConfig": hls}, _table_model(tmp_path))
    assert str(err.value) == f"{tmp_path / 'config.yml'}: {message}"


def test_table_type_keys_reach_the_firmware_and_precision_strings_say_they_do_not(tmp_path):
    """The *_t keys set the tables (defines.h and the manifest); a Precision string on
    the layer does not, and a warning says so."""
    from sim.manifest import read_manifest

    hls = {
        "LayerName": {
            "sig": {"table_t": "ap_fixed<10,2>", "Precision": "ap_fixed<12,4>"},
            "sm": {"exp_table_t": "ap_fixed<12,4>", "inv_table_t": "ap_fixed<14,6>", "Precision": "ap_fixed<16,6>"},
            "fc1": {"Precision": {"result": "ap_fixed<16,6>"}},
        },
        "LayerType": {"Dense": {"Precision": "ap_fixed<16,6>"}},
    }
    project = _synth(write_project(tmp_path, {**TABLE_MODEL, "HLSConfig": hls}, _table_model(tmp_path)))
    layers = {s["name"]: s for s in read_manifest(project.build_dir / "emulator").meta["layers"]}
    assert layers["sig"]["table_type"] == "ap_fixed<10,2>" and layers["sig"]["result_type"] == "ap_fixed<12,4>"
    assert (layers["sm"]["exp_table_type"], layers["sm"]["inv_table_type"]) == ("ap_fixed<12,4>", "ap_fixed<14,6>")
    defines = (project.build_dir / "hls" / "firmware" / "defines.h").read_text()
    assert "typedef ap_fixed<10,2> sig_table_t;" in defines and "typedef ap_fixed<12,4> sm_exp_table_t;" in defines
    report = json.loads((project.build_dir / "report.json").read_text())
    notes = [w for w in report["warnings"] if "does not set" in w]
    assert notes == [
        f"{tmp_path / 'config.yml'}: HLSConfig.LayerName.sm.Precision (ap_fixed<16,6>) does not set layer 'sm''s "
        "inv_inp type (it stays ap_fixed<18,8,AP_RND,AP_SAT>): hls4ml 1.3.0 reads it only from inv_inp_t"
    ], notes


def test_a_softmax_exp_table_too_coarse_for_its_input_is_warned_at_synth(tmp_path, capsys):
    """A plain Keras model under ``Model.Precision`` gives the softmax hls4ml's automatic
    accumulator type, ap_fixed<38,18>, and the stable softmax's exp table (indexed by the
    top 10 bits of x_max - x in ap_ufixed<37,17>) one entry per 128 of input: every class
    gets the same share, bit-exact with csim and nothing like the model, and synth said
    nothing.  It warns, naming the layer whose type to narrow; done as it says, the
    firmware follows the model again."""
    import tensorflow as tf

    import sim
    from fpgaflow.cli import main

    wide = write_project(tmp_path / "wide", {**JET, "HLSConfig": {"Model": {"Precision": "ap_fixed<16,6>"}}}, JET_FILES)
    assert main(["synth", str(wide)]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "exp table" in line]
    assert warned == [
        "synth: warning: layer 'output_softmax_softmax' (Softmax, stable): its exp table (1024 entries) is indexed by "
        "the top 10 bits of x_max - x in inp_norm_t, ap_ufixed<37,17> (hls4ml derives it from the input type): one "
        "entry serves inputs 128 apart, so inputs within 128 of the largest all read exp(0) and get equal shares; "
        "give layer 'output_softmax' a narrower result type (HLSConfig.LayerName.output_softmax.Precision.result, "
        "e.g. ap_fixed<16,6>)"
    ]
    # verify: bit-exact, and says the firmware hardly depends on its input
    assert main(["verify", str(wide), "--samples", "100"]) == 0
    alike = [line for line in capsys.readouterr().err.splitlines() if "one and the same output" in line]
    assert len(alike) == 1 and alike[0].startswith("verify: warning: "), alike
    narrowed = {"Model": {"Precision": "ap_fixed<16,6>"},
                "LayerName": {"output_softmax": {"Precision": {"result": "ap_fixed<16,6>"}}}}  # fmt: skip
    narrow = write_project(tmp_path / "narrow", {**JET, "HLSConfig": narrowed}, JET_FILES)
    assert main(["synth", str(narrow)]) == 0
    assert "exp table" not in capsys.readouterr().err
    model = tf.keras.models.model_from_json((MODELS / "KERAS_3layer.json").read_text())
    model.load_weights(str(MODELS / "KERAS_3layer_weights.h5"))
    x = np.random.default_rng(0).random((200, 16)).astype(np.float32)
    keras = model.predict(x, verbose=0).argmax(axis=1)
    shares = sim.load(tmp_path / "wide" / "build" / "emulator").predict(x).values
    assert (shares == shares[:, :1]).all(axis=1).mean() > 0.9  # equal shares: the warned-of firmware
    narrow_out = sim.load(tmp_path / "narrow" / "build" / "emulator").predict(x).values
    assert (narrow_out.argmax(axis=1) == keras).mean() > 0.95


def test_a_cast_that_aborts_csim_is_a_synth_warning_and_a_verify_error(tmp_path, capsys):
    """A Dense bias of ap_fixed<18,1> into an accumulator of ap_fixed<6,8,AP_TRN_ZERO,...>
    rounds away 19 fraction bits of an 18-bit source: ap_types reads a bit beyond its MSB,
    ap_private asserts, and verify died with SIGABRT and the header's assert text
    (docs/fixed_point.md, quirk 8).  The firmware is fine for hardware: synth warns,
    naming the layer and the cast; verify refuses before compiling anything."""
    import tensorflow as tf

    k = tf.keras
    inp = k.Input((4,), name="x")
    model = k.Model(inp, k.layers.Dense(3, name="fc")(inp))
    accum = "ap_fixed<6,8,AP_TRN_ZERO,AP_WRAP,1>"
    hls = {"LayerName": {"fc": {"Precision": {"bias": "ap_fixed<18,1>", "accum": accum}}}}
    config = keras_project(tmp_path, model, "m", hls)
    cast = (
        rf"layer 'fc': casting the bias \(bias_type ap_fixed<18,1>\) into the accumulator \(accum_type "
        rf"{re.escape(accum)}\) rounds away 19 fraction bits, more than the 18 bits of the source"
    )
    assert _cli("synth", config) == 0
    err = capsys.readouterr().err
    assert re.search(rf"synth: warning: {cast}: on such a cast .*quirk 8\), so `fpgaflow verify` cannot run", err), err
    report = json.loads((config.parent / "build" / "report.json").read_text())
    assert any(re.match(cast, w) for w in report["warnings"]), report["warnings"]
    assert _cli("verify", config, "--samples", "10") == 2
    err = capsys.readouterr().err
    assert re.search(rf"verify: error: hls4ml's C simulation cannot run on this firmware: {cast}, where csim needs "
                     r"a target with at least -1 fraction bits.*quirk 8", err), err  # fmt: skip
    assert "compiling" not in err and "Traceback" not in err and "Assertion" not in err, err


class _FakeCsim:
    """Stands in for a traced hls4ml model: ``trace`` prints, then ``then()``."""

    def __init__(self, then):
        self.then = then

    def trace(self, x):
        print("Recompiling myproject with tracing")
        os.write(2, b"firmware: about to end\n")
        return self.then(x)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_csim_that_dies_from_a_signal_is_an_error_not_the_end_of_fpgaflow(capfd):
    """hls4ml runs the firmware in-process (ctypes): an assert the pre-check does not
    foresee ended fpgaflow itself with SIGABRT.  csim runs in a forked child now."""
    from fpgaflow.errors import UserError
    from fpgaflow.network.verify import csim_trace

    with pytest.raises(UserError) as info:
        csim_trace(_FakeCsim(lambda x: os.abort()), np.zeros((2, 3)))
    assert str(info.value) == (
        "hls4ml C simulation aborted (signal 6, SIGABRT); it printed:\n"
        "Recompiling myproject with tracing\nfirmware: about to end"
    )
    # what it returns, and what it raises, reach the caller; its output goes to stderr
    y, trace = csim_trace(_FakeCsim(lambda x: (x * 2, {"fc": x + 1})), np.ones((2, 3)))
    assert np.array_equal(y, np.full((2, 3), 2.0)) and np.array_equal(trace["fc"], np.full((2, 3), 2.0))
    out, err = capfd.readouterr()
    assert out == "" and err.count("Recompiling myproject with tracing") == 1, (out, err)

    def fails(x):
        raise KeyError("no such layer")

    with pytest.raises(KeyError, match="no such layer"):
        csim_trace(_FakeCsim(fails), np.ones((1, 3)))
    # exit() in the firmware (ap_ufixed with AP_WRAP_SM does that): no result, an error all the same
    with pytest.raises(UserError, match=r"^hls4ml C simulation exited with status 3; it printed:\nRecompiling"):
        csim_trace(_FakeCsim(lambda x: os._exit(3)), np.ones((1, 3)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_csim_runs_beside_tensorflow_garbage(capfd):
    """A garbage collection in the forked child that frees TensorFlow's objects (left in
    cycles by the Keras models the parent built) died with SIGSEGV: their threads are not
    in the child.  One verify in the whole suite met it (the second csim of a test); the
    child collects none of the parent's objects now."""
    import gc

    import tensorflow as tf

    from fpgaflow.network.verify import csim_trace

    was = gc.isenabled()
    gc.disable()  # TensorFlow's objects left in cycles, as the parent's collections had not yet freed them
    try:
        for _ in range(3):
            model = tf.keras.Sequential([tf.keras.layers.Dense(4, input_shape=(3,)), tf.keras.layers.Dense(2)])
            model.predict(np.zeros((2, 3)), verbose=0)
            del model
        y, _ = csim_trace(_FakeCsim(lambda x: (gc.collect(), (x, {}))[1]), np.ones((2, 3)))
        assert np.array_equal(y, np.ones((2, 3)))
    finally:
        if was:
            gc.enable()
        gc.collect()
