"""The BDT emulator's own guards: manifests it must refuse, inputs it must refuse, and
its direct float->raw input cast against sim.fixed's port of the ap_fixed constructor
(itself proven against the g++-compiled headers in tests/test_fixed_oracle.py)."""

from __future__ import annotations

import numpy as np
import pytest
from bdt_helpers import one_tree_manifest

import sim
from fpgaflow.cli import main
from sim.bdt import input_raw
from sim.fixed import FixedType
from sim.manifest import ManifestError


def test_a_small_tree_and_its_split(tmp_path):
    bdt = sim.load(one_tree_manifest(tmp_path))
    out = bdt.predict(np.array([[0.4375, 9.0], [0.5, -9.0]]))
    assert out.values[:, 0].tolist() == [1.0, 2.0]  # x == threshold goes right for "<"


def test_malformed_trees_are_refused(tmp_path):
    with pytest.raises(ManifestError, match="tree 0 output 0: node 0 has a bad child 1"):
        sim.load(one_tree_manifest(tmp_path / "a", children_right=np.array([[[1, -1, -1]]], dtype=np.int32)))
    four = {
        "feature": np.array([[[0, -2, -2, -2]]], dtype=np.int32),
        "children_left": np.array([[[1, -1, -1, -1]]], dtype=np.int32),
        "children_right": np.array([[[2, -1, -1, -1]]], dtype=np.int32),
        "threshold_raw": np.zeros((1, 1, 4), dtype=np.int64),
        "value_raw": np.zeros((1, 1, 4), dtype=np.int64),
        "n_nodes": np.array([[4]], dtype=np.int32),
    }
    with pytest.raises(ManifestError, match="tree 0 output 0: 1 nodes are unreachable"):
        sim.load(one_tree_manifest(tmp_path / "b", **four))


def test_unknown_split_and_order_are_refused(tmp_path):
    with pytest.raises(ManifestError, match="splitting_convention '>'"):
        sim.load(one_tree_manifest(tmp_path / "a", splitting_convention=">"))
    with pytest.raises(ManifestError, match="reduction.order 'random'"):
        sim.load(one_tree_manifest(tmp_path / "b", reduction={"order": "random", "normalise": True}))


def test_a_64_bit_unsigned_sum_is_refused(tmp_path):
    """A score past 2**63 was "OverflowError: Python int too large to convert to C long"."""
    types = {k: "ap_ufixed<64,40>" if k in ("score", "sum") else "ap_fixed<8,4>" for k in ("input", "threshold",
             "score", "weight", "sum")}  # fmt: skip
    with pytest.raises(ManifestError, match="sum type ap_ufixed<64,40>: 64-bit unsigned scores are not supported"):
        sim.load(one_tree_manifest(tmp_path, types=types))


def test_bad_inputs_are_named(tmp_path):
    bdt = sim.load(one_tree_manifest(tmp_path))
    with pytest.raises(ValueError, match="takes 2 features"):
        bdt.predict(np.zeros(2))
    with pytest.raises(ValueError, match="NaN"):
        bdt.predict(np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match="must be integers"):
        bdt.predict_raw(np.zeros((1, 2)))


def _damaged(content: bytes, how: str) -> bytes:
    if how == "truncated":
        return content[: len(content) // 2]
    if how == "emptied":
        return b""
    i = content.index(np.array([[[0, 16, 32]]]).tobytes())  # inside value_raw's data: its CRC-32 fails
    return content[:i] + bytes([content[i] ^ 0x10]) + content[i + 1 :]


@pytest.mark.parametrize(
    "how, message",
    [
        ("truncated", "corrupt: not a zip archive (truncated?)"),  # was zipfile.BadZipFile: File is not a zip file
        ("bit-flipped", "corrupt (BadZipFile: Bad CRC-32 for file 'value_raw.npy')"),  # was the same, a traceback
        ("emptied", "corrupt: the file is empty (0 bytes)"),  # was EOFError: No data left in file
        ("removed", "missing"),  # was 'content does not match its id (edited or corrupted)'
    ],
)
def test_a_damaged_arrays_file_is_named_with_what_to_do(tmp_path, capsys, how, message):
    arrays = one_tree_manifest(tmp_path) / "arrays.npz"
    if how == "removed":
        arrays.unlink()
    else:
        arrays.write_bytes(_damaged(arrays.read_bytes(), how))
    with pytest.raises(ManifestError) as err:
        sim.load(tmp_path)
    assert str(err.value) == f"{arrays}: {message}; re-run `fpgaflow synth` to export the manifest again"
    np.save(tmp_path / "x.npy", np.zeros((1, 2)))
    assert (
        main(["emulate", str(tmp_path), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 2
    )
    assert capsys.readouterr().err == f"fpgaflow emulate: error: {err.value}\n"


@pytest.mark.parametrize(
    "text",
    [
        "ap_fixed<18,8>",
        "ap_fixed<10,3,AP_RND,AP_SAT>",
        "ap_ufixed<12,4,AP_RND>",
        "ap_ufixed<8,3,AP_TRN,AP_SAT>",
        "ap_fixed<32,16,AP_RND>",
        "ap_fixed<16,6,AP_RND_CONV,AP_SAT>",
        "ap_fixed<8,10>",
        "ap_fixed<10,4,AP_RND,AP_SAT>",
        "ap_fixed<12,4,AP_TRN_ZERO>",
        "ap_fixed<12,4,AP_RND_ZERO>",
        "ap_fixed<12,4,AP_RND_INF,AP_SAT>",
        "ap_fixed<12,4,AP_RND_MIN_INF>",
    ],
)
def test_direct_input_cast_equals_the_constructor_port(text):
    t = FixedType.parse(text)
    rng = np.random.default_rng(0)
    lsb = t.lsb
    ties = np.arange(-3000, 3000) * lsb / 2  # exact ties (and the grid)
    x = np.concatenate(
        [
            rng.normal(size=20_000) * 4 * max(abs(t.max_value), 1),
            ties,
            # one double either side of each: (0.5 - 2**-54) LSB rounds to 0, which
            # floor(y + 0.5) in float64 gets wrong (the sum rounds up to 1)
            np.nextafter(ties, np.inf),
            np.nextafter(ties, -np.inf),
            np.array(
                [t.max_value, t.min_value, t.max_value + lsb / 2, t.min_value - lsb / 2, 0.0, -0.0, 1e-300, -1e-300]
            ),
        ]
    )
    assert np.array_equal(input_raw(x, t), t.to_raw(x))
