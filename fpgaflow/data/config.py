"""The ``Data:`` block of a project file: which files, which columns, which policies.

Kept apart from hls4ml's keys so that the project file stays a valid hls4ml
configuration.  Every mistake is reported with the project file and the key.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fpgaflow.project import refuse_unknown_keys

NON_FINITE_POLICIES = ("error", "drop", "zero")
SCALING_KINDS = ("standard", "minmax", "none")
DEFAULT_CHUNK = 100_000


class DataError(ValueError):
    """Data that cannot be used; the message names the file, the column and what exists."""


@dataclass(frozen=True)
class FeatureSpec:
    """One feature column.  ``length`` fixes the width of a jagged or 2-D column:
    longer entries are truncated, shorter ones padded with ``pad``; ``mask`` adds
    one 0/1 column per slot telling real values from padding."""

    name: str
    length: int | None = None
    pad: float = 0.0
    mask: bool = False


@dataclass
class DataConfig:
    files: list[Path]
    features: list[FeatureSpec]
    labels: list[str] = field(default_factory=list)
    classes: list[str] | None = None
    tree: str | None = None
    chunk_size: int = DEFAULT_CHUNK
    max_entries: int | None = None
    non_finite: str | float = "error"
    scaling: str | dict[str, list[float]] = "standard"
    generator: Path | None = None
    where: str = "Data"  # for messages: "<project file>: Data"

    @classmethod
    def from_mapping(cls, block: Any, root: Path, where: str = "Data") -> DataConfig:
        """Parse a ``Data:`` mapping; relative paths resolve against ``root``."""
        if not isinstance(block, dict):
            raise DataError(f"{where}: expected a mapping with File, Features, Labels...")
        known = {
            "File", "Files", "Tree", "Features", "Labels", "Classes", "ChunkSize", "MaxEntries",
            "NonFinite", "Scaling", "Generator", "Pad", "Mask",
        }  # fmt: skip
        refuse_unknown_keys(where, block, sorted(known), error=DataError)
        null = next((k for k, v in block.items() if v is None), None)
        if null is not None:
            raise DataError(f"{where}.{null}: has no value (null); give one, or leave the key out")
        if "File" in block and "Files" in block:
            raise DataError(f"{where}: give File or Files, not both (one of them would be ignored)")
        if "File" not in block and "Files" not in block:
            raise DataError(f"{where}: key 'File' (or 'Files') is missing")
        key = "Files" if "Files" in block else "File"
        files = _names(block[key], f"{where}.{key}", "a path or a list of paths")
        if not files:
            raise DataError(f"{where}.{key}: an empty list; name at least one data file")
        gen_path = _resolve(root, _name(block["Generator"], f"{where}.Generator")) if "Generator" in block else None
        if gen_path is not None and not gen_path.is_file():
            raise DataError(f"{where}.Generator: {gen_path} does not exist")
        default_pad = _number(block.get("Pad", 0.0), f"{where}.Pad")
        default_mask = _flag(block.get("Mask", False), f"{where}.Mask")
        features = _features(block.get("Features"), default_pad, default_mask, f"{where}.Features")
        labels = _names(block.get("Labels", []), f"{where}.Labels", "a column name or a list of column names")
        classes = block.get("Classes")
        if classes is not None and (not isinstance(classes, list) or not classes):
            raise DataError(f"{where}.Classes: expected a list of class names, got {classes!r}")
        odd = [i for i, c in enumerate(classes or []) if isinstance(c, bool) or not isinstance(c, (str, int))]
        if odd:  # `[yes, no]` reads as booleans
            raise DataError(
                f"{where}.Classes[{odd[0]}]: expected a class name, got {classes[odd[0]]!r} (quote names YAML reads as "
                "true/false or null: yes, no, on, off, ~)"
            )
        if classes is not None and len(labels) > 1:
            refuse_contradicting_classes([str(c) for c in classes], labels, where)
        non_finite = block.get("NonFinite", "error")
        if isinstance(non_finite, str):
            if non_finite not in NON_FINITE_POLICIES:
                raise DataError(
                    f"{where}.NonFinite: {non_finite!r} is not a policy; use one of "
                    f"{', '.join(NON_FINITE_POLICIES)} or a number to put in their place"
                )
        else:
            non_finite = _number(non_finite, f"{where}.NonFinite")
        scaling = block.get("Scaling", "standard")
        if isinstance(scaling, str):
            if scaling not in SCALING_KINDS:
                raise DataError(
                    f"{where}.Scaling: {scaling!r} is unknown; use {', '.join(SCALING_KINDS)} "
                    "or {Offset: [...], Scale: [...]} for fixed scaling"
                )
        elif isinstance(scaling, dict):
            if set(scaling) != {"Offset", "Scale"}:
                raise DataError(f"{where}.Scaling: fixed scaling needs exactly the keys Offset and Scale")
            for key in ("Offset", "Scale"):
                values = scaling[key] if isinstance(scaling[key], list) else [scaling[key]]
                if not values or not all(_is_number(v) for v in values):
                    raise DataError(
                        f"{where}.Scaling.{key}: expected a number or a list of numbers (one per feature), "
                        f"got {scaling[key]!r}"
                    )
        else:
            raise DataError(f"{where}.Scaling: expected a name or a mapping with Offset and Scale")
        chunk = _count(block.get("ChunkSize", DEFAULT_CHUNK), f"{where}.ChunkSize")
        max_entries = block.get("MaxEntries")
        max_entries = _count(max_entries, f"{where}.MaxEntries") if max_entries is not None else None
        tree = _name(block["Tree"], f"{where}.Tree") if "Tree" in block else None
        suffixes = {Path(str(f)).suffix.lower() for f in files}
        if tree is not None and ".root" not in suffixes and "" not in suffixes:  # would be ignored
            raise DataError(
                f"{where}.Tree: names a ROOT TTree, but the data file(s) are {', '.join(sorted(suffixes))}, "
                "which have no trees (their columns are read by name); remove Tree"
            )
        return cls(
            files=[_resolve(root, f) for f in files],
            features=features,
            labels=labels,
            classes=[str(c) for c in classes] if classes else None,
            tree=tree,
            chunk_size=chunk,
            max_entries=max_entries,
            non_finite=non_finite,
            scaling=scaling,
            generator=gen_path,
            where=where,
        )

    @classmethod
    def from_project(cls, project: Any) -> DataConfig:
        """The ``Data:`` block of a loaded ``Project``."""
        if "Data" not in project.config:
            raise DataError(f"{project.file}: no 'Data:' block (which files and columns to train on)")
        return cls.from_mapping(project.config["Data"], project.root, f"{project.file}: Data")

    def expand_files(self) -> list[Path]:
        """The files, with glob patterns expanded; each must exist."""
        out: list[Path] = []
        for f in self.files:
            if any(ch in str(f) for ch in "*?["):
                matches = sorted(Path(m) for m in glob.glob(str(f)))
                if not matches:
                    raise DataError(f"{self.where}.File: pattern {f} matches no file")
                out.extend(matches)
            elif not f.is_file():
                hint = f" (run its Generator {self.generator.name} to make it)" if self.generator else ""
                raise DataError(f"{self.where}.File: {f} does not exist{hint}")
            else:
                out.append(f)
        return out


def _tokens(column: str) -> set[str]:
    """A label column's name and its parts: ``is_a`` -> {is_a, is, a}, lower case."""
    return {column.lower(), *(t.lower() for t in re.split(r"[^0-9A-Za-z]+", column) if t)}


def refuse_contradicting_classes(classes: list[str], columns: list[str], where: str) -> None:
    """With one 0/1 label column per class, class ``i`` is column ``i`` and ``Classes``
    names them in that order.  Refuse another count, and an order the column names
    contradict (``Labels: [is_c, is_a, is_b]`` with ``Classes: [a, b, c]`` would call
    the ``is_c`` entries 'a' in the history, the profile and its ROC curves).  Names
    that do not appear in the column names (``j_g`` -> ``gluon``) go by position."""
    if len(classes) != len(columns):
        raise DataError(
            f"{where}.Classes: {len(classes)} names ({', '.join(classes)}) for {len(columns)} per-class label "
            f"columns ({', '.join(columns)}); name one class per column, in the same order, or leave Classes out"
        )
    owner = {}  # class index -> the one column whose name holds the class name
    for i, name in enumerate(classes):
        hits = [j for j, col in enumerate(columns) if name.lower() in _tokens(col)]
        if len(hits) == 1:
            owner[i] = hits[0]
    wrong = [i for i, j in owner.items() if i != j]
    if not wrong:
        return
    i = wrong[0]
    hint = ""
    if sorted(owner.values()) == list(range(len(columns))):
        by_column = {j: k for k, j in owner.items()}
        hint = f" ([{', '.join(classes[by_column[j]] for j in range(len(columns)))}])"
    raise DataError(
        f"{where}.Classes: [{', '.join(classes)}] contradicts the order of the per-class Labels columns "
        f"[{', '.join(columns)}]: the entries with {columns[i]} set (class {i}) would be called {classes[i]!r}, "
        f"whose column is {columns[owner[i]]}; give Classes in the order of Labels{hint}, or leave Classes out "
        "(the columns then name the classes)"
    )


def _resolve(root: Path, value: Any) -> Path:
    p = Path(os.path.expanduser(str(value)))
    return p if p.is_absolute() else root / p


def _number(value: Any, where: str) -> float:
    if not _is_number(value):  # float(True) would be 1.0
        raise DataError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _name(value: Any, where: str, what: str = "a name") -> str:
    """A file, column or tree name: a non-empty string (``str(5)`` or ``str([...])`` named
    a file nobody meant)."""
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: expected {what}, got {value!r}")
    return value


def _names(value: Any, where: str, what: str) -> list[str]:
    """One name, or a list of them (a mapping's keys were taken for names)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(x, str) and x.strip() for x in items):
        raise DataError(f"{where}: expected {what}, got {value!r}")
    return items


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _flag(value: Any, where: str) -> bool:
    """A YAML true/false; a string such as "false" would be truthy in Python."""
    if not isinstance(value, bool):
        raise DataError(f"{where}: expected true or false, got {value!r}")
    return value


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(f"{where}: expected a positive whole number, got {value!r}")
    return value


def _features(value: Any, pad: float, mask: bool, where: str) -> list[FeatureSpec]:
    if value is None:
        raise DataError(f"{where}: missing (the columns to feed the network)")
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, list) or not value:
        what = "a column name, a {Name, Length, Pad, Mask} mapping or a list of them"
        raise DataError(f"{where}: expected {what}, got {value!r}")
    specs: list[FeatureSpec] = []
    for i, item in enumerate(value):
        if isinstance(item, str) and item.strip():
            specs.append(FeatureSpec(item, pad=pad, mask=False))
        elif isinstance(item, dict):
            extra = set(item) - {"Name", "Length", "Pad", "Mask"}
            if "Name" not in item or extra:
                raise DataError(f"{where}[{i}]: expected {{Name, Length, Pad, Mask}}, got {sorted(item)}")
            length = item.get("Length")
            if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 1):
                raise DataError(f"{where}[{i}].Length: expected a positive integer, got {length!r}")
            specs.append(
                FeatureSpec(
                    _name(item["Name"], f"{where}[{i}].Name", "a column name"),
                    length,
                    _number(item.get("Pad", pad), f"{where}[{i}].Pad"),
                    _flag(item.get("Mask", mask), f"{where}[{i}].Mask"),
                )
            )
        else:
            raise DataError(f"{where}[{i}]: expected a column name or a mapping, got {item!r}")
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"{where}: column(s) named more than once: {', '.join(dupes)}")
    return specs
