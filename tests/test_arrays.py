"""Array and data files that cannot be used: one line naming the file and what is wrong,
through ``fpgaflow emulate`` (``fpgaflow.arrays.read_array``, shared by verify and
profile) and through the training data readers (``fpgaflow.data``), never NumPy's,
zipfile's or HDF5's own error naming no file."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from bdt_helpers import one_tree_manifest

from fpgaflow.cli import main
from fpgaflow.data import DataConfig, DataError, read_dataset


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _flipped(content: bytes, inside: bytes) -> bytes:
    """``content`` with one bit flipped inside the first occurrence of ``inside``."""
    i = content.index(inside) + len(inside) // 2
    return content[:i] + bytes([content[i] ^ 0x10]) + content[i + 1 :]


def _h5(path: Path, **datasets) -> None:
    with h5py.File(path, "w") as f:
        for name, data in datasets.items():
            f[name] = data


ROWS = np.full((4, 2), 1.5)
BAD_FILES = [
    ("x.npy", b"", "the file is empty (0 bytes)"),  # was EOFError: No data left in file
    ("x.npz", b"", "the file is empty (0 bytes)"),  # the same EOFError
    ("x.h5", b"", "the file is empty (0 bytes)"),  # was 'Unable to synchronously open file (file signature...'
    ("x.npy", _npy(np.array(1.0)), "holds a single value (a 0-d array)"),  # was TypeError: len() of unsized object
    ("x.npz", _npz(x=np.array(1.0)), "array 'x': holds a single value (a 0-d array)"),
    ("x.npy", _npy(ROWS)[:-40], "truncated: its header promises shape (4, 2) of float64 (64 bytes) but only 24"),
    ("x.npy", _npy(np.array([[None, 1]], dtype=object)), "holds Python objects (dtype object)"),
    ("x.npy", _npy(np.array([["a", "b"]])), "<U1, not numbers"),  # was a bare float() error
    ("x.npy", _npy(ROWS + 1j), "complex (complex128)"),  # was a ComplexWarning, the imaginary part dropped
    ("x.npy", b"garbage\n", "not a .npy array"),
    ("x.npz", _npz(x=ROWS)[:-30], "not a .npz archive (not a zip file"),  # was zipfile.BadZipFile
    ("x.npz", _flipped(_npz(x=ROWS), ROWS.tobytes()), "array 'x' does not read: the archive is damaged (BadZipFile"),
    ("x.npz", _npz(), "holds no arrays"),
    ("x.h5", b"not hdf5 at all", "not an HDF5 file, or a damaged one"),
]  # fmt: skip


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """A one-tree BDT firmware with two inputs: x0 < 0.5 ? 1.0 : 2.0."""
    return one_tree_manifest(tmp_path_factory.mktemp("emulator"))


def _emulate(manifest: Path, path: Path, capsys) -> str:
    assert main(["emulate", str(manifest), "--input", str(path), "--output", str(path.parent / "y.npy")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    return line


@pytest.mark.parametrize("name, content, message", BAD_FILES)
def test_emulate_input_that_cannot_be_read_is_one_line_naming_it(tmp_path, manifest, capsys, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    line = _emulate(manifest, path, capsys)
    assert line.startswith(f"fpgaflow emulate: error: {path}: ") and message in line, line


def test_emulate_hdf5_scalar_and_good_inputs(tmp_path, manifest, capsys):
    _h5(tmp_path / "s.h5", x=1.0)
    line = _emulate(manifest, tmp_path / "s.h5", capsys)
    assert (
        line
        == f"fpgaflow emulate: error: {tmp_path / 's.h5'}: dataset 'x': holds a single value (a 0-d array), "
        + ("not one row per sample")
    )
    for name in ("x.npy", "x.npz"):
        (tmp_path / name).write_bytes(_npy(ROWS) if name.endswith("npy") else _npz(x=ROWS))
        out = tmp_path / "y.npy"
        assert main(["emulate", str(manifest), "--input", str(tmp_path / name), "--output", str(out)]) == 0
        assert np.load(tmp_path / "y.npy").ravel().tolist() == [2.0] * 4


@pytest.mark.parametrize("name, content, message", [f for f in BAD_FILES if f[0] != "x.h5" and "no arrays" not in f[2]])
def test_training_data_that_cannot_be_read_is_one_line_naming_it(tmp_path, name, content, message):
    """A ``.npy`` is read as one column named after the file; ``.npz`` members by name
    (an archive of no arrays: 'no array named 'x'; it holds: nothing', as before)."""
    path = tmp_path / name
    path.write_bytes(content)
    cfg = DataConfig.from_mapping({"File": name, "Features": "x"}, tmp_path)
    with pytest.raises(DataError) as err:
        read_dataset(cfg, need_labels=False)
    assert str(err.value).startswith(f"{path}: ") and message.replace("array 'x': ", "") in str(err.value), err.value


def test_training_data_hdf5_empty_damaged_or_scalar(tmp_path):
    (tmp_path / "e.h5").write_bytes(b"")
    (tmp_path / "g.h5").write_bytes(b"not hdf5 at all")
    _h5(tmp_path / "s.h5", x=1.0)
    cases = [("e.h5", "the file is empty"), ("g.h5", "not an HDF5 file"), ("s.h5", "holds a single value")]
    for name, message in cases:
        cfg = DataConfig.from_mapping({"File": name, "Features": "x"}, tmp_path)
        with pytest.raises(DataError, match=rf"^{tmp_path / name}: .*{message}"):
            read_dataset(cfg, need_labels=False)


def test_zip_member_that_is_no_npy_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "x.npz", "w") as z:
        z.writestr("x.npy", b"not an array")
    cfg = DataConfig.from_mapping({"File": "x.npz", "Features": "x"}, tmp_path)
    with pytest.raises(DataError, match=r"x\.npz: array 'x': not a \.npy array"):
        read_dataset(cfg, need_labels=False)
