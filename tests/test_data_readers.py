"""Readers: NPZ, HDF5 and ROOT (TTree and RNTuple) columns, jagged padding with a
mask, chunked reading, label forms, and errors that name what exists."""

from __future__ import annotations

import sys
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest
import uproot

from fpgaflow.data import DataConfig, DataError, fit_scaling, read_dataset
from fpgaflow.data.dataset import generate_missing

RNG = np.random.default_rng(7)
N = 1000
PT = ak.Array([list(RNG.uniform(1, 10, size=k)) for k in RNG.integers(0, 7, size=N)])


def _cfg(tmp_path: Path, **block) -> DataConfig:
    return DataConfig.from_mapping(block, tmp_path)


def _root_file(path: Path, tree: str = "Events", rntuple: bool = False) -> dict:
    cols = {"pt": PT, "mass": RNG.normal(80, 10, N), "label": RNG.integers(0, 3, N).astype(np.int32)}
    with uproot.recreate(path) as f:
        if rntuple:
            f[tree] = cols
        else:
            f.mktree(tree, {"pt": "var * float64", "mass": np.float64, "label": np.int32})
            half = N // 2  # two baskets, so chunks cross basket boundaries
            f[tree].extend({k: v[:half] for k, v in cols.items()})
            f[tree].extend({k: v[half:] for k, v in cols.items()})
    return cols


def _expected_padded(length: int, pad: float) -> tuple[np.ndarray, np.ndarray]:
    values = np.full((N, length), pad)
    mask = np.zeros((N, length))
    for i, row in enumerate(ak.to_list(PT)):
        k = min(len(row), length)
        values[i, :k] = row[:k]
        mask[i, :k] = 1
    return values, mask


@pytest.mark.parametrize("rntuple", [False, True], ids=["TTree", "RNTuple"])
def test_root_jagged_branch_padded_and_truncated_with_mask(tmp_path, rntuple):
    cols = _root_file(tmp_path / "d.root", rntuple=rntuple)
    cfg = _cfg(
        tmp_path,
        File="d.root",
        Features=["mass", {"Name": "pt", "Length": 4, "Pad": -1.5, "Mask": True}],
        Labels="label",
        ChunkSize=137,
    )
    ds = read_dataset(cfg)
    values, mask = _expected_padded(4, -1.5)
    assert ds.feature_names == ["mass", "pt[0]", "pt[1]", "pt[2]", "pt[3]"] + [f"pt_mask[{i}]" for i in range(4)]
    np.testing.assert_allclose(ds.features[:, 0], cols["mass"].astype(np.float32))
    np.testing.assert_array_equal(ds.features[:, 1:5], values.astype(np.float32))
    np.testing.assert_array_equal(ds.features[:, 5:], mask)
    np.testing.assert_array_equal(ds.labels, cols["label"])
    assert ds.classes == ["class0", "class1", "class2"]
    # some rows really were truncated and some really padded
    counts = ak.to_numpy(ak.num(PT))
    assert (counts > 4).any() and (counts < 4).any()


def test_chunk_size_does_not_change_the_result(tmp_path):
    _root_file(tmp_path / "d.root")
    block = dict(File="d.root", Features=["mass", {"Name": "pt", "Length": 3}], Labels="label")
    one = read_dataset(_cfg(tmp_path, **block, ChunkSize=10**6))
    many = read_dataset(_cfg(tmp_path, **block, ChunkSize=33))
    np.testing.assert_array_equal(one.features, many.features)
    np.testing.assert_array_equal(one.labels, many.labels)


def test_max_entries_and_several_files(tmp_path):
    _root_file(tmp_path / "a.root")
    _root_file(tmp_path / "b.root")
    block = dict(File="*.root", Features=["mass"], Labels="label", ChunkSize=300)
    assert len(read_dataset(_cfg(tmp_path, **block)).features) == 2 * N
    assert len(read_dataset(_cfg(tmp_path, **block, MaxEntries=1234)).features) == 1234


def test_root_missing_branch_names_file_and_existing_branches(tmp_path):
    _root_file(tmp_path / "d.root")
    cfg = _cfg(tmp_path, File="d.root", Features=["mass", "energy"], Labels="label")
    with pytest.raises(
        DataError, match=r"d\.root: no branch named 'energy' in TTree 'Events'; it holds: (?=.*mass)(?=.*pt)"
    ):
        read_dataset(cfg)
    cfg = _cfg(tmp_path, File="d.root", Features=["mass", "energy", "eta"], Labels="label")
    with pytest.raises(DataError, match=r"d\.root: no branches named 'energy', 'eta' in TTree"):  # was 'branchs'
        read_dataset(cfg)


def test_root_wrong_tree_and_jagged_without_length(tmp_path):
    _root_file(tmp_path / "d.root")
    with pytest.raises(DataError, match=r"no TTree named 'Jets'; it holds: Events"):
        read_dataset(_cfg(tmp_path, File="d.root", Tree="Jets", Features=["mass"], Labels="label"))
    with pytest.raises(DataError, match=r"'pt' is jagged .* up to 6 .*Length"):
        read_dataset(_cfg(tmp_path, File="d.root", Features=["pt"], Labels="label"))


def test_npz_two_dimensional_features_and_class_indices(tmp_path):
    x = RNG.normal(size=(N, 5))
    y = RNG.integers(0, 4, N)
    np.savez(tmp_path / "d.npz", X=x, y=y)
    ds = read_dataset(_cfg(tmp_path, File="d.npz", Features="X", Labels="y", Classes=list("abcd"), ChunkSize=99))
    np.testing.assert_allclose(ds.features, x.astype(np.float32))
    assert ds.feature_names == [f"X[{i}]" for i in range(5)]
    np.testing.assert_array_equal(ds.labels, y)
    assert ds.classes == list("abcd")
    with pytest.raises(DataError, match=r"d\.npz: no array named 'Z'; it holds: X, y"):
        read_dataset(_cfg(tmp_path, File="d.npz", Features="Z", Labels="y"))
    with pytest.raises(DataError, match=r"2 classes named, but labels go up to 3"):
        read_dataset(_cfg(tmp_path, File="d.npz", Features="X", Labels="y", Classes=["a", "b"]))


def test_hdf5_datasets_in_groups_with_one_hot_and_per_class_labels(tmp_path):
    x = RNG.normal(size=(N, 3))
    y = RNG.integers(0, 3, N)
    onehot = np.eye(3)[y]
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_dataset("jets/features", data=x)  # also found as "/jets/features"
        f.create_dataset("jets/onehot", data=onehot)
        for i, name in enumerate(["j_g", "j_q", "j_t"]):
            f.create_dataset(name, data=onehot[:, i])
    ds = read_dataset(_cfg(tmp_path, File="d.h5", Features="/jets/features", Labels="jets/onehot", ChunkSize=64))
    np.testing.assert_allclose(ds.features, x.astype(np.float32))
    np.testing.assert_array_equal(ds.labels, y)
    ds = read_dataset(_cfg(tmp_path, File="d.h5", Features="jets/features", Labels=["j_g", "j_q", "j_t"]))
    np.testing.assert_array_equal(ds.labels, y)
    assert ds.classes == ["j_g", "j_q", "j_t"]
    with pytest.raises(DataError, match=r"d\.h5: no dataset named 'features'; it holds: .*jets/features"):
        read_dataset(_cfg(tmp_path, File="d.h5", Features="features", Labels="j_g"))


def test_hdf5_variable_length_dataset_is_padded_like_a_jagged_branch(tmp_path):
    with h5py.File(tmp_path / "d.h5", "w") as f:
        ds = f.create_dataset("pt", (N,), dtype=h5py.vlen_dtype(np.float64))
        for i, row in enumerate(ak.to_list(PT)):
            ds[i] = np.asarray(row, dtype=np.float64)
        f.create_dataset("label", data=np.zeros(N, dtype=int))
    got = read_dataset(
        _cfg(tmp_path, File="d.h5", Features=[{"Name": "pt", "Length": 5, "Mask": True}], Labels="label")
    )
    values, mask = _expected_padded(5, 0.0)
    np.testing.assert_array_equal(got.features, np.concatenate([values, mask], axis=1).astype(np.float32))


@pytest.mark.parametrize(
    "policy, rows, fill", [("drop", N - 3, None), ("zero", N, 0.0), (-9.0, N, -9.0)], ids=["drop", "zero", "number"]
)
def test_non_finite_policies(tmp_path, policy, rows, fill):
    x = RNG.normal(size=(N, 2))
    x[5, 0], x[6, 1], x[7, 0] = np.nan, np.inf, -np.inf
    np.savez(tmp_path / "d.npz", X=x, y=np.arange(N) % 2)
    ds = read_dataset(_cfg(tmp_path, File="d.npz", Features="X", Labels="y", NonFinite=policy))
    assert len(ds.features) == rows == len(ds.labels)
    assert ds.non_finite.nan == {"X[0]": 1} and ds.non_finite.inf == {"X[1]": 1, "X[0]": 1}
    assert np.isfinite(ds.features).all()
    if fill is not None:
        assert ds.features[5, 0] == ds.features[6, 1] == ds.features[7, 0] == fill
    else:
        assert 5 not in ds.labels[:5] and ds.non_finite.rows_dropped == 3


def test_non_finite_error_reports_counts_per_column(tmp_path):
    x = RNG.normal(size=(N, 2))
    x[:4, 1] = np.nan
    x[9, 1] = np.inf
    np.savez(tmp_path / "d.npz", X=x, y=np.zeros(N, int))
    with pytest.raises(DataError, match=r"5 NaN/inf feature values \(X\[1\]: 4 NaN, 1 inf\).*NonFinite"):
        read_dataset(_cfg(tmp_path, File="d.npz", Features="X", Labels="y", ChunkSize=100))


def test_bad_labels_and_config_keys(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.zeros((4, 2)), y=np.array([0, 1.5, 1, 0]), oh=np.array([[1, 1], [0, 1]] * 2))
    with pytest.raises(DataError, match=r"'y' must hold class indices"):
        read_dataset(_cfg(tmp_path, File="d.npz", Features="X", Labels="y"))
    with pytest.raises(DataError, match=r"2 entries .* not one-hot"):
        read_dataset(_cfg(tmp_path, File="d.npz", Features="X", Labels="oh"))
    with pytest.raises(DataError, match=r"unknown key\(s\) Feature \(did you mean Features\?\); known: "):
        _cfg(tmp_path, File="d.npz", Feature="X")
    with pytest.raises(DataError, match=r"unknown key\(s\) Zzz; known: "):  # like no key: names none
        _cfg(tmp_path, File="d.npz", Zzz="X")
    with pytest.raises(DataError, match=r"ChunkSize: expected a positive whole number, got '1e5'"):
        _cfg(tmp_path, File="d.npz", Features="X", ChunkSize="1e5")
    with pytest.raises(DataError, match=r"NonFinite: 'ignore' is not a policy"):
        _cfg(tmp_path, File="d.npz", Features="X", NonFinite="ignore")
    with pytest.raises(DataError, match=r"File: .*missing\.npz does not exist"):
        read_dataset(_cfg(tmp_path, File="missing.npz", Features="X"))
    with pytest.raises(DataError, match=r"unknown data format '\.csv'"):
        (tmp_path / "d.csv").write_text("1,2\n")
        read_dataset(_cfg(tmp_path, File="d.csv", Features="X"))


def test_generator_runs_when_the_data_file_is_missing(tmp_path):
    gen = tmp_path / "gen.py"
    gen.write_text(
        "import sys, numpy as np\n"
        "out = sys.argv[sys.argv.index('--output') + 1]\n"
        "np.savez(out, X=np.ones((10, 2)), y=np.arange(10) % 2)\n"
    )
    cfg = _cfg(tmp_path, File="data/d.npz", Features="X", Labels="y", Generator="gen.py")
    (tmp_path / "data").mkdir()
    assert generate_missing(cfg) is True
    assert generate_missing(cfg) is False  # only when missing
    assert read_dataset(cfg).features.shape == (10, 2)
    assert sys.executable  # the generator ran under this interpreter


@pytest.mark.parametrize("suffix", [".root", ".h5"])
def test_reading_streams_in_chunks_of_at_most_chunk_size(tmp_path, monkeypatch, suffix):
    """Only ChunkSize entries of the selected columns are asked of the file at a time."""
    import fpgaflow.data.hdf5 as hdf5_mod
    import fpgaflow.data.root as root_mod

    path = tmp_path / f"d{suffix}"
    if suffix == ".root":
        _root_file(path)
        cls = root_mod.RootSource
    else:
        with h5py.File(path, "w") as f:
            f.create_dataset("mass", data=RNG.normal(size=N))
            f.create_dataset("label", data=np.zeros(N, int))
        cls = hdf5_mod.Hdf5Source
    sizes: list[int] = []
    original = cls.read

    def spy(self, names, start, stop):
        sizes.append(stop - start)
        return original(self, names, start, stop)

    monkeypatch.setattr(cls, "read", spy)
    ds = read_dataset(_cfg(tmp_path, File=path.name, Features=["mass"], Labels="label", ChunkSize=128))
    assert len(ds.features) == N and sum(sizes) == N
    assert max(sizes) == 128 and len(sizes) == -(-N // 128)


@pytest.mark.parametrize(
    "block, message",
    [
        ({"Tree": "jets"}, r"p\.yml: Data\.Tree: names a ROOT TTree, but the data file\(s\) are \.npz"),
        ({"Mask": "false"}, r"p\.yml: Data\.Mask: expected true or false, got 'false'"),
        ({"Features": [{"Name": "c", "Length": 4, "Mask": "false"}]}, r"Data\.Features\[0\]\.Mask: expected true"),
        ({"Scaling": {"Offset": "abc", "Scale": 1}}, r"p\.yml: Data\.Scaling\.Offset: expected a number .*'abc'"),
        ({"Scaling": {"Offset": 0, "Scale": [1, "x"]}}, r"p\.yml: Data\.Scaling\.Scale: expected a number"),
        ({"Labels": ["is_c", "is_a", "is_b"], "Classes": ["a", "b", "c"]},
         r"Classes: \[a, b, c\] contradicts .* is_c set \(class 0\) would be called 'a'.* \(\[c, a, b\]\)"),
        ({"Labels": ["is_a", "is_b"], "Classes": ["a", "b", "c"]}, r"Classes: 3 names \(a, b, c\) for 2 per-class"),
    ],
)  # fmt: skip
def test_values_that_would_be_wrong_or_ignored_are_refused_naming_the_key(tmp_path, block, message):
    base = {"File": "d.npz", "Features": "X", "Labels": "y"}
    with pytest.raises(DataError, match=message):
        DataConfig.from_mapping({**base, **block}, tmp_path, "p.yml: Data")


def test_class_names_consistent_with_the_label_columns_are_kept(tmp_path):
    cfg = _cfg(tmp_path, File="d.root", Tree="t", Features="X", Labels=["j_g", "j_q", "j_w"], Classes=["g", "q", "W"])
    assert cfg.classes == ["g", "q", "W"] and cfg.tree == "t"
    cfg = _cfg(tmp_path, File="d.npz", Features="X", Labels=["j_g", "j_q"], Classes=["gluon", "quark"])
    assert cfg.classes == ["gluon", "quark"]  # names not in the columns go by position
    assert _cfg(tmp_path, File="d.npz", Features=[{"Name": "c", "Length": 2, "Mask": True}]).features[0].mask


def test_fixed_scaling_errors_at_train_time_name_the_file(tmp_path):
    with pytest.raises(DataError, match=r"p\.yml: Data\.Scaling\.Offset: 2 values for 3 features"):
        fit_scaling({"Offset": [1, 2], "Scale": 1}, np.zeros((2, 3)), ["a", "b", "c"], where="p.yml: Data")


WRONG_TYPES = {  # every Data key, given values of kinds it does not take
    "File": [5, {"a": "b"}, True, None, [5], ["d.npz", {"b": 1}], "", []],
    "Tree": [5, ["t"], {"a": 1}, True, None, ""],
    "Features": [5, True, None, [5], [{"Name": 5}], [{"Name": "c", "Length": True}], [], [""], [["X"]]],
    "Labels": [5, {"a": "b"}, True, None, [5], [""]],
    "Classes": [5, "abc", {"a": 1}, True, None, [True, False], [[1]], []],
    "NonFinite": [True, [1], {"a": 1}, None, "x"],
    "Scaling": [5, [1], True, None],
    "ChunkSize": ["x", 1.5, True, None, [1]],
    "MaxEntries": ["x", True, None, 0],
    "Generator": [5, ["g.py"], True, None, {"a": 1}],
    "Pad": ["x", True, [1], None, {"a": 1}],
    "Mask": ["false", 1, None, [True]],
}


@pytest.mark.parametrize(
    "key, value", [(k, v) for k, values in WRONG_TYPES.items() for v in values] + [("Files", {"a": "b"}), ("Files", 5)]
)
def test_every_data_key_of_the_wrong_type_is_one_line_naming_it(tmp_path, key, value):
    """``Labels: 5`` and ``Features: 5`` were "TypeError: 'int' object is not iterable";
    ``Files: {a: b}`` ran the Generator for a file named 'a', then refused format ''."""
    block = {"File": "d.npz", "Features": "X", "Labels": "y", key: value}
    if key == "Files":
        del block["File"]
    with pytest.raises(DataError) as info:
        DataConfig.from_mapping(block, tmp_path, "p.yml: Data")
    message = str(info.value)
    assert message.startswith(f"p.yml: Data.{key}") and "\n" not in message, message


def test_file_and_files_together_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"p\.yml: Data: give File or Files, not both"):
        DataConfig.from_mapping({"File": "a.npz", "Files": ["b.npz"], "Features": "X"}, tmp_path, "p.yml: Data")
