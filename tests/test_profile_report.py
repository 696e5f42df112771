"""``fpgaflow profile`` on a small synthesized network: the report's accuracies and
AUCs are those of the firmware's and the float model's outputs (AUCs checked with
scikit-learn), overflowing layers get a type that holds what was seen, and the PNG
plots are real images."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import yaml

import sim
from fpgaflow.cli import main
from sim.fixed import FixedType

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
CLASSES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    import tensorflow as tf

    root = tmp_path_factory.mktemp("profile") / "tiny"
    root.mkdir()
    tf.keras.utils.set_random_seed(4)
    inp = tf.keras.Input((4,), name="features")
    h = tf.keras.layers.Dense(8, activation="relu", name="fc1")(inp)
    out = tf.keras.layers.Dense(3, activation="softmax", name="out")(h)
    model = tf.keras.Model(inp, out)
    model.save(root / "model.h5")
    cfg = {
        "KerasH5": "model.h5",
        "OutputDir": "build",
        "ProjectName": "tiny",
        "IOType": "io_parallel",
        "HLSConfig": {"Model": {"Precision": "ap_fixed<10,3>", "ReuseFactor": 1, "Strategy": "Latency"}},
    }
    (root / "project.yml").write_text(yaml.safe_dump(cfg))
    assert main(["synth", str(root)]) == 0
    rng = np.random.default_rng(0)
    x = rng.normal(scale=2.0, size=(3000, 4))  # wide enough to overflow ap_fixed<10,3> (|x| >= 4)
    pred = model.predict(x.astype(np.float32), verbose=0).argmax(axis=1)
    y = np.where(rng.random(3000) < 0.7, pred, rng.integers(0, 3, 3000))
    np.savez(root / "inputs.npz", x=x, y=y)
    return root, x, y, model


def test_profile_numbers_match_the_firmware_and_float_outputs(project):
    from sklearn.metrics import roc_auc_score

    root, x, y, model = project
    out = root / "prof"
    code = main(["profile", str(root), "--input", str(root / "inputs.npz"), "--dataset", "x", "--labels", "y",
                 "--output", str(out)])  # fmt: skip
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    firmware = sim.load(root / "build" / "emulator").predict(x).values
    floats = model.predict(x.astype(np.float32), verbose=0)
    assert report["samples"] == 3000
    assert report["accuracy"]["firmware"] == pytest.approx((firmware.argmax(1) == y).mean())
    assert report["accuracy"]["float"] == pytest.approx((floats.argmax(1) == y).mean())
    for k, name in enumerate(["class0", "class1", "class2"]):
        assert report["auc"][name]["firmware"] == pytest.approx(roc_auc_score(y == k, firmware[:, k]), abs=1e-12)
        assert report["auc"][name]["float"] == pytest.approx(roc_auc_score(y == k, floats[:, k]), abs=1e-6)
    layers = {row["name"]: row for row in report["layers"]}
    # ap_fixed<10,3> holds [-4, 4 - 2^-7]: the input port overflows outside that
    assert layers["features"]["overflow"] == int(((x < -4) | (x > 4 - 2**-7)).sum())
    overflowing = [row for row in report["layers"] if row["overflow"]]
    assert overflowing, "inputs this wide must overflow somewhere"
    for row in overflowing:
        t = FixedType.parse(row["suggestion"])
        assert t.min_value <= min(row["low"], row["float_low"] if row["float_low"] is not None else 0)
        assert t.max_value >= max(row["high"], row["float_high"] if row["float_high"] is not None else 0)
    md = (out / "report.md").read_text()
    assert "## Accuracy: float model vs firmware" in md and "| class0 |" in md and "suggested type" in md


def test_plots_are_real_images(project):
    import matplotlib.image as mpimg

    root, *_ = project
    out = root / "plots"
    assert main(["profile", str(root), "--input", str(root / "inputs.npz"), "--dataset", "x", "--labels", "y",
                 "--output", str(out), "--samples", "500"]) == 0  # fmt: skip
    for name in ("ranges.png", "roc.png"):
        img = mpimg.imread(out / name)
        assert img.shape[0] > 300 and img.shape[1] > 300 and img.std() > 0.05, name


def test_without_labels_there_is_no_roc(project, capsys):
    root, *_ = project
    out = root / "nolabels"
    args = ["profile", str(root), "--input", str(root / "inputs.npz"), "--dataset", "x"]
    assert main([*args, "--output", str(out)]) == 0
    assert (out / "ranges.png").is_file() and not (out / "roc.png").exists()
    assert "No labels were given" in (out / "report.md").read_text()
    assert main([*args, "--labels", "zz"]) == 2
    assert "no array named 'zz'" in capsys.readouterr().err


def test_labels_the_model_has_no_class_for_are_refused(project, capsys):
    """Labels 0/7 on a 3-class model gave 'accuracy 0.1250': class 7 counted as a miss."""
    root, x, y, _ = project
    y7 = np.where(y == 1, 7, y)
    np.save(root / "y7.npy", y7)
    np.savez(root / "inputs7.npz", x=x, y=y7)
    first = int(np.flatnonzero(y7 == 7)[0])
    tail = f"label 7 (row {first} first, {int((y7 == 7).sum())} rows) is not a class of the model, whose 3 outputs "
    tail += "tell 3 classes (0 to 2)"
    for labels, data, where in [
        (root / "y7.npy", root / "inputs.npz", f"{root / 'y7.npy'}"),
        ("y", root / "inputs7.npz", f"{root / 'inputs7.npz'}: array 'y'"),
    ]:
        args = ["profile", str(root), "--input", str(data), "--dataset", "x", "--labels", str(labels)]
        assert main([*args, "--output", str(root / "y7")]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line == f"fpgaflow profile: error: {where}: {tail}"
    assert not (root / "y7").exists()


def test_profile_runs_the_data_generator_when_the_data_are_missing(project, tmp_path, capsys):
    """A project whose ``Data.File`` is made on demand (``Generator``, as the jet tagger's):
    profile refused it ("does not exist (run its Generator ...)") where train runs it, so
    ``synth``, ``verify``, ``profile`` on the shipped example failed at the last step."""
    import shutil

    root, x, y, _ = project
    copy = shutil.copytree(root, tmp_path / "tiny")
    np.savez(tmp_path / "made.npz", x=x, y=y)
    (copy / "gen.py").write_text(
        "import argparse, shutil\n"
        "p = argparse.ArgumentParser(); p.add_argument('--output'); args = p.parse_args()\n"
        f"shutil.copy({str(tmp_path / 'made.npz')!r}, args.output)\n"
    )
    cfg = yaml.safe_load((copy / "project.yml").read_text())
    cfg["Data"] = {"File": "data/made.npz", "Generator": "gen.py", "Features": ["x"], "Labels": "y", "Scaling": "none"}
    (copy / "project.yml").write_text(yaml.safe_dump(cfg))
    (copy / "data").mkdir()
    capsys.readouterr()
    assert main(["profile", str(copy), "--output", str(copy / "profiled")]) == 0
    assert "data: made.npz missing, generating it with gen.py" in capsys.readouterr().err
    assert (copy / "data" / "made.npz").is_file() and (copy / "profiled" / "report.md").is_file()
