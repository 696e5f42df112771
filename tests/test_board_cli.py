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


def test_a_node_endpoint_zeromq_refuses_is_one_line_naming_the_option(tmp_path_factory):
    """It was a ZMQError traceback from deep in the sender, once the firmware had loaded."""
    project = shared_manifest(tmp_path_factory, "tiny_tau").parent.parent
    r = board("--project", str(project), "--events", "10", "--node", "nonsense")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    expected = "fpgaflow board: error: --node 'nonsense' is not a ZeroMQ endpoint (tcp://host:port, ipc://path)"
    assert r.stderr.strip() == expected


def test_an_input_file_that_is_not_what_its_name_says_is_one_line_naming_it(tmp_path, tmp_path_factory):
    """A .npz that is no zip archive was a zipfile.BadZipFile traceback; a .npy of text said
    'Cannot load file containing pickled data when allow_pickle=False', naming no file."""
    project = shared_manifest(tmp_path_factory, "tiny_tau").parent.parent
    for name, what in (("bad.npz", "not a .npz archive (not a zip file"), ("bad.npy", "not a .npy array")):
        (tmp_path / name).write_bytes(b"PK\x03\x04junk" if name.endswith("z") else b"garbage\n")
        r = board("--project", str(project), "--events", "10", "--node", "tcp://127.0.0.1:1", "--input",
                  str(tmp_path / name))  # fmt: skip
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.strip().startswith(f"fpgaflow board: error: {tmp_path / name}: {what}"), r.stderr


def test_a_board_whose_node_never_takes_its_messages_says_so_and_fails(tmp_path, tmp_path_factory):
    """ZeroMQ queues for an endpoint whether or not anything listens there: the board said
    "finished, 200 fragments sent" and exited 0 with no node at all."""
    project = shared_manifest(tmp_path_factory, "tiny_tau").parent.parent
    port = free_port()  # nothing listens there
    r = board("--project", str(project), "--source", "3", "--node", f"tcp://127.0.0.1:{port}", "--events", "200")
    assert r.returncode == 1 and "board 3: undelivered" in r.stdout, (r.stdout, r.stderr)
    assert f"nothing reached tcp://127.0.0.1:{port}: no node took the connection" in r.stderr


def test_a_board_speaks_curve_to_a_node_that_asks_for_it(tmp_path, tmp_path_factory):
    """A node with CURVE refused the board stand-in (it had no CURVE options), and the board
    said it sent everything.  With its key it gets in; with a key the node does not know it
    is refused, and says why."""
    from sim.wire.security import keygen

    manifest = shared_manifest(tmp_path_factory, "tiny_tau")
    project = manifest.parent.parent
    keygen(tmp_path / "keys", "node")
    keygen(tmp_path / "keys" / "clients", "board5")
    keygen(tmp_path / "other", "stranger")
    port = free_port()
    sections = {
        "node": {"sources": [5], "status_interval_s": 0.2},
        "fallback": {"manifest": str(manifest)},
        "sink": {"directory": "out"},
        "security": {"curve_secret_key": "keys/node.key_secret", "curve_clients": "keys/clients"},
    }
    cfg = write_config(tmp_path, sections, [{"endpoint": f"tcp://127.0.0.1:{port}"}])
    node = Daemon(cfg)
    try:
        common = ("--project", str(project), "--source", "5", "--node", f"tcp://127.0.0.1:{port}", "--events", "300",
                  "--curve-server-key", str(tmp_path / "keys/node.key"))  # fmt: skip
        r = board(*common, "--curve-secret", str(tmp_path / "keys/clients/board5.key_secret"))
        assert r.returncode == 0 and "board 5: finished, 300 events" in r.stdout, r.stderr
        node.wait_counter("events_out", 300, timeout=60)
        r = board(*common, "--curve-secret", str(tmp_path / "other/stranger.key_secret"))
        assert r.returncode == 1 and "refused this board's key" in r.stderr, (r.stdout, r.stderr)
    finally:
        status = node.stop()
    assert status["counters"]["events_out"] == 300
    ev = read_sink(tmp_path / "out", "node-w0*.h5", "events")
    assert sorted(ev["event"].tolist()) == list(range(300))


def test_an_offload_board_with_bad_curve_arguments_says_which(tmp_path, tmp_path_factory):
    """A public key given as --curve-secret, or an empty --curve-clients folder, ended an
    offload board in a traceback (exit 1) once it started serving (review)."""
    from sim.wire.security import keygen

    project = shared_manifest(tmp_path_factory, "tiny_tau").parent.parent
    keygen(tmp_path / "keys", "board")
    (tmp_path / "empty").mkdir()
    common = ("--project", str(project), "--offload", f"tcp://127.0.0.1:{free_port()}")
    r = board(*common, "--curve-secret", str(tmp_path / "keys/board.key"), "--curve-clients", str(tmp_path / "keys"))
    assert r.returncode == 2 and "no secret key" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = board(*common, "--curve-secret", str(tmp_path / "keys/board.key_secret"), "--curve-clients",
              str(tmp_path / "empty"))  # fmt: skip
    assert r.returncode == 2 and "every node would be refused" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_an_offload_port_in_use_and_a_missing_status_folder_are_one_line_naming_the_option(tmp_path, tmp_path_factory):
    """Were a zmq.error.ZMQError traceback, and 'No such file or directory: .../s.json.tmp'
    after the board had started streaming."""
    from sim.board.runtime import Board, BoardConfig

    manifest = shared_manifest(tmp_path_factory, "tiny_tau")
    project = manifest.parent.parent
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    first = Board(BoardConfig(manifest=str(manifest), offload=endpoint))  # holds the port
    try:
        r = board("--project", str(project), "--offload", endpoint)
    finally:
        first.context.destroy(linger=0)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip() == f"fpgaflow board: error: --offload {endpoint}: cannot bind (Address already in use)"
    status = tmp_path / "nodir" / "s.json"
    r = board("--project", str(project), "--node", f"tcp://127.0.0.1:{free_port()}", "--events", "10", "--status",
              str(status))  # fmt: skip
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr.strip() == f"fpgaflow board: error: --status {status}: the folder {status.parent} does not exist"
