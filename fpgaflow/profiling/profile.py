"""Profile a synthesized network project on data: the numbers, the plots, the report."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fpgaflow.network.model import quiet_qkeras_serialize
from fpgaflow.profiling.ranges import Range, observe, suggest_type
from fpgaflow.profiling.roc import per_class
from fpgaflow.project import Project, ProjectError


@dataclass
class ProfileInputs:
    features: np.ndarray  # raw features, as `emulate` takes them
    labels: np.ndarray | None
    classes: list[str]
    source: str
    labels_source: str = ""  # for messages: the labels file (and array), or the Data: columns
    feature_names: list[str] | None = None  # read with the Data: columns: the names of the feature columns


def refuse_foreign_labels(inputs: ProfileInputs, n_outputs: int) -> None:
    """Labels the model cannot answer (class 7 of a two-class model) count as wrong for
    every sample and make the accuracy quietly meaningless: refuse them."""
    n_classes = 2 if n_outputs == 1 else n_outputs
    if inputs.labels is None:
        return
    bad = np.flatnonzero(inputs.labels >= n_classes)
    if len(bad):
        raise ProjectError(
            f"{inputs.labels_source}: label {int(inputs.labels[bad[0]])} (row {int(bad[0])} first, {len(bad)} rows) "
            f"is not a class of the model, whose {n_outputs} output{'s' if n_outputs > 1 else ''} tell "
            f"{n_classes} classes (0 to {n_classes - 1})"
        )


def _say(msg: str) -> None:
    print(f"profile: {msg}", file=sys.stderr, flush=True)


def _labels(values: np.ndarray, where: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] > 1:
        return values.argmax(axis=1).astype(np.int64)
    values = values.reshape(len(values))
    if np.any(values != np.round(values)) or np.any(values < 0):
        raise ProjectError(f"{where}: labels must be class indices 0, 1, ... or one-hot rows")
    return values.astype(np.int64)


def read_inputs(
    project: Project, path: str | None, dataset: str | None, labels: str | None, samples: int
) -> ProfileInputs:
    """Raw features (and labels) from ``path``: read with the project's ``Data:`` columns
    unless ``dataset`` names an array; without ``path``, the validation entries of the
    project's own training data (the split its training history records)."""
    from fpgaflow.arrays import read_array

    has_data = "Data" in project.config
    classes = _class_names(project)
    labels_source = ""
    feature_names = None
    if path is None or (dataset is None and has_data):
        from fpgaflow.data import DataConfig, read_dataset
        from fpgaflow.data.dataset import generate_missing

        if not has_data:
            raise ProjectError(f"{project.file}: no Data: block, so give the inputs with --input")
        cfg = DataConfig.from_project(project)
        if path is None:  # the project's own data, made on demand as train makes them (the jet tagger's)
            generate_missing(cfg)
        ds = read_dataset(cfg, files=[Path(path)] if path else None, need_labels=bool(cfg.labels))
        x, y = ds.features.astype(np.float64), ds.labels
        feature_names = ds.feature_names
        source = path or ", ".join(str(f) for f in ds.files)
        if path is None and "Training" in project.config:
            val, what = validation_entries(project, len(x))
            x, y = x[val], (y[val] if y is not None else None)
            source += f" ({what})"
        classes = ds.classes or classes
        labels_source = f"{cfg.where}.Labels: {', '.join(map(repr, cfg.labels))} in {source}"
    else:
        x = np.asarray(read_array(path, dataset), dtype=np.float64)
        y = None
        if labels is not None:
            lab_path, lab_name = (labels, None) if Path(labels).is_file() else (path, labels)
            labels_source = f"{lab_path}" + (f": array {lab_name!r}" if lab_name else "")
            y = _labels(read_array(lab_path, lab_name), labels_source)
            if len(y) != len(x):
                raise ProjectError(f"{labels}: {len(y)} labels for {len(x)} input rows")
        source = f"{path}" + (f":{dataset}" if dataset else "")
    if samples and len(x) > samples:
        x, y = x[:samples], (y[:samples] if y is not None else None)
    if not len(x):
        raise ProjectError(f"{source}: no samples")
    return ProfileInputs(x, y, classes, source, labels_source, feature_names)


def validation_entries(project: Project, n: int) -> tuple[np.ndarray, str]:
    """The entries training held out, from the split its history records (seed,
    training and validation entry counts), not from the project's current Seed and
    ValidationSplit, which may have been edited since; and what they are, for the
    report.  Without a history the current keys are used, with a warning; data with
    another number of entries than training read is refused (the split would not be
    the same); a training that held nothing out gives all its entries, said so."""
    from fpgaflow.train.config import TrainingConfig
    from fpgaflow.train.fit import split, split_count

    t = TrainingConfig.from_project(project)
    history_path = project.resolve(t.history)
    try:
        history = json.loads(history_path.read_text())
        seed, n_train, n_val = (int(history[k]) for k in ("seed", "training_entries", "validation_entries"))
    except FileNotFoundError:
        history = None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ProjectError(
            f"{history_path}: cannot read the split training recorded ({type(exc).__name__}: {exc}); "
            "give the inputs with --input"
        ) from None
    if history is None:
        _say(
            f"warning: no training history at {history_path}; the validation entries are recomputed from the "
            f"project's current Seed ({t.seed}) and ValidationSplit ({t.validation_split}), which may not be "
            "what training used"
        )
        _, val = split(n, t.validation_split, t.seed)
    else:
        if n_train + n_val != n:
            raise ProjectError(
                f"{project.file}: the data now hold {n} entries, but training split {n_train + n_val} "
                f"({n_train} training, {n_val} validation; {history_path}): its validation entries cannot be "
                "found again; re-run `fpgaflow train`, or give the inputs with --input"
            )
        if t.seed != seed or int(round(n * t.validation_split)) != n_val:
            _say(
                f"warning: the project's Training.Seed {t.seed} and ValidationSplit {t.validation_split} are not "
                f"what training used (seed {seed}, {n_val} of {n} entries held out; {history_path}); "
                "profiling the entries training held out"
            )
        _, val = split_count(n, n_val, seed)
    if len(val):
        return val, "validation entries"
    _say(
        "warning: training held no entries out (ValidationSplit 0), so the profile runs on the training entries "
        "and its accuracy is not a validation accuracy; give held-out data with --input"
    )
    return np.arange(n), "training entries: ValidationSplit was 0, none were held out"


def _class_names(project: Project) -> list[str]:
    data = project.config.get("Data")
    if isinstance(data, dict) and isinstance(data.get("Classes"), list):
        return [str(c) for c in data["Classes"]]
    return []


def keras_outputs(model: Any, names: list[str], x: np.ndarray) -> dict[str, np.ndarray]:
    """Float outputs of the Keras layers that the firmware layers are named after."""
    import tensorflow as tf

    by_name = {layer.name: layer for layer in model.layers}
    wanted = [n for n in names if n in by_name]
    if not wanted:
        return {}
    probe = tf.keras.Model(model.inputs, [by_name[n].output for n in wanted])
    outs = probe.predict(x.astype(np.float32), batch_size=4096, verbose=0)
    outs = outs if isinstance(outs, list) else [outs]
    return dict(zip(wanted, (np.asarray(o, dtype=np.float64) for o in outs), strict=True))


def weight_ranges(model: Any, net: Any) -> list[Range]:
    """Float weights and biases of the Keras model against the firmware's weight/bias types."""
    by_name = {layer.name: layer for layer in model.layers}
    out = []
    for layer in net.layers:
        keras_layer = by_name.get(layer.name)
        if keras_layer is None:
            continue
        weights = keras_layer.get_weights()
        for what, i in (("weight", 0), ("bias", 1)):
            key = f"{what}_type"
            if key in layer.spec and i < len(weights):
                out.append(observe(layer.name, what, layer.spec[key], weights[i]))
    return out


@quiet_qkeras_serialize()  # Keras frets over QKeras quantizers at each serialization
def profile_project(
    project: Project,
    input_path: str | None = None,
    dataset: str | None = None,
    labels: str | None = None,
    output: str | None = None,
    samples: int = 20_000,
) -> dict[str, Any]:
    import sim
    from fpgaflow.data.scaling import refuse_feature_mismatch
    from fpgaflow.network.model import load_keras_model
    from fpgaflow.profiling.plots import ranges_plot, roc_plot
    from fpgaflow.profiling.report import write_report
    from fpgaflow.stale import refuse_stale_firmware
    from sim.emulator import refuse_non_finite, sample_rows
    from sim.network.overflow import count_overflows

    emulator = project.synthesized_emulator()
    net = sim.load(emulator)
    if net.manifest.kind != "network":
        raise ProjectError(f"{project.file}: profiling is for networks; this firmware is a {net.manifest.kind}")
    # profile compares the firmware with the float model (one changed since synth reads as a firmware
    # fault) and scales the project's data with the manifest's preprocessing
    refuse_stale_firmware(project, net.manifest, _say)
    inputs = read_inputs(project, input_path, dataset, labels, samples)
    block = net.manifest.meta.get("preprocessing")
    if inputs.feature_names is not None and isinstance(block, dict) and "features" in block:
        refuse_feature_mismatch(project, block["features"], f"the manifest {emulator}", inputs.feature_names)
    refuse_foreign_labels(inputs, int(np.prod(net.output_shape)))
    sample_rows(inputs.features, net.input_shape, inputs.source)  # (N, *shape) or flat rows, nothing reshaped
    x = net._input_raw(net.preprocess(inputs.features))  # what the firmware's input port receives
    names = block.get("features") if isinstance(block, dict) else None
    refuse_non_finite(x, inputs.source, net.input_type, names)  # NaN/inf the preprocessing left
    _say(f"{len(x)} samples: counting overflows layer by layer in the emulator")
    counts = count_overflows(net, x)
    firmware = net.predict_raw(net.input_type.to_raw(x)).values.reshape(len(x), -1)
    _say("running the float model")
    model = load_keras_model(project)
    float_out = model.predict(x.astype(np.float32), batch_size=4096, verbose=0).reshape(len(x), -1)
    activations = keras_outputs(model, [layer.name for layer in net.layers], x)

    layers, output_ranges = [], []
    for c in counts:
        t = sim.fixed.FixedType.parse(c.result_type)
        fl = activations.get(c.name)
        if c.kind == "input":
            fl = x
        low = min(c.low, float(fl.min())) if fl is not None else c.low
        high = max(c.high, float(fl.max())) if fl is not None else c.high
        suggestion = str(suggest_type(t, low, high)) if not c.note else "-"
        if suggestion == str(t):
            suggestion = "keep"
        layers.append(
            {
                "name": c.name,
                "kind": c.kind,
                "type": c.result_type,
                "type_low": t.min_value,
                "type_high": t.max_value,
                "values": c.values,
                "overflow": c.overflow,
                "underflow": c.underflow,
                "low": c.low,
                "high": c.high,
                "float_low": float(fl.min()) if fl is not None else None,
                "float_high": float(fl.max()) if fl is not None else None,
                "suggestion": suggestion,
                "note": c.note,
            }
        )
        if fl is not None:
            output_ranges.append(observe(c.name, "output", c.result_type, fl))
    weights = weight_ranges(model, net)
    out_dir = Path(output) if output else project.build_dir / "profile"
    out_dir.mkdir(parents=True, exist_ok=True)
    overflowing = {row["name"] for row in layers if row["overflow"]}
    plots = {"ranges": str(ranges_plot(weights, output_ranges, overflowing, out_dir / "ranges.png"))}
    result: dict[str, Any] = {
        "project": project.name,
        "manifest_id": net.id,
        "input": inputs.source,
        "samples": int(len(x)),
        "preprocessing": net.manifest.meta.get("preprocessing") is not None,
        "layers": layers,
        "weights": [
            {
                "layer": w.layer,
                "what": w.what,
                "type": w.type,
                "type_low": w.type_low,
                "type_high": w.type_high,
                "low": w.low,
                "high": w.high,
                "fits": w.fits,
            }
            for w in weights
        ],  # fmt: skip
        "accuracy": None,
        "auc": {},
        "plots": plots,
    }
    if inputs.labels is not None:
        y = inputs.labels
        pick = (lambda p: (p[:, 0] > 0.5).astype(int)) if firmware.shape[1] == 1 else (lambda p: p.argmax(axis=1))
        result["accuracy"] = {
            "float": float((pick(float_out) == y).mean()),
            "firmware": float((pick(firmware) == y).mean()),
            "argmax_agreement": float((pick(float_out) == pick(firmware)).mean()),
        }
        roc_float = per_class(float_out, y, inputs.classes)
        roc_fw = per_class(firmware, y, inputs.classes)
        result["auc"] = {k: {"float": roc_float[k]["auc"], "firmware": v["auc"]} for k, v in roc_fw.items()}
        plots["roc"] = str(roc_plot(roc_float, roc_fw, out_dir / "roc.png"))
    report = write_report(result, out_dir)
    result["report"] = str(report)
    (out_dir / "report.json").write_text(json.dumps(result, indent=1) + "\n")
    return result
