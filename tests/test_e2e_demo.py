"""``fpgaflow demo`` as a user runs it (a small project and a short stream): firmware
synthesized and verified, boards and a node streaming with faults, every event
accounted for, the summary, the JSON and the plot; a second run reuses the firmware."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from e2e_helpers import env, make_bdt_project
from node_helpers import ROOT


def demo(project, out, *extra):
    cmd = [sys.executable, "-m", "fpgaflow.cli", "demo", "--project", str(project), "--out", str(out),
           "--events", "6000", "--rate", "3000", "--json", *extra]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env(), timeout=600)


def test_demo_end_to_end_then_reuses_the_firmware(tmp_path):
    project = make_bdt_project(tmp_path / "tiny_tau")
    first = demo(project, tmp_path / "out")
    assert first.returncode == 0, first.stderr[-3000:]
    s = json.loads(first.stdout)
    for key in ("generated", "built_complete", "built_incomplete", "fallback", "faults_injected", "faults_detected",
                "lost"):  # fmt: skip
        assert key in s, key
    assert s["generated"] == 6000 and s["lost"] == 0 and s["built_twice"] == 0
    assert s["built_complete"] + s["built_incomplete"] == s["generated"]
    assert s["faults_injected"] > 0 and s["faults_detected"] > 0 and s["fallback"] > 0
    assert s["faults_by_kind"]["drop"]["detected"] == s["faults_by_kind"]["drop"]["injected"]
    assert s["fallback_wrong"] == 0 and s["ok"] and not s["problems"]
    fw = s["firmware"][0]
    assert fw["verified"] and not fw["reused"] and fw["kind"] == "bdt"
    assert (tmp_path / "out" / "demo.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["generated"] == 6000
    assert "synthesizing" in first.stderr and "stage 3/3" in first.stderr

    second = demo(project, tmp_path / "out", "--no-faults")
    assert second.returncode == 0, second.stderr[-3000:]
    s2 = json.loads(second.stdout)
    assert s2["firmware"][0]["reused"] and s2["firmware"][0]["manifest_id"] == fw["manifest_id"]
    assert s2["faults_injected"] == 0 and s2["built_complete"] == 6000 and s2["lost"] == 0


def test_demo_fails_clearly_on_a_broken_project(tmp_path):
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "project.yml").write_text("XGBoostModel: missing.json\n")
    r = demo(bad, tmp_path / "out")
    assert r.returncode != 0
    assert "missing.json" in r.stderr or "missing.json" in r.stdout


def test_demo_never_empties_a_folder_it_did_not_write(tmp_path):
    """``--out`` holding a ``node`` folder of the user's (``--out .`` in the repository:
    the node package's source) was emptied as if an earlier demo's; an --out that cannot
    be made ended in a traceback."""
    out = tmp_path / "mine"
    (out / "node").mkdir(parents=True)
    (out / "node" / "keep.py").write_text("precious = True\n")
    (out / "summary.json").write_text("{}")  # anyone's summary: no proof of a demo (review)
    r = demo(tmp_path / "no-project", out)
    assert r.returncode == 2 and "not an earlier fpgaflow demo's" in r.stderr and "Traceback" not in r.stderr
    assert (out / "node" / "keep.py").read_text() == "precious = True\n" and (out / "summary.json").exists()
    (out / "node" / "keep.py").unlink()
    (out / "node").rmdir()
    (out / "summary.json").unlink()
    (out / "notes.txt").write_text("mine\n")  # none of the demo's names: still not marked as a demo's
    r = demo(tmp_path / "no-project", out)
    assert r.returncode == 2 and not (out / ".fpgaflow-demo").exists()
    from fpgaflow.demo.run import clear_earlier_run

    old = tmp_path / "before-the-mark"  # an earlier demo's outputs, from before the mark: replaced
    (old / "node").mkdir(parents=True)
    (old / "summary.json").write_text(json.dumps({"generated": 1, "faults_by_kind": {}, "firmware": [], "lost": 0}))
    clear_earlier_run(old)
    assert not (old / "node").exists() and not (old / "summary.json").exists()
    (tmp_path / "afile").write_text("")
    r = demo(tmp_path / "no-project", tmp_path / "afile" / "out")
    assert r.returncode == 2 and "afile" in r.stderr and "Traceback" not in r.stderr


def test_a_board_stopped_early_fails_the_demo(tmp_path):
    """A board stopped mid-run (SIGTERM) ended "stopped", exit 0, and the demo said OK:
    its unmade events and its delayed fragments never sent were taken as handled."""
    import signal
    import time

    project = make_bdt_project(tmp_path / "tiny_tau")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "fpgaflow.cli", "demo", "--project", str(project), "--out", str(out),
           "--events", "30000", "--rate", "3000", "--json"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        deadline, status = time.monotonic() + 300, None
        while time.monotonic() < deadline and proc.poll() is None:
            files = sorted(out.glob("node/board-2.json"))
            status = json.loads(files[0].read_text()) if files else None
            if status and status["counters"].get("generated", 0) > 3000:
                break
            time.sleep(0.2)
        assert status and proc.poll() is None, "the board never got going"
        os.kill(status["pid"], signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, stderr[-2000:]
    s = json.loads(stdout)
    assert not s["ok"] and any(p.startswith("board 2 failed (generated") for p in s["problems"]), s["problems"]


def test_a_delay_counts_as_detected_only_if_its_fragment_reached_the_late_file(monkeypatch, tmp_path):
    """A delayed fragment whose source was missing from its event counted as detected
    whether or not it reached the late file (a board stopped before sending it)."""
    import numpy as np

    from fpgaflow.demo import summary
    from sim.wire import protocol as p

    ev = {
        "event": np.arange(3, dtype=np.uint64),
        "status": np.array([p.COMPLETE, p.TIMED_OUT, p.TIMED_OUT], np.uint32),
        "missing": np.array([0, 0b10, 0b10], np.uint64),
        "first_ns": np.zeros(3, np.uint64),
        "built_ns": np.full(3, 10**9, np.uint64),
    }
    late = {"event": np.array([1], np.uint64), "source": np.array([8])}  # event 2's never came
    monkeypatch.setattr(summary, "read_events", lambda d, tree="events": late if tree == "late" else ev)
    faults = {8: {"delay": np.array([1, 2], np.uint64)}}
    r = summary.account_path("node", tmp_path, [7, 8], {}, faults, {"counters": {}}, 3, 100, [])
    assert r["faults_injected"]["delay"] == 2 and r["faults_detected"]["delay"] == 1
    assert r["fault_notes"]["delay_unaccounted"] == 1


def test_the_demo_rate_ends_at_the_last_complete_event_not_at_the_build_timeout():
    """The rate ran to the last event out: one delayed fragment's event waiting out the
    build timeout after the stream had ended made a 39,000/s stream read 5,703/s."""
    import numpy as np

    from fpgaflow.demo.summary import stream_rate

    first = np.zeros(4, np.int64)
    built = np.array([1, 2, 2, 5], np.int64) * 10**9  # the last one timed out, 3 s after the rest
    span, per_s, complete_per_s = stream_rate(first, built, np.array([True, True, False, False]))
    assert span == 2.0 and per_s == 1.5 and complete_per_s == 1.0
    assert stream_rate(first, built, np.zeros(4, bool))[:2] == (5.0, 0.8)  # none complete: to the last out
    assert stream_rate(first[:1], built[:1], np.ones(1, bool)) == (0.0, None, None)


def test_the_printed_summary_says_why_events_left_apart_from_what_they_lacked(capsys, tmp_path):
    """The reasons were one list sorted by name, statuses and missing sources mixed (an
    event timed out lacking two sources showed in three lines); and a run too short to
    time printed only '-' as its rate."""
    from fpgaflow.demo.report import print_summary

    n = dict.fromkeys(
        (
            "generated",
            "built_complete",
            "built_twice",
            "fallback",
            "fallback_wrong",
            "validated",
            "faults_injected",
            "faults_detectable",
            "faults_detected",
            "late_fragments",
            "lost",
        ),
        0,
    )
    s = dict(
        n,
        firmware=[],
        built_incomplete=4,
        faults_by_kind={},
        bitflips_outside_validation_sample=0,
        latency_s=dict.fromkeys(("p50", "p99", "max")),
        events_per_s=None,
        seconds={},
        ok=True,
        problems=[],
        incomplete_reasons={"timed_out": 3, "missing source 1": 2, "missing source 2": 3, "evicted": 1},
    )
    print_summary(s, tmp_path)
    lines = [" ".join(x.split()) for x in capsys.readouterr().out.splitlines()]
    at = lines.index("built incomplete 4")
    assert lines[at + 1 : at + 5] == ["left evicted 1", "left timed out 3", "lacking source 1 2", "lacking source 2 3"]
    assert "built events/s - (too few events to time)" in lines
