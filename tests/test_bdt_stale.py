"""A BDT project whose conifer settings (ClockPeriod, Unroll, XilinxPart, ProjectName)
were edited after synth: the stale check compared only the model file, the backend and
the types, so verify passed against firmware built with the old values and emulate ran
it without a word.  Now synth records a digest per setting in the manifest
(``settings_sha256``, as a network's): verify refuses and emulate warns, naming the key;
edits that do not shape the firmware (OutputDir, a default written out, another
spelling of the same name) stay silent, and an older manifest loads with a note."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml
from bdt_helpers import N_FEATURES, save_model, xgb_binary

from fpgaflow.cli import main

PROJECT = {"Backend": "xilinxhls", "Precision": "ap_fixed<18,9>"}


def _synth(folder, **keys):
    key, name = save_model(xgb_binary(3, 2), folder)
    (folder / "project.yml").write_text(yaml.safe_dump({key: name, **PROJECT, **keys}, sort_keys=False))
    assert main(["synth", str(folder)]) == 0
    return folder


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    return _synth(tmp_path_factory.mktemp("bdt_stale") / "p")  # ProjectName left out: p, the folder's name


@pytest.fixture(scope="module")
def synthesized_vhdl(tmp_path_factory):
    return _synth(tmp_path_factory.mktemp("bdt_stale_vhdl") / "p", Backend="vhdl")


def _copy(folder, tmp_path):
    """A copy of a synthesized project (its build folder too), in a folder of the same name."""
    root = shutil.copytree(folder, tmp_path / "p")
    np.save(tmp_path / "x.npy", np.zeros((3, N_FEATURES)))
    return root / "project.yml"


@pytest.fixture
def project(synthesized, tmp_path):
    return _copy(synthesized, tmp_path)


def _edit(config, **keys) -> None:
    cfg = yaml.safe_load(config.read_text())
    cfg.update(keys)
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))


def _emulate(config, capsys) -> str:
    x, y = config.parent.parent / "x.npy", config.parent.parent / "y.npy"
    capsys.readouterr()
    assert main(["emulate", str(config.parent), "--input", str(x), "--output", str(y)]) == 0  # the firmware as built
    return capsys.readouterr().err


def _refusal(config) -> str | None:
    """What the stale check (verify's and profile's) says of the project, or None."""
    from fpgaflow.project import ProjectError, load_project
    from fpgaflow.stale import refuse_stale_firmware
    from sim.manifest import read_manifest

    notes: list[str] = []
    try:
        refuse_stale_firmware(load_project(config), read_manifest(config.parent / "build" / "emulator"), notes.append)
    except ProjectError as exc:
        return str(exc)
    assert notes == []
    return None


def test_verify_refuses_and_emulate_warns_after_a_clock_period_edit(project, capsys):
    assert _emulate(project, capsys) == ""  # as synthesized: nothing to say
    _edit(project, ClockPeriod=4)
    said = f"{project}: ClockPeriod (4 now) changed since `fpgaflow synth`; re-run `fpgaflow synth {project}`"
    capsys.readouterr()
    assert main(["verify", str(project), "--samples", "10"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"fpgaflow verify: error: {said}"]
    assert _emulate(project, capsys).splitlines() == [
        f"fpgaflow emulate: warning: {said} (running the firmware as synthesized)"
    ]


# (the edit, what the message names): each reaches conifer and the firmware it writes
SHAPING_EDITS = [
    ({"ClockPeriod": 6.25}, "ClockPeriod (6.25 now)"),
    ({"Unroll": False}, "Unroll (false now)"),  # the rolled trees, summed in another order
    ({"XilinxPart": "xcku115-flvb2104-2-i"}, "XilinxPart (xcku115-flvb2104-2-i now)"),
    ({"ProjectName": "tagger"}, "ProjectName (p at synth, tagger now)"),  # the top function's name
    (  # two at once, both named, and with a type as before
        {"ClockPeriod": 4, "Unroll": False, "Precision": "ap_fixed<20,9>"},
        "ClockPeriod (4 now), Unroll (false now), the input, threshold, weight and score types (ap_fixed<18,9> at "
        "synth, ap_fixed<20,9> now)",
    ),
]


@pytest.mark.parametrize("keys, named", SHAPING_EDITS, ids=[named.split(" (")[0] for _, named in SHAPING_EDITS])
def test_each_setting_that_shapes_the_firmware_is_named(project, capsys, keys, named):
    _edit(project, **keys)
    assert _refusal(project) == (
        f"{project}: {named} changed since `fpgaflow synth`; re-run `fpgaflow synth {project}`"
    )
    assert named in _emulate(project, capsys)


def test_edits_that_do_not_shape_the_firmware_are_no_alarm(project, capsys):
    """Defaults written out (conifer's part, its clock, unrolled trees, the project name
    the folder gave) and the output folder spelt otherwise build the same firmware."""
    _edit(
        project,
        OutputDir="./build",
        ClockPeriod=5.0,
        Unroll=True,
        XilinxPart="xcvu9p-flgb2104-2L-e",
        ProjectName="p",
        Precision="fixed<18,9>",  # hls4ml's spelling of the same type
    )
    assert _refusal(project) is None
    assert _emulate(project, capsys) == ""


def test_another_spelling_of_the_same_project_name_is_no_alarm(tmp_path, capsys):
    """conifer gets an identifier: ``my-bdt`` and ``my_bdt`` name the same firmware."""
    config = _synth(tmp_path / "p", ProjectName="my-bdt") / "project.yml"
    _edit(config, ProjectName="my_bdt")
    assert _refusal(config) is None
    _edit(config, ProjectName="other")
    assert "ProjectName (my_bdt at synth, other now)" in _refusal(config)


def test_settings_the_vhdl_backend_ignores_are_no_alarm(synthesized_vhdl, tmp_path, capsys):
    project = _copy(synthesized_vhdl, tmp_path)
    _edit(project, ClockPeriod=4, Unroll=False)  # warned about at synth: conifer's VHDL reads neither
    assert _refusal(project) is None
    _edit(project, XilinxPart="xcku115-flvb2104-2-i")  # the Vivado script's part
    assert "XilinxPart (xcku115-flvb2104-2-i now) changed since" in _refusal(project)


def test_the_manifest_records_a_digest_per_setting(synthesized, synthesized_vhdl):
    from fpgaflow.bdt.config import read_config
    from fpgaflow.project import load_project
    from fpgaflow.stale import setting_digest
    from sim.manifest import read_manifest

    for folder, keys in ((synthesized, 4), (synthesized_vhdl, 2)):
        recorded = read_manifest(folder / "build" / "emulator").meta["settings_sha256"]
        conifer = read_config(load_project(folder)).conifer
        assert recorded == {key: setting_digest(conifer[key]) for key in recorded} and len(recorded) == keys
    assert recorded.keys() == {"ProjectName", "XilinxPart"}  # vhdl: no ClockPeriod, no Unroll


def test_a_manifest_from_before_the_record_loads_and_says_it_cannot_check(project, capsys):
    """No false alarm on an old manifest: emulate stays quiet, verify says once that the
    settings cannot be compared (and still refuses a changed type)."""
    from fpgaflow.project import load_project
    from fpgaflow.stale import refuse_stale_firmware
    from sim.manifest import read_manifest, write_manifest

    emulator = project.parent / "build" / "emulator"
    m = read_manifest(emulator)
    old = {k: v for k, v in m.meta.items() if k not in ("id", "format", "format_version", "settings_sha256")}
    write_manifest(emulator, old, m.arrays)
    _edit(project, ClockPeriod=4)
    note = (
        f"note: {emulator / 'manifest.json'} has no settings_sha256 (written by an older synth): edits to {project}'s "
        f"ProjectName, XilinxPart, ClockPeriod or Unroll since then cannot be detected; re-run `fpgaflow synth "
        f"{project}` to record them"
    )
    notes: list[str] = []
    refuse_stale_firmware(load_project(project), read_manifest(emulator), notes.append)
    assert notes == [note]
    assert _emulate(project, capsys) == ""
    _edit(project, Precision="ap_fixed<20,9>")
    assert main(["verify", str(project), "--samples", "10"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"verify: {note}" and "types (ap_fixed<18,9> at synth, ap_fixed<20,9> now)" in err[1], err


def test_every_project_key_is_recorded_or_says_why_not():
    from fpgaflow.bdt.config import KNOWN_KEYS, NOT_RECORDED, RECORDED

    assert sorted([*RECORDED, *NOT_RECORDED]) == sorted(KNOWN_KEYS)


def test_a_project_name_left_out_follows_the_folder(synthesized, tmp_path):
    """Without ProjectName conifer names the firmware after the project's folder: a copy
    in a folder of another name would build another top function, and is told so."""
    root = shutil.copytree(synthesized, tmp_path / "q")
    assert "ProjectName (p at synth, q now) changed since" in _refusal(root / "project.yml")
