"""Quantization-aware training of a project: data -> split -> scaling -> QKeras fit
(optionally pruned) -> model, scaling and history in the project folder.

Runs are reproducible: one seed drives the shuffle, the split, weight initialisation
and TensorFlow's op determinism."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpgaflow.data import DataConfig, Scaling, fit_scaling, read_dataset
from fpgaflow.data.dataset import Dataset, generate_missing
from fpgaflow.train.config import TrainingConfig, TrainingError, epoch_count
from fpgaflow.train.model import build_model
from fpgaflow.train.outputs import TrainingOutputs, training_outputs


@dataclass
class TrainingResult:
    outputs: TrainingOutputs
    history: dict[str, list[float]]
    val_accuracy: float | None
    epochs_run: int
    seconds: float
    sparsity: float | None  # measured fraction of zero weights after pruning


def split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled training and validation indices (data files are often sorted by class,
    so Keras's take-the-last-rows validation split would be wrong)."""
    return split_count(n, int(round(n * fraction)), seed)


def split_count(n: int, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``split`` by the number of validation entries (what a training history records)."""
    order = np.random.default_rng(seed).permutation(n)
    return order[n_val:], order[:n_val]


def class_weights(how: Any, labels: np.ndarray, classes: list[str], where: str) -> dict[int, float] | None:
    """``balanced`` (n / (k * count)), or explicit weights by class name or index."""
    if how is None:
        return None
    k = len(classes)
    if how == "balanced":
        counts = np.bincount(labels, minlength=k).astype(float)
        return {i: float(len(labels) / (k * c)) if c else 0.0 for i, c in enumerate(counts)}
    out = {i: 1.0 for i in range(k)}
    for key, value in how.items():
        if key in classes:
            out[classes.index(key)] = float(value)
        elif isinstance(key, int) and 0 <= key < k:
            out[key] = float(value)
        else:
            raise TrainingError(f"{where}.ClassWeights: {key!r} is not a class; classes are {', '.join(classes)}")
    return out


def seed_everything(seed: int) -> None:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _prunable(model: Any, spec: Any, steps: int) -> Any:
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot

    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=spec.sparsity,
        begin_step=int(spec.begin * steps),
        end_step=max(int(spec.end * steps), int(spec.begin * steps) + 1),
        frequency=spec.frequency,
    )

    def wrap(layer: Any) -> Any:
        """Layers with a kernel (Dense, Conv and their QKeras versions) are pruned."""
        if getattr(layer, "kernel", None) is None:
            return layer
        try:
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        except ValueError:  # a layer tfmot cannot prune stays dense
            return layer

    return tf.keras.models.clone_model(model, clone_function=wrap)


def _sparsity(model: Any) -> float:
    kernels = [w for layer in model.layers for w in layer.get_weights()[:1] if w.ndim >= 2]
    total = sum(k.size for k in kernels)
    return float(sum((k == 0).sum() for k in kernels) / total) if total else 0.0


def require_two_classes(data: Dataset, cfg: DataConfig) -> None:
    """With one class in the labels, Keras trains a model that always answers it and
    reports an accuracy that means nothing: refuse, naming where the labels came from."""
    present = np.unique(data.labels)
    if len(present) < 2:
        k = int(present[0]) if len(present) else 0
        name = data.classes[k] if k < len(data.classes) else f"class{k}"
        raise TrainingError(
            f"{cfg.where}.Labels: {', '.join(map(repr, cfg.labels))} in {', '.join(str(f) for f in data.files)} "
            f"hold{'s' if len(cfg.labels) == 1 else ''} one class only ({name}, index {k}, in all {len(data.labels)} "
            "entries); a classifier needs at least two classes to learn from"
        )


def train_project(project: Any, epochs: int | None = None, verbose: int | None = None) -> TrainingResult:
    t0 = time.monotonic()
    data_cfg = DataConfig.from_project(project)
    cfg = TrainingConfig.from_project(project)
    if epochs is not None:
        cfg.epochs = epoch_count(epochs, "--epochs")
    outputs = training_outputs(project, cfg.history)
    generate_missing(data_cfg)
    data = read_dataset(data_cfg)
    require_two_classes(data, data_cfg)
    import tensorflow as tf  # after the data is known to be usable: the import takes seconds

    if data.non_finite.total:
        print(f"data: non-finite values handled by policy {data_cfg.non_finite!r}: {data.non_finite.describe()}")
    n_classes = max(len(data.classes), 2)
    train_idx, val_idx = split(len(data.features), cfg.validation_split, cfg.seed)
    policy = data_cfg.non_finite  # the same replacement must happen in the firmware's preprocessing
    fill = 0.0 if policy == "zero" else (None if isinstance(policy, str) else float(policy))
    scaling = fit_scaling(data_cfg.scaling, data.features[train_idx], data.feature_names, fill, data_cfg.where)
    x = scaling.apply(data.features).astype(np.float32)
    y = data.labels
    print(
        f"train: {len(train_idx)} training / {len(val_idx)} validation entries, {x.shape[1]} features, "
        f"classes {', '.join(data.classes)}; scaling {scaling.kind}"
    )

    seed_everything(cfg.seed)
    model = build_model(cfg, x.shape[1], n_classes)
    steps = cfg.epochs * int(np.ceil(len(train_idx) / cfg.batch_size))
    callbacks: list[Any] = []
    if cfg.pruning is not None:
        import tensorflow_model_optimization as tfmot

        model = _prunable(model, cfg.pruning, steps)
        callbacks.append(tfmot.sparsity.keras.UpdatePruningStep())
    validation = (x[val_idx], y[val_idx]) if len(val_idx) else None
    if cfg.early_stopping is not None:
        if validation is None and cfg.early_stopping["monitor"].startswith("val_"):
            raise TrainingError(
                f"{cfg.where}.EarlyStopping: monitors {cfg.early_stopping['monitor']} but ValidationSplit is 0"
            )
        # with pruning, stop (and restore best weights) only once the target sparsity is reached
        start = int(np.ceil(cfg.pruning.end * cfg.epochs)) if cfg.pruning is not None else 0
        callbacks.append(
            tf.keras.callbacks.EarlyStopping(restore_best_weights=True, start_from_epoch=start, **cfg.early_stopping)
        )
    binary = model.output_shape[-1] == 1
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate=cfg.learning_rate),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    verbose = cfg.verbose if verbose is None else verbose
    fit = model.fit(
        x[train_idx],
        y[train_idx],
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        validation_data=validation,
        class_weight=class_weights(cfg.class_weights, y[train_idx], data.classes, cfg.where),
        callbacks=callbacks,
        shuffle=True,
        verbose=(1 if sys.stdout.isatty() else 2) if verbose is None else verbose,
    )
    sparsity = None
    if cfg.pruning is not None:
        import tensorflow_model_optimization as tfmot

        model = tfmot.sparsity.keras.strip_pruning(model)
        sparsity = _sparsity(model)
    val_accuracy = None
    if validation is not None:
        prob = model.predict(validation[0], batch_size=4096, verbose=0)
        pred = (prob[:, 0] > 0.5).astype(int) if binary else prob.argmax(axis=1)
        val_accuracy = float((pred == validation[1]).mean())
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    outputs.save_model(model)
    scaling.save(outputs.scaling)
    seconds = time.monotonic() - t0
    _write_history(outputs, cfg, data, scaling, history, val_accuracy, sparsity, seconds, len(train_idx), len(val_idx))
    return TrainingResult(outputs, history, val_accuracy, len(history.get("loss", [])), seconds, sparsity)


def _write_history(
    outputs: TrainingOutputs,
    cfg: TrainingConfig,
    data: Any,
    scaling: Scaling,
    history: dict[str, list[float]],
    val_accuracy: float | None,
    sparsity: float | None,
    seconds: float,
    n_train: int,
    n_val: int,
) -> None:
    record = {
        "seed": cfg.seed,
        "epochs_run": len(history.get("loss", [])),
        "epochs_max": cfg.epochs,
        "batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate,
        "validation_split": cfg.validation_split,
        "training_entries": n_train,  # with seed: the split, as `fpgaflow profile` draws it again
        "validation_entries": n_val,
        "features": data.feature_names,
        "classes": data.classes,
        "scaling": scaling.kind,
        "validation_accuracy": val_accuracy,
        "weight_sparsity": sparsity,
        "seconds": round(seconds, 1),
        "data_files": [str(f) for f in data.files],
        "history": history,
    }
    outputs.history.parent.mkdir(parents=True, exist_ok=True)
    outputs.history.write_text(json.dumps(record, indent=1) + "\n")
