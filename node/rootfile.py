"""One ROOT file of event records (uproot): a TTree with one branch per field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def columns(records: np.ndarray, keep_reserved: bool = False) -> dict[str, np.ndarray]:
    """A structured array as one contiguous array per field (reserved fields left out,
    but in late files, where a fragment refused for its reserved field shows why)."""
    names = [n for n in records.dtype.names if keep_reserved or n != "reserved"]
    return {name: np.ascontiguousarray(records[name]) for name in names}


class ROOTWriter:
    """A TTree with one branch per field (fixed-size arrays stay arrays)."""

    def __init__(self, path: Path, tree: str, attrs: dict[str, Any]):
        try:
            import uproot
        except ImportError:
            raise RuntimeError("the ROOT sink needs uproot: pip install uproot") from None
        self.path = path
        self.file = uproot.recreate(path)
        self.tree_name = tree
        self.tree = None
        # the HDF5 dataset's attributes, as JSON (readable from C++ ROOT, unlike a Python repr)
        self.file[f"{tree}_info"] = json.dumps(attrs, default=str)

    # written in the caller's thread, all at once: never queued, never waiting for room
    busy, waiting, written_out = False, None, True

    def finish(self) -> None:
        pass

    @property
    def saved(self) -> int:
        """Records that survive a failed close: none (a ROOT file is only whole once closed)."""
        return 0

    def wait_room(self, timeout: float) -> None:
        pass

    def give_up(self) -> None:
        pass

    def check(self) -> None:
        pass

    def write(self, parts: list[np.ndarray]) -> None:
        cols = columns(np.concatenate(parts), keep_reserved=self.tree_name == "late")
        if self.tree is None:
            self.tree = self.file.mktree(self.tree_name, {k: np.dtype((a.dtype, a.shape[1:])) for k, a in cols.items()})
        self.tree.extend(cols)

    def close(self, on_wait: Callable[[], None] | None = None) -> None:
        self.file.close()
