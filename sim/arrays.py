"""Reading ``.npy``/``.npz`` arrays without trusting them: one line naming the file and what
is wrong with it, where NumPy and zipfile name no file ("No data left in file",
"Cannot load file containing pickled data") or raise more than ``ValueError``.

Pure NumPy, so that the board stand-in (``sim.board``) reads its input files with the
same checks as the front end's ``fpgaflow.arrays`` (which adds HDF5 and the writers).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

NPY_MAGIC = b"\x93NUMPY"  # how every .npy file begins


class ArrayFileError(ValueError):
    """An array or data file that cannot be read; the message names the file and what is wrong."""


def check_samples(a: np.ndarray, where: str) -> np.ndarray:
    """``a`` unless it cannot be samples: a single number (0-d) has no rows, and the
    firmware takes real numbers (NumPy casts complex ones to float with only a
    ComplexWarning, dropping the imaginary part)."""
    if a.ndim == 0:
        raise ArrayFileError(f"{where}: holds a single value (a 0-d array), not one row per sample")
    if a.dtype.kind == "c":
        raise ArrayFileError(f"{where}: its values are complex ({a.dtype}); the firmware takes real numbers")
    if a.dtype.kind not in "biuf":
        raise ArrayFileError(f"{where}: its values are {a.dtype}, not numbers")
    return a


def refuse_empty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise ArrayFileError(f"{path}: the file is empty (0 bytes)")


def _npy_header(fp: IO[bytes], size: int, where: str) -> None:
    """Refuse a ``.npy`` stream of ``size`` bytes whose header is not NumPy's, whose
    values need pickle, or whose data is shorter than its header promises (truncated)."""
    if fp.read(len(NPY_MAGIC)) != NPY_MAGIC:
        raise ArrayFileError(f"{where}: not a .npy array (it does not begin with NumPy's header)")
    try:
        version = tuple(fp.read(2))
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
        else:  # 3.0 (utf-8 field names) and later: np.load checks those
            return
    except (ValueError, EOFError) as exc:
        raise ArrayFileError(f"{where}: the .npy header is damaged ({exc})") from None
    if dtype.hasobject:
        raise ArrayFileError(
            f"{where}: holds Python objects (dtype {dtype}), which only pickle can read and fpgaflow never "
            "unpickles; save numbers"
        )
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = size - fp.tell()
    if have < expected:
        raise ArrayFileError(
            f"{where}: truncated: its header promises shape {shape} of {dtype} ({expected} bytes) "
            f"but only {have} bytes follow"
        )


def load_npy(path: Path, mmap: bool = False) -> np.ndarray:
    """A ``.npy`` file, memory-mapped if ``mmap`` (read-only); never unpickled."""
    refuse_empty(path)
    with open(path, "rb") as fp:
        _npy_header(fp, path.stat().st_size, str(path))
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as exc:  # NumPy raises ValueError, EOFError, OSError... naming no file
        raise ArrayFileError(f"{path}: does not read as a .npy array ({type(exc).__name__}: {exc})") from None


def open_npz(path: Path) -> Any:
    """An open ``.npz`` archive (``np.lib.npyio.NpzFile``; close it, or use ``with``)."""
    refuse_empty(path)
    if not zipfile.is_zipfile(path):  # NumPy would try it as a pickle, or raise BadZipFile
        raise ArrayFileError(f"{path}: not a .npz archive (not a zip file: truncated, or another format)")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # zipfile.BadZipFile, OSError...
        raise ArrayFileError(f"{path}: does not read as a .npz archive ({type(exc).__name__}: {exc})") from None


def npz_member(npz: Any, path: Path, name: str) -> np.ndarray:
    """Array ``name`` of an open ``.npz``, with the checks of ``load_npy``."""
    where = f"{path}: array {name!r}"
    try:
        info = npz.zip.getinfo(f"{name}.npy")
    except KeyError:
        info = None  # a member that is no .npy: NumPy returns its bytes, refused below
    try:
        if info is not None:
            with npz.zip.open(info) as fp:
                _npy_header(fp, info.file_size, where)
        a = npz[name]
    except ArrayFileError:
        raise
    except Exception as exc:  # zipfile.BadZipFile (bad CRC-32), zlib.error, EOFError...
        raise ArrayFileError(f"{where} does not read: the archive is damaged ({type(exc).__name__}: {exc})") from None
    if not isinstance(a, np.ndarray):
        raise ArrayFileError(f"{where}: not a .npy array inside the archive")
    return a
