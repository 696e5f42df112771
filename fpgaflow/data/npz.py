"""NPZ/NPY reader.  An ``.npz`` member is decompressed whole when first used (the zip
format allows no slicing), so NPZ suits data that fits in memory; ``.npy`` is memory-
mapped and streams.  Use HDF5 or ROOT for files larger than memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fpgaflow.arrays import load_npy, npz_member, open_npz
from fpgaflow.data.config import DataError
from fpgaflow.data.sources import check_names, data_errors


class NpzSource:
    def __init__(self, path: Path):
        self.path = path
        self._cache: dict[str, np.ndarray] = {}
        with data_errors():
            if path.suffix.lower() == ".npy":
                self._npz = None
                self._names = [path.stem]
                self._cache[path.stem] = load_npy(path, mmap=True)
            else:
                self._npz = open_npz(path)
                self._names = list(self._npz.files)

    def names(self) -> list[str]:
        return list(self._names)

    def _array(self, name: str) -> np.ndarray:
        if name not in self._cache:
            with data_errors():
                self._cache[name] = npz_member(self._npz, self.path, name)
        a = self._cache[name]
        if a.ndim == 0:
            raise DataError(f"{self.path}: array {name!r} holds a single value (a 0-d array), not one per entry")
        return a

    def num_entries(self, names: list[str]) -> int:
        check_names(self.path, names, self._names, "array")
        lengths = {n: len(self._array(n)) for n in names}
        if len(set(lengths.values())) > 1:
            raise DataError(f"{self.path}: arrays have different numbers of entries: {lengths}")
        return next(iter(lengths.values()))

    def read(self, names: list[str], start: int, stop: int) -> dict[str, Any]:
        return {n: np.asarray(self._array(n)[start:stop]) for n in names}

    def close(self) -> None:
        self._cache.clear()
        if self._npz is not None:
            self._npz.close()
