"""The example project: its generator makes the jets its Data block reads (jagged
constituents included), and the committed trained model is the declared 6-bit
16->64->32->32->5 QKeras network, pruned, with its scaling beside it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from fpgaflow.data import DataConfig, Scaling, read_dataset
from fpgaflow.project import load_project

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "firmware_projects" / "jet_tagger"


@pytest.fixture(scope="module")
def small_jets(tmp_path_factory):
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("jets") / "jets.root"
    cmd = [sys.executable, str(PROJECT / "generate_jets.py"), "--output", str(out), "--jets", "3000", "--seed", "5"]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


def test_generator_output_reads_through_the_project_data_block(small_jets):
    project = load_project(PROJECT)
    cfg = DataConfig.from_project(project)
    ds = read_dataset(cfg, files=[small_jets])
    assert ds.features.shape == (3000, 16)
    assert ds.feature_names[-4:] == ["c_z[0]", "c_z[1]", "c_z[2]", "c_z[3]"]
    assert ds.classes == ["q", "g", "W", "Z", "t"] and set(ds.labels) == {0, 1, 2, 3, 4}
    assert np.isfinite(ds.features).all()
    # physics sanity: tops are heavier than W/Z, which are heavier than light jets
    mass = {c: np.median(ds.features[ds.labels == i, 0]) for i, c in enumerate(ds.classes)}
    assert mass["t"] > mass["Z"] > mass["W"] > mass["q"]
    # constituent pT fractions: hardest first, padded with 0, summing to at most 1
    cz = ds.features[:, -4:]
    assert (np.diff(cz, axis=1) <= 1e-7).all() and (cz.sum(axis=1) <= 1 + 1e-5).all()


def test_generator_is_deterministic(small_jets, tmp_path):
    import subprocess
    import sys

    import uproot

    again = tmp_path / "again.root"
    cmd = [sys.executable, str(PROJECT / "generate_jets.py"), "--output", str(again), "--jets", "3000", "--seed", "5"]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    # stderr is no terminal here: whole lines, no carriage returns (a CI log kept them all on one line)
    assert done.stderr == "generate_jets: 2000/3000 jets\ngenerate_jets: 3000/3000 jets\n"
    a = uproot.open(small_jets)["jets"].arrays(["j_mass", "c_z"], library="np")
    b = uproot.open(again)["jets"].arrays(["j_mass", "c_z"], library="np")
    assert np.array_equal(a["j_mass"], b["j_mass"])
    assert all(np.array_equal(x, y) for x, y in zip(a["c_z"], b["c_z"], strict=True))


def test_committed_model_is_the_declared_quantized_network():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from qkeras.utils import load_qmodel

    project = load_project(PROJECT)
    model = load_qmodel(str(project.existing("KerasH5")), compile=False)
    dense = [layer for layer in model.layers if type(layer).__name__ == "QDense"]
    assert [d.name for d in dense] == ["fc1", "fc2", "fc3", "output"]
    assert model.input_shape == (None, 16) and [d.units for d in dense] == [64, 32, 32, 5]
    assert all(d.get_quantizers()[0].bits == 6 for d in dense)
    assert [layer.name for layer in model.layers if type(layer).__name__ == "QActivation"] == [
        "relu1",
        "relu2",
        "relu3",
    ]
    kernels = [d.get_weights()[0] for d in dense]
    sparsity = sum((k == 0).sum() for k in kernels) / sum(k.size for k in kernels)
    assert sparsity >= 0.45  # pruned to the configured 50% (quantization adds a few zeros)
    scaling = Scaling.load(project.resolve(project.config["Preprocessing"]))
    assert len(scaling.features) == 16 and scaling.features[0] == "j_mass"
    history = json.loads((PROJECT / "model" / "history.json").read_text())
    assert history["validation_accuracy"] > 0.65  # a 5-class task with overlapping classes
