"""The Training: block: declared layers, knobs, and errors naming the key (no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from fpgaflow.train import TrainingConfig, TrainingError
from fpgaflow.train.fit import class_weights, split


def _cfg(tmp_path, **block):
    return TrainingConfig.from_mapping(block, tmp_path)


def test_declared_layers_take_model_defaults_and_per_layer_overrides(tmp_path):
    cfg = _cfg(
        tmp_path,
        Model={
            "Bits": 6,
            "Layers": [
                {"Name": "fc1", "Units": 8, "ActivationName": "relu1"},
                {"Units": 3, "Activation": "softmax", "Bits": 8, "IntegerBits": 2},
            ],
        },
        Epochs=3,
        EarlyStopping=True,
        Pruning={"Sparsity": 0.25},
    )
    a, b = cfg.layers
    assert (a.name, a.units, a.bits, a.integer_bits, a.activation_layer_name) == ("fc1", 8, 6, 0, "relu1")
    assert (b.name, b.bits, b.integer_bits, b.activation, b.activation_layer_name) == (
        "fc2",
        8,
        2,
        "softmax",
        "fc2_softmax",
    )
    assert cfg.epochs == 3 and cfg.early_stopping == {"patience": 5, "monitor": "val_loss", "min_delta": 0.0}
    assert cfg.pruning.sparsity == 0.25


@pytest.mark.parametrize(
    "block, message",
    [
        ({}, r"exactly one of Model .* or BuildModel"),
        ({"Model": {"Layers": [{"Units": 4}]}, "BuildModel": "m.py"}, r"exactly one of"),
        ({"BuildModel": "nope.py"}, r"BuildModel: .*nope\.py does not exist"),
        ({"Model": {"Layers": [{"Units": 4, "Activation": "swish"}]}}, r"Layers\[0\]\.Activation: 'swish'"),
        ({"Model": {"Layers": [{"Units": 4, "Bits": 4, "IntegerBits": 4}]}}, r"IntegerBits \(4\) must be below"),
        ({"Model": {"Layers": [{"Units": 4, "Name": "a"}, {"Units": 2, "Name": "a"}]}}, r"used twice: a"),
        ({"Model": {"Layers": [{"Units": 4, "Width": 3}]}}, r"Layers\[0\]: unknown key\(s\) Width"),
        ({"Model": {"Layers": [{"Units": 4}]}, "Epochs": "ten"}, r"Epochs: expected an integer"),
        ({"Model": {"Layers": [{"Units": 4}]}, "ValidationSplit": 1.5}, r"ValidationSplit: must be in \[0, 1\)"),
        ({"Model": {"Layers": [{"Units": 4}]}, "Pruning": {"Sparsity": 1.2}}, r"0 < Sparsity < 1"),
        ({"Model": {"Layers": [{"Units": 4}]}, "Epoch": 3}, r"unknown key\(s\) Epoch"),
    ],
)
def test_bad_training_blocks_name_the_key(tmp_path, block, message):
    with pytest.raises(TrainingError, match=message):
        _cfg(tmp_path, **block)


def test_balanced_and_named_class_weights():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    w = class_weights("balanced", labels, ["a", "b", "c"], "T")
    assert w == pytest.approx({0: 10 / 18, 1: 10 / 9, 2: 10 / 3})
    assert class_weights({"b": 2.0, 2: 0.5}, labels, ["a", "b", "c"], "T") == {0: 1.0, 1: 2.0, 2: 0.5}
    with pytest.raises(TrainingError, match=r"'d' is not a class; classes are a, b, c"):
        class_weights({"d": 1.0}, labels, ["a", "b", "c"], "T")


def test_split_is_shuffled_disjoint_and_seeded():
    tr, va = split(1000, 0.2, seed=5)
    assert len(va) == 200 and len(tr) == 800 and not set(tr) & set(va)
    assert va.max() > 800 and va.min() < 200  # not the last rows
    assert np.array_equal(split(1000, 0.2, seed=5)[1], va) and not np.array_equal(split(1000, 0.2, seed=6)[1], va)
