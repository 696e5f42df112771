"""HDF5 reader: datasets named by their path inside the file (``group/dataset``),
sliced by entry range so large files stream.  Variable-length datasets come back as
awkward arrays, like jagged ROOT branches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fpgaflow.arrays import hdf5_dataset, open_hdf5
from fpgaflow.data.config import DataError
from fpgaflow.data.sources import check_names, data_errors


class Hdf5Source:
    def __init__(self, path: Path):
        import h5py

        self.path = path
        with data_errors():
            self._file = open_hdf5(path)
        self._names: list[str] = []
        self._file.visititems(lambda n, o: self._names.append(n) if isinstance(o, h5py.Dataset) else None)

    def names(self) -> list[str]:
        return list(self._names)

    def num_entries(self, names: list[str]) -> int:
        names = [n.lstrip("/") for n in names]
        check_names(self.path, names, self._names, "dataset")
        scalar = [n for n in names if not self._file[n].shape]
        if scalar:
            raise DataError(f"{self.path}: dataset {scalar[0]!r} holds a single value, not one per entry")
        lengths = {n: self._file[n].shape[0] for n in names}
        if len(set(lengths.values())) > 1:
            raise DataError(f"{self.path}: datasets have different numbers of entries: {lengths}")
        return next(iter(lengths.values()))

    def read(self, names: list[str], start: int, stop: int) -> dict[str, Any]:
        import h5py

        out: dict[str, Any] = {}
        for n in names:
            ds = self._file[n.lstrip("/")]
            with data_errors():
                data = hdf5_dataset(self._file, self.path, n.lstrip("/"), slice(start, stop))
            if h5py.check_vlen_dtype(ds.dtype) is not None:
                import awkward as ak

                data = ak.Array([np.asarray(row) for row in data])
            out[n] = data
        return out

    def close(self) -> None:
        self._file.close()
