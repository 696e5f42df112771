"""After training: synth, profile and verify check the project against what training
recorded (the scaling's feature names, the split) and refuse a project that no longer
matches it, instead of scaling the wrong columns or profiling training entries."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from train_helpers import FEATURES, read_config, tiny_project, write_config

from fpgaflow.cli import main
from fpgaflow.data import Scaling
from fpgaflow.data.config import DataConfig


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    root = tiny_project(tmp_path_factory.mktemp("consistency") / "p")
    assert main(["train", str(root)]) == 0
    assert main(["synth", str(root)]) == 0
    return root


@pytest.fixture
def copy(synthesized, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(synthesized, root)
    return root


def test_reordered_features_are_refused_by_synth_and_profile_naming_both_orders(copy, capsys):
    cfg = read_config(copy)
    cfg["Data"]["Features"] = ["f0", "f3", "f2", "f1"]
    write_config(copy, cfg)
    for command in ("synth", "profile"):
        assert main([command, str(copy)]) != 0
        err = capsys.readouterr().err
        assert "Data.Features" in err and "[f0, f3, f2, f1]" in err and "[f0, f1, f2, f3]" in err, err


def test_renamed_feature_is_refused(copy, capsys):
    cfg = read_config(copy)
    cfg["Data"]["Features"] = ["f0", "f1", "f2", "X"]
    write_config(copy, cfg)
    assert main(["synth", str(copy)]) != 0
    assert "[f0, f1, f2, X]" in capsys.readouterr().err


def test_profile_with_the_trained_order_still_works(copy):
    assert main(["profile", str(copy), "--samples", "50"]) == 0


@pytest.mark.parametrize(
    "features, recorded, same",
    [
        (["a", "b"], ["a", "b"], True),
        (["b", "a"], ["a", "b"], False),
        (["a"], ["a", "b"], False),
        ([{"Name": "c", "Length": 2}], ["c[0]", "c[1]"], True),
        ([{"Name": "c", "Length": 3}], ["c[0]", "c[1]"], False),
        ([{"Name": "c", "Length": 2, "Mask": True}], ["c[0]", "c[1]", "c_mask[0]", "c_mask[1]"], True),
        ([{"Name": "c", "Length": 2, "Mask": True}], ["c[0]", "c[1]"], False),
        (["X"], ["X[0]", "X[1]", "X[2]"], True),  # a 2-D column: its width comes from the data
        (["a", "X"], ["X[0]", "a"], False),
    ],
)
def test_declared_columns_against_recorded_names(tmp_path, features, recorded, same):
    from fpgaflow.data.scaling import columns_match

    cfg = DataConfig.from_mapping({"File": "d.npz", "Features": features}, tmp_path)
    assert columns_match(cfg.features, recorded) is same


def test_verify_and_profile_refuse_a_scaling_changed_since_synth(copy, capsys):
    scaling = Scaling.load(copy / "scaling.json")
    scaling.offset = scaling.offset + scaling.scale  # re-fitted on other data, say
    scaling.save(copy / "scaling.json")
    for command in (["verify", str(copy), "--samples", "5"], ["profile", str(copy), "--samples", "50"]):
        assert main(command) != 0
        err = capsys.readouterr().err
        assert "scaling.json: the input scaling changed since `fpgaflow synth`" in err and "offset" in err, err
        assert "re-run `fpgaflow synth" in err


def test_profile_refuses_a_model_changed_since_synth(copy, capsys):
    """As verify does: profile set the new float model against the old firmware."""
    h5 = copy / "model/m.h5"
    h5.write_bytes(h5.read_bytes() + b"\0")  # another file now (retrained, say)
    assert main(["profile", str(copy), "--samples", "50"]) != 0
    err = capsys.readouterr().err
    assert "m.h5: the model file changed since `fpgaflow synth`" in err and "re-run `fpgaflow synth" in err, err


def test_verify_refuses_a_preprocessing_key_pointed_at_another_file(copy, capsys):
    shutil.copy(copy / "scaling.json", copy / "other.json")
    other = Scaling.load(copy / "other.json")
    other.scale = other.scale * 2
    other.save(copy / "other.json")
    cfg = read_config(copy)
    cfg["Preprocessing"] = "other.json"
    write_config(copy, cfg)
    assert main(["verify", str(copy), "--samples", "5"]) != 0
    assert "other.json: the input scaling changed since `fpgaflow synth`" in capsys.readouterr().err


def test_demo_stamp_hashes_the_default_scaling_file(copy):
    from fpgaflow.demo.firmware import inputs_hash
    from fpgaflow.project import load_project

    before = inputs_hash(load_project(copy))
    scaling = Scaling.load(copy / "scaling.json")
    scaling.offset = scaling.offset + 1e-3
    scaling.save(copy / "scaling.json")
    assert inputs_hash(load_project(copy)) != before


def _profiled(root, capsys, *extra):
    assert main(["profile", str(root), *extra]) == 0
    report = json.loads((root / "build" / "profile" / "report.json").read_text())
    return report, capsys.readouterr().err


def test_profile_takes_the_split_training_recorded_not_the_edited_seed(copy, capsys):
    history = json.loads((copy / "training_history.json").read_text())
    assert history["validation_split"] == 0.2 and history["seed"] == 3
    before, _ = _profiled(copy, capsys)
    cfg = read_config(copy)
    cfg["Training"]["Seed"] = 4  # to try another run, not trained yet
    write_config(copy, cfg)
    after, err = _profiled(copy, capsys)
    assert "Seed 4" in err and "seed 3" in err and "held out" in err
    assert after["accuracy"] == before["accuracy"] and after["samples"] == before["samples"] == 120
    assert after["input"].endswith("(validation entries)")


def test_profile_refuses_data_of_another_size_than_training_split(copy, capsys):
    history = json.loads((copy / "training_history.json").read_text())
    history["training_entries"] += 1
    (copy / "training_history.json").write_text(json.dumps(history))
    assert main(["profile", str(copy)]) != 0
    err = capsys.readouterr().err
    assert "600 entries" in err and "601" in err and "--input" in err


def test_profile_without_history_warns_that_the_split_is_recomputed(copy, capsys):
    (copy / "training_history.json").unlink()
    report, err = _profiled(copy, capsys)
    assert "no training history" in err and report["samples"] == 120


def test_profile_of_a_training_without_validation_says_training_entries(tmp_path, capsys):
    root = tiny_project(tmp_path / "p", {"ValidationSplit": 0})
    assert main(["train", str(root)]) == 0 and main(["synth", str(root)]) == 0
    capsys.readouterr()
    report, err = _profiled(root, capsys)
    assert report["samples"] == 600 and "validation entries" not in report["input"]
    assert "training entries" in report["input"] and "ValidationSplit 0" in err
    assert "training entries" in (root / "build" / "profile" / "report.md").read_text()


def _nan_inputs(root, tmp_path, value=np.nan):
    with np.load(root / "d.npz") as f:
        x = f["X"][:40].copy()
    x[17, 2] = value
    np.savez(tmp_path / "x.npz", x=x, y=np.zeros(40, dtype=int))
    return str(tmp_path / "x.npz")


@pytest.mark.parametrize("value, what", [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")])
@pytest.mark.parametrize("command", ["emulate", "verify", "profile"])
def test_nan_inputs_are_refused_naming_file_row_and_feature(synthesized, tmp_path, capsys, command, value, what):
    """inf too: it was cast into the input type (AP_WRAP: 0, the input of the training mean)"""
    path = _nan_inputs(synthesized, tmp_path, value)
    args = {
        "emulate": ["--input", path, "--dataset", "x", "--output", str(tmp_path / "y.npy")],
        "verify": ["--input", path, "--dataset", "x"],
        "profile": ["--input", path, "--dataset", "x", "--output", str(tmp_path / "prof")],
    }[command]
    assert main([command, str(synthesized), *args]) != 0
    err = capsys.readouterr().err
    assert (
        "x.npz" in err and f"{what} in 1 of 40 rows (row 17 first, feature 2 'f2')" in err and "ap_fixed<16,6>" in err
    )


def test_verify_comparison_with_non_finite_float_outputs_is_valid_json(synthesized):
    import sim
    from fpgaflow.network.verify import compare

    net = sim.load(synthesized / "build" / "emulator")
    x = np.random.default_rng(0).normal(size=(6, 4))
    out = net.trace(x)[net.output_name]
    keras = out.values.astype(np.float64).copy()
    keras[2] = np.nan  # what a float model that overflows answers
    result = compare(net, x, out.values, {}, keras)
    text = json.dumps(result, allow_nan=False)
    want = {"samples_in_range": 6, "max_abs_diff": 0.0, "non_finite_samples": 1, "argmax_agreement": 1.0}
    assert json.loads(text)["float_model"] == want
    keras[:] = np.nan
    assert compare(net, x, out.values, {}, keras)["float_model"]["max_abs_diff"] is None


@pytest.mark.oracle
def test_verify_without_input_compares_the_float_model_on_the_project_data(synthesized, capsys):
    """The float model was compared on the random inputs across the input type, out of
    distribution for a model trained on scaled data (23% argmax agreement on the KERAS_3layer
    example, read as a wrong firmware): with a Data: block it is compared on the project's
    own rows, scaled as emulate scales them, and csim checks those rows too."""
    import sim
    from fpgaflow.network.model import load_keras_model
    from fpgaflow.network.verify import float_agreement
    from fpgaflow.project import load_project

    capsys.readouterr()
    assert main(["verify", str(synthesized), "--samples", "200", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["inputs"] == {"random": 200, "project_data": 200} and result["samples"] == 400
    assert result["bit_exact_fraction"] == 1.0
    f = result["float_model"]
    data = synthesized / "d.npz"
    assert (f["inputs"], f["source"], f["samples"]) == (
        "project_data",
        f"the first 200 rows of the project data in {data}",
        200,
    )
    net = sim.load(synthesized / "build" / "emulator")
    with np.load(data) as d:
        x = net._input_raw(net.preprocess(np.stack([d[name] for name in FEATURES], axis=1)[:200]))
    keras = load_keras_model(load_project(synthesized)).predict(x, verbose=0, batch_size=4096)
    by_hand = float_agreement(net, x, net.trace(x)[net.output_name].values, keras)
    assert {k: f[k] for k in by_hand} == pytest.approx(by_hand)


def test_verify_refuses_project_data_it_cannot_read_in_one_line_naming_the_file(copy, capsys):
    """Data that is there but unreadable: no fall-back to the random inputs, and nothing
    compiled: one line naming the file."""
    data = copy / "d.npz"
    data.write_bytes(b"these are not the rows you are looking for")
    capsys.readouterr()
    assert main(["verify", str(copy), "--samples", "5"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "C simulation" not in err, err
    (line,) = [line for line in err.splitlines() if "error" in line]
    assert line.startswith("fpgaflow verify: error: ") and str(data) in line, line


@pytest.mark.oracle
def test_verify_of_a_project_whose_data_is_not_here_checks_the_firmware_and_says_so(copy, capsys):
    """A project copied without its data (no Generator to make it): verify's bit-exact check
    needs none, so it runs; the float model goes on the random inputs, and a note names
    the missing file (failing here made verify unusable until the data was copied too)."""
    data = copy / "d.npz"
    data.unlink()
    capsys.readouterr()
    assert main(["verify", str(copy), "--samples", "50", "--json"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["inputs"] == {"random": 50} and result["bit_exact_fraction"] == 1.0
    assert result["float_model"]["inputs"] == "random"
    (note,) = [line for line in err.splitlines() if line.startswith("verify: note:")]
    assert f"Data.File: {data} does not exist" in note and "random inputs instead" in note, note
