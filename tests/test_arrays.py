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

import sim
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


def _grid_network(folder: Path) -> Path:
    """A network firmware whose input is (3, 2), each value weighted by its position:
    y = sum_ij x[i, j] * (2 i + j + 1), so values in the wrong places give another y."""
    from sim.fixed import FixedType
    from sim.manifest import write_manifest

    w_t = FixedType.parse("ap_fixed<8,4>")
    layers = [
        {"name": "x", "kind": "input", "inputs": [], "output_shape": [3, 2], "result_type": "ap_fixed<16,6>"},
        {"name": "f", "kind": "reshape", "inputs": ["x"], "output_shape": [6], "result_type": "ap_fixed<16,6>"},
        {
            "name": "d", "kind": "dense", "inputs": ["f"], "output_shape": [1], "result_type": "ap_fixed<24,12>",
            "n_in": 6, "n_out": 1, "arrays": {"weight": "d/weight", "bias": "d/bias"}, "weight_type": str(w_t),
            "bias_type": str(w_t), "accum_type": "ap_fixed<24,12>", "strategy": "latency", "product": "mult",
            "reuse_factor": 1,
        },
    ]  # fmt: skip
    arrays = {"d/weight": w_t.to_raw(np.arange(1.0, 7.0)[:, None]), "d/bias": w_t.to_raw(np.zeros(1))}
    write_manifest(folder, {"kind": "network", "input": "x", "output": "d", "layers": layers}, arrays)
    return folder


def test_network_inputs_of_another_layout_are_refused_not_reshaped(tmp_path, capsys):
    """(N, 2, 3) for a (3, 2) input was reshaped silently (other outputs, no word), and an
    (8,) file for an (8,) input ran as one sample while emulate said '8 samples'.  Taken:
    (N, *shape) and flat rows (N, prod(shape)); the rest is one line naming the file."""
    manifest = _grid_network(tmp_path / "net")
    x = np.random.default_rng(0).integers(-4, 4, size=(5, 3, 2)).astype(np.float64)
    want = (x.reshape(5, 6) @ np.arange(1.0, 7.0)).tolist()
    for name, a in (("x.npy", x), ("flat.npy", x.reshape(5, 6))):
        np.save(tmp_path / name, a)
        assert (
            main(["emulate", str(manifest), "--input", str(tmp_path / name), "--output", str(tmp_path / "y.npy")]) == 0
        )
        assert np.load(tmp_path / "y.npy").ravel().tolist() == want
    capsys.readouterr()
    expected = "but the firmware takes (3, 2) per sample: an array of shape (N, 3, 2) or flat rows of shape (N, 6)"
    for name, a in (("t.npy", x.transpose(0, 2, 1)), ("one.npy", x[0]), ("col.npy", x.reshape(-1))):
        np.save(tmp_path / name, a)
        line = _emulate(manifest, tmp_path / name, capsys)
        assert line == f"fpgaflow emulate: error: {tmp_path / name}: shape {a.shape}, {expected}" + (
            " (a single sample too: shape (1, 3, 2))" if name == "one.npy" else ""
        )
    with pytest.raises(ValueError, match=r"^inputs: shape \(5, 2, 3\), but"):
        sim.load(manifest).predict(x.transpose(0, 2, 1))


def test_one_sample_without_its_row_axis_is_refused_for_a_firmware_of_several_inputs(tmp_path, manifest, capsys):
    """The BDT takes two inputs: (2,) is one sample, not two; (N, 2, 1) is not rows."""
    for name, a in (("one.npy", np.array([0.25, 1.0])), ("deep.npy", np.zeros((4, 2, 1)))):
        np.save(tmp_path / name, a)
        line = _emulate(manifest, tmp_path / name, capsys)
        assert line.startswith(f"fpgaflow emulate: error: {tmp_path / name}: shape {a.shape}, but the firmware takes")


def _dense_network(folder: Path, fill: float | None, scaled: bool = True, **meta: object) -> Path:
    """y = x0 + 2 x1 on two inputs scaled by (x - 1) / 2 (unless not ``scaled``), NaN/inf
    replaced by ``fill`` first; ``meta``: more manifest metadata."""
    from sim.fixed import FixedType
    from sim.manifest import write_manifest

    w_t = FixedType.parse("ap_fixed<8,4>")
    layers = [
        {"name": "x", "kind": "input", "inputs": [], "output_shape": [2], "result_type": "ap_fixed<16,6>"},
        {
            "name": "d", "kind": "dense", "inputs": ["x"], "output_shape": [1], "result_type": "ap_fixed<24,12>",
            "n_in": 2, "n_out": 1, "arrays": {"weight": "d/weight", "bias": "d/bias"}, "weight_type": str(w_t),
            "bias_type": str(w_t), "accum_type": "ap_fixed<24,12>", "strategy": "latency", "product": "mult",
            "reuse_factor": 1,
        },
    ]  # fmt: skip
    block = {"kind": "affine", "formula": "(x - offset) / scale", "offset": "pre_offset", "scale": "pre_scale",
             "features": ["a", "b"]}  # fmt: skip
    if fill is not None:
        block["fill_non_finite"] = fill
    arrays = {"d/weight": w_t.to_raw(np.array([[1.0], [2.0]])), "d/bias": w_t.to_raw(np.zeros(1)),
              "pre_offset": np.ones(2), "pre_scale": np.full(2, 2.0)}  # fmt: skip
    meta = {"kind": "network", "input": "x", "output": "d", "layers": layers, **meta}
    if scaled:
        meta["preprocessing"] = block
    write_manifest(folder, meta, arrays)
    return folder


def test_inf_inputs_are_refused_as_nan_is_unless_the_preprocessing_fills_them(tmp_path, manifest, capsys):
    """inf was cast into the input type (AP_WRAP: 0, the training mean's input) where NaN was
    refused, though training's NonFinite: error refuses both; the manifest's
    fill_non_finite replaces both, as training did."""
    x = np.array([[1.0, 3.0], [5.0, np.inf], [-np.inf, 1.0], [1.0, 1.0]])
    np.save(tmp_path / "x.npy", x)
    tail = "which the firmware's input type ap_fixed<{}> cannot represent; remove or replace them"
    line = _emulate(manifest, tmp_path / "x.npy", capsys)  # the BDT: no preprocessing
    head = f"fpgaflow emulate: error: {tmp_path / 'x.npy'}: inf in 2 of 4 rows (row 1 first, feature 1), "
    assert line.startswith(head + tail.format("8,4")), line
    line = _emulate(_dense_network(tmp_path / "strict", None), tmp_path / "x.npy", capsys)
    assert f"inf in 2 of 4 rows (row 1 first, feature 1 'b'), {tail.format('16,6')}" in line, line
    x[3, 0] = np.nan
    np.save(tmp_path / "x.npy", x)
    line = _emulate(_dense_network(tmp_path / "strict", None), tmp_path / "x.npy", capsys)
    assert ": NaN/inf in 3 of 4 rows (row 1 first, feature 1 'b')" in line, line
    filled = _dense_network(tmp_path / "filled", 1.0)  # (1 - 1) / 2 = 0 in place of NaN/inf
    assert main(["emulate", str(filled), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    assert np.load(tmp_path / "y.npy").ravel().tolist() == [2.0, 2.0, 0.0, 0.0]


def test_emulate_and_board_of_a_project_changed_since_synth_say_so(tmp_path, capsys):
    """verify refused a model (or scaling) changed since synth, while emulate printed the
    old firmware's outputs with no word; now one warning line names the file."""
    from fpgaflow.commands.emulate import firmware_manifest
    from fpgaflow.network.model import source_sha256

    root = tmp_path / "p"
    (root / "build").mkdir(parents=True)
    (root / "m.h5").write_bytes(b"the trained model")
    (root / "project.yml").write_text("KerasH5: m.h5\n")
    _dense_network(root / "build" / "emulator", None, scaled=False, source_sha256=source_sha256([root / "m.h5"]))
    np.save(tmp_path / "x.npy", np.ones((3, 2)))
    args = ["emulate", str(root), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]
    assert main(args) == 0 and capsys.readouterr().err == ""  # as synthesized: nothing to say
    (root / "m.h5").write_bytes(b"the model trained again")
    assert main(args) == 0
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"fpgaflow emulate: warning: {root / 'm.h5'}: the model file changed since `fpgaflow synth`")
    assert line.endswith("(running the firmware as synthesized)")
    assert firmware_manifest(str(root), "board").path == root / "build" / "emulator"  # `fpgaflow board --project`
    assert capsys.readouterr().err.startswith(f"fpgaflow board: warning: {root / 'm.h5'}: the model file changed")
    assert main([*args[:1], str(root / "build" / "emulator"), *args[2:]]) == 0  # a bare manifest folder: no project
    assert capsys.readouterr().err == ""


def test_outputs_go_to_the_path_given_whatever_the_case_of_its_suffix(tmp_path, manifest, capsys):
    """NumPy appends .npz/.npy unless the name ends in exactly that: emulate printed
    '-> y.NPZ' and wrote y.NPZ.npz."""
    np.save(tmp_path / "x.npy", ROWS)
    for name in ("y.NPZ", "y.Npy"):
        out = tmp_path / name
        assert main(["emulate", str(manifest), "--input", str(tmp_path / "x.npy"), "--output", str(out)]) == 0
        assert f"-> {out} " in capsys.readouterr().out
        assert sorted(p.name for p in tmp_path.glob("y.*")) == sorted({"y.NPZ", name})
        values = np.load(out)["values"] if name.endswith("Z") else np.load(out)
        assert values.ravel().tolist() == [2.0] * 4


@pytest.mark.parametrize(
    "output, message",
    [
        ("out.npy/", "is a folder; name a file to write the outputs to"),  # '[Errno 21] Is a directory', after the run
        ("out.csv", "unknown output format '.csv'; use .npy, .npz or .h5"),
    ],
)
def test_emulate_refuses_an_output_it_cannot_write_before_the_run(tmp_path, manifest, capsys, output, message):
    (tmp_path / "out.npy").mkdir()
    (tmp_path / "x.npy").write_bytes(_npy(ROWS))
    target = tmp_path / output.rstrip("/")
    args = ["emulate", str(manifest), "--input", str(tmp_path / "x.npy"), "--output", str(target)]
    assert main(args) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"fpgaflow emulate: error: {target}: {message}"
