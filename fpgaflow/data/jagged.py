"""Columns to fixed-width feature blocks.  A network needs a fixed number of inputs,
but a ROOT branch may hold a different number of values per event (jets,
constituents): such a column is cut to ``Length`` values, padded with ``Pad`` where
shorter, and optionally accompanied by a mask telling real values from padding —
the MLaaS4HEP recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fpgaflow.data.config import DataError, FeatureSpec


def feature_block(column: Any, spec: FeatureSpec, path: Path) -> tuple[np.ndarray, list[str]]:
    """``(entries, width)`` float64 values and the names of its columns."""
    if _is_awkward(column):
        column = _awkward_to_numpy_or_pad(column, spec, path)
        if isinstance(column, tuple):
            return column
    arr = np.asarray(column)
    if arr.dtype.kind == "c":
        raise DataError(f"{path}: column {spec.name!r} is complex ({arr.dtype}); features must be real numbers")
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{path}: column {spec.name!r} has dtype {arr.dtype}, not numbers")
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim == 1:
        if spec.length is not None:
            raise DataError(
                f"{path}: column {spec.name!r} holds one value per entry; Length applies only to "
                "jagged or multi-valued columns"
            )
        return arr[:, None], [spec.name]
    arr = arr.reshape(len(arr), -1)
    width = arr.shape[1]
    if spec.length is None:
        return arr, [f"{spec.name}[{i}]" for i in range(width)]
    values = np.full((len(arr), spec.length), spec.pad, dtype=np.float64)
    keep = min(width, spec.length)
    values[:, :keep] = arr[:, :keep]
    mask = np.zeros_like(values)
    mask[:, :keep] = 1.0
    return _with_mask(values, mask, spec)


def _is_awkward(column: Any) -> bool:
    return type(column).__module__.startswith("awkward")


def _awkward_to_numpy_or_pad(column: Any, spec: FeatureSpec, path: Path) -> Any:
    import awkward as ak

    if column.ndim == 1:
        return ak.to_numpy(column)
    if column.ndim > 2:
        raise DataError(
            f"{path}: column {spec.name!r} is nested {column.ndim - 1} levels deep ({ak.type(column)}); "
            "only one level of variable length is supported"
        )
    try:  # regular (fixed-size arrays in the file): no padding needed
        return ak.to_numpy(column)
    except ValueError:
        pass
    if spec.length is None:
        longest = int(ak.max(ak.num(column, axis=1), axis=None) or 0)
        raise DataError(
            f"{path}: column {spec.name!r} is jagged (a variable number of values per entry, up to "
            f"{longest} here); give it a fixed Length, e.g. {{Name: {spec.name}, Length: 8, Pad: 0, Mask: true}}"
        )
    padded = ak.pad_none(column, spec.length, axis=1, clip=True)
    mask = ak.to_numpy(~ak.is_none(padded, axis=1)).astype(np.float64)
    values = ak.to_numpy(ak.fill_none(padded, spec.pad)).astype(np.float64)
    return _with_mask(values, mask, spec)


def _with_mask(values: np.ndarray, mask: np.ndarray, spec: FeatureSpec) -> tuple[np.ndarray, list[str]]:
    names = [f"{spec.name}[{i}]" for i in range(values.shape[1])]
    if not spec.mask:
        return values, names
    mask_names = [f"{spec.name}_mask[{i}]" for i in range(values.shape[1])]
    return np.concatenate([values, mask], axis=1), names + mask_names
