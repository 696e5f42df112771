"""The ``Training:`` block of a project file: the model declaration and the knobs of
quantization-aware training, validated with errors naming the key."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fpgaflow.project import refuse_unknown_keys

ACTIVATIONS = ("relu", "linear", "softmax", "sigmoid", "tanh")
# what Keras logs with the loss and metrics=["accuracy"] that training compiles with
MONITORS = ("val_loss", "val_accuracy", "loss", "accuracy")
STOP_KEYS = {"Patience", "Monitor", "MinDelta"}
# output activations whose single unit is a probability (the sigmoids of Keras and QKeras)
BINARY_OUTPUTS = ("sigmoid", "hard_sigmoid", "quantized_sigmoid")


class TrainingError(ValueError):
    """A training configuration that cannot be used; the message names the key."""


@dataclass(frozen=True)
class LayerSpec:
    """One dense layer: its weights/biases quantized to ``bits`` with ``integer_bits``
    (QKeras ``quantized_bits(bits, integer_bits, alpha=1)``, i.e. ap_fixed<bits,
    integer_bits + 1>), followed by its activation; a relu is quantized too
    (``quantized_relu(activation_bits, activation_integer_bits)``)."""

    name: str
    units: int
    activation: str = "relu"
    bits: int = 6
    integer_bits: int = 0
    activation_bits: int | None = None
    activation_integer_bits: int = 0
    activation_name: str | None = None

    @property
    def activation_layer_name(self) -> str:
        return self.activation_name or f"{self.name}_{self.activation}"


@dataclass
class PruningSpec:
    """Magnitude pruning to ``sparsity`` (fraction of zero weights), ramped up from
    ``begin`` to ``end`` (fractions of the training steps) every ``frequency`` steps."""

    sparsity: float
    begin: float = 0.0
    end: float = 0.7
    frequency: int = 10


@dataclass
class TrainingConfig:
    layers: list[LayerSpec] | None = None  # declared model ...
    build_model: Path | None = None  # ... or a Python file with build_model(n_features, n_classes, **options)
    model_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-3
    early_stopping: dict[str, Any] | None = None  # {"patience": int, "monitor": str}
    validation_split: float = 0.2
    class_weights: str | dict[str, float] | None = None  # "balanced", or per class name/index
    pruning: PruningSpec | None = None
    seed: int = 0
    history: str = "training_history.json"
    verbose: int | None = None
    where: str = "Training"

    @classmethod
    def from_mapping(cls, block: Any, root: Path, where: str = "Training") -> TrainingConfig:
        if not isinstance(block, dict):
            raise TrainingError(f"{where}: expected a mapping with Model (or BuildModel), Epochs, BatchSize...")
        known = {
            "Model", "BuildModel", "ModelOptions", "Epochs", "BatchSize", "LearningRate", "EarlyStopping",
            "ValidationSplit", "ClassWeights", "Pruning", "Seed", "History", "Verbose",
        }  # fmt: skip
        refuse_unknown_keys(where, block, sorted(known), error=TrainingError)
        null = next((k for k, v in block.items() if v is None), None)
        if null is not None:
            raise TrainingError(f"{where}.{null}: has no value (null); give one, or leave the key out")
        if ("Model" in block) == ("BuildModel" in block):
            raise TrainingError(f"{where}: give exactly one of Model (declared layers) or BuildModel (a Python file)")
        cfg = cls(where=where)
        if "Model" in block:
            cfg.layers = _layers(block["Model"], f"{where}.Model")
        else:
            path = Path(_text(block["BuildModel"], f"{where}.BuildModel", "the path of a Python file"))
            cfg.build_model = path if path.is_absolute() else root / path
            if not cfg.build_model.is_file():
                raise TrainingError(f"{where}.BuildModel: {cfg.build_model} does not exist")
        options = block.get("ModelOptions", {})
        if not isinstance(options, dict) or not all(isinstance(k, str) and k.isidentifier() for k in options):
            raise TrainingError(
                f"{where}.ModelOptions: expected a mapping of keyword arguments for build_model, got {options!r}"
            )
        if options and "Model" in block:  # would be ignored: the declared layers take no options
            raise TrainingError(
                f"{where}.ModelOptions: keyword arguments for BuildModel's build_model(); the declared Model "
                f"does not take them ({', '.join(map(str, options))} would be ignored): remove ModelOptions, "
                "or declare the option in Model"
            )
        cfg.model_options = options
        cfg.epochs = epoch_count(block.get("Epochs", cfg.epochs), f"{where}.Epochs")
        cfg.batch_size = _int(block, "BatchSize", cfg.batch_size, where, minimum=1)
        cfg.learning_rate = _float(block, "LearningRate", cfg.learning_rate, where)
        if not cfg.learning_rate > 0 or not math.isfinite(cfg.learning_rate):
            raise TrainingError(
                f"{where}.LearningRate: must be a positive number, got {cfg.learning_rate} "
                "(0 learns nothing, a negative rate climbs the loss)"
            )
        cfg.validation_split = _float(block, "ValidationSplit", cfg.validation_split, where)
        if not 0 <= cfg.validation_split < 1:
            raise TrainingError(f"{where}.ValidationSplit: must be in [0, 1), got {cfg.validation_split}")
        cfg.seed = _int(block, "Seed", cfg.seed, where, minimum=0)
        cfg.history = _text(block.get("History", cfg.history), f"{where}.History", "a file name")
        verbose = block.get("Verbose")
        if verbose is not None and (isinstance(verbose, bool) or verbose not in (0, 1, 2)):
            raise TrainingError(
                f"{where}.Verbose: expected 0 (silent), 1 (progress bars) or 2 (one line per epoch), got {verbose!r}"
            )
        cfg.verbose = verbose
        stop = block.get("EarlyStopping", False)
        if not isinstance(stop, (bool, dict)) or set(stop if isinstance(stop, dict) else ()) - STOP_KEYS:
            raise TrainingError(
                f"{where}.EarlyStopping: expected true, false or {{Patience, Monitor, MinDelta}}, got {stop!r}"
            )
        if stop is not False:
            stop = {} if stop is True else stop
            at = f"{where}.EarlyStopping"
            monitor = stop.get("Monitor", "val_loss")
            if monitor not in MONITORS:
                raise TrainingError(
                    f"{at}.Monitor: {monitor!r} is not a metric training logs (Keras would only warn and never "
                    f"stop); use one of {', '.join(MONITORS)}"
                )
            if monitor.startswith("val_") and cfg.validation_split == 0:
                raise TrainingError(f"{at}.Monitor: {monitor} needs validation entries, but ValidationSplit is 0")
            min_delta = _float(stop, "MinDelta", 0.0, at)
            if not min_delta >= 0 or not math.isfinite(min_delta):
                raise TrainingError(f"{at}.MinDelta: must be a number >= 0, got {min_delta}")
            cfg.early_stopping = {
                "patience": _int(stop, "Patience", 5, at, minimum=0),
                "monitor": monitor,
                "min_delta": min_delta,
            }
        weights = block.get("ClassWeights")
        if weights is not None and weights != "balanced" and not isinstance(weights, dict):
            raise TrainingError(
                f"{where}.ClassWeights: expected 'balanced' or a mapping class -> weight, got {weights!r}"
            )
        for key, value in weights.items() if isinstance(weights, dict) else ():
            if isinstance(key, bool) or not isinstance(key, (str, int)):  # `{yes: 2}` reads as a boolean
                raise TrainingError(f"{where}.ClassWeights: {key!r} is not a class name or index (quote names)")
            if not 0 <= _number(value, f"{where}.ClassWeights.{key}") < math.inf:
                raise TrainingError(f"{where}.ClassWeights.{key}: must be a finite weight >= 0, got {value!r}")
        cfg.class_weights = weights
        pruning = block.get("Pruning", False)
        if pruning is not False:
            if not isinstance(pruning, dict) or "Sparsity" not in pruning:
                raise TrainingError(f"{where}.Pruning: expected {{Sparsity: 0.5, Begin: 0.0, End: 0.7, Frequency: 10}}")
            refuse_unknown_keys(
                f"{where}.Pruning", pruning, ("Sparsity", "Begin", "End", "Frequency"), error=TrainingError
            )
            at = f"{where}.Pruning"
            spec = PruningSpec(
                _float(pruning, "Sparsity", 0.0, at),
                _float(pruning, "Begin", 0.0, at),
                _float(pruning, "End", 0.7, at),
                _int(pruning, "Frequency", 10, at, minimum=1),
            )
            if not 0 < spec.sparsity < 1 or not 0 <= spec.begin < spec.end <= 1:
                raise TrainingError(f"{where}.Pruning: need 0 < Sparsity < 1 and 0 <= Begin < End <= 1")
            cfg.pruning = spec
        return cfg

    @classmethod
    def from_project(cls, project: Any) -> TrainingConfig:
        if "Training" not in project.config:
            raise TrainingError(f"{project.file}: no 'Training:' block (the model and how to train it)")
        return cls.from_mapping(project.config["Training"], project.root, f"{project.file}: Training")


def _layers(model: Any, where: str) -> list[LayerSpec]:
    if not isinstance(model, dict) or not isinstance(model.get("Layers"), list) or not model["Layers"]:
        raise TrainingError(f"{where}: expected {{Layers: [{{Name, Units, Activation, Bits}}, ...]}}")
    known = ("Layers", "Bits", "IntegerBits", "ActivationBits", "ActivationIntegerBits")
    refuse_unknown_keys(where, model, known, error=TrainingError)
    defaults = {k: model[k] for k in ("Bits", "IntegerBits", "ActivationBits", "ActivationIntegerBits") if k in model}
    keys = {"Name", "Units", "Activation", "ActivationName", *defaults, "Bits", "IntegerBits"}
    keys |= {"ActivationBits", "ActivationIntegerBits"}
    specs = []
    for i, raw in enumerate(model["Layers"]):
        at = f"{where}.Layers[{i}]"
        if not isinstance(raw, dict) or "Units" not in raw:
            raise TrainingError(f"{at}: expected a mapping with at least Units")
        refuse_unknown_keys(at, raw, sorted(keys), error=TrainingError)
        item = {**defaults, **raw}
        activation = _text(item.get("Activation", "relu"), f"{at}.Activation", "an activation name").lower()
        if activation not in ACTIVATIONS:
            raise TrainingError(f"{at}.Activation: {activation!r} is not one of {', '.join(ACTIVATIONS)}")
        spec = LayerSpec(
            name=_text(item.get("Name", f"fc{i + 1}"), f"{at}.Name", "a layer name"),
            units=_int(item, "Units", 0, at, minimum=1),
            activation=activation,
            bits=_int(item, "Bits", 6, at, minimum=2),
            integer_bits=_int(item, "IntegerBits", 0, at, minimum=0),
            activation_bits=_int(item, "ActivationBits", 0, at, minimum=1) if "ActivationBits" in item else None,
            activation_integer_bits=_int(item, "ActivationIntegerBits", 0, at, minimum=0),
            activation_name=_text(item["ActivationName"], f"{at}.ActivationName", "a layer name")
            if "ActivationName" in item
            else None,
        )
        if spec.integer_bits >= spec.bits:
            raise TrainingError(f"{at}: IntegerBits ({spec.integer_bits}) must be below Bits ({spec.bits})")
        specs.append(spec)
    names = [s.name for s in specs] + [s.activation_layer_name for s in specs if s.activation != "linear"]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise TrainingError(f"{where}.Layers: layer name(s) used twice: {', '.join(dupes)}")
    refuse_untrainable_output(specs[-1].units, specs[-1].activation, f"{where}.Layers[{len(specs) - 1}].Activation")
    return specs


def refuse_untrainable_output(units: int | None, activation: str, where: str) -> None:
    """The losses training compiles with (``fit.py``: binary cross-entropy for one output,
    sparse categorical cross-entropy for several, ``from_logits=False``) read the outputs
    as probabilities.  Any other output activation trains to nonsense without an error (a
    linear output reached 29% where softmax reached 68%; softmax over one unit is always
    1.0), so it is refused."""
    if units == 1 and activation not in BINARY_OUTPUTS:
        raise TrainingError(
            f"{where}: the output layer has 1 unit with activation {activation!r}, but one output is trained with "
            "binary cross-entropy, which reads it as the probability of the second class: use sigmoid (two "
            "classes), or one unit per class with softmax"
        )
    if units != 1 and activation != "softmax":
        raise TrainingError(
            f"{where}: the output layer's activation is {activation!r}, but {units or 'several'} outputs are trained "
            "with categorical cross-entropy, which reads them as class probabilities: use softmax over one unit "
            "per class (or, for two classes, 1 unit with sigmoid)"
        )


def epoch_count(value: Any, where: str) -> int:
    """``Training.Epochs``, and ``train --epochs`` that overrides it: at least one epoch
    (with none, training would save the untrained initial weights over the model)."""
    return _whole(value, where, minimum=1)


def _int(block: dict, key: str, default: int, where: str, minimum: int | None = None) -> int:
    return _whole(block.get(key, default), f"{where}.{key}", minimum)


def _whole(value: Any, where: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TrainingError(f"{where}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise TrainingError(f"{where}: must be at least {minimum}, got {value}")
    return value


def _float(block: dict, key: str, default: float, where: str) -> float:
    return _number(block.get(key, default), f"{where}.{key}")


def _number(value: Any, where: str) -> float:
    """A number, or a string of one (YAML 1.1 reads ``1e-3`` as a string); not a bool,
    which ``float()`` would take as 0 or 1."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return float(value)
    except (TypeError, ValueError):
        raise TrainingError(f"{where}: expected a number, got {value!r}") from None


def _text(value: Any, where: str, what: str) -> str:
    """A name or path: a non-empty string (``str()`` of a list or a number named a file nobody meant)."""
    if not isinstance(value, str) or not value.strip():
        raise TrainingError(f"{where}: expected {what}, got {value!r}")
    return value
