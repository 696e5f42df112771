"""Acceptance: the emulator is bit-exact against hls4ml's C simulation on 10,000
inputs (across each input type's whole range, edges and off-grid values included) for
the three shared models: KERAS_3layer, qkeras_3layer (with its own hls4ml YAML
config) and KERAS_conv1d_small.  Every layer's output is compared, not only the last."""

from __future__ import annotations

import pytest
import yaml
from network_oracle import MODELS, synth_and_build, write_project

pytestmark = pytest.mark.oracle

N_SAMPLES = 10_000


def _keras_project(tmp, name: str) -> object:
    config = {
        "KerasJson": f"{name}.json",
        "KerasH5": f"{name}_weights.h5",
        "Backend": "Vivado",
        "IOType": "io_parallel",
    }
    files = {f"{name}.json": MODELS / f"{name}.json", f"{name}_weights.h5": MODELS / f"{name}_weights.h5"}
    return write_project(tmp / name, config, files)


@pytest.mark.parametrize("name", ["KERAS_3layer", "KERAS_conv1d_small"])
def test_keras_model_bit_exact(tmp_path_factory, name):
    oracle = synth_and_build(_keras_project(tmp_path_factory.mktemp("net"), name))
    result = oracle.compare(oracle.random_inputs(N_SAMPLES, seed=1))
    assert result["first_divergence"] is None, result["first_divergence"]
    assert result["bit_exact_fraction"] == 1.0
    assert result["samples"] == N_SAMPLES
    assert result["predict_bit_exact"] == {"scipy": True, "numpy": True}


def test_qkeras_model_with_its_yaml_config_bit_exact(tmp_path_factory):
    folder = tmp_path_factory.mktemp("net") / "qkeras_3layer"
    config = yaml.safe_load((MODELS / "qkeras_3layer_config.yml").read_text())  # the file as hls4ml users write it
    files = {config["KerasJson"]: MODELS / "qkeras_3layer.json", config["KerasH5"]: MODELS / "qkeras_3layer_weights.h5"}
    for rel, src in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(src.read_bytes())
    (folder / "qkeras_3layer_config.yml").write_bytes((MODELS / "qkeras_3layer_config.yml").read_bytes())
    oracle = synth_and_build(folder / "qkeras_3layer_config.yml")
    # the user's precisions reached the firmware (and so the manifest)
    by_name = {layer.name: layer for layer in oracle.net.layers}
    assert by_name["fc1"].spec["weight_type"] == "ap_fixed<6,1>"
    assert str(by_name["relu1"].result_type) == "ap_fixed<7,1,AP_RND_CONV,AP_SAT>"  # from the YAML
    assert by_name["softmax"].spec["exp_table_type"] == "ap_fixed<18,8>"
    assert oracle.project.build_dir.name == "qkeras_3layer"  # OutputDir, relative to the project file
    result = oracle.compare(oracle.random_inputs(N_SAMPLES, seed=2))
    assert result["first_divergence"] is None, result["first_divergence"]
    assert result["bit_exact_fraction"] == 1.0
    assert result["predict_bit_exact"] == {"scipy": True, "numpy": True}
