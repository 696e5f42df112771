"""HDF5 reader: datasets named by their path inside the file (``group/dataset``),
sliced by entry range so large files stream.  Variable-length datasets come back as
awkward arrays, like jagged ROOT branches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fpgaflow.data.config import DataError
from fpgaflow.data.sources import check_names


class Hdf5Source:
    def __init__(self, path: Path):
        import h5py

        self.path = path
        try:
            self._file = h5py.File(path, "r")
        except OSError as exc:
            raise DataError(f"{path}: cannot be opened as HDF5 ({exc})") from None
        self._names: list[str] = []
        self._file.visititems(lambda n, o: self._names.append(n) if isinstance(o, h5py.Dataset) else None)

    def names(self) -> list[str]:
        return list(self._names)

    def num_entries(self, names: list[str]) -> int:
        names = [n.lstrip("/") for n in names]
        check_names(self.path, names, self._names, "dataset")
        lengths = {n: (self._file[n].shape or (1,))[0] for n in names}
        if len(set(lengths.values())) > 1:
            raise DataError(f"{self.path}: datasets have different numbers of entries: {lengths}")
        return next(iter(lengths.values()))

    def read(self, names: list[str], start: int, stop: int) -> dict[str, Any]:
        import h5py

        out: dict[str, Any] = {}
        for n in names:
            ds = self._file[n.lstrip("/")]
            data = ds[start:stop]
            if h5py.check_vlen_dtype(ds.dtype) is not None:
                import awkward as ak

                data = ak.Array([np.asarray(row) for row in data])
            out[n] = data
        return out

    def close(self) -> None:
        self._file.close()
