"""What every emulator offers (networks and BDTs alike), so the CLI, the board
stand-in and the node's CPU fallback can treat firmware uniformly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from sim.fixed import FixedType


@dataclass(frozen=True)
class Prediction:
    """Firmware outputs: raw fixed-point integers and their values."""

    raw: np.ndarray  # int64, shape (n_samples, *output_shape)
    values: np.ndarray  # float64, same shape


class Emulator(Protocol):
    id: str  # the manifest id: which firmware this is
    input_shape: tuple[int, ...]  # one sample
    output_shape: tuple[int, ...]  # one sample
    input_type: FixedType
    output_type: FixedType

    def predict(self, x: np.ndarray) -> Prediction:
        """Outputs for float inputs, cast into the input type as the firmware's input port does."""

    def predict_raw(self, x_raw: np.ndarray) -> Prediction:
        """Outputs for inputs already given as raw integers of ``input_type`` (from a stream)."""


def sample_rows(x: np.ndarray, input_shape: tuple[int, ...], where: str = "inputs") -> np.ndarray:
    """``x`` as samples of ``input_shape``: given as ``(N, *input_shape)``, or as flat rows
    ``(N, prod(input_shape))`` (what the wire format, the board's input files and the
    ``Data:`` columns carry), or, for a firmware of one input, as ``(N,)``.  Anything else
    is refused naming ``where`` (the file), its shape and the one expected: any array
    with the right number of values per sample used to be reshaped, so a (50, 2, 10)
    file for a (10, 2) input ran with its values in the wrong places, and an (8,) file
    of one sample was taken as that one sample while ``emulate`` counted 8."""
    x = np.asarray(x)
    shape = tuple(int(n) for n in input_shape)
    n = int(np.prod(shape))
    if x.shape[1:] == shape and x.ndim >= 1:
        return x
    if (x.ndim == 2 and x.shape[1] == n) or (x.ndim == 1 and n == 1):
        return x.reshape((len(x), *shape))
    expected = f"(N, {', '.join(map(str, shape))})" if len(shape) > 1 else f"(N, {n})"
    flat = f" or flat rows of shape (N, {n})" if len(shape) > 1 else ""
    one = f" (a single sample too: shape {(1, *shape)})" if x.shape == shape else ""
    raise ValueError(
        f"{where}: shape {x.shape}, but the firmware takes {shape} per sample: an array of shape {expected}{flat}{one}"
    )


def refuse_non_finite(
    x: np.ndarray, where: str, input_type: object, features: list[str] | None = None, first_row: int = 0
) -> None:
    """NaN or ±inf left in inputs about to be cast into the firmware's input type (after the
    manifest's preprocessing, whose ``fill_non_finite`` replaces both where training did):
    refused naming ``where`` (the file), the rows and the first bad feature.  One rule for
    ``emulate``, ``verify``, ``profile`` and the board's files: NaN was refused and inf was
    not, though training's ``NonFinite: error`` treats them alike and the port's cast of
    inf is no number the detector sent (``ap_fixed<16,6>`` wraps it to 0: the outputs of
    the training mean).  ``first_row``: the file row of ``x[0]`` when ``x`` is a chunk."""
    x = np.asarray(x)
    if x.dtype.kind != "f" or not len(x):
        return
    flat = x.reshape(len(x), -1)
    bad = ~np.isfinite(flat)
    bad_rows = np.flatnonzero(bad.any(axis=1))
    if not len(bad_rows):
        return
    row = int(bad_rows[0])
    col = int(np.flatnonzero(bad[row])[0])
    nan = bool(np.isnan(flat[bad_rows]).any())
    inf = bool(np.isinf(flat[bad_rows]).any())
    what = "NaN/inf" if nan and inf else "NaN" if nan else "inf"
    name = f" {features[col]!r}" if features is not None and x.ndim == 2 and col < len(features) else ""
    part = "feature" if x.ndim == 2 else "element"
    raise ValueError(
        f"{where}: {what} in {len(bad_rows)} of {len(x)} rows (row {first_row + row} first, {part} {col}{name}), "
        f"which the firmware's input type {input_type} cannot represent; remove or replace them (a network "
        "trained with Data.NonFinite: zero, or a number, has its manifest's preprocessing replace them)"
    )


def input_bounds(emulator: Any) -> tuple[np.ndarray, np.ndarray]:
    """The raw range of each input its firmware takes: (low, high), a row per source for a
    firmware per source (``sim.per_source``), else one row for all; inputs a firmware
    does not have (padding), and an emulator that names no input type, are not bounded."""
    firmwares = getattr(emulator, "emulators", None) or [emulator]
    widths = [int(np.prod(f.input_shape)) for f in firmwares]
    info = np.iinfo(np.int64)
    low = np.full((len(firmwares), max(widths)), info.min, np.int64)
    high = np.full((len(firmwares), max(widths)), info.max, np.int64)
    for k, (f, n) in enumerate(zip(firmwares, widths, strict=True)):
        t = getattr(f, "input_type", None)
        if t is not None:
            low[k, :n] = max(int(t.min_raw), info.min)
            high[k, :n] = min(int(t.max_raw), info.max)
    return low, high


def holdable(x: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Which rows of raw inputs ``x`` lie within the bounds (``input_bounds`` rows: one for
    all, or one per row of ``x``); inputs beyond the bounds' width are not bounded."""
    w = min(x.shape[1], low.shape[-1])
    return ~((x[:, :w] < low[..., :w]) | (x[:, :w] > high[..., :w])).any(axis=1)
