"""``fpgaflow board`` as a user types it: a synthesized project (not a manifest folder)
streaming to a real node, and clear errors for bad arguments."""

from __future__ import annotations

import re
import subprocess
import sys

from e2e_helpers import env, shared_manifest
from node_helpers import ROOT, Daemon, free_port, read_sink, write_config


def board(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fpgaflow.cli", "board", *args], cwd=ROOT, capture_output=True,
                          text=True, env=env(), timeout=120)  # fmt: skip


def test_board_command_streams_a_project_to_a_node(tmp_path, tmp_path_factory):
    manifest = shared_manifest(tmp_path_factory, "tiny_tau")
    project = manifest.parent.parent
    port = free_port()
    sections = {
        "node": {"sources": [7], "status_interval_s": 0.2},
        "fallback": {"manifest": str(manifest), "validate_every": 1},
        "sink": {"directory": "out"},
    }
    cfg = write_config(tmp_path, sections, [{"endpoint": f"tcp://127.0.0.1:{port}"}])
    node = Daemon(cfg)
    try:
        r = board("--project", str(project), "--source", "7", "--node", f"tcp://127.0.0.1:{port}", "--events", "500",
                  "--bitflip", "0.1")  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "board 7: finished, 500 events" in r.stdout and "'bitflip'" in r.stdout
        node.wait_counter("events_out", 500, timeout=60)
    finally:
        status = node.stop()
    ev = read_sink(tmp_path / "out", "node-w0*.h5", "events")
    assert sorted(ev["event"].tolist()) == list(range(500))
    flips = int(re.search(r"'bitflip': (\d+)", r.stdout).group(1))
    assert flips > 10 and status["counters"]["fallback_mismatches"] == flips  # every event validated here


def test_board_command_errors_name_the_culprit(tmp_path):
    r = board("--project", str(tmp_path / "nowhere"), "--node", "tcp://127.0.0.1:1")
    assert r.returncode == 2 and "nowhere" in r.stderr and "Traceback" not in r.stderr
    r = board("--project", str(tmp_path), "--source", "-1", "--node", "tcp://127.0.0.1:1")
    assert r.returncode == 2 and "--source" in r.stderr
