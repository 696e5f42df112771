"""The BDT path through the ``fpgaflow`` command, and its answers to bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import fake_vendor
import numpy as np
import pytest
from bdt_helpers import N_FEATURES, make_project, sklearn_model, xgb_binary

import sim
from fpgaflow.bdt.trees import make_ensemble, make_tree
from fpgaflow.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "firmware_projects" / "bdt_tau"


@pytest.fixture(scope="module")
def tau(tmp_path_factory) -> Path:
    """The example project, copied, synthesized once."""
    folder = tmp_path_factory.mktemp("bdt_tau")
    for name in ("project.yml", "model.json"):
        shutil.copy(EXAMPLE / name, folder / name)
    assert main(["synth", str(folder)]) == 0
    return folder


@pytest.mark.oracle
def test_example_project_synthesizes_and_verifies_with_rtl(tau, capsys):
    report = json.loads((tau / "build" / "report.json").read_text())
    assert report["backend"] == "vhdl" and report["float_check"]["agree"] == report["float_check"]["samples"]
    assert {"latency", "lut", "ff"} <= set(report["conifer_estimates"])
    assert (tau / "build" / "hls" / "firmware" / "BDTTop.vhd").is_file()
    capsys.readouterr()
    assert main(["verify", str(tau), "--rtl", "--samples", "2000", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [c["bit_exact"] for c in result["checks"]] == [2000, 1000]


def test_emulate_writes_the_manifest_outputs(tau, tmp_path):
    x = np.random.default_rng(0).uniform(0, 100, size=(300, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["emulate", str(tau), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npz")]) == 0
    with np.load(tmp_path / "y.npz") as out:
        expected = sim.load(tau / "build" / "emulator").predict(x)
        assert np.array_equal(out["raw"], expected.raw) and out["values"].shape == (300, 1)


def test_wrong_feature_count_is_named(tau, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((10, 4), dtype=np.float32))
    assert main(["verify", str(tau), "--input", str(tmp_path / "x.npy")]) == 2
    assert "shape (10, 4)" in capsys.readouterr().err
    emulator = sim.load(tau / "build" / "emulator")
    with pytest.raises(ValueError, match="takes 6 features"):
        emulator.predict(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="outside the range"):
        emulator.predict_raw(np.full((2, 6), 1 << 20))


def test_unsupported_estimator_is_named(tmp_path, capsys):
    import joblib
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).normal(size=(50, 3))
    joblib.dump(LogisticRegression().fit(x, x[:, 0] > 0), tmp_path / "model.joblib")
    (tmp_path / "project.yml").write_text("SklearnModel: model.joblib\n")
    assert main(["synth", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "LogisticRegression is not supported" in err and "GradientBoostingClassifier" in err


def test_collapsing_thresholds_are_counted(tmp_path, capsys):
    """Three thresholds 0.1, 0.2, 0.3 on one feature; ap_fixed<8,7> (LSB 0.5) holds one of them."""
    tree = make_tree(
        [0, 0, -2, 0, -2, -2, -2],
        [0.2, 0.1, 0, 0.3, 0, 0, 0],
        [0, 0, 1, 0, 2, 3, 4],
        [1, 2, -1, 5, -1, -1, -1],
        [3, 4, -1, 6, -1, -1, -1],
        2,
    )
    ensemble = make_ensemble([[tree]], 2, 2, [0.0], "conifer", "<=")
    (tmp_path / "model.json").write_text(json.dumps(ensemble))
    (tmp_path / "project.yml").write_text("ConiferModel: model.json\nPrecision: ap_fixed<8,7>\n")
    assert main(["synth", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "collapses 2 of 3 distinct thresholds" in err and "f0: 2" in err
    report = json.loads((tmp_path / "build" / "report.json").read_text())
    assert report["precision"]["collapsed_thresholds"] == 2


@pytest.mark.parametrize(
    "keys, message",
    [
        ("Precision: float\n", "HLS fixed-point type"),
        ("Backend: cpp\n", "Backend 'cpp' is not supported"),
        ("Backend: vhdl\nScorePrecision: ap_fixed<12,4>\n", "ScorePrecision is ap_fixed<12,4>"),
        # the VHDL sums wrap: was firmware that wraps, and a verify FAIL against cpp (which saturates)
        ("Backend: vhdl\nPrecision: ap_fixed<10,4,AP_RND,AP_SAT>\n", "adders wrap (numeric_std), they cannot AP_SAT;"),
        ("Backend: vhdl\nPrecision: ap_fixed<10,4,AP_TRN,AP_WRAP,2>\n", "cannot AP_WRAP with 2 saturation bits"),
        # the normalisation 1.0 wrapped to -1.0: every output negated, no warning, verify PASS
        ("ScorePrecision: ap_fixed<16,1>\n", "ScorePrecision ap_fixed<16,1> cannot hold the normalisation 1 every"),
        ("Backend: vhdl\nPrecision: ap_fixed<16,1>\n", "yml: Precision ap_fixed<16,1> cannot hold the normalisation 1"),
        ("Precision: ap_fixed<16,1>\n", "yml: Precision ap_fixed<16,1> cannot hold the normalisation 1"),
        # an LSB coarser than the normalisation: 1.0 became 0 (every output 0) or 2, within "one LSB"
        ("ScorePrecision: ap_fixed<8,10>\n", "multiplied by (it becomes 0; its LSB is 4): give it fractional bits"),
        ("Backend: vhdl\nPrecision: ap_fixed<8,9,AP_RND>\n", "(it becomes 2; its LSB is 2): give it fractional"),
        # the emulator's scores are int64: a sum past 2**63 was "OverflowError: Python int too large"
        ("ScorePrecision: ap_ufixed<64,40>\n", "ScorePrecision is ap_ufixed<64,40>: a 64-bit unsigned score type"),
        ("InputPrecision: ap_fixed<63,30>\n", "yml: InputPrecision ap_fixed<63,30>: compared on one grid they need"),
        ("InputPrecision: ap_fixed<40,30>\nThresholdPrecision: ap_fixed<40,2>\n", "need more than 62 bits"),
        ("Precision: ap_fixed<18,8\n", "ap_fixed<18,8"),
        # a typo built the defaults with only a warning; refused, as in a network project (review)
        ("Precison: ap_fixed<8,3>\n", "unknown key(s) Precison (did you mean Precision?)"),
        ("ScorePrecison: ap_fixed<8,3>\nUnrol: false\n", "ScorePrecison (did you mean ScorePrecision?), Unrol"),
        # bool("false") is True: the unrolled firmware; and 0 gave the rolled one
        ('Unroll: "false"\n', "Unroll: expected true or false, got 'false'"),
        ('Unroll: "no"\n', "Unroll: expected true or false, got 'no'"),
        ("Unroll: 0\n", "Unroll: expected true or false, got 0"),
        # was written to hls_parameters.tcl as `set clock_period fast`; the network projects' rule
        ("ClockPeriod: fast\n", "ClockPeriod is 'fast'; give the period in ns as a positive number"),
        ("ClockPeriod: 5ns\n", "ClockPeriod is '5ns'; give the period in ns"),
        ("ClockPeriod: -2\n", "ClockPeriod is -2; give the period in ns"),
        # str() of anything, or an empty/false precision silently replaced by the default
        ("InputPrecision: 0\n", "InputPrecision: expected an HLS fixed-point type such as ap_fixed<18,8>, got 0"),
        ('ScorePrecision: ""\n', "ScorePrecision: expected an HLS fixed-point type such as ap_fixed<18,8>, got ''"),
        ("Precision: 18\n", "Precision: expected an HLS fixed-point type such as ap_fixed<18,8>, got 18"),
        ("XilinxPart: 5\n", "XilinxPart: expected an FPGA part name, got 5"),
        ("ProjectName: [a]\n", "ProjectName: expected a name, got ['a']"),
        ("OutputDir: 5\n", "OutputDir: expected the path of a folder, got 5"),
        ("Backend: [vhdl]\n", "Backend: expected xilinxhls or vhdl, got ['vhdl']"),
        ("Backend:\n", "Backend: expected xilinxhls or vhdl, got None"),
    ],
)
def test_bad_configuration_is_named(tmp_path, capsys, keys, message):
    make_project(tmp_path, xgb_binary(3, 2))
    (tmp_path / "project.yml").write_text("XGBoostModel: model.json\n" + keys)
    assert main(["synth", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "keys, named",
    [
        ("Precision: ap_fixd<18,8>\n", "Precision is 'ap_fixd<18,8>'; firmware needs an HLS fixed-point type"),
        ("Precision: ap_fixed<18,8\n", "Precision: ap_fixed<18,8: not a fixed-point type"),
        ("Backend: vhdl\nPrecision: ap_fixed<10,4,AP_RND,AP_SAT>\n", "Precision is ap_fixed<10,4,AP_RND,AP_SAT>, but"),
        ("Backend: vhdl\nPrecision: ap_ufixed<10,4>\n", "Precision is ap_ufixed<10,4>; the vhdl backend needs a"),
        ("InputPrecision: ap_fixd<18,8>\n", "InputPrecision is 'ap_fixd<18,8>'"),
        ("Precision: ap_fixed<8,3>\nThresholdPrecision: ap_fixd<9,4>\n", "ThresholdPrecision is 'ap_fixd<9,4>'"),
        ("InputPrecision: ap_fixed<8,3>\nPrecision: ap_fixd<9,4>\n", "Precision is 'ap_fixd<9,4>'"),  # the score's
    ],
)
def test_a_bad_precision_is_named_by_the_key_it_is_written_under(tmp_path, capsys, keys, named):
    """A type under ``Precision`` (the default of all four) was refused as
    ``InputPrecision``'s, a key the project file does not have."""
    make_project(tmp_path, xgb_binary(3, 2))
    (tmp_path / "project.yml").write_text("XGBoostModel: model.json\n" + keys)
    assert main(["synth", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"fpgaflow synth: error: {tmp_path / 'project.yml'}: {named}")


def test_hls4ml_spellings_of_a_type_are_taken_as_in_a_network_project(tmp_path, capsys):
    """``Precision: fixed<18,9>`` (hls4ml's spelling, which a network project takes) was
    refused as if it were a float precision; conifer now gets ``ap_fixed<18,9>``."""
    make_project(tmp_path, xgb_binary(3, 2), precision="fixed<18,9>", ScorePrecision="fixed<20,10,RND,SAT>")
    assert main(["synth", str(tmp_path)]) == 0
    meta = json.loads((tmp_path / "build" / "emulator" / "manifest.json").read_text())
    assert (meta["types"]["input"], meta["types"]["score"]) == ("ap_fixed<18,9>", "ap_fixed<20,10,AP_RND,AP_SAT>")
    assert main(["verify", str(tmp_path), "--samples", "200"]) == 0  # conifer's cpp compiled with those types
    assert "200/200 bit-exact" in capsys.readouterr().out


def test_a_file_that_is_not_an_xgboost_model(tmp_path, capsys):
    (tmp_path / "model.json").write_text('{"hello": 1}')
    (tmp_path / "project.yml").write_text("XGBoostModel: model.json\n")
    assert main(["synth", str(tmp_path)]) == 2
    assert "not an xgboost model file" in capsys.readouterr().err


def test_open_synthesis_of_a_tiny_vhdl_bdt(tmp_path):
    """GHDL --synth + yosys synth_xilinx on 3 trees of depth 2 (the full-size run is slow)."""
    make_project(tmp_path, sklearn_model("GradientBoostingRegressor", 3, 2), backend="vhdl", precision="ap_fixed<12,5>")
    assert main(["synth", str(tmp_path), "--open-synth"]) == 0
    o = json.loads((tmp_path / "build" / "report.json").read_text())["open_synth"]
    assert o["lut"] > 0 and o["ff"] > 0 and o["carry"] > 0 and o["z_padding_fixed"] >= 0
    assert "GHDL + yosys" in (tmp_path / "build" / "report.md").read_text()


def test_open_synthesis_needs_the_vhdl_backend(tmp_path, capsys):
    make_project(tmp_path, xgb_binary(3, 2))
    assert main(["synth", str(tmp_path), "--open-synth"]) == 2
    assert "Backend: vhdl" in capsys.readouterr().err
    # as the demo and the tests launch it: fpgaflow.cli is __main__ there, and the ToolError
    # (a UserError) was not caught: a traceback ending 'fpgaflow.bdt.toolchain.ToolError: ...'
    r = subprocess.run([sys.executable, "-m", "fpgaflow.cli", "synth", str(tmp_path), "--open-synth"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    errors = [line for line in r.stderr.splitlines() if not line.startswith("synth: ")]  # progress lines
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(errors) == 1 and errors[0].startswith("fpgaflow synth: error: ") and "Backend: vhdl" in errors[0]


@pytest.mark.slow
def test_open_synthesis_of_the_example_project(tau):
    assert main(["synth", str(tau), "--open-synth"]) == 0
    o = json.loads((tau / "build" / "report.json").read_text())["open_synth"]
    assert o["lut"] > 100 and o["ff"] > 100


def test_verify_exits_1_when_not_bit_exact(tau, monkeypatch, capsys):
    """A firmware reference that differs in one sample must fail verify (exit status 1)."""
    from fpgaflow.bdt import oracle

    real = oracle.CppOracle.predict_raw

    def off_by_one(self, x):
        raw = real(self, x)
        raw[17, 0] += 1
        return raw

    monkeypatch.setattr(oracle.CppOracle, "predict_raw", off_by_one)
    assert main(["verify", str(tau), "--samples", "500"]) == 1
    out = capsys.readouterr().out
    assert "499/500 bit-exact" in out and "'sample': 17" in out and "FAIL" in out


def test_vendor_build_is_skipped_with_a_reason_without_vendor_tools(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no Xilinx tools here; g++ is not needed by synth
    make_project(tmp_path, xgb_binary(3, 2))
    assert main(["synth", str(tmp_path), "--vendor"]) == 0
    vendor = json.loads((tmp_path / "build" / "report.json").read_text())["vendor"]
    assert vendor["ran"] is False and "vitis_hls" in vendor["reason"]
    assert (
        "| vendor | skipped: none of vivado_hls, vitis_hls, vitis-run on PATH |"
        in (tmp_path / "build" / "report.md").read_text()
    )


def _synth_with_stand_in(tmp_path, monkeypatch, body: str) -> tuple[Path, dict]:
    """``synth --vendor`` with a stand-in vitis_hls running ``body``: the project, report.json."""
    fake_vendor.install(tmp_path, monkeypatch, "vitis_hls", body)
    project = make_project(tmp_path / "p", xgb_binary(3, 2))
    assert main(["synth", str(project), "--vendor"]) == 0
    assert "fake vitis_hls called with: -f build_hls.tcl" in (project / "build" / "hls" / "build.log").read_text()
    return project, json.loads((project / "build" / "report.json").read_text())


def test_vendor_build_with_a_stand_in_vitis_hls_reports_its_numbers(tmp_path, monkeypatch, capfd):
    """A fake vitis_hls (tests/fake_vendor.py) writes a csynth report where conifer reads it."""
    project, report = _synth_with_stand_in(tmp_path, monkeypatch, fake_vendor.CONIFER_SUCCEEDS)
    c = fake_vendor.CSYNTH
    expected = {"latency": c["best"], "interval": c["ii_min"], "lut": c["LUT"], "ff": c["FF"], "dsp": c["DSP"]}
    assert report["vendor"] == {"ran": True, "tool": "vitis_hls", "success": True, "report": expected}
    assert {"latency", "lut", "ff"} <= set(report["conifer_estimates"])  # the estimate stays
    md = (project / "build" / "report.md").read_text()
    assert f"| vendor (vitis_hls) | {c['best']} | {c['LUT']} | {c['FF']} | - | {c['DSP']} |" in md
    assert "Traceback" not in capfd.readouterr().err


def test_vendor_build_that_fails_is_reported_and_synth_still_succeeds(tmp_path, monkeypatch, capfd):
    project, report = _synth_with_stand_in(tmp_path, monkeypatch, fake_vendor.FAILS)
    hls = project / "build" / "hls"
    vendor = report["vendor"]
    assert vendor["ran"] is True and vendor["success"] is False and vendor["tool"] == "vitis_hls"
    assert vendor["report"] == {} and f"build.log in {hls}" in vendor["reason"]
    assert {"latency", "lut", "ff"} <= set(report["conifer_estimates"])
    md = (project / "build" / "report.md").read_text()
    assert f"| vendor (vitis_hls) | failed: vitis_hls build failed; see build.log in {hls} |" in md
    assert "Traceback" not in capfd.readouterr().err


def test_vendor_build_that_raises_is_reported_without_a_traceback(tmp_path, monkeypatch, capfd):
    """An exception from inside conifer (here: a csynth report conifer cannot parse)."""
    script = fake_vendor.install(tmp_path, monkeypatch, "vitis_hls", fake_vendor.CONIFER_SUCCEEDS)
    script.write_text(script.read_text().replace("LUT>", "NoLUT>"))  # no <LUT> in the csynth report
    project = make_project(tmp_path / "p", xgb_binary(3, 2))
    assert main(["synth", str(project), "--vendor"]) == 0
    report = json.loads((project / "build" / "report.json").read_text())
    assert report["vendor"] == {
        "ran": False,
        "tool": "vitis_hls",
        "reason": "vitis_hls failed: AttributeError: 'NoneType' object has no attribute 'text'",
    }
    md = (project / "build" / "report.md").read_text()
    assert "| vendor (vitis_hls) | failed: vitis_hls failed: AttributeError:" in md
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.oracle
def test_verify_checks_the_hls_firmware_where_conifer_cpp_cannot(tmp_path, capsys):
    """Mixed input/threshold precisions and a saturating sum: verify falls back on the HLS
    firmware's own C++ (same model and types as tests/test_bdt_oracle.py: one cached build)."""
    make_project(
        tmp_path,
        xgb_binary(8, 2),
        precision="ap_fixed<8,2,AP_RND,AP_SAT>",
        InputPrecision="ap_fixed<10,4,AP_RND,AP_SAT>",
        ThresholdPrecision="ap_fixed<14,4>",
    )
    assert main(["synth", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["verify", str(tmp_path), "--samples", "1000", "--json"]) == 0
    check = json.loads(capsys.readouterr().out)["checks"][0]
    assert check["oracle"] == "conifer xilinxhls C simulation" and check["bit_exact"] == 1000


def test_a_conifer_model_splitting_on_a_missing_feature(tmp_path, capsys):
    tree = make_tree([3, -2, -2], [0.5, 0, 0], [0, 1, 2], [1, -1, -1], [2, -1, -1], 2)
    (tmp_path / "model.json").write_text(json.dumps(make_ensemble([[tree]], 2, 2, [0.0], "conifer", "<=")))
    (tmp_path / "project.yml").write_text("ConiferModel: model.json\n")
    assert main(["synth", str(tmp_path)]) == 2
    assert "tree 0 output 0 node 0 splits on feature 3; the model has 2 features" in capsys.readouterr().err


@pytest.mark.parametrize(
    "trees, message",
    [
        ([[[0, -2, -2], [0.5, 0, 0], [0, 1, 2], [1, -1, -1], [2, -1, -1]]], "the model has one tree;"),
        ([[[-2], [0.0], [1.0], [-1], [-1]]] * 2, "the model has only single-leaf trees (depth 0);"),
    ],
)
def test_the_vhdl_backend_refuses_models_its_writer_breaks(tmp_path, capsys, trees, message):
    """conifer writes ``((a, b, c))`` / ``(-2)`` for them: synth exited 0, GHDL failed."""
    rounds = [[make_tree(*t, 2)] for t in trees]
    (tmp_path / "model.json").write_text(json.dumps(make_ensemble(rounds, 2, 2, [0.0], "conifer", "<=")))
    (tmp_path / "project.yml").write_text("ConiferModel: model.json\nBackend: vhdl\n")
    assert main(["synth", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{message} conifer's vhdl backend writes VHDL for it that does not compile" in err, err
    assert not (tmp_path / "build" / "hls").exists()


def _without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda e: _without(e, "n_trees"), "not a conifer model, missing field(s) n_trees"),  # was KeyError: 'n_trees'
        (
            lambda e: {**e, "trees": [[_without(e["trees"][0][0], "threshold")]]},
            "trees[0][0]: missing field 'threshold'",
        ),
        (lambda e: {**e, "trees": "notalist"}, "field 'trees' must be a list (per boosting round"),  # was TypeError
        (lambda e: {**e, "trees": [e["trees"][0][0]]}, "trees[0] must be a list of one tree per output, got dict"),
        (lambda e: {**e, "trees": [[[1, 2]]]}, "trees[0][0] must be a tree (an object with feature, threshold"),
        (lambda e: {**e, "trees": [[{**e["trees"][0][0], "feature": [0, "x", -2]}]]}, "trees[0][0].feature[1] is 'x'"),
        (
            lambda e: {**e, "trees": [[{**e["trees"][0][0], "value": [0, 1]}]]},
            "trees[0][0]: fields differ in length (feature: 3, threshold: 3, value: 2,",
        ),
        (lambda e: {**e, "n_features": "2"}, "field 'n_features' must be a positive integer, got '2'"),
        (lambda e: {**e, "init_predict": 0.5}, "field 'init_predict' must be a list of finite numbers"),
        (lambda e: [e], "not a conifer model (a JSON list, not an object)"),
        # these four were an AssertionError traceback from conifer
        (lambda e: {**e, "trees": [[_without(e["trees"][0][0], "weight")]]}, "trees[0][0]: missing field 'weight'"),
        (lambda e: _without(e, "library"), "field 'library' must be the name of the library"),
        (lambda e: {**e, "trees": [[{**e["trees"][0][0], "weight": [1, 0, 0]}]]}, "trees[0][0].weight[0] is 1, not a"),
        (
            lambda e: {**e, "trees": [[{**e["trees"][0][0], "weight": [[1, 0], [0, 0], [0, 0, 0]]}]]},
            "tree 0 output 0 node 2 has 3 weights; the model has 2 features",
        ),
        # conifer's cpp/HLS compare sum(x * weight), the emulator x[feature]: was a silent mismatch
        (
            lambda e: {**e, "trees": [[{**e["trees"][0][0], "weight": [[0.5, 0.5], [0, 0], [0, 0]]}]]},
            "tree 0 output 0 node 0 splits on feature 0 with weight [0.5, 0.5], not the one-hot of feature 0",
        ),
        (
            lambda e: {**e, "trees": [[{**e["trees"][0][0], "weight": [[0, 1], [0, 0], [0, 0]]}]]},
            "tree 0 output 0 node 0 splits on feature 0 with weight [0, 1], not the one-hot of feature 0",
        ),
    ],
)
def test_a_malformed_conifer_json_is_named_with_the_field(tmp_path, capsys, change, message):
    tree = make_tree([0, -2, -2], [0.5, 0, 0], [0, 1, 2], [1, -1, -1], [2, -1, -1], 2)
    (tmp_path / "model.json").write_text(json.dumps(change(make_ensemble([[tree]], 2, 2, [0.0], "conifer", "<="))))
    (tmp_path / "project.yml").write_text("ConiferModel: model.json\n")
    assert main(["synth", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"fpgaflow synth: error: {tmp_path / 'model.json'}: {message}" in err and "Traceback" not in err, err


def test_verify_refuses_a_project_changed_since_synth(tmp_path, capsys):
    make_project(tmp_path, xgb_binary(3, 2))
    assert main(["synth", str(tmp_path)]) == 0
    text = (tmp_path / "project.yml").read_text().replace("ap_fixed<18,9>", "ap_fixed<20,9>")
    (tmp_path / "project.yml").write_text(text)
    assert main(["verify", str(tmp_path), "--samples", "10"]) == 2
    assert "changed since `fpgaflow synth`" in capsys.readouterr().err
    text = text.replace("Backend: xilinxhls", "Backend: vhdl")
    (tmp_path / "project.yml").write_text(text.replace("Precision: ap_fixed<20,9>", "Precision: ap_fixed<18,9>"))
    assert main(["verify", str(tmp_path), "--samples", "10"]) == 2
    file = tmp_path / "project.yml"
    assert capsys.readouterr().err.splitlines() == [
        f"fpgaflow verify: error: {file}: Backend (xilinxhls at synth, vhdl now), the weight type (ap_fixed<18,9> at "
        f"synth, none now) changed since `fpgaflow synth`; re-run `fpgaflow synth {file}`"
    ]
    (tmp_path / "project.yml").write_text(text.replace("Backend: vhdl", "Backend: xilinxhls"))
    # emulate runs the firmware as synthesized, and now says it is older than the project
    np.save(tmp_path / "x.npy", np.zeros((4, N_FEATURES)))
    assert (
        main(["emulate", str(tmp_path), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    )
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        f"fpgaflow emulate: warning: {file}: the input, threshold, weight and score types (ap_fixed<18,9> at synth, "
        f"ap_fixed<20,9> now) changed since `fpgaflow synth`; re-run `fpgaflow synth {file}` (running the firmware as "
        "synthesized)"
    )  # named: "(backend or precisions)" left the user to diff the file
    (tmp_path / "project.yml").write_text(text.replace("ap_fixed<20,9>", "ap_fixed<18,9>"))
    xgb_binary(4, 2).save_model(tmp_path / "model.json")  # retrained
    assert (
        main(["emulate", str(tmp_path), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    )
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"fpgaflow emulate: warning: {tmp_path / 'model.json'} changed since `fpgaflow synth`")


def test_synth_replaces_only_an_output_dir_it_wrote(tmp_path, capsys):
    """``OutputDir: mywork`` holding ``mywork/hls/precious.tcl``: synth removed ``hls``
    with the user's file in it.  Now a folder synth did not write is refused; its own is
    replaced (a stale file in ``hls`` goes, a file beside it stays)."""
    make_project(tmp_path, xgb_binary(3, 2), OutputDir="mywork")
    (tmp_path / "mywork" / "hls").mkdir(parents=True)
    (tmp_path / "mywork" / "hls" / "precious.tcl").write_text("keep me\n")
    assert main(["synth", str(tmp_path)]) == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "error" in x]
    assert f"OutputDir {tmp_path / 'mywork'} is not empty (it holds hls/) and was not written by fpgaflow synth" in line
    assert (tmp_path / "mywork" / "hls" / "precious.tcl").read_text() == "keep me\n"
    assert sorted(p.name for p in (tmp_path / "mywork").rglob("*")) == ["hls", "precious.tcl"]
    shutil.rmtree(tmp_path / "mywork" / "hls")  # empty: synth's to fill
    assert main(["synth", str(tmp_path)]) == 0
    (tmp_path / "mywork" / "hls" / "stale.tcl").write_text("from the last synth\n")
    (tmp_path / "mywork" / "notes.txt").write_text("mine\n")
    assert main(["synth", str(tmp_path)]) == 0
    assert not (tmp_path / "mywork" / "hls" / "stale.tcl").exists() and (tmp_path / "mywork" / "hls").is_dir()
    assert (tmp_path / "mywork" / "notes.txt").read_text() == "mine\n"


def test_synth_takes_over_a_build_folder_from_before_the_mark(tmp_path):
    """A build folder an earlier fpgaflow synth wrote (its manifest, no mark) is still replaced."""
    make_project(tmp_path, xgb_binary(3, 2))
    assert main(["synth", str(tmp_path)]) == 0
    (tmp_path / "build" / ".fpgaflow-synth").unlink()
    (tmp_path / "build" / "hls" / "stale.tcl").write_text("")
    assert main(["synth", str(tmp_path)]) == 0
    build = tmp_path / "build"
    assert (build / ".fpgaflow-synth").is_file() and not (build / "hls" / "stale.tcl").exists()


def test_a_model_key_of_the_wrong_type_is_named(tmp_path, capsys):
    make_project(tmp_path, xgb_binary(3, 2))
    (tmp_path / "project.yml").write_text("XGBoostModel: [model.json]\n")
    assert main(["synth", str(tmp_path)]) == 2
    assert "XGBoostModel: expected the path of the model file, got ['model.json']" in capsys.readouterr().err


def test_xilinxhls_settings_on_the_vhdl_backend_are_warned_about(tmp_path, capsys):
    """conifer's vhdl backend reads neither Unroll nor ClockPeriod: they were dropped without a word."""
    make_project(tmp_path, xgb_binary(3, 2), backend="vhdl", Unroll="false", ClockPeriod=3)
    assert main(["synth", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "warning: " + str(tmp_path / "project.yml") + ": the vhdl backend ignores ClockPeriod and Unroll" in err
    assert json.loads((tmp_path / "build" / "emulator" / "manifest.json").read_text())["reduction"]["order"] == (
        "pairwise"
    )


T = "trees[0][0]"


@pytest.mark.parametrize(
    "fields, message",
    [
        # these three were KeyError: 1 / KeyError: 3 from computing the depth
        ({"children_left": [1, 99, -1, -1, -1]},
         f"{T}.children_left[1] is 99: node 1's child is not a node of the tree (nodes 0 to 4, -1 for a leaf)"),
        ({"children_left": [1, 0, -1, -1, -1]}, f"{T}.children_left[1] is 0: node 1's child is the root (a cycle"),
        ({"children_left": [1, 2, -1, -1, -1]},
         f"{T}.children_left[1] is 2: node 1's child is already the child of node 0"),
        ({"children_left": [1, 3, -1, -1, -1], "children_right": [2, -1, -1, -1, -1]},
         f"{T} node 1: children_left is 3 but children_right is -1; a leaf has -1 for both"),
        ({"feature": [0, -2, -2, -2, -2], "children_left": [1, -1, -1, -1, -1], "children_right": [2, -1, -1, -1, -1]},
         f"{T} node 3: no node has it as a child, so it is not reachable from the root (2 such node(s))"),
        # refused as "disagrees ... on 153 of 2000 probe inputs (max difference 0)"
        ({"value": [0.0, 0.0, float("nan"), 2.0, 3.0]}, f"{T}.value[2] is nan, not a finite number (node 2's leaf"),
        ({"threshold": [float("inf"), 0.2, 0, 0, 0]}, f"{T}.threshold[0] is inf, not a finite number (node 0's split"),
    ],
)  # fmt: skip
def test_a_conifer_json_whose_nodes_do_not_make_a_tree_is_named(tmp_path, capsys, fields, message):
    left, right = [1, 3, -1, -1, -1], [2, 4, -1, -1, -1]
    tree = make_tree([0, 0, -2, -2, -2], [0.5, 0.2, 0, 0, 0], [0, 0, 1, 2, 3], left, right, 2)
    if "feature" in fields:
        fields["weight"] = [[1, 0]] + [[0, 0]] * 4
    ensemble = make_ensemble([[{**tree, **fields}]], 2, 2, [0.0], "conifer", "<=")
    (tmp_path / "model.json").write_text(json.dumps(ensemble))
    (tmp_path / "project.yml").write_text("ConiferModel: model.json\n")
    assert main(["synth", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"fpgaflow synth: error: {tmp_path / 'model.json'}: {message}" in err and "Traceback" not in err, err


def test_a_conifer_json_with_a_nan_intercept_is_named(tmp_path, capsys):
    tree = make_tree([0, -2, -2], [0.5, 0, 0], [0, 1, 2], [1, -1, -1], [2, -1, -1], 2)
    (tmp_path / "model.json").write_text(json.dumps(make_ensemble([[tree]], 2, 2, [float("nan")], "conifer", "<=")))
    (tmp_path / "project.yml").write_text("ConiferModel: model.json\n")
    assert main(["synth", str(tmp_path)]) == 2
    assert "field 'init_predict' must be a list of finite numbers (one per output), got [nan]" in (
        capsys.readouterr().err
    )


def test_verify_refuses_inf_inputs_as_it_refuses_nan(tau, tmp_path, capsys):
    """inf was handed to the emulator and conifer, which cast it as the port does."""
    x = np.random.default_rng(0).uniform(0, 100, size=(20, 6))
    x[7, 4] = -np.inf
    np.save(tmp_path / "x.npy", x)
    assert main(["verify", str(tau), "--input", str(tmp_path / "x.npy")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"fpgaflow verify: error: {tmp_path / 'x.npy'}: inf in 1 of 20 rows (row 7 first, "), line
    assert "feature 4), which the firmware's input type ap_fixed<18,9> cannot represent" in line, line


def test_verify_input_with_samples_takes_its_first_rows(tau, tmp_path, capsys):
    """--samples was ignored with --input (all rows verified); now it takes the first ones,
    as profile's --samples does."""
    np.save(tmp_path / "x.npy", np.random.default_rng(1).uniform(0, 100, size=(30, 6)))
    assert main(["verify", str(tau), "--input", str(tmp_path / "x.npy"), "--samples", "7", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [c["samples"] for c in result["checks"]] == [7] and result["float_model"]["samples_in_range"] == 7
    assert result["float_model"]["inputs"] == "input"


def test_verify_says_its_float_agreement_on_probe_inputs_is_no_accuracy(tau, capsys):
    """The default inputs sit on and beside the trees' thresholds, where firmware and model
    part by design: "same decision on 60%" read as a wrong firmware.  The line says what
    the inputs are and how to get an accuracy figure."""
    assert main(["verify", str(tau), "--samples", "300"]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("float model (")]
    assert line.endswith("(probe inputs, chosen on and beside the trees' thresholds where firmware and model part: "
                         "not an accuracy figure; for one, give rows of your data with --input)"), line  # fmt: skip
    assert main(["verify", str(tau), "--samples", "300", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["float_model"]["inputs"] == "probe"
