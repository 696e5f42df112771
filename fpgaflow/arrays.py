"""Reading and writing arrays: the inputs and outputs of ``emulate``, ``verify`` and
``profile``, and (through ``fpgaflow.data``) the ``.npy``/``.npz``/HDF5 training data.

Every read of such a file goes through here, so that a file that cannot be used gives
one line naming it and what is wrong with it: NumPy, zipfile and HDF5 name no file
("No data left in file", "cannot reshape array of size 24 into shape (4,16)",
"file signature not found"), and some of their errors are not even ``ValueError``.
The ``.npy``/``.npz`` readers live in ``sim.arrays``, below both this and the board
stand-in; HDF5 and the writers are the front end's (the NaN/inf check of the inputs is
``sim.emulator.refuse_non_finite``, shared with the board).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fpgaflow.project import ProjectError
from sim.arrays import ArrayFileError, check_samples, load_npy, npz_member, open_npz, refuse_empty


def read_array(path: str | os.PathLike, dataset: str | None = None) -> np.ndarray:
    """One array of samples (one row each) from ``.npy``, ``.npz`` (``dataset`` or its only
    array) or HDF5, refused unless it holds numbers in at least one dimension.  A ``.npy``
    is one array named after its file, as the ``Data:`` reader names it: another
    ``dataset`` is refused, not ignored."""
    p = Path(path)
    if not p.is_file():
        raise ProjectError(f"{p}: input file not found")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        if dataset is not None and dataset != p.stem:
            raise ProjectError(
                f"{p}: holds one array, {p.stem!r} (a .npy is named after its file), not {dataset!r}; "
                "--dataset names an array inside an .npz or HDF5 file"
            )
        return check_samples(load_npy(p), str(p))
    if suffix == ".npz":
        with open_npz(p) as npz:
            name = _pick(p, list(npz.files), dataset)
            return check_samples(npz_member(npz, p, name), f"{p}: array {name!r}")
    if suffix in (".h5", ".hdf5"):
        import h5py

        with open_hdf5(p) as f:
            names: list[str] = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            name = _pick(p, names, dataset)
            return check_samples(hdf5_dataset(f, p, name), f"{p}: dataset {name!r}")
    raise ProjectError(f"{p}: unknown input format {suffix!r}; use .npy, .npz or .h5")


def _pick(path: Path, names: list[str], dataset: str | None) -> str:
    if dataset is not None:
        if dataset not in names:
            raise ProjectError(f"{path}: no array named {dataset!r}; it holds {', '.join(names) or 'nothing'}")
        return dataset
    if not names:
        raise ArrayFileError(f"{path}: holds no arrays")
    if len(names) != 1:
        raise ProjectError(f"{path}: holds {len(names)} arrays ({', '.join(names)}); name one with --dataset")
    return names[0]


def open_hdf5(path: Path) -> Any:
    """An open HDF5 file (``h5py.File``, read-only)."""
    import h5py

    refuse_empty(path)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ArrayFileError(f"{path}: not an HDF5 file, or a damaged one ({exc})") from None


def hdf5_dataset(f: Any, path: Path, name: str, key: Any = ()) -> np.ndarray:
    """``f[name][key]`` (all of it by default), naming the file when HDF5 cannot read it."""
    try:
        return np.asarray(f[name][key])
    except (OSError, ValueError, TypeError) as exc:  # damaged chunks, a type NumPy cannot hold
        raise ArrayFileError(f"{path}: dataset {name!r} does not read ({exc})") from None


OUTPUT_SUFFIXES = (".npy", ".npz", ".h5", ".hdf5")


def check_output_path(path: str | os.PathLike) -> None:
    """Refuse an output path ``write_arrays`` cannot write, before the work that fills it:
    an unknown format, or a folder (``[Errno 21] Is a directory``, after the whole run)."""
    p = Path(path)
    if p.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ProjectError(f"{p}: unknown output format {p.suffix.lower()!r}; use .npy, .npz or .h5")
    if p.is_dir():
        raise ProjectError(f"{p}: is a folder; name a file to write the outputs to")


def write_arrays(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``.npy`` gets the first array (values); ``.npz`` and ``.h5`` get all of them.  Written
    to the path as given: NumPy appends ``.npy``/``.npz`` to a name that does not end in
    exactly that (``y.NPZ`` became ``y.NPZ.npz`` while emulate said ``-> y.NPZ``)."""
    check_output_path(path)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        with open(p, "wb") as f:
            np.save(f, next(iter(arrays.values())))
    elif suffix == ".npz":
        with open(p, "wb") as f:
            np.savez(f, **arrays)
    elif suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(p, "w") as f:
            for name, a in arrays.items():
                f.create_dataset(name, data=a)
    else:  # (check_output_path refused it)
        raise AssertionError(suffix)
