"""Detector data for the board stand-in: what the readout hands the FPGA, per event.

Two kinds of readout, both deterministic in the event number (so a test can tell what
any event's inputs were, and several boards can replay the same run):

- a **generator**: a pool of ``pool`` detector samples drawn once from a seeded
  generator, in the raw feature domain (inverse of the manifest's input scaling when
  it has one, so the samples look like what training saw); event ``e`` reads sample
  ``hash(e, source) mod pool``;
- a **file** (.npy, or .npz with ``dataset``): event ``e`` reads row ``e mod rows``.

The raw features go through the manifest's preprocessing and the firmware's input
port cast, exactly as ``fpgaflow emulate`` does.  The firmware's answer for each pool
sample is computed once with the emulator (``cache=True``; the firmware is a pure
function of its input) or per event (``cache=False``, the honest cost per event).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sim.arrays import check_samples, load_npy, npz_member, open_npz
from sim.emulator import refuse_non_finite, sample_rows
from sim.manifest import Manifest
from sim.preprocessing import apply_preprocessing, has_preprocessing

HASH = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: spreads consecutive events over the pool


class Readout:
    """Inputs (raw integers of the firmware's input type) and firmware results per event."""

    def __init__(
        self,
        emulator: Any,
        *,
        source_id: int = 0,
        seed: int = 0,
        pool: int = 4096,
        input_file: str | Path | None = None,
        dataset: str | None = None,
        cache: bool = True,
    ):
        self.emulator = emulator
        self.source_id = source_id
        self.cache = cache
        self.n_inputs = int(np.prod(emulator.input_shape))
        manifest = emulator.manifest  # the one the emulator was made from: read once
        if input_file is not None:
            features = load_features(input_file, dataset, tuple(emulator.input_shape))
            self.by_hash = False
        else:
            if pool < 1:
                raise ValueError(f"readout pool must hold at least one sample, got {pool}")
            features = generate_features(manifest, pool, self.n_inputs, np.random.default_rng([seed, source_id]))
            self.by_hash = True
        scaled = apply_preprocessing(manifest, features) if has_preprocessing(manifest) else features
        if input_file is not None:  # NaN/inf the preprocessing left: refused as emulate refuses them
            block = manifest.meta.get("preprocessing")
            names = block.get("features") if isinstance(block, dict) else None
            refuse_non_finite(scaled, str(input_file), emulator.input_type, names)
        # the input port's cast, as emulate and the firmware do it: a value beyond the type's
        # range wraps or saturates as the type says (it was clipped, where an AP_WRAP port
        # wraps: the board sent other inputs than the firmware's)
        raw = emulator.input_type.to_raw(scaled)
        self.pool_inputs = np.asarray(raw, np.int64).reshape(len(features), self.n_inputs)
        self.pool_results: np.ndarray | None = None
        if cache:
            self.pool_results = self.compute(self.pool_inputs)

    @property
    def size(self) -> int:
        return len(self.pool_inputs)

    def sample_index(self, events: np.ndarray) -> np.ndarray:
        events = np.asarray(events, np.uint64)
        n = np.uint64(self.size)
        if not self.by_hash:
            return (events % n).astype(np.intp)
        h = (events + np.uint64(self.source_id) * np.uint64(0x632BE5AB)) * HASH
        return ((h >> np.uint64(17)) % n).astype(np.intp)

    def inputs(self, events: np.ndarray) -> np.ndarray:
        return self.pool_inputs[self.sample_index(events)]

    def compute(self, x_raw: np.ndarray) -> np.ndarray:
        """The firmware's raw outputs for raw inputs (the emulator), one row per sample."""
        shape = (len(x_raw),) + tuple(self.emulator.input_shape)
        pred = self.emulator.predict_raw(np.asarray(x_raw, np.int64).reshape(shape))
        return np.asarray(pred.raw, np.int64).reshape(len(x_raw), -1)

    def block(self, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and firmware results for a block of events."""
        idx = self.sample_index(events)
        x = self.pool_inputs[idx]
        if self.pool_results is not None:
            return x, self.pool_results[idx]
        return x, self.compute(x)


def generate_features(manifest: Manifest, n: int, n_inputs: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples that, after the manifest's scaling, are standard normal per input."""
    z = rng.standard_normal((n, n_inputs))
    block = manifest.meta.get("preprocessing")
    if block:
        offset = manifest.array(block["offset"]).astype(np.float64)
        scale = manifest.array(block["scale"]).astype(np.float64)
        if offset.shape == (n_inputs,) and scale.shape == (n_inputs,):
            return offset + scale * z
    return z


def load_features(path: str | Path, dataset: str | None, input_shape: tuple[int, ...]) -> np.ndarray:
    """Flat rows of features from a .npy or .npz file, checked against the firmware's
    inputs (``(N, *input_shape)`` or flat rows, as ``fpgaflow emulate`` takes them); a
    file that is not what its name says is an error naming it, not NumPy's traceback."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such input file")
    suffix = path.suffix.lower()  # X.NPY too, as `fpgaflow emulate` reads it
    if suffix == ".npy":
        if dataset is not None and dataset != path.stem:  # refused, not ignored, as emulate does
            raise ValueError(
                f"{path}: holds one array, {path.stem!r} (a .npy is named after its file), not {dataset!r}; "
                "--dataset names an array inside an .npz file"
            )
        x = check_samples(load_npy(path), str(path))
    elif suffix == ".npz":
        with open_npz(path) as npz:
            names = list(npz.files)
            if dataset is not None and dataset not in names:
                raise ValueError(f"{path}: no array named {dataset!r}; it holds {', '.join(names) or 'nothing'}")
            name = dataset or (names[0] if len(names) == 1 else None)
            if name not in names:
                raise ValueError(f"{path}: name the array with --dataset (one of {', '.join(names) or 'none'})")
            x = check_samples(npz_member(npz, path, name), f"{path}: array {name!r}")
    else:
        raise ValueError(f"{path}: board input must be .npy or .npz, got {path.suffix or 'no suffix'}")
    x = sample_rows(x, input_shape, str(path))
    if len(x) == 0:
        raise ValueError(f"{path}: no rows (shape {x.shape}), so no event to read")
    return np.asarray(x, np.float64).reshape(len(x), -1)
