"""Command-line options that were ignored or misread without a word: refused in one line
naming the option, or given the meaning the help says."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
from bdt_helpers import one_tree_manifest

from fpgaflow.cli import main


def _error(capsys) -> str:
    (line,) = capsys.readouterr().err.splitlines()
    return line


def _network_project(folder: Path, data: bool = False) -> Path:
    """A network project file (its model need not exist: these options are refused first)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = "KerasH5: m.h5\n"
    if data:
        text += "Data: {File: d.npz, Features: [a, b], Labels: y}\n"
    (folder / "project.yml").write_text(text)
    return folder


@pytest.mark.parametrize(
    "args, message",
    [
        (["--samples", "0"], "--samples 0: must be at least 1"),
        (["--samples", "-5"], "--samples -5: must be at least 1"),
        (["--seed", "-1"], "--seed -1: must be a whole number >= 0"),  # was NumPy's 'expected non-negative integer'
        (["--input", "x.npy", "--seed", "3"], "--seed draws the random inputs; with --input there are none to draw"),
        (["--dataset", "x"], "--dataset 'x' names an array inside --input, and no --input is given"),
    ],
)
def test_verify_options_that_would_be_ignored_or_misread_are_refused(tmp_path, capsys, args, message):
    assert main(["verify", str(tmp_path / "nowhere"), *args]) == 2
    assert _error(capsys) == f"fpgaflow verify: error: {message}"


@pytest.mark.parametrize(
    "args, data, message",
    [
        (["--samples", "-5"], False, "--samples -5: must be at least 1 (the most samples profiled)"),  # dropped 5
        (["--samples", "0"], False, "--samples 0: must be at least 1 (the most samples profiled)"),  # meant all
        (["--dataset", "x"], True, "--dataset 'x' names an array inside --input, and no --input is given"),
        (["--input", "d.root", "--labels", "y.npy"], True, "--labels y.npy: the inputs are read with the project's "
         "Data: columns, whose labels are Data.Labels; --labels goes with --dataset (the inputs read as one array)"),
    ],
)  # fmt: skip
def test_profile_options_that_would_be_ignored_or_misread_are_refused(tmp_path, capsys, args, data, message):
    project = _network_project(tmp_path / "p", data)
    assert main(["profile", str(project), *args]) == 2
    assert _error(capsys) == f"fpgaflow profile: error: {message}"


def test_bdt_options_on_a_network_project_are_refused_not_ignored(tmp_path, capsys):
    project = _network_project(tmp_path / "p")
    assert main(["synth", str(project), "--open-synth"]) == 2
    assert _error(capsys).startswith(f"fpgaflow synth: error: {project / 'project.yml'}: --open-synth runs GHDL")
    assert main(["verify", str(project), "--rtl"]) == 2
    assert _error(capsys).startswith(f"fpgaflow verify: error: {project / 'project.yml'}: --rtl simulates a BDT's")


def test_a_dataset_name_a_npy_file_does_not_hold_is_refused(tmp_path, capsys):
    """--dataset was ignored for a .npy; its one array is named after the file, as the
    Data: reader names it (profile reads a .npy as one array with --dataset NAME)."""
    manifest = one_tree_manifest(tmp_path / "bdt")
    np.save(tmp_path / "x.npy", np.full((4, 2), 1.5))
    args = ["emulate", str(manifest), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]
    assert main([*args, "--dataset", "x"]) == 0
    capsys.readouterr()
    assert main([*args, "--dataset", "features"]) == 2
    assert _error(capsys) == (
        f"fpgaflow emulate: error: {tmp_path / 'x.npy'}: holds one array, 'x' (a .npy is named after its file), "
        "not 'features'; --dataset names an array inside an .npz or HDF5 file"
    )


def test_network_verify_compares_with_the_float_model_on_the_inputs_the_type_holds():
    """As BDT verify does: the random inputs reach 25% beyond the input type, where the port
    wraps or saturates (the firmware's business), and the max |diff| over all of them
    (7.969 for a 6-bit QKeras model) hid the precision on the others (0 there)."""
    from types import SimpleNamespace

    from fpgaflow.network.verify import float_agreement
    from sim.fixed import FixedType

    net = SimpleNamespace(input_type=FixedType.parse("ap_fixed<8,3>"))  # holds -4 .. 3.96875
    x = np.array([[0.5, 1.0], [10.0, 0.0], [-1.0, -4.0], [1.0, 1.0]])
    firmware = np.array([[0.5, 0.0], [-6.0, 1.0], [-1.0, 0.0], [2.0, 0.0]])
    keras = np.array([[0.25, 0.0], [10.0, 0.0], [-1.0, 0.0], [np.nan, 0.0]])
    got = float_agreement(net, x, firmware, keras)
    assert got == {"samples_in_range": 3, "max_abs_diff": 0.25, "non_finite_samples": 1, "argmax_agreement": 1.0}
    assert float_agreement(net, x[1:2], firmware[1:2], keras[1:2])["max_abs_diff"] is None  # none in range


def test_network_verify_divergence_in_a_project_data_row_names_the_row():
    """The project's data rows follow the random ones: a divergence there names its row."""
    from fpgaflow.network.verify import divergence_line

    d = {"layer": "fc2_relu", "sample": 2003, "index": 5, "expected_raw": 12, "got_raw": 11}
    assert divergence_line(d, 2000) == (
        "verify: first divergence at layer 'fc2_relu', sample 2003 (row 3 of the project data), element 5: "
        "expected raw 12, got 11"
    )
    expected = "verify: first divergence at layer 'fc2_relu', sample 2003, element 5: expected raw 12, got 11"
    assert divergence_line(d, None) == expected  # no project data
    assert divergence_line(d, 2004) == expected  # a random input: the data rows start at 2004


def test_network_verify_warns_when_one_output_stands_for_nearly_every_input():
    """A firmware giving every class 0.2 on every input passed verify without a word."""
    from fpgaflow.network.verify import alike_line, most_common_share

    constant = np.tile([3, 3, 3], (100, 1))
    assert most_common_share(constant) == 1.0
    assert alike_line(1.0, 100).startswith("verify: warning: the firmware gives one and the same output for 100.0% ")
    varied = np.arange(300).reshape(100, 3)
    assert most_common_share(varied) == 0.01 and alike_line(0.01, 100) is None
    assert alike_line(1.0, 5) is None  # too few inputs to tell


def test_network_verify_float_line_on_random_inputs_says_it_is_not_an_accuracy():
    """Correct (bit-exact) KERAS_3layer firmware read 'argmax agreement 23.00%' against Keras
    on the random inputs across the input type, with nothing to say those are out of
    distribution for a trained model: read as a wrong firmware.  The line says which
    inputs it is on; on random ones, that the figure is no accuracy and how to get one."""
    from fpgaflow.network.verify import float_line

    numbers = {"samples_in_range": 1600, "max_abs_diff": 0.7998, "non_finite_samples": 0, "argmax_agreement": 0.1125}
    source = "the 2000 random inputs across ap_fixed<16,6> drawn with seed 0"
    assert float_line({"inputs": "random", "source": source, "samples": 2000, **numbers}) == (
        "verify: float Keras model on the 2000 random inputs across ap_fixed<16,6> drawn with seed 0, 1600 of them "
        "inside the input type: max |diff| 0.7998, argmax agreement 11.25% (random inputs across the input type are "
        "out of distribution for a trained model: this agreement is not an accuracy figure; for one, give rows of "
        "your data with --input, or declare them in the project's Data: block)"
    )
    source = "the first 2000 rows of the project data in d.npz"
    assert float_line({"inputs": "project_data", "source": source, "samples": 2000, **numbers}) == (
        "verify: float Keras model on the first 2000 rows of the project data in d.npz, 1600 of them inside the "
        "input type: max |diff| 0.7998, argmax agreement 11.25%"
    )


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "KerasH5: [m.h5\n",
            ":2:1: not valid YAML: while parsing a flow sequence (line 1, column 10): expected ',' or ']', but got "
            "'<stream end>'",
        ),
        ("KerasH5: m.h5\n\tIOType: io_stream\n", ":2:1: not valid YAML: while scanning for the next token: found "),
        # kept the last value and dropped the first silently
        (
            "KerasH5: m.h5\nKerasH5: n.h5\n",
            ":2:1: not valid YAML: key 'KerasH5' given twice in one mapping (YAML would ",
        ),
        (
            "KerasH5: m.h5\nHLSConfig:\n  LayerName:\n    fc1: {ReuseFactor: 2}\n    fc2: {}\n"
            "    fc1: {ReuseFactor: 4}\n",
            ":6:5: not valid YAML: key 'fc1' given twice in one mapping (YAML would keep the last)",
        ),
    ],
)
def test_a_project_file_that_is_not_yaml_is_one_line_naming_the_line(tmp_path, capsys, text, message):
    """PyYAML's message spans six lines (the text quoted, a caret under it): one line now,
    with the file, line and column first, as a compiler's."""
    (tmp_path / "project.yml").write_text(text)
    assert main(["synth", str(tmp_path)]) == 2
    assert _error(capsys).startswith(f"fpgaflow synth: error: {tmp_path / 'project.yml'}{message}")


@pytest.mark.parametrize("command", ["synth", "verify", "emulate"])
def test_a_project_file_that_is_not_text_is_one_line_naming_it(tmp_path, capsys, command):
    """A model file given for the project (`fpgaflow synth model.h5`) was "'utf-8' codec
    can't decode byte 0x89 in position 0: invalid start byte", naming no file."""
    path = tmp_path / "model.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)))
    args = [command, str(path)] + (["--input", "x.npy", "--output", "y.npy"] if command == "emulate" else [])
    assert main(args) == 2
    assert _error(capsys).startswith(f"fpgaflow {command}: error: {path}: not a project file: not UTF-8 text")


@pytest.mark.parametrize(
    "text, keys",
    [
        ("KerasH5: m.h5\nKerasModel: m.keras\n", "KerasH5 and KerasModel"),
        ("KerasJson: m.json\nKerasH5: w.h5\nKerasModel: m.keras\n", "KerasJson, KerasH5 and KerasModel"),
    ],
)
@pytest.mark.parametrize("command", ["synth", "verify"])
def test_a_project_naming_two_models_is_refused(tmp_path, capsys, text, keys, command):
    """KerasModel beside KerasH5 (a .keras file added, the .h5 line left) built the .h5
    model and ignored KerasModel without a word, and its file was not in the stale check."""
    (tmp_path / "project.yml").write_text(text)
    assert main([command, str(tmp_path)]) == 2
    assert _error(capsys) == (
        f"fpgaflow {command}: error: {tmp_path / 'project.yml'}: names two models ({keys}); give KerasJson "
        "with KerasH5 (architecture and weights), KerasH5 alone (a full model) or KerasModel alone"
    )


@pytest.mark.parametrize("command", ["synth", "verify", "emulate"])
def test_a_bdt_project_naming_two_models_is_refused(tmp_path, capsys, command):
    """SklearnModel beside XGBoostModel built the xgboost model and ignored the other."""
    (tmp_path / "project.yml").write_text("SklearnModel: m.joblib\nXGBoostModel: m.json\n")
    args = [command, str(tmp_path)] + (["--input", "x.npy", "--output", "y.npy"] if command == "emulate" else [])
    assert main(args) == 2
    assert _error(capsys) == (
        f"fpgaflow {command}: error: {tmp_path / 'project.yml'}: names two BDT models (XGBoostModel and "
        "SklearnModel); give one of XGBoostModel, SklearnModel, ConiferModel"
    )


@pytest.mark.parametrize("command", ["synth", "verify", "emulate"])
@pytest.mark.parametrize("given", ["build", "build/hls"])
def test_synths_output_folder_given_for_the_project_says_so(tmp_path, capsys, command, given):
    """`fpgaflow emulate build/hls` read hls4ml's generated hls4ml_config.yml as the
    project ("hls4ml_config.yml:89:13: not valid YAML: could not determine a constructor
    for the tag '!keras_model'"), and `build` said only "no project file found"."""
    build = tmp_path / "build"
    (build / "hls").mkdir(parents=True)
    (build / ".fpgaflow-synth").write_text("outputs of fpgaflow synth: a new synth replaces them\n")
    (build / "hls" / "hls4ml_config.yml").write_text("KerasModel: !keras_model 'x'\n")
    (tmp_path / "project.yml").write_text("KerasH5: m.h5\n")
    emulate = ["--input", "x.npy", "--output", "y.npy"] if command == "emulate" else []
    args = [command, str(tmp_path / given), *emulate]
    assert main(args) == 2
    assert _error(capsys) == (
        f"fpgaflow {command}: error: {tmp_path / given}: in the folder `fpgaflow synth` wrote ({build}), not a "
        f"project; give the project file or its folder (the emulator's manifest is {build / 'emulator'})"
    )


def test_emulate_does_not_write_its_outputs_over_its_input_file(tmp_path, capsys, monkeypatch):
    """`--input x.npy --output x.npy` (or `./x.npy`) replaced the user's inputs with the
    outputs, exit 0."""
    x = np.arange(12.0).reshape(3, 4)
    np.save(tmp_path / "x.npy", x)
    monkeypatch.chdir(tmp_path)
    assert main(["emulate", str(tmp_path), "--input", "x.npy", "--output", "./x.npy"]) == 2
    assert _error(capsys) == (
        "fpgaflow emulate: error: --output ./x.npy is the --input file: the outputs would replace the inputs; "
        "name another file"
    )
    assert np.array_equal(np.load(tmp_path / "x.npy"), x)


def test_a_key_overriding_a_yaml_merge_is_no_duplicate(tmp_path):
    from fpgaflow.project import load_project

    text = "KerasH5: m.h5\nData: {File: d.npz, Features: [a]}\nTraining:\n  <<: &t {Epochs: 3, Seed: 1}\n  Epochs: 5\n"
    (tmp_path / "project.yml").write_text(text)
    assert load_project(tmp_path).config["Training"] == {"Epochs": 5, "Seed": 1}


def test_a_folder_with_two_project_files_is_refused_naming_both(tmp_path, capsys):
    """``synth .`` on a folder holding project.yml and a config.yml copied beside it and
    edited took project.yml without a word; naming the file picks it."""
    (tmp_path / "project.yml").write_text("KerasH5: m.h5\n")
    (tmp_path / "config.yml").write_text("KerasH5: n.h5\n")
    assert main(["synth", str(tmp_path)]) == 2
    assert _error(capsys) == (
        f"fpgaflow synth: error: {tmp_path}: several project files (project.yml, config.yml); name the one to use"
    )
    from fpgaflow.project import load_project

    assert load_project(tmp_path / "config.yml").config == {"KerasH5": "n.h5"}


def _options_without_help(parser, prog: str):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options_without_help(sub, f"{prog} {name}")
        elif action.option_strings and not action.help:
            yield f"{prog} {action.option_strings[0]}"


def test_every_option_of_every_command_says_what_it_does():
    """``fpgaflow board --help`` listed --first-event, --seed, --delay-ms and --fault-seed
    bare (``python -m sim.board`` shares them: ``sim.board.cli.add_arguments``), and
    ``fpgaflow demo --help`` its --seed."""
    from fpgaflow.cli import build_parser

    assert list(_options_without_help(build_parser(), "fpgaflow")) == []


@pytest.mark.parametrize(
    "command",
    [["emulate", "p", "--input", "x.npy", "--output", "y.npy"], ["board", "--project", "p", "--node", "tcp://h:1"]],
)
def test_the_synth_hint_for_a_project_not_synthesized_names_its_project_file(tmp_path, monkeypatch, capsys, command):
    """It repeated the target as typed (``fpgaflow synth p``); it names the project file,
    as network verify and the stale warnings do: a command that works wherever one is."""
    project = _network_project(tmp_path / "p")
    monkeypatch.chdir(tmp_path)
    assert main(command) == 2
    assert _error(capsys).endswith(f": no manifest; run `fpgaflow synth {(project / 'project.yml').resolve()}` first")


@pytest.mark.parametrize("command, model", [("profile", "KerasH5: m.h5"), ("verify", "XGBoostModel: m.json")])
def test_the_synth_hint_names_the_project_file_of_a_folder_holding_two(tmp_path, capsys, command, model):
    """profile and BDT verify named the folder, and ``fpgaflow synth FOLDER`` refuses a
    folder with several project files: the hint's command did not run."""
    for name in ("project.yml", "config.yml"):
        (tmp_path / name).write_text(model + "\n")
    assert main([command, str(tmp_path / "config.yml")]) == 2
    assert _error(capsys).endswith(f": no manifest; run `fpgaflow synth {(tmp_path / 'config.yml').resolve()}` first")


def test_the_synth_hint_quotes_a_project_file_whose_path_has_a_space(tmp_path, capsys):
    """A project in "my runs/p": the hint's command split at the space when pasted."""
    project = _network_project(tmp_path / "my runs" / "p")
    assert main(["emulate", str(project), "--input", "x.npy", "--output", "y.npy"]) == 2
    hint = _error(capsys).split("run `")[1].split("` first")[0]
    assert shlex.split(hint) == ["fpgaflow", "synth", str((project / "project.yml").resolve())], hint
