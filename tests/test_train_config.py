"""The Training: block: declared layers, knobs, and errors naming the key (no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from fpgaflow.train import TrainingConfig, TrainingError
from fpgaflow.train.fit import class_weights, split


def _cfg(tmp_path, **block):
    return TrainingConfig.from_mapping(block, tmp_path)


M = {"Layers": [{"Units": 4, "Activation": "softmax"}]}


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
        ({"Model": M, "Epochs": "ten"}, r"Epochs: expected an integer"),
        ({"Model": M, "ValidationSplit": 1.5}, r"ValidationSplit: must be in \[0, 1\)"),
        ({"Model": M, "Pruning": {"Sparsity": 1.2}}, r"0 < Sparsity < 1"),
        ({"Model": M, "Epoch": 3}, r"unknown key\(s\) Epoch"),
        # a typo names the key meant, as the project file's keys do; a key like none names no key
        ({"Model": M, "Epcohs": 3}, r"Training: unknown key\(s\) Epcohs \(did you mean Epochs\?\); known: "),
        ({"Model": M, "batchsize": 3}, r"unknown key\(s\) batchsize \(did you mean BatchSize\?\)"),
        ({"Model": M, "Zzz": 3}, r"Training: unknown key\(s\) Zzz; known: "),
        ({"Model": M, "Pruning": {"Sparsity": 0.5, "Frequncy": 5}},
         r"Pruning: unknown key\(s\) Frequncy \(did you mean Frequency\?\)"),
        ({"Model": {"Layers": [{"Units": 4, "Activaton": "relu"}]}},
         r"Layers\[0\]: unknown key\(s\) Activaton \(did you mean Activation\?\)"),
        ({"Model": {"Layers": [{"Units": 4}], "Bit": 4}}, r"Model: unknown key\(s\) Bit \(did you mean Bits\?\)"),
        # accepted before, then wrong or ignored, or a bare int()/float() error naming no key
        ({"Model": M, "EarlyStopping": {"Monitor": "val_acc"}}, r"Monitor: 'val_acc' is not .* val_accuracy"),
        ({"Model": M, "EarlyStopping": True, "ValidationSplit": 0}, r"Monitor: val_loss needs validation"),
        ({"Model": M, "EarlyStopping": {"Patience": 2.7}}, r"EarlyStopping\.Patience: expected an integer"),
        ({"Model": M, "EarlyStopping": {"Patience": "five"}}, r"EarlyStopping\.Patience: expected an integer"),
        ({"Model": M, "EarlyStopping": {"MinDelta": "x"}}, r"EarlyStopping\.MinDelta: expected a number"),
        ({"Model": M, "EarlyStopping": {"MinDelta": -1}}, r"EarlyStopping\.MinDelta: must be a number >= 0"),
        ({"Model": M, "LearningRate": -0.01}, r"LearningRate: must be a positive number"),
        ({"Model": M, "LearningRate": 0}, r"LearningRate: must be a positive number"),
        ({"Model": M, "ModelOptions": {"dropout": 0.5}}, r"ModelOptions: .* \(dropout would be ignored\)"),
        ({"Model": M, "Verbose": "yes"}, r"Verbose: expected 0 .*got 'yes'"),
        ({"Model": M, "Verbose": True}, r"Verbose: expected 0"),
        ({"Model": M, "Pruning": {"Sparsity": "50%"}}, r"Pruning\.Sparsity: expected a number, got '50%'"),
        ({"Model": M, "Pruning": {"Sparsity": 0.5, "Frequency": 0}}, r"Pruning\.Frequency: must be at least 1"),
        # the losses read probabilities (from_logits=False): these trained to 29% / a constant 1.0, without a word
        ({"Model": {"Layers": [{"Units": 8}, {"Units": 5, "Activation": "linear"}]}},
         r"Model\.Layers\[1\]\.Activation: the output layer's activation is 'linear', but 5 outputs .* use softmax"),
        ({"Model": {"Layers": [{"Units": 1, "Activation": "softmax"}]}},
         r"Layers\[0\]\.Activation: the output layer has 1 unit with activation 'softmax'.* use sigmoid"),
        ({"Model": {"Layers": [{"Units": 3, "Activation": "sigmoid"}]}}, r"activation is 'sigmoid', but 3 outputs"),
        ({"Model": {"Layers": [{"Units": 1, "Activation": "tanh"}]}}, r"1 unit with activation 'tanh'"),
        ({"Model": {"Layers": [{"Units": 4}]}}, r"Layers\[0\]\.Activation: the output layer's activation is 'relu'"),
    ],
)  # fmt: skip
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


def test_valid_values_still_parse(tmp_path):
    cfg = _cfg(tmp_path, Model=M, LearningRate="1e-3", Verbose=2, EarlyStopping={"Monitor": "val_accuracy",
               "Patience": 0, "MinDelta": 0.01}, Pruning={"Sparsity": 0.5, "Frequency": 1})  # fmt: skip
    assert cfg.learning_rate == 1e-3 and cfg.verbose == 2 and cfg.pruning.frequency == 1
    assert cfg.early_stopping == {"patience": 0, "monitor": "val_accuracy", "min_delta": 0.01}


WRONG_TYPES = {  # every Training key, given values of kinds it does not take
    "Epochs": ["x", 1.5, True, [1], None],
    "BatchSize": ["64", True, {"a": 1}, None],
    "LearningRate": [True, [0.1], {"a": 1}, "fast", None],
    "ValidationSplit": [False, True, "x", [0.2], None],
    "EarlyStopping": [5, "yes", [1], 0, "", None, {"Patience": True}],
    "ClassWeights": [5, True, ["a"], {"a": "x"}, {True: 1}, {"a": -1}, {"a": [1]}, None],
    "Pruning": [5, "x", [1], 0, True, None, {"Sparsity": True}],
    "Seed": ["x", True, 1.5, None],
    "History": [5, ["a"], True, {}, "", None],
    "Verbose": ["x", True, None],
    "ModelOptions": ["x", [1], True, None],
}


@pytest.mark.parametrize("key, value", [(k, v) for k, values in WRONG_TYPES.items() for v in values])
def test_every_training_key_of_the_wrong_type_is_one_line_naming_it(tmp_path, key, value):
    """``ValidationSplit: false`` trained without validation, ``LearningRate: true`` at 1.0,
    ``History: [a]`` wrote a file named "['a']", ``EarlyStopping: 0`` and ``Pruning: []``
    turned them off, ``ClassWeights: {a: x}`` failed at fit time naming no key."""
    block = {"Model": M, key: value}
    with pytest.raises(TrainingError) as info:
        TrainingConfig.from_mapping(block, tmp_path, "p.yml: Training")
    message = str(info.value)
    assert message.startswith(f"p.yml: Training.{key}") and "\n" not in message, message


@pytest.mark.parametrize(
    "layer, key",
    [({"Name": 5}, "Name"), ({"Name": ["a"]}, "Name"), ({"Name": None}, "Name"),
     ({"ActivationName": 7}, "ActivationName"), ({"Activation": True}, "Activation"),
     ({"Activation": None}, "Activation"), ({"Units": "4"}, "Units")],
)  # fmt: skip
def test_layer_keys_of_the_wrong_type_name_the_layer_key(tmp_path, layer, key):
    model = {"Layers": [{"Units": 4, **layer}, {"Units": 3, "Activation": "softmax"}]}
    with pytest.raises(TrainingError, match=rf"^p\.yml: Training\.Model\.Layers\[0\]\.{key}: expected"):
        TrainingConfig.from_mapping({"Model": model}, tmp_path, "p.yml: Training")


def test_build_model_of_the_wrong_type_is_named(tmp_path):
    with pytest.raises(TrainingError, match=r"^p\.yml: Training\.BuildModel: expected the path of a Python file"):
        TrainingConfig.from_mapping({"BuildModel": ["m.py"]}, tmp_path, "p.yml: Training")
