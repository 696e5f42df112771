"""ROOT reader through uproot: branches of a TTree (or fields of an RNTuple, which
recent uproot writes by default), read by entry range.  Jagged
branches (a variable number of values per entry) come back as awkward arrays and are
padded/truncated later (``jagged.feature_block``), as MLaaS4HEP does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fpgaflow.data.config import DataError
from fpgaflow.data.sources import check_names

TREE_CLASSES = ("TTree", "TNtuple", "ROOT::RNTuple")


class RootSource:
    def __init__(self, path: Path, tree: str | None):
        import uproot

        self.path = path
        try:
            self._file = uproot.open(path)
        except Exception as exc:  # uproot raises many kinds for a file that is not ROOT
            raise DataError(f"{path}: cannot be opened as a ROOT file ({type(exc).__name__}: {exc})") from None
        trees = sorted({k.split(";")[0] for k, c in self._file.classnames().items() if c in TREE_CLASSES})
        if tree is None:
            if len(trees) != 1:
                raise DataError(
                    f"{path}: holds {len(trees)} TTrees ({', '.join(trees) or 'none'}); name one with Data.Tree"
                )
            tree = trees[0]
        elif tree not in trees:
            raise DataError(f"{path}: no TTree named {tree!r}; it holds: {', '.join(trees) or 'no TTree'}")
        self.tree_name = tree
        self._tree = self._file[tree]
        self._names = list(self._tree.keys(recursive=True))

    def names(self) -> list[str]:
        return list(self._names)

    def num_entries(self, names: list[str]) -> int:
        check_names(self.path, names, self._names, "branch", f" in TTree '{self.tree_name}'")
        return int(self._tree.num_entries)

    def read(self, names: list[str], start: int, stop: int) -> dict[str, Any]:
        arrays = self._tree.arrays(names, entry_start=start, entry_stop=stop, library="ak")
        return {n: arrays[n] for n in names}

    def close(self) -> None:
        self._file.close()
