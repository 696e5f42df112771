"""Assemble the feature matrix and labels from the configured files, chunk by chunk,
with a progress line, so that files larger than memory stream through (only the
selected, fixed-width columns are kept)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fpgaflow.data.cleaning import NonFiniteReport, handle_non_finite, raise_if_error
from fpgaflow.data.config import DataConfig, DataError
from fpgaflow.data.jagged import feature_block
from fpgaflow.data.sources import open_source
from fpgaflow.progress import Progress


@dataclass
class Dataset:
    features: np.ndarray  # float32 (entries, n_features), before scaling
    labels: np.ndarray | None  # int64 class indices (entries,)
    feature_names: list[str]
    classes: list[str]
    non_finite: NonFiniteReport
    files: list[Path]


def generate_missing(cfg: DataConfig) -> bool:
    """Run the configured ``Generator`` when a data file is missing; True if it ran.
    The generator is called as ``python GENERATOR --output FILE``."""
    missing = [f for f in cfg.files if not any(ch in str(f) for ch in "*?[") and not f.is_file()]
    if not missing or cfg.generator is None:
        return False
    for f in missing:
        print(f"data: {f.name} missing, generating it with {cfg.generator.name}", file=sys.stderr)
        done = subprocess.run([sys.executable, str(cfg.generator), "--output", str(f)])
        if done.returncode != 0 or not f.is_file():
            raise DataError(f"{cfg.where}.Generator: {cfg.generator} failed to write {f}")
    return True


def read_dataset(cfg: DataConfig, files: list[Path] | None = None, need_labels: bool = True) -> Dataset:
    """Read features and labels from ``files`` (default: the configured ones)."""
    files = files if files is not None else cfg.expand_files()
    columns = [s.name for s in cfg.features] + cfg.labels
    sources = [open_source(f, cfg.tree) for f in files]
    try:
        sizes = [src.num_entries(columns) for src in sources]
        total = sum(sizes) if cfg.max_entries is None else min(sum(sizes), cfg.max_entries)
        progress = Progress(total, "read data", unit="entries")
        report = NonFiniteReport()
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        names: list[str] | None = None
        label_names: list[str] | None = None
        remaining = total
        for src, size in zip(sources, sizes, strict=True):
            for start in range(0, size, cfg.chunk_size):
                if remaining <= 0:
                    break
                stop = min(size, start + cfg.chunk_size, start + remaining)
                chunk = src.read(columns, start, stop)
                x, chunk_names = _features(chunk, cfg, src.path)
                if names is None:
                    names = chunk_names
                elif chunk_names != names:
                    raise DataError(f"{src.path}: columns {chunk_names} differ from the first file's {names}")
                y, chunk_label_names = _labels(chunk, cfg, src.path) if cfg.labels else (None, None)
                label_names = label_names or chunk_label_names
                report.count(x, names)
                x, y = handle_non_finite(x, y, cfg.non_finite, report)
                xs.append(x.astype(np.float32))
                if y is not None:
                    ys.append(y)
                remaining -= stop - start
                progress.update(stop - start)
    finally:
        for src in sources:
            src.close()
    raise_if_error(cfg.non_finite, report, cfg.where)
    if names is None or not sum(len(x) for x in xs):
        raise DataError(f"{cfg.where}: no entries in {', '.join(str(f) for f in files)}")
    labels = np.concatenate(ys) if ys else None
    if need_labels and labels is None:
        raise DataError(f"{cfg.where}: key 'Labels' is missing (the column(s) holding the true class)")
    classes = _classes(cfg, labels, label_names)
    return Dataset(np.concatenate(xs), labels, names, classes, report, files)


def _features(chunk: dict[str, Any], cfg: DataConfig, path: Path) -> tuple[np.ndarray, list[str]]:
    blocks, names = [], []
    for spec in cfg.features:
        block, block_names = feature_block(chunk[spec.name], spec, path)
        blocks.append(block)
        names += block_names
    return np.concatenate(blocks, axis=1), names


def _labels(chunk: dict[str, Any], cfg: DataConfig, path: Path) -> tuple[np.ndarray, list[str] | None]:
    """Class indices from one integer column, a one-hot 2-D column, or one 0/1 column
    per class (as in the hls4ml jet dataset's j_g, j_q, ...)."""
    cols = [np.asarray(chunk[n]) for n in cfg.labels]
    for n, c in zip(cfg.labels, cols, strict=True):
        if c.dtype.kind not in "biuf":
            raise DataError(f"{path}: label column {n!r} has dtype {c.dtype}, not numbers")
        if c.dtype.kind == "f" and not np.isfinite(c).all():
            raise DataError(f"{path}: label column {n!r} holds {int((~np.isfinite(c)).sum())} NaN/inf values")
    if len(cols) == 1 and cols[0].ndim == 1:
        y = cols[0]
        if np.any(y != np.round(y)) or np.any(y < 0):
            raise DataError(f"{path}: label column {cfg.labels[0]!r} must hold class indices 0, 1, 2...")
        return y.astype(np.int64), None
    onehot = cols[0] if len(cols) == 1 else np.stack([c.reshape(len(c)) for c in cols], axis=1)
    if onehot.ndim != 2:
        raise DataError(f"{path}: label column(s) {cfg.labels} must be class indices or one-hot")
    sums = onehot.sum(axis=1)
    if np.any(sums != 1):
        raise DataError(
            f"{path}: {int((sums != 1).sum())} entries of label column(s) {', '.join(cfg.labels)} "
            "are not one-hot (exactly one class set)"
        )
    return onehot.argmax(axis=1).astype(np.int64), (list(cfg.labels) if len(cols) > 1 else None)


def _classes(cfg: DataConfig, labels: np.ndarray | None, label_names: list[str] | None) -> list[str]:
    if cfg.classes is not None:
        if labels is not None and labels.size and labels.max() >= len(cfg.classes):
            raise DataError(
                f"{cfg.where}.Classes: {len(cfg.classes)} classes named, but labels go up to {int(labels.max())}"
            )
        return list(cfg.classes)
    if label_names:
        return label_names
    n = int(labels.max()) + 1 if labels is not None and labels.size else 0
    return [f"class{i}" for i in range(n)]
