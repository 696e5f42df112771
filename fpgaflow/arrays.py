"""Reading and writing the input/output arrays of ``emulate`` and ``verify``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fpgaflow.project import ProjectError


def read_array(path: str | os.PathLike, dataset: str | None = None) -> np.ndarray:
    """One array from ``.npy``, ``.npz`` (``dataset`` or its only array) or HDF5."""
    p = Path(path)
    if not p.is_file():
        raise ProjectError(f"{p}: input file not found")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        return np.load(p, allow_pickle=False)
    if suffix == ".npz":
        with np.load(p, allow_pickle=False) as npz:
            return np.asarray(npz[_pick(p, list(npz.files), dataset)])
    if suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(p, "r") as f:
            names: list[str] = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            return np.asarray(f[_pick(p, names, dataset)][()])
    raise ProjectError(f"{p}: unknown input format {suffix!r}; use .npy, .npz or .h5")


def _pick(path: Path, names: list[str], dataset: str | None) -> str:
    if dataset is not None:
        if dataset not in names:
            raise ProjectError(f"{path}: no array named {dataset!r}; it holds {', '.join(names) or 'nothing'}")
        return dataset
    if len(names) != 1:
        raise ProjectError(f"{path}: holds {len(names)} arrays ({', '.join(names)}); name one with --dataset")
    return names[0]


def write_arrays(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``.npy`` gets the first array (values); ``.npz`` and ``.h5`` get all of them."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        np.save(p, next(iter(arrays.values())))
    elif suffix == ".npz":
        np.savez(p, **arrays)
    elif suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(p, "w") as f:
            for name, a in arrays.items():
                f.create_dataset(name, data=a)
    else:
        raise ProjectError(f"{p}: unknown output format {suffix!r}; use .npy, .npz or .h5")
