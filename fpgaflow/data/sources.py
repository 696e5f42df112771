"""One interface over the file formats: named columns read by entry range.

A column is a NumPy array (1-D scalars or N-D fixed shapes) or, for ROOT and HDF5
variable-length data, an awkward array of lists.  Ranges keep memory bounded: only
``stop - start`` entries of the named columns are in memory at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from fpgaflow.arrays import ArrayFileError
from fpgaflow.data.config import DataError


class Source(Protocol):
    path: Path

    def names(self) -> list[str]:
        """The columns this file holds."""

    def num_entries(self, names: list[str]) -> int:
        """Entries (rows, events) of the named columns, which must agree."""

    def read(self, names: list[str], start: int, stop: int) -> dict[str, Any]:
        """Entries ``start:stop`` of the named columns."""

    def close(self) -> None: ...


def open_source(path: Path, tree: str | None = None) -> Source:
    """The reader for ``path``, chosen by its suffix."""
    suffix = path.suffix.lower()
    if suffix in (".npz", ".npy"):
        from fpgaflow.data.npz import NpzSource

        return NpzSource(path)
    if suffix in (".h5", ".hdf5", ".hdf"):
        from fpgaflow.data.hdf5 import Hdf5Source

        return Hdf5Source(path)
    if suffix == ".root":
        from fpgaflow.data.root import RootSource

        return RootSource(path, tree)
    raise DataError(f"{path}: unknown data format {suffix!r}; use .npz/.npy, .h5/.hdf5 or .root")


def check_names(path: Path, wanted: list[str], present: list[str], what: str = "column", within: str = "") -> None:
    """Raise naming the file, the missing columns and the ones that exist."""
    missing = [n for n in wanted if n not in present]
    if missing:
        listing = ", ".join(present[:40]) + (f" ... ({len(present)} in all)" if len(present) > 40 else "")
        plural = what + ("es" if what.endswith(("ch", "sh", "s", "x")) else "s")  # branch -> branches
        raise DataError(
            f"{path}: no {plural if len(missing) > 1 else what} named {', '.join(map(repr, missing))}{within}; "
            f"it holds: {listing or 'nothing'}"
        )


@contextmanager
def data_errors() -> Iterator[None]:
    """The shared array loader's errors (``fpgaflow.arrays``) as ``DataError``."""
    try:
        yield
    except ArrayFileError as exc:
        raise DataError(str(exc)) from None
