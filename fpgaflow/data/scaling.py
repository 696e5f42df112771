"""Per-feature scaling, ``x' = (x - offset) / scale``, fitted once on the training
data and saved beside the model.  The same parameters go into the firmware manifest
(``preprocessing`` block) so the emulator, the board and the node scale exactly as
training did."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fpgaflow.data.config import DataError

SCALING_FORMAT = "fpgaflow-scaling"


@dataclass
class Scaling:
    kind: str  # standard, minmax, fixed or none
    features: list[str]
    offset: np.ndarray  # float64, one per feature
    scale: np.ndarray  # float64, one per feature, never 0
    fill_non_finite: float | None = None  # the NonFinite replacement value, applied before scaling

    def apply(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1] != len(self.offset):
            raise DataError(f"scaling expects {len(self.offset)} features, got {x.shape[-1]}")
        if self.fill_non_finite is not None:
            x = np.where(np.isfinite(x), x, self.fill_non_finite)
        return (x - self.offset) / self.scale

    def to_json(self) -> dict[str, Any]:
        return {
            "format": SCALING_FORMAT,
            "kind": self.kind,
            "formula": "(x - offset) / scale",
            "features": self.features,
            "offset": self.offset.tolist(),
            "scale": self.scale.tolist(),
            "fill_non_finite": self.fill_non_finite,
        }

    def save(self, path: str | os.PathLike) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Scaling:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise DataError(f"{path}: scaling file not found (written by `fpgaflow train`)") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != SCALING_FORMAT:
            raise DataError(f"{path}: not an fpgaflow scaling file (field 'format' is not {SCALING_FORMAT!r})")
        try:
            offset = np.asarray(data["offset"], dtype=np.float64)
            scale = np.asarray(data["scale"], dtype=np.float64)
            features = [str(f) for f in data["features"]]
        except KeyError as exc:
            raise DataError(f"{path}: missing field {exc}") from None
        if not (len(offset) == len(scale) == len(features)) or np.any(scale == 0) or not np.isfinite(scale).all():
            raise DataError(f"{path}: offset, scale and features must have equal lengths, scale finite and non-zero")
        return cls(str(data.get("kind", "fixed")), features, offset, scale, data.get("fill_non_finite"))

    def manifest_block(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The manifest's top-level ``preprocessing`` entry and its arrays (see
        ``sim.preprocessing``)."""
        meta = {
            "kind": "affine",
            "formula": "(x - offset) / scale",
            "source": self.kind,
            "features": self.features,
            "offset": "preprocessing_offset",
            "scale": "preprocessing_scale",
        }
        if self.fill_non_finite is not None:
            meta["fill_non_finite"] = float(self.fill_non_finite)
        return meta, {"preprocessing_offset": self.offset.copy(), "preprocessing_scale": self.scale.copy()}


def fit_scaling(
    how: str | dict[str, Any],
    x: np.ndarray,
    features: list[str],
    fill_non_finite: float | None = None,
    where: str = "Data",
) -> Scaling:
    """Fit ``standard`` (mean 0, std 1), ``minmax`` (to [-1, 1]) or ``none``, or check
    fixed ``{Offset, Scale}`` lists against the features.  ``where``: the ``Data`` block
    for messages (``<project file>: Data``)."""
    n = len(features)
    if isinstance(how, dict):
        offset = _per_feature(how["Offset"], n, f"{where}.Scaling.Offset", features)
        scale = _per_feature(how["Scale"], n, f"{where}.Scaling.Scale", features)
        if np.any(scale == 0):
            zeros = [f for f, s in zip(features, scale, strict=True) if s == 0]
            raise DataError(f"{where}.Scaling.Scale: zero for {', '.join(zeros)}")
        if not (np.isfinite(scale).all() and np.isfinite(offset).all()):
            bad = [f for f, s, o in zip(features, scale, offset, strict=True) if not np.isfinite([s, o]).all()]
            raise DataError(f"{where}.Scaling: NaN or infinite Offset/Scale for {', '.join(bad)}")
        return Scaling("fixed", features, offset, scale, fill_non_finite)
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        raise DataError("cannot fit scaling on an empty dataset")
    if how == "none":
        return Scaling("none", features, np.zeros(n), np.ones(n), fill_non_finite)
    if how == "standard":
        offset, scale = x.mean(axis=0), x.std(axis=0)
    elif how == "minmax":
        lo, hi = x.min(axis=0), x.max(axis=0)
        offset, scale = (hi + lo) / 2, (hi - lo) / 2
    else:
        raise DataError(f"unknown scaling {how!r}")
    scale = np.where(scale > 0, scale, 1.0)  # a constant feature is left as it is, shifted to 0
    return Scaling(how, features, offset, scale, fill_non_finite)


def _per_feature(value: Any, n: int, where: str, features: list[str]) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: expected a number or one number per feature, got {value!r}") from None
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise DataError(f"{where}: {arr.size} values for {n} features ({', '.join(features)})")
    return arr


DEFAULT_SCALING_FILE = "scaling.json"


def scaling_file(project: Any) -> Path | None:
    """Where a project keeps its input scaling: the top-level ``Preprocessing`` key,
    else ``scaling.json`` beside the project file for a project with a ``Data``
    block (what ``fpgaflow train`` writes); None for a project without either."""
    if project.config.get("Preprocessing"):
        return project.resolve(project.config["Preprocessing"])
    if "Data" in project.config:
        return project.root / DEFAULT_SCALING_FILE
    return None


def project_preprocessing(project: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """The manifest ``preprocessing`` block and arrays for a project, for ``synth``'s
    manifest export; None when the project's inputs go to the firmware unscaled.
    A ``Preprocessing`` key naming a missing file is an error; a trained project's
    default ``scaling.json`` that does not exist yet means untrained, also an error."""
    path = scaling_file(project)
    if path is None:
        return None
    if not path.is_file() and not project.config.get("Preprocessing") and "Training" not in project.config:
        return _untrained_preprocessing(project, path)
    if not path.is_file():
        raise DataError(
            f"{project.file}: the input scaling {path} does not exist; run `{project.command('train')}` "
            "(or name an existing scaling file with the Preprocessing key)"
        )
    scaling = Scaling.load(path)
    refuse_feature_mismatch(project, scaling.features, str(path))
    return scaling.manifest_block()


def _untrained_preprocessing(project: Any, path: Path) -> None:
    """A project with its own model and a ``Data`` block (for ``profile``) but no
    ``Training`` block: nothing fits a scaling for it (``train`` needs a Training block),
    so the default ``scaling.json`` never appears.  ``Data.Scaling: none`` says the model
    takes the raw features: no preprocessing.  Any other scaling would have to come from
    the model's own training, which fpgaflow cannot know: refused, saying how to give it."""
    from fpgaflow.data.config import DataConfig

    how = DataConfig.from_project(project).scaling
    if how == "none":
        return None
    given = "{Offset, Scale}" if isinstance(how, dict) else repr(how)
    raise DataError(
        f"{project.file}: Data.Scaling is {given}, but the project has no Training block, so no scaling was "
        f"fitted ({path} does not exist) and `fpgaflow train` cannot fit one: if the model takes the raw features, "
        "set Data.Scaling: none; if it was trained on scaled features, name a scaling file with those numbers with "
        "the Preprocessing key (its format: docs/training.md), or add a Training block and run `fpgaflow train`"
    )


def refuse_feature_count(project: Any, features: list[str], input_shape: tuple[int | None, ...]) -> None:
    """The scaling must be for as many features as the network takes per sample (its
    input's last axis, which the preprocessing scales): synth exported a 16-feature
    scaling with an 8-input model, and every consumer of the manifest refused it later."""
    if input_shape and input_shape[-1] is not None and len(features) != input_shape[-1]:
        raise DataError(
            f"{project.file}: the input scaling {scaling_file(project)} is for {len(features)} features, but the "
            f"network takes {input_shape[-1]} per sample (input shape {tuple(input_shape)}); name the scaling "
            "fitted for this model with the Preprocessing key, or re-run `fpgaflow train`"
        )


def columns_match(specs: list[Any], recorded: list[str]) -> bool:
    """Whether the feature names a scaling recorded (``f0``, ``c_z[0]``..., ``c_z_mask[0]``...)
    are what ``Data.Features`` (``FeatureSpec`` list) gives, in the same order, without
    reading the data: a plain column is its own name, a multi-valued one ``name[0]``...
    (``Length`` of them when given), followed by ``name_mask[0]``... with ``Mask``."""
    i = 0
    for spec in specs:
        if i < len(recorded) and recorded[i] == spec.name:
            if spec.length is not None:  # Length is for multi-valued columns only
                return False
            i += 1
            continue
        width = 0
        while i + width < len(recorded) and recorded[i + width] == f"{spec.name}[{width}]":
            width += 1
        if width == 0 or (spec.length is not None and width != spec.length):
            return False
        i += width
        if spec.mask and spec.length is not None:
            if recorded[i : i + width] != [f"{spec.name}_mask[{k}]" for k in range(width)]:
                return False
            i += width
    return i == len(recorded)


def refuse_feature_mismatch(project: Any, recorded: list[str], source: str, current: list[str] | None = None) -> None:
    """Refuse when the project's ``Data.Features`` no longer give the features in the
    order (and with the names) the scaling in ``source`` was fitted for: the per-feature
    numbers would scale the wrong columns and the network would see them in the wrong
    places, with no error anywhere.  ``current``: the feature names as read from data
    (exact comparison); without it, the ``Data.Features`` declaration is compared.
    A project without a ``Data`` block has nothing to compare."""
    from fpgaflow.data.config import DataConfig

    if "Data" not in project.config:
        return
    cfg = DataConfig.from_project(project)
    same = current == list(recorded) if current is not None else columns_match(cfg.features, list(recorded))
    if same:
        return
    declared = current if current is not None else [s.name for s in cfg.features]
    raise DataError(
        f"{project.file}: Data.Features give the features as [{', '.join(declared)}], but {source} holds the "
        f"scaling training fitted for [{', '.join(recorded)}] (in that order); restore Data.Features to that order, "
        f"or re-run `{project.command('train')}` and `{project.command('synth')}`"
    )


def refuse_stale_preprocessing(project: Any, manifest: Any) -> None:
    """The manifest's ``preprocessing`` against the project's current scaling file (what
    ``synth`` would write now): a scaling re-fitted, edited or swapped since ``synth``
    leaves the firmware scaling raw features with the old numbers while the project says
    otherwise, and ``verify`` would still call it bit-exact.  Refuse with "re-run synth"."""
    current = project_preprocessing(project)
    recorded = manifest.meta.get("preprocessing")
    path = scaling_file(project)
    if current is None and recorded is None:
        return
    if current is None or recorded is None:
        now = f"the project scales its inputs with {path}" if current is not None else "the project has no scaling"
        then = "none" if recorded is None else "one"
        raise DataError(
            f"{manifest.path}: the manifest has {then} input scaling but {now}; re-run `{project.command('synth')}`"
        )
    meta, arrays = current
    differ = [k for k in ("features", "source", "fill_non_finite") if meta.get(k) != recorded.get(k)]
    for key, name in (("offset", "preprocessing_offset"), ("scale", "preprocessing_scale")):
        try:
            old = manifest.array(recorded[key])
        except (KeyError, ValueError):
            old = None
        if old is None or not np.array_equal(np.asarray(old, dtype=np.float64), arrays[name]):
            differ.append(key)
    if differ:
        raise DataError(
            f"{path}: the input scaling changed since `fpgaflow synth` (the manifest's preprocessing differs in "
            f"{', '.join(differ)}); re-run `{project.command('synth')}`"
        )
