"""A network project whose firmware settings (HLSConfig, IOType, ClockPeriod...) were
edited after synth: verify compared the old firmware and said nothing, emulate ran it
without a word.  Now the manifest records a digest per setting (``settings_sha256``):
verify refuses and emulate warns, naming the key; edits that do not shape the firmware
(OutputDir, Training, Data, Trace, another spelling of the same type) stay silent."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml
from network_oracle import MODELS, write_project

FILES = {name: MODELS / name for name in ("KERAS_3layer.json", "KERAS_3layer_weights.h5")}
PROJECT = {
    "KerasJson": "KERAS_3layer.json",
    "KerasH5": "KERAS_3layer_weights.h5",
    "IOType": "io_parallel",
    "HLSConfig": {
        "Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": 1},
        "LayerName": {"fc1_relu": {"Precision": {"weight": "ap_fixed<8,3>"}, "ReuseFactor": 1}},
    },
    "Data": {"File": "jets.npz", "Features": [f"f{i}" for i in range(16)]},
    "Training": {"Epochs": 10},
}


def _cli(*argv) -> int:
    from fpgaflow.cli import main

    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    from fpgaflow.data.scaling import Scaling

    config = write_project(tmp_path_factory.mktemp("stale") / "p", PROJECT, FILES)
    features = PROJECT["Data"]["Features"]
    Scaling("fixed", features, np.zeros(16), np.ones(16)).save(config.parent / "scaling.json")  # as train writes it
    assert _cli("synth", config) == 0
    return config.parent


@pytest.fixture
def project(synthesized, tmp_path):
    """A copy of the synthesized project (its build folder too) that a test may edit."""
    root = shutil.copytree(synthesized, tmp_path / "p")
    np.save(tmp_path / "x.npy", np.zeros((3, 16)))
    return root / "config.yml"


def _edit(config, change) -> None:
    cfg = yaml.safe_load(config.read_text())
    change(cfg)
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))


def _emulate(config, capsys) -> str:
    x, y = config.parent.parent / "x.npy", config.parent.parent / "y.npy"
    capsys.readouterr()
    assert _cli("emulate", config.parent, "--input", x, "--output", y) == 0  # runs the firmware as built
    return capsys.readouterr().err


def test_verify_refuses_and_emulate_warns_after_a_precision_edit(project, capsys):
    assert _emulate(project, capsys) == ""  # as synthesized: nothing to say

    def weight(cfg):
        cfg["HLSConfig"]["LayerName"]["fc1_relu"]["Precision"]["weight"] = "ap_fixed<10,3>"

    _edit(project, weight)
    said = (
        f"{project}: HLSConfig.LayerName.fc1_relu.Precision.weight changed since `fpgaflow synth` (the manifest "
        f"records the settings the firmware was built with); re-run `fpgaflow synth {project}`"
    )
    capsys.readouterr()
    assert _cli("verify", project, "--samples", "10") == 2
    assert capsys.readouterr().err.splitlines() == [f"fpgaflow verify: error: {said}"]
    assert _emulate(project, capsys).splitlines() == [
        f"fpgaflow emulate: warning: {said} (running the firmware as synthesized)"
    ]


# (the key the message names, the edit): each reaches hls4ml's conversion
SHAPING_EDITS = [
    ("HLSConfig.Model.ReuseFactor", lambda cfg: cfg["HLSConfig"]["Model"].update(ReuseFactor=2)),
    ("HLSConfig.Model.Precision", lambda cfg: cfg["HLSConfig"]["Model"].update(Precision="ap_fixed<18,8>")),
    ("HLSConfig.Model.Strategy", lambda cfg: cfg["HLSConfig"]["Model"].update(Strategy="Resource")),
    (
        "HLSConfig.LayerType.Dense.ReuseFactor",
        lambda cfg: cfg["HLSConfig"].update(LayerType={"Dense": {"ReuseFactor": 4}}),
    ),
    (  # a removed key is named as the record spells it
        "HLSConfig.LayerName.fc1_relu.precision.weight",
        lambda cfg: cfg["HLSConfig"]["LayerName"].pop("fc1_relu"),
    ),
    ("IOType", lambda cfg: cfg.update(IOType="io_stream")),
    ("Backend", lambda cfg: cfg.update(Backend="Vitis")),
    ("ClockPeriod", lambda cfg: cfg.update(ClockPeriod=4)),
    ("Part", lambda cfg: cfg.update(Part="xcku115-flvb2104-2-i")),
    ("ProjectName", lambda cfg: cfg.update(ProjectName="tagger")),
]


@pytest.mark.parametrize("named, change", SHAPING_EDITS, ids=[named for named, _ in SHAPING_EDITS])
def test_each_setting_that_shapes_the_firmware_is_named(project, capsys, named, change):
    from fpgaflow.project import ProjectError, load_project
    from fpgaflow.stale import refuse_stale_firmware
    from sim.manifest import read_manifest

    _edit(project, change)
    with pytest.raises(ProjectError) as refused:  # what verify and profile call
        refuse_stale_firmware(load_project(project), read_manifest(project.parent / "build" / "emulator"))
    assert f"{project}: {named} changed since `fpgaflow synth`" in str(refused.value), refused.value
    assert named in _emulate(project, capsys)


def test_edits_that_do_not_shape_the_firmware_are_no_alarm(project, capsys):
    from fpgaflow.project import load_project
    from fpgaflow.stale import refuse_stale_firmware
    from sim.manifest import read_manifest

    def unrelated(cfg):
        cfg["OutputDir"] = "./build"  # the same folder, spelt otherwise
        cfg["Data"]["File"] = "other_jets.npz"  # what verify --input and profile read
        cfg["Training"]["Epochs"] = 3
        cfg["Backend"] = "vivado"  # the default, in another case
        hls = cfg["HLSConfig"]
        hls["Model"] = {"ReuseFactor": 1, "Precision": {"default": "fixed<16,6>"}, "TraceOutput": True}
        fc1 = {"Trace": True, "reuse_factor": 1, "Precision": {"weight": "ap_fixed<8,3,AP_TRN,AP_WRAP>"}}
        hls["LayerName"]["fc1_relu"] = fc1  # hls4ml reads ReuseFactor and reuse_factor alike
        hls["LayerName"]["fc2_relu"] = {}  # an empty entry is no entry
        hls["LayerType"] = {"Dense": {"Precision": {}}}

    _edit(project, unrelated)
    notes: list[str] = []
    refuse_stale_firmware(load_project(project), read_manifest(project.parent / "build" / "emulator"), notes.append)
    assert notes == []
    assert _emulate(project, capsys) == ""


def test_a_manifest_from_before_the_record_loads_and_says_it_cannot_check(project, capsys):
    """No false alarm on an old manifest: emulate stays quiet, verify and profile say once
    that the settings cannot be compared (and still refuse a changed model)."""
    from fpgaflow.project import load_project
    from fpgaflow.stale import refuse_stale_firmware
    from sim.manifest import read_manifest, write_manifest

    emulator = project.parent / "build" / "emulator"
    m = read_manifest(emulator)
    old = {k: v for k, v in m.meta.items() if k not in ("id", "format", "format_version", "settings_sha256")}
    write_manifest(emulator, old, m.arrays)
    _edit(project, lambda cfg: cfg["HLSConfig"]["Model"].update(ReuseFactor=2))
    notes: list[str] = []
    refuse_stale_firmware(load_project(project), read_manifest(emulator), notes.append)
    assert notes == [
        f"note: {emulator / 'manifest.json'} has no settings_sha256 (written by an older synth): edits to {project}'s "
        "HLSConfig, IOType, Backend, Part, ClockPeriod or ProjectName since then cannot be detected; re-run "
        f"`fpgaflow synth {project}` to record them"
    ]
    assert _emulate(project, capsys) == ""


def test_every_project_key_is_recorded_or_says_why_not():
    from fpgaflow.network.config import TOP_KEYS
    from fpgaflow.network.firmware_settings import NOT_RECORDED, RECORDED

    assert sorted([*RECORDED, *NOT_RECORDED]) == sorted(TOP_KEYS)


def test_a_default_written_out_or_left_out_is_no_alarm(project, capsys):
    """``ClockPeriod: 5`` or hls4ml's Part written out after a synth without them (or a
    Model ReuseFactor 1 left out, a Strategy re-cased) builds the same firmware: it forced
    a re-synth ("ClockPeriod changed since `fpgaflow synth`")."""
    from fpgaflow.project import load_project
    from fpgaflow.stale import refuse_stale_firmware
    from sim.manifest import read_manifest

    def defaults(cfg):
        cfg.update(ClockPeriod=5, Part="xcvu13p-flga2577-2-e")
        model = cfg["HLSConfig"]["Model"]
        del model["ReuseFactor"], model["Precision"]  # ap_fixed<16,6>: hls4ml's default
        model.update(Strategy="latency", BramFactor=1_000_000_000)

    _edit(project, defaults)
    notes: list[str] = []
    refuse_stale_firmware(load_project(project), read_manifest(project.parent / "build" / "emulator"), notes.append)
    assert notes == []
    assert _emulate(project, capsys) == ""
    _edit(project, lambda cfg: cfg["HLSConfig"]["Model"].update(Strategy="resource", ReuseFactor=2))
    said = "HLSConfig.Model.ReuseFactor, HLSConfig.Model.Strategy changed since"  # not the defaults
    assert said in _emulate(project, capsys)


def _synth(folder, hls):
    cfg = {key: value for key, value in PROJECT.items() if key not in ("Data", "Training")}  # no scaling to check
    config = write_project(folder, {**cfg, "HLSConfig": hls}, FILES)
    assert _cli("synth", config) == 0
    firmware = folder / "build" / "hls" / "firmware"
    files = {str(f.relative_to(firmware)): f.read_bytes() for f in sorted(firmware.rglob("*")) if f.is_file()}
    return config, files


def test_a_layer_setting_equal_to_what_it_inherits_is_no_alarm(tmp_path):
    """``LayerName.fc1_relu.ReuseFactor: 4`` (or a LayerType entry) beside ``Model.ReuseFactor:
    4`` builds the same firmware as the Model's alone (hls4ml writes the same files): it was
    refused as changed, added or deleted.  A LayerName value other than the Model's, or one
    equal to it while a LayerType entry sets another, is a change."""
    from fpgaflow.project import ProjectError, load_project
    from fpgaflow.stale import refuse_stale_firmware
    from sim.manifest import read_manifest

    model = {"Precision": "ap_fixed<16,6>", "ReuseFactor": 4, "Strategy": "Resource"}
    spelt = {
        "Model": model,
        "LayerType": {"Dense": {"ReuseFactor": 4, "Strategy": "resource"}},
        "LayerName": {"fc1_relu": {"ReuseFactor": 4, "Strategy": "Resource"}, "fc2_relu": {"reuse_factor": 4}},
    }
    inherited, inherited_files = _synth(tmp_path / "inherited", {"Model": model})
    written, written_files = _synth(tmp_path / "written", spelt)
    assert written_files == inherited_files  # hls4ml's firmware, file for file
    for project, built in ((inherited, written), (written, inherited)):  # added, and deleted
        refuse_stale_firmware(load_project(project), read_manifest(built.parent / "build" / "emulator"))

    changed, changed_files = _synth(
        tmp_path / "changed", {"Model": model, "LayerName": {"fc1_relu": {"ReuseFactor": 2}}}
    )
    assert changed_files != inherited_files
    with pytest.raises(ProjectError, match=r"config.yml: HLSConfig.LayerName.fc1_relu.ReuseFactor changed since"):
        refuse_stale_firmware(load_project(changed), read_manifest(inherited.parent / "build" / "emulator"))

    def named(hls):  # the keys named for the project file `inherited` edited so, against its synth
        _edit(inherited, lambda cfg: cfg.update(HLSConfig=hls))
        with pytest.raises(ProjectError) as refused:
            refuse_stale_firmware(load_project(inherited), read_manifest(inherited.parent / "build" / "emulator"))
        return str(refused.value).removeprefix(f"{inherited}: ").split(" changed since")[0]

    two = {**model, "ReuseFactor": 2}  # fc1_relu keeps the 4 it was built with: the Model's edit is named
    assert named({"Model": two, "LayerName": {"fc1_relu": {"ReuseFactor": 4}}}) == "HLSConfig.Model.ReuseFactor"
    eight = {"Model": two, "LayerName": {"fc1_relu": {"ReuseFactor": 8}}}
    assert named(eight) == "HLSConfig.LayerName.fc1_relu.ReuseFactor, HLSConfig.Model.ReuseFactor"

    typed = {"Model": model, "LayerType": {"Dense": {"ReuseFactor": 2}}}  # fc1_relu's 4 is the Model's, not its
    typed_config, typed_files = _synth(tmp_path / "typed", typed)
    own = {**typed, "LayerName": {"fc1_relu": {"ReuseFactor": 4}}}
    own_config, own_files = _synth(tmp_path / "own", own)
    assert own_files != typed_files
    with pytest.raises(ProjectError, match=r"config.yml: HLSConfig.LayerName.fc1_relu.ReuseFactor changed since"):
        refuse_stale_firmware(load_project(own_config), read_manifest(typed_config.parent / "build" / "emulator"))


def test_a_layer_precision_variable_equal_to_its_default_is_no_alarm(tmp_path):
    """A LayerName ``Precision`` mapping naming variables with the entry's own ``default``
    type is the string (merge_hls_config gives every variable the default; hls4ml writes
    the same firmware); one naming ``result`` alone is not (the weights keep theirs)."""
    from fpgaflow.project import ProjectError, load_project
    from fpgaflow.stale import refuse_stale_firmware
    from sim.manifest import read_manifest

    def layer(precision):
        return {"Model": PROJECT["HLSConfig"]["Model"], "LayerName": {"fc1_relu": {"Precision": precision}}}

    string, string_files = _synth(tmp_path / "string", layer("ap_fixed<12,4>"))
    spelt = {"default": "ap_fixed<12,4>", "weight": "ap_fixed<12,4>", "result": "fixed<12,4>"}
    mapping, mapping_files = _synth(tmp_path / "mapping", layer(spelt))
    assert mapping_files == string_files
    for project, built in ((string, mapping), (mapping, string)):
        refuse_stale_firmware(load_project(project), read_manifest(built.parent / "build" / "emulator"))
    _edit(mapping, lambda cfg: cfg["HLSConfig"]["LayerName"]["fc1_relu"]["Precision"].update(default="ap_fixed<14,4>"))
    with pytest.raises(ProjectError) as refused:  # weight and result stay as they were built: only default is named
        refuse_stale_firmware(load_project(mapping), read_manifest(mapping.parent / "build" / "emulator"))
    assert f"{mapping}: HLSConfig.LayerName.fc1_relu.Precision.default changed since" in str(refused.value)

    result, result_files = _synth(tmp_path / "result", layer({"result": "ap_fixed<12,4>"}))
    assert result_files != string_files
    with pytest.raises(ProjectError) as refused:
        refuse_stale_firmware(load_project(result), read_manifest(string.parent / "build" / "emulator"))
    named = "HLSConfig.LayerName.fc1_relu.precision.default"  # the result type is the one built; the weights' not
    assert f"{result}: {named} changed since" in str(refused.value)


def test_the_defaults_are_hls4mls():
    """``HLS4ML_DEFAULTS`` (known without importing hls4ml) against hls4ml's own."""
    import hls4ml
    from tensorflow import keras

    from fpgaflow.network.config import BACKENDS
    from fpgaflow.network.firmware_settings import HLS4ML_DEFAULTS
    from sim.fixed import FixedType

    for backend in BACKENDS:
        initial = hls4ml.backends.get_backend(backend).create_initial_config()
        assert (initial["Part"], float(initial["ClockPeriod"])) == (
            HLS4ML_DEFAULTS["Part"],
            HLS4ML_DEFAULTS["ClockPeriod"],
        )
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="fc")])
    generated = hls4ml.utils.config_from_keras_model(model, granularity="name")["Model"]
    for key in ("ReuseFactor", "Strategy", "BramFactor"):
        value = generated[key]
        assert (value.lower() if isinstance(value, str) else value) == HLS4ML_DEFAULTS[f"HLSConfig.Model.{key.lower()}"]
    default = FixedType.parse(generated["Precision"]["default"])
    assert str(default) == HLS4ML_DEFAULTS["HLSConfig.Model.precision.default"]
