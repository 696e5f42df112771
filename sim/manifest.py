"""The firmware manifest: the contract between ``fpgaflow synth`` and the emulator.

A manifest is a folder with ``manifest.json`` (metadata, types, layer or tree
descriptions) and ``arrays.npz`` (constant arrays, loaded with ``allow_pickle=False``).
It describes the firmware as built, so the emulator needs nothing else: no model
file, no HLS sources, no compiler.  Its ``id`` is a hash of both files' content, so a
board and a node can tell whether they run the same firmware.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "fpgaflow-manifest"
FORMAT_VERSION = 1
KINDS = ("network", "bdt")
MANIFEST_FILE = "manifest.json"
ARRAYS_FILE = "arrays.npz"


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and the field."""


@dataclass
class Manifest:
    path: Path
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def id(self) -> str:
        return self.meta["id"]

    def field(self, *keys: str, where: dict[str, Any] | None = None) -> Any:
        """``meta[k1][k2]...`` with an error naming the missing field and the file."""
        node: Any = self.meta if where is None else where
        for i, key in enumerate(keys):
            if not isinstance(node, dict) or key not in node:
                dotted = ".".join(keys[: i + 1])
                raise ManifestError(f"{self.path / MANIFEST_FILE}: missing field '{dotted}'")
            node = node[key]
        return node

    def array(self, name: str) -> np.ndarray:
        try:
            return self.arrays[name]
        except KeyError:
            raise ManifestError(f"{self.path / ARRAYS_FILE}: missing array '{name}'") from None


def _content_hash(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    body = {k: v for k, v in meta.items() if k != "id"}
    h.update(json.dumps(body, sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def write_manifest(directory: str | os.PathLike, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    """Write a manifest folder atomically (temp names, then rename); returns its id."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if meta.get("kind") not in KINDS:
        raise ManifestError(f"manifest kind must be one of {KINDS}, got {meta.get('kind')!r}")
    for name, a in arrays.items():
        if np.asarray(a).dtype == object:
            raise ManifestError(f"array '{name}' has dtype object; manifests hold numeric arrays only")
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    meta["id"] = _content_hash(meta, arrays)
    tmp_arrays = directory / (ARRAYS_FILE + ".tmp.npz")
    np.savez(tmp_arrays, **arrays)
    tmp_meta = directory / (MANIFEST_FILE + ".tmp")
    tmp_meta.write_text(json.dumps(meta, indent=1, sort_keys=False) + "\n")
    os.replace(tmp_arrays, directory / ARRAYS_FILE)
    os.replace(tmp_meta, directory / MANIFEST_FILE)
    return meta["id"]


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read and validate a manifest folder (or its ``manifest.json``)."""
    path = Path(path)
    if path.name == MANIFEST_FILE:
        path = path.parent
    meta_file = path / MANIFEST_FILE
    if not meta_file.is_file():
        # a project folder, or its build folder, given for the manifest folder synth exported
        for near in (path / "emulator", path / "build" / "emulator"):
            if (near / MANIFEST_FILE).is_file():
                raise ManifestError(f"{meta_file}: no manifest here; {near} holds the one `fpgaflow synth` exported")
        raise ManifestError(f"{meta_file}: no manifest here (run `fpgaflow synth` to export one)")
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{meta_file}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ManifestError(f"{meta_file}: not an fpgaflow manifest (field 'format' is not {FORMAT!r})")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ManifestError(
            f"{meta_file}: format_version {version!r} is not supported by this emulator "
            f"(expects {FORMAT_VERSION}); re-run `fpgaflow synth`"
        )
    if meta.get("kind") not in KINDS:
        raise ManifestError(f"{meta_file}: field 'kind' must be one of {KINDS}, got {meta.get('kind')!r}")
    arrays = _read_arrays(path / ARRAYS_FILE)
    if _content_hash(meta, arrays) != meta.get("id"):
        if not (path / ARRAYS_FILE).exists():
            raise ManifestError(f"{path / ARRAYS_FILE}: missing; re-run `fpgaflow synth` to export the manifest again")
        raise ManifestError(f"{path}: content does not match its id {meta.get('id')!r} (edited or corrupted)")
    return Manifest(path, meta, arrays)


def _read_arrays(arrays_file: Path) -> dict[str, np.ndarray]:
    """The constant arrays; a damaged file is refused naming it (zipfile and NumPy raise
    BadZipFile, 'Bad CRC-32 for file ...' or EOFError, naming no file).  A missing file
    reads as no arrays: the content hash tells whether the manifest had some."""
    if not arrays_file.exists():
        return {}
    resynth = "re-run `fpgaflow synth` to export the manifest again"
    if arrays_file.stat().st_size == 0:
        raise ManifestError(f"{arrays_file}: corrupt: the file is empty (0 bytes); {resynth}")
    if not zipfile.is_zipfile(arrays_file):
        raise ManifestError(f"{arrays_file}: corrupt: not a zip archive (truncated?); {resynth}")
    try:
        with np.load(arrays_file, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except Exception as exc:  # BadZipFile (bad CRC-32), zlib.error, EOFError; ValueError: object arrays (pickle)
        raise ManifestError(f"{arrays_file}: corrupt ({type(exc).__name__}: {exc}); {resynth}") from None
