"""The trained example reaches the firmware with its input scaling: ``synth`` exports
the scaling into the manifest, ``emulate`` applies it to raw features, and ``verify``
on raw features is 100% bit-exact against hls4ml's C simulation (the real oracle)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import sim
from fpgaflow.cli import main
from fpgaflow.data import Scaling

PROJECT = Path(__file__).resolve().parents[1] / "firmware_projects" / "jet_tagger"


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    root = tmp_path_factory.mktemp("fw") / "jet_tagger"
    root.mkdir()
    for name in ("project.yml", "generate_jets.py"):
        shutil.copy(PROJECT / name, root / name)
    shutil.copytree(PROJECT / "model", root / "model")
    assert main(["synth", str(root)]) == 0
    return root


@pytest.fixture(scope="module")
def raw_features(synthesized):
    """Raw (unscaled) feature rows spread like the training data."""
    scaling = Scaling.load(synthesized / "model" / "scaling.json")
    rng = np.random.default_rng(11)
    x = scaling.offset + scaling.scale * rng.normal(size=(300, len(scaling.offset)))
    path = synthesized / "raw.npz"
    np.savez(path, x=x)
    return path, x, scaling


def test_manifest_carries_the_training_scaling(synthesized, raw_features):
    _, _, scaling = raw_features
    manifest = sim.load(synthesized / "build" / "emulator").manifest
    block = manifest.meta["preprocessing"]
    assert block["kind"] == "affine" and block["features"] == scaling.features
    assert np.array_equal(manifest.array(block["offset"]), scaling.offset)
    assert np.array_equal(manifest.array(block["scale"]), scaling.scale)


def test_emulate_scales_raw_features_before_the_input_port(synthesized, raw_features, tmp_path):
    path, x, scaling = raw_features
    out = tmp_path / "y.npz"
    assert main(["emulate", str(synthesized), "--input", str(path), "--dataset", "x", "--output", str(out)]) == 0
    net = sim.load(synthesized / "build" / "emulator")
    by_hand = net.predict_raw(net.input_type.to_raw(scaling.apply(x)))
    with np.load(out) as y:
        assert np.array_equal(y["raw"], by_hand.raw)
        unscaled = net.predict_raw(net.input_type.to_raw(x)).raw
        assert not np.array_equal(y["raw"], unscaled)  # the scaling really was applied


@pytest.mark.oracle
def test_verify_on_raw_features_is_bit_exact_against_csim(synthesized, raw_features, capsys):
    path, _, _ = raw_features
    code = main(["verify", str(synthesized), "--input", str(path), "--dataset", "x", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["bit_exact_fraction"] == 1.0 and result["samples"] == 300
    assert result["float_model"]["argmax_agreement"] > 0.95  # the 6-bit firmware agrees with the QKeras model
    assert result["inputs"] == {"input": 300} and result["float_model"]["inputs"] == "input"  # no random inputs
