"""Scaling: fitted parameters, their file, and the manifest block that the emulator
(``sim.preprocessing``) applies exactly as training did."""

from __future__ import annotations

import numpy as np
import pytest

from fpgaflow.data import DataError, Scaling, fit_scaling
from sim.manifest import ManifestError, read_manifest, write_manifest
from sim.preprocessing import apply_preprocessing

RNG = np.random.default_rng(3)
X = RNG.normal(loc=[5.0, -2.0, 0.0], scale=[3.0, 0.5, 0.0], size=(2000, 3))  # last feature constant
NAMES = ["a", "b", "c"]


def test_standard_scaling_gives_zero_mean_unit_std_and_leaves_constants():
    s = fit_scaling("standard", X, NAMES)
    y = s.apply(X)
    np.testing.assert_allclose(y[:, :2].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(y[:, :2].std(axis=0), 1, rtol=1e-12)
    assert s.scale[2] == 1.0 and np.all(y[:, 2] == 0)


def test_minmax_scaling_maps_onto_minus_one_one():
    y = fit_scaling("minmax", X, NAMES).apply(X)
    np.testing.assert_allclose(y[:, :2].min(axis=0), -1)
    np.testing.assert_allclose(y[:, :2].max(axis=0), 1)


def test_fixed_scaling_and_its_errors():
    s = fit_scaling({"Offset": [1, 2, 3], "Scale": 2}, X, NAMES)
    np.testing.assert_array_equal(s.apply(X), (X - [1, 2, 3]) / 2)
    with pytest.raises(DataError, match=r"Offset: 2 values for 3 features \(a, b, c\)"):
        fit_scaling({"Offset": [1, 2], "Scale": 1}, X, NAMES)
    with pytest.raises(DataError, match=r"zero for b"):
        fit_scaling({"Offset": 0, "Scale": [1, 0, 1]}, X, NAMES)


def test_scaling_file_round_trip(tmp_path):
    s = fit_scaling("standard", X, NAMES, fill_non_finite=-1.0)
    s.save(tmp_path / "scaling.json")
    t = Scaling.load(tmp_path / "scaling.json")
    assert t.features == NAMES and t.kind == "standard" and t.fill_non_finite == -1.0
    np.testing.assert_array_equal(t.offset, s.offset)  # JSON keeps float64 exactly (repr round trip)
    np.testing.assert_array_equal(t.scale, s.scale)
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(DataError, match=r"bad\.json: not an fpgaflow scaling file"):
        Scaling.load(tmp_path / "bad.json")


def test_manifest_preprocessing_matches_training_scaling_bit_for_bit(tmp_path):
    s = fit_scaling("standard", X, NAMES, fill_non_finite=0.5)
    block, arrays = s.manifest_block()
    write_manifest(tmp_path, {"kind": "network", "preprocessing": block}, arrays)
    manifest = read_manifest(tmp_path)
    x = X.copy()
    x[0, 0], x[1, 1] = np.nan, -np.inf
    got = apply_preprocessing(manifest, x)
    want = s.apply(x)
    assert np.array_equal(got, want)  # identical float64, so identical firmware inputs
    assert got[0, 0] == (0.5 - s.offset[0]) / s.scale[0]
    with pytest.raises(ManifestError, match=r"preprocessing is for 3 features, the input has 2"):
        apply_preprocessing(manifest, X[:, :2])


def test_manifest_without_preprocessing_passes_inputs_through(tmp_path):
    write_manifest(tmp_path, {"kind": "network"}, {})
    assert np.array_equal(apply_preprocessing(read_manifest(tmp_path), X), X)


def _project(tmp_path, **config):
    from fpgaflow.project import Project

    return Project("network", tmp_path / "project.yml", {"KerasH5": "model.h5", **config})


def test_own_model_with_data_and_no_training_needs_no_fitted_scaling(tmp_path):
    """A project with its own model and a Data block (for profile) but no Training block:
    synth refused it for want of scaling.json ("run fpgaflow train"), which train cannot
    write without a Training block.  ``Scaling: none`` means raw features: no
    preprocessing; any other scaling is refused saying how to give it."""
    from fpgaflow.data.scaling import project_preprocessing

    data = {"File": "data.npz", "Features": "X", "Labels": "y"}
    assert project_preprocessing(_project(tmp_path, Data={**data, "Scaling": "none"})) is None
    for scaling, given in (
        (None, "'standard'"),
        ("minmax", "'minmax'"),
        ({"Offset": 1, "Scale": 2}, "{Offset, Scale}"),
    ):
        block = data if scaling is None else {**data, "Scaling": scaling}
        with pytest.raises(DataError) as err:
            project_preprocessing(_project(tmp_path, Data=block))
        assert str(err.value) == (
            f"{tmp_path / 'project.yml'}: Data.Scaling is {given}, but the project has no Training block, so no "
            f"scaling was fitted ({tmp_path / 'scaling.json'} does not exist) and `fpgaflow train` cannot fit one: if "
            "the model takes the raw features, set Data.Scaling: none; if it was trained on scaled features, name a "
            "scaling file with those numbers with the Preprocessing key (its format: docs/training.md), or add a "
            "Training block and run `fpgaflow train`"
        )
    # a project that trains still needs its training's scaling
    with pytest.raises(DataError, match=r"scaling\.json does not exist; run `fpgaflow train") as refused:
        trains = _project(tmp_path, Data={**data, "Scaling": "none"}, Training={})
        project_preprocessing(trains)
    assert f"run `fpgaflow train {trains.file}`" in str(refused.value)  # the file: a folder may hold two
    # the scaling a model was trained with, written by hand, as docs/training.md describes it
    (tmp_path / "mine.json").write_text(
        '{"format": "fpgaflow-scaling", "features": ["X[0]", "X[1]"], "offset": [1, 2], "scale": [3, 4]}'
    )
    meta, arrays = project_preprocessing(_project(tmp_path, Data=data, Preprocessing="mine.json"))
    assert meta["features"] == ["X[0]", "X[1]"] and arrays["preprocessing_scale"].tolist() == [3, 4]
