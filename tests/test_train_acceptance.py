"""Acceptance (slow): ``fpgaflow train`` on the example project from scratch (data
generated, model trained with its seed), then ``synth`` and ``verify``: 100% bit-exact
against hls4ml's C simulation, and the retrained model equals the committed one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fpgaflow.cli import main

PROJECT = Path(__file__).resolve().parents[1] / "firmware_projects" / "jet_tagger"


@pytest.mark.slow
@pytest.mark.oracle
def test_train_synth_verify_jet_tagger_from_scratch(tmp_path, capsys):
    from qkeras.utils import load_qmodel

    root = tmp_path / "jet_tagger"
    root.mkdir()
    for name in ("project.yml", "generate_jets.py"):
        shutil.copy(PROJECT / name, root / name)
    assert main(["train", str(root), "--verbose", "0"]) == 0
    history = json.loads((root / "model" / "history.json").read_text())
    assert history["validation_accuracy"] > 0.65
    fresh = load_qmodel(str(root / "model" / "jet_tagger.h5"), compile=False).get_weights()
    committed = load_qmodel(str(PROJECT / "model" / "jet_tagger.h5"), compile=False).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(fresh, committed, strict=True)), "same seed, same weights"
    assert main(["synth", str(root)]) == 0
    capsys.readouterr()
    assert main(["verify", str(root), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bit_exact_fraction"] == 1.0 and result["inputs"] == {"random": 10_000, "project_data": 10_000}
    assert result["float_model"]["inputs"] == "project_data" and result["float_model"]["argmax_agreement"] > 0.95
