"""``fpgaflow train`` end to end on small data: QKeras QAT writes a loadable model with
the declared quantizers, the scaling and the history; seeds reproduce runs; pruning
reaches its sparsity; ``build_model`` files and KerasJson+KerasH5 projects work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from fpgaflow.cli import main
from fpgaflow.data import Scaling
from fpgaflow.project import load_project
from fpgaflow.train.fit import train_project

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

N, F, K = 1500, 4, 3


def _blobs(path: Path, seed: int = 0) -> None:
    """Three well separated classes, features on very different scales (so scaling matters)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, N)
    centres = np.array([[0, 0, 0, 0], [3, 0, 3, 0], [0, 3, 0, 3]], float)
    x = (centres[y] + rng.normal(size=(N, F))) * [1, 100, 0.01, 1] + [0, 500, 0, -7]
    np.savez(path, X=x, y=y)


def _project(root: Path, **training) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    _blobs(root / "blobs.npz")
    cfg = {
        "KerasH5": "model/m.h5",
        "OutputDir": "build",
        "Data": {"File": "blobs.npz", "Features": "X", "Labels": "y", "Classes": ["a", "b", "c"]},
        "Training": {
            "Model": {"Bits": 8, "IntegerBits": 1, "Layers": [{"Units": 16}, {"Units": K, "Activation": "softmax"}]},
            "Epochs": 3,
            "BatchSize": 64,
            "LearningRate": 0.01,
            "Seed": 3,
            "Verbose": 0,
            **training,
        },
    }
    (root / "project.yml").write_text(yaml.safe_dump(cfg))
    return root


def _weights(path: Path) -> list[np.ndarray]:
    from qkeras.utils import load_qmodel

    return load_qmodel(str(path), compile=False).get_weights()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = _project(tmp_path_factory.mktemp("train") / "p")
    assert main(["train", str(root)]) == 0
    return root


def test_train_writes_model_scaling_and_history(trained, capsys):
    from qkeras.utils import load_qmodel

    model = load_qmodel(str(trained / "model/m.h5"), compile=False)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["InputLayer", "QDense", "QActivation", "QDense", "Activation"]
    q = model.layers[1].get_quantizers()[0]
    assert (q.bits, q.integer) == (8, 1)
    scaling = Scaling.load(trained / "scaling.json")
    assert scaling.kind == "standard" and scaling.features == [f"X[{i}]" for i in range(F)]
    history = json.loads((trained / "training_history.json").read_text())
    assert history["epochs_run"] == 3 and len(history["history"]["val_loss"]) == 3
    assert history["classes"] == ["a", "b", "c"]
    # the saved model with the saved scaling classifies the (easy) data well
    with np.load(trained / "blobs.npz") as d:
        pred = model.predict(scaling.apply(d["X"]).astype(np.float32), verbose=0).argmax(axis=1)
        assert (pred == d["y"]).mean() > 0.9
    assert history["validation_accuracy"] > 0.9


def test_same_seed_same_weights_other_seed_other_weights(trained, tmp_path):
    first = _weights(trained / "model/m.h5")
    again = _project(tmp_path / "again")
    train_project(load_project(again))
    assert all(np.array_equal(a, b) for a, b in zip(first, _weights(again / "model/m.h5"), strict=True))
    other = _project(tmp_path / "other", Seed=4)
    train_project(load_project(other))
    assert not all(np.array_equal(a, b) for a, b in zip(first, _weights(other / "model/m.h5"), strict=True))


def test_pruning_reaches_target_sparsity_and_early_stopping_waits_for_it(tmp_path):
    root = _project(tmp_path / "p", Pruning={"Sparsity": 0.6, "Begin": 0.0, "End": 0.5, "Frequency": 5},
                    EarlyStopping={"Patience": 1}, Epochs=4)  # fmt: skip
    result = train_project(load_project(root))
    kernels = [w for w in _weights(root / "model/m.h5") if w.ndim == 2]
    zeros = sum((k == 0).sum() for k in kernels) / sum(k.size for k in kernels)
    assert zeros == pytest.approx(0.6, abs=0.02) and result.sparsity == pytest.approx(zeros)


def test_build_model_file_and_json_plus_weights_outputs(tmp_path):
    root = _project(tmp_path / "p")
    (root / "arch.py").write_text(
        "import tensorflow as tf\n"
        "from qkeras import QDense, quantized_bits\n"
        "def build_model(n_features, n_classes, width=8):\n"
        "    x = inp = tf.keras.Input((n_features,))\n"
        "    x = QDense(width, kernel_quantizer=quantized_bits(4, 0, alpha=1), name='hidden')(x)\n"
        "    x = tf.keras.layers.Activation('relu')(x)\n"
        "    out = tf.keras.layers.Activation('softmax')(tf.keras.layers.Dense(n_classes)(x))\n"
        "    return tf.keras.Model(inp, out)\n"
    )
    cfg = yaml.safe_load((root / "project.yml").read_text())
    cfg["Training"].pop("Model")
    cfg["Training"].update(BuildModel="arch.py", ModelOptions={"width": 5}, Epochs=1)
    cfg.update(KerasJson="model/m.json", KerasH5="model/w.h5")
    (root / "project.yml").write_text(yaml.safe_dump(cfg))
    train_project(load_project(root))
    arch = json.loads((root / "model/m.json").read_text())
    hidden = [layer for layer in arch["config"]["layers"] if layer["config"]["name"] == "hidden"][0]
    assert hidden["class_name"] == "QDense" and hidden["config"]["units"] == 5
    assert (root / "model/w.h5").is_file()


def test_train_errors_are_one_clear_line(tmp_path, capsys):
    root = _project(tmp_path / "p")
    cfg = yaml.safe_load((root / "project.yml").read_text())
    cfg["Data"]["Features"] = "Z"
    (root / "project.yml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(root)]) == 2
    err = capsys.readouterr().err
    assert "blobs.npz: no array named 'Z'; it holds: X, y" in err and "Traceback" not in err
    cfg["Data"]["Features"] = "X"
    cfg["Training"]["Model"]["Layers"][-1]["Units"] = 4
    (root / "project.yml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(root)]) == 2
    assert "the last layer has 4 units but the data has 3 classes" in capsys.readouterr().err


def test_labels_of_one_class_are_refused_naming_them(tmp_path, capsys):
    """It trained and reported 'classes class0, validation accuracy 0.3500' (two outputs
    for one class); now refused before TensorFlow is even imported."""
    root = _project(tmp_path / "p")
    with np.load(root / "blobs.npz") as d:
        np.savez(root / "blobs.npz", X=d["X"], y=np.zeros(N, dtype=int))
    assert main(["train", str(root)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        f"fpgaflow train: error: {root / 'project.yml'}: Data.Labels: 'y' in {root / 'blobs.npz'} holds one class "
        f"only (a, index 0, in all {N} entries); a classifier needs at least two classes to learn from"
    )
    cfg = yaml.safe_load((root / "project.yml").read_text())
    del cfg["Data"]["Classes"]
    (root / "project.yml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match=r"holds one class only \(class0, index 0, in all 1500 entries\)"):
        train_project(load_project(root))
    assert not (root / "model").exists()


def test_build_model_failures_name_the_file_and_call(tmp_path):
    root = _project(tmp_path / "p")
    (root / "arch.py").write_text("def build_model(n_features, n_classes):\n    raise RuntimeError('no GPU here')\n")
    cfg = yaml.safe_load((root / "project.yml").read_text())
    cfg["Training"].pop("Model")
    cfg["Training"].update(BuildModel="arch.py", ModelOptions={"width": 5})
    (root / "project.yml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match=r"arch\.py: build_model\(4, 3, width=5\) failed: TypeError"):
        train_project(load_project(root))


def test_binary_classifier_with_one_sigmoid_output(tmp_path):
    root = _project(tmp_path / "p", Epochs=2)
    with np.load(root / "blobs.npz") as d:
        np.savez(root / "blobs.npz", X=d["X"], y=(d["y"] == 1).astype(int))
    cfg = yaml.safe_load((root / "project.yml").read_text())
    cfg["Data"]["Classes"] = ["background", "signal"]
    cfg["Training"]["Model"]["Layers"][-1] = {"Units": 1, "Activation": "sigmoid"}
    (root / "project.yml").write_text(yaml.safe_dump(cfg))
    result = train_project(load_project(root))
    assert result.val_accuracy > 0.9
    assert len(result.history["loss"]) == 2
    from qkeras.utils import load_qmodel

    assert load_qmodel(str(root / "model/m.h5"), compile=False).output_shape == (None, 1)


@pytest.mark.parametrize(
    "output, message",
    [
        ("tf.keras.layers.Dense(n_classes, name='logits')(x)", r"'logits': .* activation is 'linear', but 3 out"),
        ("QActivation('quantized_relu(4)', name='q')(tf.keras.layers.Dense(n_classes)(x))", r"'q': .*'quantized_relu'"),
    ],
)
def test_build_model_output_that_the_loss_cannot_train_is_refused(tmp_path, output, message):
    """The loss reads probabilities (from_logits=False): a linear output trained to chance, without a word."""
    root = _project(tmp_path / "p")
    (root / "arch.py").write_text(
        "import tensorflow as tf\n"
        "from qkeras import QActivation\n"
        "def build_model(n_features, n_classes):\n"
        "    x = inp = tf.keras.Input((n_features,))\n"
        f"    return tf.keras.Model(inp, {output})\n"
    )
    cfg = yaml.safe_load((root / "project.yml").read_text())
    cfg["Training"].pop("Model")
    cfg["Training"]["BuildModel"] = "arch.py"
    (root / "project.yml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match=r"arch\.py: build_model's layer " + message):
        train_project(load_project(root))
    assert not (root / "model").exists()


@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_epochs_override_follows_the_epochs_rule(tmp_path, capsys, epochs):
    """``--epochs 0`` printed "0 epochs" and wrote the untrained weights over the model;
    Training.Epochs was checked (>= 1), its override was not."""
    root = _project(tmp_path / "p")
    assert main(["train", str(root), "--epochs", epochs]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"fpgaflow train: error: --epochs: must be at least 1, got {epochs}"
    assert not (root / "model").exists() and not (root / "scaling.json").exists()


def test_data_values_of_the_wrong_type_are_refused_before_any_work(tmp_path, capsys):
    """``Labels: 5`` ended in "TypeError: 'int' object is not iterable"; ``Files: {a: b}``
    ran the Generator (35 s for the jet tagger) to write a file named 'a', then refused
    "unknown data format ''"."""
    root = _project(tmp_path / "p")
    (root / "gen.py").write_text("import pathlib, sys\npathlib.Path(sys.argv[0]).with_name('ran').touch()\n")
    cfg = yaml.safe_load((root / "project.yml").read_text())
    del cfg["Data"]["File"]
    cfg["Data"].update(Files={"a": "b"}, Generator="gen.py")
    (root / "project.yml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(root)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith("project.yml: Data.Files: expected a path or a list of paths, got {'a': 'b'}"), line
    assert not (root / "ran").exists() and not (root / "a").exists()
    cfg["Data"].update(Files=["blobs.npz"], Labels=5)
    (root / "project.yml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(root)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith("Data.Labels: expected a column name or a list of column names, got 5"), line


def test_saving_the_trained_model_hides_only_keras_s_known_noise(tmp_path):
    """Saving silenced every warning (Keras's HDF5-legacy notice and its QKeras quantizer
    notice were the aim): any other warning while the model was written went unseen."""
    import warnings

    import tensorflow as tf
    from qkeras import QDense, quantized_bits

    from fpgaflow.train.outputs import TrainingOutputs

    inp = tf.keras.Input((4,))
    model = tf.keras.Model(inp, QDense(3, kernel_quantizer=quantized_bits(4, 0, alpha=1))(inp))
    real_save = model.save

    def save(*args, **kwargs):
        warnings.warn("a warning about the user's model", UserWarning, stacklevel=2)
        return real_save(*args, **kwargs)

    model.save = save
    out = TrainingOutputs(model=tmp_path / "m.h5", json=None, scaling=tmp_path / "s.json", history=tmp_path / "h.json")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out.save_model(model)
    said = [str(w.message) for w in seen]
    assert "a warning about the user's model" in said, said
    assert not [m for m in said if "considered legacy" in m or "constraints.serialize" in m], said
    assert (tmp_path / "m.h5").is_file()
