"""Operating the node: the CLI (run, status, keygen), configuration errors, Prometheus
metrics over HTTP, rotating sink files (HDF5 and ROOT), and the embedding API."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request

import numpy as np
import pytest
from node_helpers import ROOT, Daemon, basic_config, free_port, free_ports, read_sink, wait_for, write_config

from node import config
from node.daemon import Node
from sim.wire import protocol
from sim.wire.source import Source

FPGAFLOW = [sys.executable, "-m", "fpgaflow.cli"]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def cli(*args, cwd=ROOT, timeout: float = 300):
    return subprocess.run([*FPGAFLOW, *args], cwd=cwd, capture_output=True, text=True, env=ENV, timeout=timeout)


@pytest.mark.parametrize(
    "text,message",
    [
        # a typo says which key was meant, as the project file's keys do; a key like none says no name
        ("[node]\nsorces = [1]\n", "node.sorces: unknown key (did you mean sources?); known keys are "),
        ("[node]\nstauts_interval_s = 2\n", "node.stauts_interval_s: unknown key (did you mean status_interval_s?)"),
        ("[node]\nzzz = 1\n", "node.zzz: unknown key; known keys are "),
        ("[node]\nworkers = 'two'\n", "node.workers: expected int"),
        ("[nod]\n", "unknown section [nod] (did you mean node?); known: input, "),
        ("[zzz]\n", "unknown section [zzz]; known: input, "),
        ('[[input]]\nendpoint = "tcp://0.0.0.0:5555"\n', "binds beyond loopback"),
        ('[[input]]\nendpoint = "tcp://127.0.0.1:1"\ntype = "req"\n', "input[0].type must be 'pull' or 'sub'"),
        ("[sink]\nformat = 'csv'\n", "sink.format must be 'hdf5' or 'root'"),
        ("[node]\nsources = [1, 1]\n", "node.sources must be distinct"),
        # was checked only when the log opened: no file named, `node status` took it, and each
        # of node.workers printed it after the supervisor had started them
        ("[node]\nlog_level = 'verbose'\n", "node.log_level must be one of debug, info, warning, error, got 'verbose'"),
        ("[node\n", "not valid TOML"),
        # numbers out of range: each once crashed the daemon deep in a library, or ran wrong
        ("[node]\ndrain_max = 0\n", "node.drain_max must be in 1..1048576, got 0"),  # read nothing, spun
        ("[node]\ncoalesce_ms = -1\n", "node.coalesce_ms must be in 0..100, got -1.0"),
        ("[node]\nid = 70000\n", "node.id must be in 0..65535"),  # publishing crashed, events lost
        ("[node]\nname = '../up'\n", "node.name '../up' names the node's files"),
        # node late-x's event files (late-x-w0-...) are node x's late files: one of them was refused for the other
        ("[node]\nname = 'late-x'\n", "node.name 'late-x' begins with 'late-', the prefix of node 'x''s late files"),
        ("[node]\nsources = [1.5, 1]\n", "node.sources[0]: expected int, got 1.5"),  # both became source 1
        ("[node]\nsources = [true]\n", "node.sources[0]: expected int, got True"),
        ("[builder]\nwindow = -5\n", "builder.window must be in 1..16777216, got -5"),
        ("[builder]\ntimeout_s = -1\n", "builder.timeout_s must be in 1e-06..1000000.0, got -1.0"),
        ("[builder]\ntimeout_s = inf\n", "builder.timeout_s: expected a finite number, got inf"),  # OverflowError
        ("[builder]\ntimeout_s = 1e300\n", "builder.timeout_s must be in 1e-06..1000000.0"),  # OverflowError too
        ("[sink]\nmax_seconds_per_file = nan\n", "sink.max_seconds_per_file: expected a finite number"),  # no rotation
        ("[fallback]\nvalidate_every = -1\n", "fallback.validate_every must be >= 0"),
        ("[offload]\nmax_in_flight = 0\n", "offload.max_in_flight must be in 1..1073741823"),  # every event stuck
        ("[offload]\nmax_in_flight = 1099511627776\n", "offload.max_in_flight must be in 1..1073741823"),  # Overflow
        ("[offload]\nboards = ['garbage']\n", "offload.boards[0]: 'garbage' is not a ZeroMQ endpoint"),  # ZMQError
        (f"[node]\nname = '{'n' * 240}'\n", "file names would be"),  # started, then no file could be made
        ('[node]\nworkers = 2\n[[input]]\nendpoint = "tcp://127.0.0.1:*"\n', "needs a port number"),
        ("[sink]\npublish = 'tcp://127.0.0.1:5555'\n", "sink.publish 'tcp://127.0.0.1:5555' binds where input[0]"),
        (
            "[node]\nworkers = 2\n[sink]\npublish = 'tcp://127.0.0.1:5556'\n",  # worker 1's input: 5556
            "sink.publish 'tcp://127.0.0.1:5556' binds where input[0].endpoint (worker 1: tcp://127.0.0.1:5556) does",
        ),
        ("[node]\nworkers = 2\n[metrics]\nport = 5556\n", "metrics.port 5556 is where input[0].endpoint (worker 1"),
        ('[[input]]\nendpoint = "ipc:///tmp/x"\n[[input]]\nendpoint = "ipc:///tmp/x"\n', "input[1].endpoint"),
        ("[sink]\npublish = 'tcp://localhost:05555'\n", "sink.publish 'tcp://localhost:05555' binds where input[0]"),
        ("[sink]\npublish = 'tcp://127.0.0.1'\n", "sink.publish: 'tcp://127.0.0.1' is not a ZeroMQ endpoint"),
        ("[offload]\nboards = [1]\n", "offload.boards[0]: expected str, got 1"),
        (
            "[offload]\nboards = ['tcp://127.0.0.1:7000']\nboard_keys = ['a.key', 'b.key']\n",
            "offload.board_keys must name one public key per offload.boards entry (1), got 2",
        ),
        (
            "[offload]\nboards = ['tcp://127.0.0.1:7000']\nboard_keys = ['a.key']\n",
            "offload.board_keys needs security.curve_secret_key",
        ),
        ("[sink]\nmax_events_per_file = 0\n", "sink.max_events_per_file must be >= 1"),
        ("[security]\nmax_message_bytes = 10\n", "security.max_message_bytes must be in 64..1073741824"),
        ("[metrics]\nport = 99999\n", "metrics.port must be in 0..65535"),
        ('[[input]]\nendpoint = "tcp://127.0.0.1:5555"\nhwm = -1\n', "input[0].hwm must be in 0..2147483647"),
        ('[[input]]\nendpoint = "tcp://127.0.0.1:99999"\n', "the port must be in 1..65535"),  # bound 34463
        ('[node]\nworkers = 2\n[[input]]\nendpoint = "tcp://127.0.0.1:65535"\n', "worker 1: port 65536"),
    ],
)
def test_configuration_errors_name_the_key(tmp_path, text, message):
    path = tmp_path / "node.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.load(path)
    out = cli("node", "--config", str(path))
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_a_published_event_too_large_for_one_message_is_refused_at_start(tmp_path):
    """One fragment fits ``security.max_message_bytes`` but one built event of 4 sources
    does not: every EVENTS message went out over the limit, and a subscriber holding the
    node's own limit refused them all."""
    fragment = protocol.HEADER_SIZE + protocol.fragment_dtype(8, 2, 4).itemsize
    limit = fragment + 16
    assert protocol.HEADER_SIZE + protocol.event_dtype(4, 8, 2, 4).itemsize > limit > fragment
    cfg = basic_config(tmp_path, free_port(), security={"max_message_bytes": limit},
                       sink={"publish": f"tcp://127.0.0.1:{free_port()}"})  # fmt: skip
    out = cli("node", "--config", str(cfg), timeout=60)  # (it ran)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"security.max_message_bytes = {limit}: sink.publish sends built events" in out.stderr


def test_remote_bind_allowed_when_asked(tmp_path):
    path = tmp_path / "node.toml"
    path.write_text('[security]\nallow_remote = true\n[[input]]\nendpoint = "tcp://0.0.0.0:5555"\n')
    assert config.load(path).inputs[0].endpoint == "tcp://0.0.0.0:5555"


@pytest.mark.parametrize(
    "args, message",
    [
        # reported on node.toml's node, whatever the name said
        (["status", "mynode"], "node status takes no NAME (got 'mynode'): --config names the node's configuration"),
        (["run", "extra"], "node run takes no NAME (got 'extra'): --config names the node's configuration"),
        (["--json"], "--json is for `fpgaflow node status`"),  # started the node
        (["status", "--force"], "--force is for `fpgaflow node keygen`"),
    ],
)
def test_node_options_of_another_action_are_refused_not_ignored(tmp_path, capsys, args, message):
    from fpgaflow.cli import main

    path = tmp_path / "node.toml"
    path.write_text('[node]\nname = "n"\n[fragment]\nn_inputs = 4\nn_outputs = 1\n')
    assert main(["node", *args, "--config", str(path)]) == 2
    assert capsys.readouterr().err.strip() == f"fpgaflow node: error: {message}"
    assert not (tmp_path / "node-status.json").exists()


def test_keygen_writes_a_key_pair(tmp_path):
    out = cli("node", "keygen", "board7", "--dir", str(tmp_path / "keys"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "keys/board7.key").is_file()
    secret = tmp_path / "keys/board7.key_secret"
    assert "secret-key" in secret.read_text() and oct(secret.stat().st_mode & 0o777) == "0o600"
    # a second keygen of the same name keeps the pair (peers hold its public key) unless --force
    before = secret.read_text()
    again = cli("node", "keygen", "board7", "--dir", str(tmp_path / "keys"))
    assert again.returncode == 2 and "board7.key exists" in again.stderr and secret.read_text() == before
    forced = cli("node", "keygen", "board7", "--dir", str(tmp_path / "keys"), "--force")
    assert forced.returncode == 0, forced.stderr
    assert secret.read_text() != before
    (tmp_path / "afile").write_text("")
    blocked = cli("node", "keygen", "x", "--dir", str(tmp_path / "afile"))
    assert blocked.returncode == 2 and "afile" in blocked.stderr and "Traceback" not in blocked.stderr


@pytest.mark.parametrize("name", ["../escape", "a/b", "/abs", "..", "."])
def test_keygen_takes_only_a_plain_file_name(tmp_path, name):
    """'../escape' wrote keys/../escape.key*, outside --dir; 'a/b' failed with a bare
    '[Errno 2]'; '..' wrote a hidden '...key'."""
    out = cli("node", "keygen", name, "--dir", str(tmp_path / "top" / "keys"))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"key name {name!r} is not a plain file name" in out.stderr
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # nothing written anywhere


def test_keygen_refuses_a_nul_in_the_name(tmp_path):
    """(Only a caller of the library can pass one: open() said 'embedded null byte', naming nothing.)"""
    from sim.wire.security import keygen

    with pytest.raises(ValueError) as info:
        keygen(tmp_path, "a\0b")
    assert "key name 'a\\x00b' is not a plain file name" in str(info.value)


def test_one_bad_file_among_the_client_keys_is_named_at_start(tmp_path):
    """ZeroMQ skips the whole folder over one unreadable key, and every board is refused."""
    import zmq

    from sim.wire.security import keygen, start_authenticator

    keygen(tmp_path / "clients", "board1")
    (tmp_path / "clients/board2.key").write_text("garbage")
    ctx = zmq.Context()
    try:
        with pytest.raises(ValueError, match="board2.key: not a ZeroMQ certificate"):
            start_authenticator(ctx, tmp_path / "clients")
        (tmp_path / "clients/board2.key").write_text('metadata\ncurve\n    public-key = "short"\n')
        with pytest.raises(ValueError, match="board2.key: public-key is 5 characters"):
            start_authenticator(ctx, tmp_path / "clients")
        # 40 characters with a typo: ZeroMQ refused it deep in a setsockopt (a bare traceback)
        good = (tmp_path / "clients/board1.key").read_text()
        typo = good.split('public-key = "')[1][:40]
        (tmp_path / "clients/board2.key").write_text(good.replace(typo, "~" + typo[1:]))
        with pytest.raises(ValueError, match="board2.key: public-key is not Z85 \\(the character '~'"):
            start_authenticator(ctx, tmp_path / "clients")
        (tmp_path / "clients/board2.key").write_text(good.replace(typo, "#" * 40))
        with pytest.raises(ValueError, match="board2.key: public-key is not Z85 \\(a group of 5"):
            start_authenticator(ctx, tmp_path / "clients")
        with pytest.raises(ValueError, match="no client public keys"):
            start_authenticator(ctx, tmp_path)
    finally:
        ctx.term()


@pytest.mark.parametrize("content", [b"", b"{}", b"[1, 2]", b'{"time": "x"}', b"\xff\xfe"])
def test_status_names_a_file_that_is_not_a_status_file(tmp_path, content):
    path = tmp_path / "node.toml"
    path.write_text('[node]\nstatus_file = "st.json"\n')
    (tmp_path / "st.json").write_bytes(content)
    out = cli("node", "status", "--config", str(path))
    assert out.returncode == 2 and "st.json: not a node status file" in out.stderr and "Traceback" not in out.stderr


def test_status_without_a_status_file_exits_2_naming_it(tmp_path):
    """Nothing to tell is not 'stopped' (3): the path may be wrong as well as the node never
    started.  docs/node.md listed only 0, 1 and 3."""
    path = tmp_path / "node.toml"
    path.write_text('[node]\nstatus_file = "st.json"\n')
    out = cli("node", "status", "--config", str(path))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{tmp_path / 'st.json'}: no status file; is the node running with {path}?" in out.stderr
    assert "2 nothing to tell (no status file" in (ROOT / "docs" / "node.md").read_text()


def test_a_configuration_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "node.toml"
    path.write_bytes(b"[node]\nname = '\xff'\n")
    with pytest.raises(config.ConfigError, match="node.toml: not UTF-8 text"):
        config.load(path)


def test_cli_run_status_metrics_and_rotating_root_files(tmp_path):
    port, metrics_port = free_port(), free_port()
    cfg = basic_config(
        tmp_path, port, sources=[0, 1],
        metrics={"port": metrics_port}, sink={"format": "root", "max_events_per_file": 100},
    )  # fmt: skip
    log = open(tmp_path / "node.log", "w")
    proc = subprocess.Popen([*FPGAFLOW, "node", "--config", str(cfg)], cwd=tmp_path, stderr=log, env=ENV)
    try:
        wait_for(lambda: (tmp_path / "node-status.json").exists(), 60, "the node to start")
        srcs = [Source(s, f"tcp://127.0.0.1:{port}", n_inputs=8, n_outputs=2) for s in (0, 1)]
        for s in srcs:
            s.send(np.arange(250), np.ones((250, 8)), np.zeros((250, 2)))
            s.close()

        def scrape():
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
                return r.read().decode()

        wait_for(lambda: "fpgaflow_node_events_complete_total 250.0" in scrape(), 60, "metrics to show 250 events")
        text = scrape()
        assert "fpgaflow_node_latency_seconds_bucket" in text and "fpgaflow_node_received_fragments_total 500.0" in text
        d = Daemon.__new__(Daemon)
        d.status_file = tmp_path / "node-status.json"
        d.wait_counter("events_complete", 250)
        out = cli("node", "status", "--config", str(cfg))
        assert out.returncode == 0 and "running" in out.stdout
        assert "complete" in out.stdout and "250" in out.stdout
        proc.terminate()
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    out = cli("node", "status", "--config", str(cfg))
    assert "stopped" in out.stdout
    files = sorted((tmp_path / "out").glob("node-w0-*.root"))
    assert len(files) == 3  # 100 + 100 + 50 events
    ev = read_sink(tmp_path / "out", "node-w0-*.root", "events")
    assert sorted(ev["event"].tolist()) == list(range(250)) and ev["inputs"].shape == (250, 2, 8)
    import uproot

    with uproot.open(files[0]) as f:  # the node's attributes (sources: the bits of `missing`), as JSON
        info = json.loads(str(f["events_info"]))
    assert info["sources"] == [0, 1] and info["node"] == "node" and info["protocol_version"] == protocol.VERSION


def test_status_tells_a_killed_node_and_exits_as_a_health_check_wants(tmp_path):
    """A node killed (SIGKILL, the OOM killer) never writes a final status: ``status`` said
    "running" for 10 status intervals + 5 s, then "stale", and always exited 0.  Now it
    checks the process the status file names (same host): dead at once, exit 1; running
    0; stopped 3 (as ``systemctl status``); and a reader that leaves early (``| head``)
    gets no traceback."""
    port = free_port()
    cfg = basic_config(tmp_path, port, sources=[0], node={"status_interval_s": 5.0})
    d = Daemon(cfg)
    try:
        out = cli("node", "status", "--config", str(cfg))
        assert out.returncode == 0 and "running" in out.stdout, out
        piped = subprocess.run(f"{' '.join(FPGAFLOW)} node status --config {cfg} | head -c 1", shell=True,
                               capture_output=True, text=True, env=ENV, cwd=ROOT)  # fmt: skip
        assert "Traceback" not in piped.stderr and "Error" not in piped.stderr, piped.stderr
        d.proc.kill()
        d.proc.wait(10)
        out = cli("node", "status", "--config", str(cfg))
        assert out.returncode == 1 and out.stdout.startswith("node node: dead"), out
        assert cli("node", "status", "--json", "--config", str(cfg)).returncode == 1
    finally:
        d.kill()
    d = Daemon(cfg)
    d.stop()
    out = cli("node", "status", "--config", str(cfg))
    assert out.returncode == 3 and "stopped" in out.stdout, out


def test_status_says_the_rate_now_not_an_average_that_idle_time_pulls_down(tmp_path):
    """``node status`` printed received fragments over the node's whole uptime: a node
    that had run at full rate and then stood idle (between runs) showed a rate it no
    longer had. The rates now are over the last status interval."""
    port = free_port()
    cfg = basic_config(tmp_path, port, sources=[0], node={"status_interval_s": 0.2})
    d = Daemon(cfg)
    stop = threading.Event()

    def stream() -> None:
        src = Source(0, f"tcp://127.0.0.1:{port}", n_inputs=8, n_outputs=2)
        k = 0
        while not stop.is_set():
            src.send(np.arange(k, k + 10), np.ones((10, 8)), np.zeros((10, 2)))
            k += 10
            stop.wait(0.01)
        src.close()

    sender = threading.Thread(target=stream)
    sender.start()
    try:
        d.wait_counter("events_out", 200)
        sending = wait_for(lambda: d.status()["gauges"].get("received_fragments_per_s", 0) > 0, 10, "a rate now")
        assert sending
        out = cli("node", "status", "--config", str(cfg))
        rates = [int(x) for x in re.findall(r"rate now \(/s\)\s+(\d+)", out.stdout)]
        assert len(rates) == 2 and min(rates) > 0, out.stdout
        stop.set()
        sender.join()
        wait_for(lambda: d.status()["gauges"]["received_fragments_per_s"] == 0, 10, "the rate to fall to 0 when idle")
        g, c = d.status()["gauges"], d.status()["counters"]
        assert g["events_out_per_s"] == 0 and c["received_fragments"] >= 200
        out = cli("node", "status", "--config", str(cfg))
        assert re.findall(r"rate now \(/s\)\s+(\d+)", out.stdout) == ["0", "0"], out.stdout
    finally:
        stop.set()
        sender.join()
        d.kill()


@pytest.mark.parametrize("key", ["public", "not-z85"])
@pytest.mark.parametrize("workers,publish", [(1, False), (1, True), (2, False)], ids=["one", "publish", "workers"])
def test_a_bad_curve_secret_key_is_refused_at_start_naming_it(tmp_path, key, workers, publish):
    """The node's own key file given as its public half (``node.key``, an easy slip) or
    corrupt: the key was loaded on an input socket already open (and on the PUB socket),
    which nothing then closed, so the failed start waited in ``context.term()`` for ever,
    saying nothing, and a supervisor's workers hung with it (review)."""
    from sim.wire.security import keygen

    keygen(tmp_path / "keys", "node")
    keygen(tmp_path / "keys/clients", "board")
    if key == "public":
        secret = "keys/node.key"
    else:
        secret = "keys/bad.key_secret"
        text = (tmp_path / "keys/node.key_secret").read_text()
        (tmp_path / secret).write_text(re.sub(r'(secret-key = ")(.)', r"\1~", text))  # ~ is not Z85
    cfg = write_config(
        tmp_path,
        {"node": {"sources": [0], "workers": workers}, "fragment": {"n_inputs": 8, "n_outputs": 2},
         "sink": {"directory": "out", "publish": f"tcp://127.0.0.1:{free_port()}" if publish else ""},
         "security": {"curve_secret_key": secret, "curve_clients": "keys/clients"}},
        [{"endpoint": f"tcp://127.0.0.1:{free_port()}"}],
    )  # fmt: skip
    out = cli("node", "--config", str(cfg), timeout=60)  # (it hung: killed here after 60 s)
    assert out.returncode != 0
    assert "security.curve_secret_key" in out.stderr and secret in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("publish", [False, True])
def test_a_socket_that_fails_to_set_up_is_closed_with_the_failed_start(tmp_path, monkeypatch, publish):
    """Whatever fails on a socket already opened (here a key that passed the check at start
    and fails on the socket) closes it: else ``context.term()`` waits for ever."""
    from node import sinks
    from sim.wire import security

    security.keygen(tmp_path / "keys", "node")
    security.keygen(tmp_path / "keys/clients", "board")
    monkeypatch.setattr(security, "load_secret_certificate", lambda path: (b"", b""))  # the check at start passes

    def fails(sock, path):
        raise ValueError(f"{path}: refused on the socket")

    monkeypatch.setattr(security, "server_curve", fails)
    monkeypatch.setattr(sinks, "server_curve", fails)
    cfg = write_config(
        tmp_path,
        {"node": {"sources": [0]}, "fragment": {"n_inputs": 8, "n_outputs": 2},
         "sink": {"directory": "out", "publish": f"tcp://127.0.0.1:{free_port()}" if publish else ""},
         "security": {"curve_secret_key": "keys/node.key_secret", "curve_clients": "keys/clients"}},
        [{"endpoint": f"tcp://127.0.0.1:{free_port()}"}, {"endpoint": f"tcp://127.0.0.1:{free_port()}"}],
    )  # fmt: skip
    failed: list[str] = []

    def start() -> None:  # its own context: a failed start terms it, waiting for every socket
        try:
            Node(config.load(cfg))
        except ValueError as exc:
            failed.append(str(exc))

    t = threading.Thread(target=start, daemon=True)
    t.start()
    t.join(20)
    assert not t.is_alive(), "the failed start waits for a socket it left open"
    assert failed and "refused on the socket" in failed[0]


@pytest.mark.parametrize(
    "manifests, key",
    [({"manifest": "proj"}, "fallback.manifest"), ({"source_manifests": ["proj"]}, "fallback.source_manifests[0]")],
)
def test_a_fallback_manifest_that_is_not_one_names_the_key_and_where_synth_put_it(tmp_path, manifests, key):
    """`manifest = "../jet_tagger"` (the project folder) said "jet_tagger/manifest.json: no
    manifest here (run `fpgaflow synth` to export one)" for a project synth had exported,
    naming no key."""
    (tmp_path / "proj/build/emulator").mkdir(parents=True)
    (tmp_path / "proj/build/emulator/manifest.json").write_text("{}")
    cfg = basic_config(tmp_path, free_port(), sources=[0], fallback=manifests)
    with pytest.raises(config.ConfigError) as err:
        Node(config.load(cfg))
    assert str(err.value) == (
        f"{key}: {tmp_path / 'proj/manifest.json'}: no manifest here; {tmp_path / 'proj/build/emulator'} "
        "holds the one `fpgaflow synth` exported"
    )


def test_an_embedded_node_that_cannot_start_leaves_its_callers_context_free(tmp_path):
    """A Node that failed to start (its second input's port taken) left its CURVE
    authenticator and first socket open: the embedding program's ``context.term()`` then
    waited for ever (review)."""
    import zmq

    from sim.wire.security import keygen

    keygen(tmp_path / "keys", "node")
    keygen(tmp_path / "keys/clients", "board")
    busy = zmq.Context.instance().socket(zmq.PULL)
    taken = busy.bind_to_random_port("tcp://127.0.0.1")
    try:
        cfg = write_config(
            tmp_path,
            {"node": {"sources": [0]}, "fragment": {"n_inputs": 8, "n_outputs": 2}, "sink": {"directory": "out"},
             "security": {"curve_secret_key": "keys/node.key_secret", "curve_clients": "keys/clients"}},
            [{"endpoint": f"tcp://127.0.0.1:{free_port()}"}, {"endpoint": f"tcp://127.0.0.1:{taken}"}],
        )  # fmt: skip
        ctx = zmq.Context()
        with pytest.raises(config.ConfigError, match="cannot bind"):
            Node(config.load(cfg), context=ctx)
        t = threading.Thread(target=ctx.term, daemon=True)
        t.start()
        t.join(10)
        assert not t.is_alive(), "the context still has something open"
    finally:
        busy.close(linger=0)


def test_an_embedded_node_that_cannot_start_lets_go_of_its_files(tmp_path):
    """A Node whose start failed after its sinks were made (its input's port taken) kept
    their locks on the node's files (``node.sinks.hold_prefix``) while the program ran: its
    retry, once the port was free, was refused as a second node of the same name."""
    import zmq

    busy = zmq.Context.instance().socket(zmq.PULL)
    port = busy.bind_to_random_port("tcp://127.0.0.1")
    cfg = config.load(basic_config(tmp_path, port, sources=[0]))
    try:
        with pytest.raises(config.ConfigError, match="cannot bind"):
            Node(cfg)
    finally:
        busy.close(linger=0)
    node = Node(cfg)  # the port free again
    node.stop()
    assert node.run()["final"]


def test_node_embedded_in_a_thread_returns_its_final_counters(tmp_path):
    port = free_port()
    cfg = config.load(basic_config(tmp_path, port, sources=[3]))
    node = Node(cfg)
    result = {}
    t = threading.Thread(target=lambda: result.update(node.run()))
    t.start()
    try:
        src = Source(3, f"tcp://127.0.0.1:{port}", n_inputs=8, n_outputs=2)
        src.send(np.arange(40), np.ones((40, 8)), np.zeros((40, 2)))
        src.close()
        wait_for(lambda: node.metrics.c["events_out"] >= 40, 30, "40 events")
    finally:
        node.stop()
        t.join(30)
    assert result["final"] and result["counters"]["events_complete"] == 40


def test_daemon_subprocess_helpers(tmp_path):
    from node.daemon import start, stop

    port = free_port()
    cfg = basic_config(tmp_path, port, sources=[0])
    log = tmp_path / "node.log"
    with log.open("w") as stderr:
        proc = start(cfg, stderr=stderr)
    try:
        wait_for(lambda: (tmp_path / "node-status.json").exists(), 60, "the node to start")
        src = Source(0, f"tcp://127.0.0.1:{port}", n_inputs=8, n_outputs=2)
        src.send(np.arange(10), np.ones((10, 8)), np.zeros((10, 2)))
        src.close()
        d = Daemon.__new__(Daemon)
        d.status_file = tmp_path / "node-status.json"
        d.wait_counter("events_out", 10)
        snap = stop(proc, cfg)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert snap["exit_code"] == 0 and snap["counters"]["events_complete"] == 10
    # the daemon froze its start-up objects out of the garbage collector's full scans
    started = [json.loads(line) for line in log.read_text().splitlines() if '"started"' in line]
    assert started and started[0]["gc_frozen"] > 10_000


EARLY_SIGTERM = """
import os, signal, sys
from node import daemon
made = daemon.Node.__init__
def slow_start(self, *args, **kwargs):  # a SIGTERM while the node is still being set up
    os.kill(os.getpid(), signal.SIGTERM)
    made(self, *args, **kwargs)
daemon.Node.__init__ = slow_start
sys.exit(daemon.main([sys.argv[1]]))
"""


def test_a_sigterm_while_starting_is_a_clean_stop(tmp_path):
    """Signal handlers came after the node was set up (the ring, h5py, the sockets): a
    SIGTERM then killed it, with no status file; with workers, the supervisor passed its
    SIGTERM on to workers still starting, and they died the same way. Now the stop waits
    for the node to run, and every counter is there from the start."""
    cfg = basic_config(tmp_path, free_port(), sources=[0])
    out = subprocess.run([sys.executable, "-c", EARLY_SIGTERM, str(cfg)], capture_output=True, text=True, env=ENV,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    status = json.loads((tmp_path / "node-status.json").read_text())
    assert status["final"] and not status["failed"]
    assert status["counters"]["late_fragments"] == 0 and status["counters"]["malformed_messages"] == 0
    # two workers, the supervisor stopped as soon as it has started them
    (tmp_path / "node-status.json").unlink()
    cfg.write_text(cfg.read_text().replace("[node]", "[node]\nworkers = 2"))
    log = tmp_path / "sup.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "node.daemon", str(cfg)], stderr=stderr, env=ENV)
    try:
        wait_for(lambda: "supervisor-started" in log.read_text(), 60, "the supervisor to start its workers")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    status = json.loads((tmp_path / "node-status.json").read_text())
    assert status["exit_codes"] == [0, 0] and status["final"] and status["workers"] == 2 and not status["failed"]


def test_merged_status_spans_the_workers_times_and_sums_their_counts():
    from node import metrics

    def worker(first: float, last: float, events: int) -> dict:
        m = metrics.Metrics()
        m.c["events_out"] = events
        m.g["first_message_time"], m.g["last_event_out_time"] = first, last
        m.g["events_in_flight"] = 3
        m.observe_latency(np.full(events, 0.002))
        return m.snapshot()

    merged = metrics.merge([worker(100.0, 110.0, 5), worker(101.0, 112.0, 7)])
    assert metrics.merge([])["workers"] == 0  # the supervisor's status before any worker's
    assert "failed" not in merged and metrics.merge([worker(1, 2, 3), {**worker(1, 2, 3), "failed": True}])["failed"]
    assert merged["counters"]["events_out"] == 12
    assert sum(merged["latency"]["counts"]) == 12 and merged["latency"]["sum"] == pytest.approx(0.024)
    assert merged["gauges"]["events_in_flight"] == 6
    # instants: the earliest first message and the latest event out (a sum would be 201 and 222)
    assert merged["gauges"]["first_message_time"] == 100.0
    assert merged["gauges"]["last_event_out_time"] == 112.0
    # its time is the oldest worker's: a hung worker makes the node stale, not "running" (review)
    hung, alive = worker(1, 2, 3), worker(1, 2, 3)
    hung["time"] -= 60
    assert metrics.merge([alive, hung])["time"] == hung["time"]


def refused_at_start(tmp_path, toml: str) -> str:
    """The node started on ``toml`` (with one free loopback input added): its stderr, once
    it has refused to start (exit 2, no traceback)."""
    path = tmp_path / "node.toml"
    path.write_text(toml + f'[[input]]\nendpoint = "tcp://127.0.0.1:{free_port()}"\n')
    out = cli("node", "--config", str(path))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    return out.stderr


def test_a_sink_directory_that_cannot_be_written_is_refused_at_start(tmp_path):
    """Not at the first flush, after events were taken in (they were lost with a traceback)."""
    (tmp_path / "taken").write_text("a file, not a folder")
    err = refused_at_start(tmp_path, '[fragment]\nn_inputs = 4\nn_outputs = 1\n[sink]\ndirectory = "taken/out"\n')
    assert "sink.directory" in err and "cannot write there" in err


def test_a_window_larger_than_the_machine_is_named_at_start(tmp_path):
    """The ring is touched at start: a window of 2^24 events of 16 x 1 KB fragments is
    265 GiB, which met the OOM killer (or a MemoryError traceback) instead of an error."""
    err = refused_at_start(
        tmp_path,
        f"[node]\nsources = {list(range(16))}\n[fragment]\nn_inputs = 256\nn_outputs = 1\n"
        f"[builder]\nwindow = {1 << 24}\n[sink]\nwrite_files = false\n",
    )
    assert f"builder.window = {1 << 24}: the ring would take 265.0 GiB" in err, err


def test_an_offload_batch_larger_than_a_message_is_named_at_start(tmp_path):
    err = refused_at_start(
        tmp_path,
        '[fragment]\nn_inputs = 256\nn_outputs = 1\n[offload]\nboards = ["tcp://127.0.0.1:1"]\nbatch = 1024\n'
        "[security]\nmax_message_bytes = 65536\n[sink]\nwrite_files = false\n",
    )
    assert "offload.batch = 1024: a board's request of 1024 fragments takes" in err
    assert "security.max_message_bytes = 65536" in err


def test_a_message_size_limit_below_one_fragment_is_named_at_start(tmp_path):
    """Every message would be refused: the node ran, received nothing and said nothing."""
    err = refused_at_start(tmp_path, "[fragment]\nn_inputs = 8\nn_outputs = 2\n[security]\nmax_message_bytes = 64\n")
    assert "security.max_message_bytes = 64: a message of one fragment (8 inputs, 2 results of 4 bytes)" in err


def test_a_status_file_that_cannot_be_written_is_named_at_start(tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    err = refused_at_start(
        tmp_path,
        '[node]\nstatus_file = "taken/status.json"\n[fragment]\nn_inputs = 4\nn_outputs = 1\n'
        "[sink]\nwrite_files = false\n",
    )
    assert "node.status_file" in err and "cannot write it" in err


@pytest.mark.parametrize("write_files", [True, False])
def test_a_configuration_started_twice_touches_nothing_of_the_running_nodes_status(tmp_path, write_files):
    """The same configuration with two workers started again while it runs (no metrics
    port to clash on; with files, or publishing only, where no sink's lock refuses it):
    the second supervisor deleted the first's worker status files and wrote its own final,
    failed status over the first's before its workers were refused, so `node status` read
    "stopped, failed", then 0 workers and no counters until each worker wrote again (a
    status interval, here far off), and the first's SIGTERM waited that long for its
    workers to look started.  Now the second is refused at once, naming the status file
    and the first's pid, and touches nothing."""
    base = free_ports(2)
    cfg = basic_config(tmp_path, base, node={"workers": 2, "status_interval_s": 30.0},
                       sink={"write_files": write_files})  # fmt: skip
    first = Daemon(cfg)
    try:
        wait_for(lambda: first.status()["workers"] == 2, 60, "both workers started")
        second = cli("node", "--config", str(cfg), timeout=120)
        assert second.returncode == 2, second.stderr
        assert second.stderr.splitlines() == [
            f"fpgaflow node: error: node.status_file {tmp_path / 'node-status.json'}: another process "
            f"(pid {first.proc.pid}) writes it (a node running, starting or still stopping); two nodes need status "
            "files of their own"
        ]
        status = first.status()
        assert status["pid"] == first.proc.pid and status["workers"] == 2 and not status["final"], status
        assert all((tmp_path / f"node-status.json.w{k}").exists() for k in range(2))
        first.stop()
    finally:
        if first.proc.poll() is None:  # in order: its workers would outlive a killed one by a status interval
            first.proc.send_signal(signal.SIGTERM)
            first.proc.wait(90)
        first.kill()


def test_two_nodes_of_one_folder_with_the_default_status_file_are_told_apart(tmp_path):
    """Two configurations in one folder, their own names and ports, and both the default
    status_file: both ran, writing one file in turn, and `node status` of each read
    whichever wrote last.  Now the second is refused at start naming the file."""
    first = Daemon(basic_config(tmp_path, free_port(), node={"name": "a"}).rename(tmp_path / "a.toml"))
    try:
        err = cli("node", "--config", str(basic_config(tmp_path, free_port(), node={"name": "b"})), timeout=120)
        assert err.returncode == 2 and "Traceback" not in err.stderr, err.stderr
        assert f"node.status_file {tmp_path / 'node-status.json'}: another process (pid {first.proc.pid})" in err.stderr
        assert first.status()["pid"] == first.proc.pid
        first.stop()
    finally:
        first.kill()
    assert not list((tmp_path / "out").glob("*b-w0*"))  # (it never started)


def test_files_a_start_left_unrecovered_show_in_the_status_and_the_metrics(tmp_path):
    """A .tmp the start cannot rebuild (here a ROOT file its writer never closed) was named
    only in a log line: the status, `node status` and the metrics of the node looked
    whole.  Now the gauge sink_unrecovered_files counts them, and `node status` says so."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "node-w0-20261123T000000-00000.root.tmp").write_bytes(b"root, cut short")
    cfg = basic_config(tmp_path, free_port(), sources=[0])
    d = Daemon(cfg)
    try:
        assert d.status()["gauges"]["sink_unrecovered_files"] == 1
        shown = cli("node", "status", "--config", str(cfg))
        assert shown.returncode == 0, shown.stderr
        assert re.search(r"files left unrecovered at start +1", shown.stdout), shown.stdout
        status = d.stop()
    finally:
        d.kill()
    assert status["gauges"]["sink_unrecovered_files"] == 1


def test_a_node_that_writes_no_files_names_the_files_a_killed_run_left(tmp_path):
    """A node switched to publishing only (sink.write_files = false) after a run with files
    was killed rebuilt nothing, and said nothing of the .tmp files left in sink.directory:
    they stayed there unnamed.  Now worker 0 names each (unrecovered-file, with what to do)
    and counts them in sink_unrecovered_files, and leaves them as they are."""
    out = tmp_path / "out"
    out.mkdir()
    left = out / "node-w0-20261123T000000-00000.h5.tmp"
    left.write_bytes(b"hdf5, cut short")
    (out / "other-w0-20261123T000000-00000.h5.tmp").write_bytes(b"another node's")
    cfg = basic_config(tmp_path, free_port(), sources=[0], sink={"write_files": False})
    d = Daemon(cfg)
    try:
        assert d.status()["gauges"]["sink_unrecovered_files"] == 1
        d.stop()
    finally:
        d.kill()
    (line,) = [x for x in d.log_lines() if x.get("event") == "unrecovered-file"]
    assert line["file"] == str(left) and line["level"] == "warning", line
    assert "sink.write_files" in line["reason"] and line["reason"].endswith("left as it is"), line
    assert left.read_bytes() == b"hdf5, cut short" and sorted(f.name for f in out.iterdir()) == sorted(
        [left.name, "other-w0-20261123T000000-00000.h5.tmp"]
    )  # nothing rebuilt, no lock file: a node without files writes nothing there


def test_a_status_file_that_fails_mid_run_is_logged_and_the_node_goes_on(tmp_path):
    """A full disk under the status file crashed the loop (and with it the node) at its
    next status write; the status is for people and scrapers, the events do not need it."""
    port = free_port()
    d = Daemon(basic_config(tmp_path, port, sources=[0], n_inputs=4, n_outputs=1))
    blocker = d.status_file.with_name(d.status_file.name + ".tmp")
    src = Source(0, f"tcp://127.0.0.1:{port}", n_inputs=4, n_outputs=1)
    try:
        blocker.mkdir()  # the next writes of the status file fail (its temporary name is a folder)
        failures = lambda: sum(x["event"] == "status-write-failed" for x in d.log_lines())  # noqa: E731
        wait_for(lambda: failures() >= 1, 30, "the failure logged")
        src.send(np.arange(500), np.ones((500, 4)))
        wait_for(lambda: failures() >= 2 or d.proc.poll() is not None, 30, "a second one (one a second at most)")
        assert d.proc.poll() is None, d.logs()
        blocker.rmdir()
        src.close()
        status = d.stop()
    finally:
        d.kill()
    (failed,) = [x for x in d.log_lines() if x["event"] == "status-write-failed"][:1]
    assert failed["file"] == str(d.status_file) and failed["level"] == "error"
    c = status["counters"]
    assert c["status_write_errors"] >= 1 and c["events_out"] == c["events_written"] == 500


def test_a_log_line_that_cannot_be_written_is_counted_not_raised():
    from node.metrics import Log

    class Full:
        def write(self, text):
            raise OSError(28, "No space left on device")

        def flush(self):
            pass

    log = Log("n", stream=Full())
    log("error", "anything", x=1)
    log.limited("k", "warning", "again")
    assert log.lost == 2


def test_noted_events_are_each_named_in_the_log_a_burst_in_one_line():
    """FPGA/CPU mismatches were rate-limited like any line: the first of a second was
    named, the others only counted on the next line, and the last ones never at all."""
    import io

    from node.metrics import Log

    out = io.StringIO()
    log = Log("n", stream=out, interval=3600.0)
    log.note("mismatch", "error", "fpga-cpu-mismatch", 5030, 1)  # the first: at once
    for event in range(5031, 5031 + 150):
        log.note("mismatch", "error", "fpga-cpu-mismatch", event, 0)  # within the interval: gathered
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(x["event_number"], x["count"], x["events"]) for x in lines] == [(5030, 1, [[5030, 1]])]
    log.flush_notes()
    assert len(out.getvalue().splitlines()) == 1  # the interval is not over
    log.flush_notes(force=True)  # at the stop
    last = json.loads(out.getvalue().splitlines()[-1])
    assert last["count"] == 150 and last["events"] == [[e, 0] for e in range(5031, 5031 + Log.LISTED)]
    assert last["level"] == "error" and last["event"] == "fpga-cpu-mismatch"
    log.flush_notes(force=True)
    assert len(out.getvalue().splitlines()) == 2  # nothing left to say


def test_repeats_of_a_rate_limited_line_are_told_at_the_stop():
    """A repeat was told only on the line's next write: the repeats of its last second
    were never told at all."""
    import io

    from node.metrics import Log

    out = io.StringIO()
    log = Log("n", stream=out, interval=3600.0)
    for k in range(3):
        log.limited("malformed/0/truncated", "warning", "malformed", detail=f"message {k}")
    log.flush_suppressed()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(x["detail"], x.get("suppressed", 0), x.get("at_stop", False)) for x in lines] == [
        ("message 0", 0, False), ("message 2", 1, True)]  # fmt: skip
    log.flush_suppressed()
    assert len(out.getvalue().splitlines()) == 2  # told once


def test_a_publish_endpoint_in_use_is_named_at_start(tmp_path):
    import zmq

    ctx = zmq.Context()
    taken = ctx.socket(zmq.PUB)
    port = taken.bind_to_random_port("tcp://127.0.0.1")
    try:
        toml = f'[fragment]\nn_inputs = 4\nn_outputs = 1\n[sink]\nwrite_files = false\npublish = "tcp://127.0.0.1:{port}"\n'
        assert f"sink.publish tcp://127.0.0.1:{port}: cannot bind" in refused_at_start(tmp_path, toml)
    finally:
        taken.close(linger=0)
        ctx.term()


def test_an_ipv6_loopback_input_binds(tmp_path):
    """It passed the loopback check, then failed with 'No such device' (IPv6 not enabled)."""
    import zmq

    port = free_port()
    cfg = config.parse({"fragment": {"n_inputs": 4, "n_outputs": 1}, "sink": {"write_files": False},
                        "input": [{"endpoint": f"tcp://[::1]:{port}"}]}, base=tmp_path)  # fmt: skip
    node = Node(cfg)
    src = Source(0, f"tcp://[::1]:{port}", n_inputs=4, n_outputs=1)  # a connect not told IPv6 never connects
    try:
        assert node.inputs[0].getsockopt(zmq.LAST_ENDPOINT).decode() == f"tcp://[::1]:{port}"
        src.send([7], np.ones((1, 4)))
        assert node.inputs[0].poll(5000), "nothing came over IPv6"
        assert protocol.decode_header(node.inputs[0].recv()).source == 0
    finally:
        src.close(linger_ms=0)
        for s in node.inputs:
            s.close(linger=0)


def test_timed_out_events_held_back_by_the_rate_limit_are_told_on_the_next_line():
    """The events-timed-out line restarted its count and its sources at every call, written
    or held back by the once-a-second limit: a source silent only between two written lines
    was never named (review). Now the next written line tells everything since the last."""
    import io
    import time
    import types

    from node.metrics import Log

    def block(missing: int) -> np.ndarray:
        return np.array([(protocol.TIMED_OUT, missing)], [("status", "u1"), ("missing", "u8")])

    buf = io.StringIO()
    log = Log("t", stream=buf)
    log.interval = 0.2
    builder = types.SimpleNamespace(out=[], counts=types.SimpleNamespace(timed_out=0))
    builder.take = lambda: [builder.out.pop() for _ in range(len(builder.out))]
    fallback = types.SimpleNamespace(submit=lambda e: None, step=lambda now, force=False: [])
    node = types.SimpleNamespace(sources=[11, 12, 13], log=log, _timed_out_missing=0, builder=builder,
                                 _late=lambda: None, _out=lambda e: None, events_sink=None, late_sink=None,
                                 fallback=fallback)  # fmt: skip

    def timed_out(missing: int, n: int) -> None:
        builder.out.append(block(missing))
        builder.counts.timed_out += n
        Node._advance(node, 0)

    timed_out(0b001, 5)  # written
    timed_out(0b010, 1000)  # held back
    time.sleep(0.25)
    timed_out(0b100, 3)  # written: everything since the first line
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert [(x["count"], x["missing_sources"]) for x in lines] == [(5, [11]), (1003, [12, 13])]


def test_a_tally_line_tells_all_since_the_last_written_one_and_nothing_while_unchanged():
    """The jump, eviction, misrouted and time-out lines each kept their own "logged so far"
    and restarted it at every call, written or held back: a held-back call's count was
    never told (review). One mechanism now: ``Log.tally``."""
    import io

    from node.metrics import Log

    buf = io.StringIO()
    log = Log("t", stream=buf)
    calls = []

    def fields() -> dict:
        calls.append(1)
        return {"source": 3}

    assert log.tally("k", "warning", "thing", 2, fields)  # written
    assert not log.tally("k", "warning", "thing", 2, fields) and len(calls) == 1  # unchanged: nothing at all
    assert not log.tally("k", "warning", "thing", 5, fields)  # held back
    assert not log.tally("k", "warning", "thing", 9, fields)  # held back
    assert not log.tally("k", "warning", "thing", 9, fields) and log.tallied("k") == 9
    log.flush_suppressed()
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert [(x["count"], x.get("suppressed"), x.get("at_stop")) for x in lines] == [(2, None, None), (7, 1, True)]


def test_a_supervisors_metrics_port_in_use_starts_no_worker(tmp_path):
    """The supervisor started its workers before its metrics server: with the port taken
    it exited 2, but both workers had started, bound their inputs and left status files
    (review)."""
    import socket as sock_mod

    taken = sock_mod.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        toml = (f"[node]\nworkers = 2\n[fragment]\nn_inputs = 4\nn_outputs = 1\n[sink]\nwrite_files = false\n"
                f"[metrics]\nport = {taken.getsockname()[1]}\n")  # fmt: skip
        err = refused_at_start(tmp_path, toml)
    finally:
        taken.close()
    assert "metrics" in err
    assert not list(tmp_path.glob("*.w[01]")) and '"started"' not in err


def test_the_first_status_file_names_the_process(tmp_path):
    """Written before the loop ran, it had no pid: a node killed then read 'running'
    until the file went stale, instead of 'dead' (review)."""
    cfg = config.parse({"fragment": {"n_inputs": 4, "n_outputs": 1}, "sink": {"write_files": False},
                        "input": [{"endpoint": f"tcp://127.0.0.1:{free_port()}"}]}, base=tmp_path)  # fmt: skip
    node = Node(cfg)
    try:
        first = json.loads(cfg.resolve(cfg.node.status_file).read_text())
        assert first["pid"] == os.getpid() and first["host"]
    finally:
        for s in node.inputs:
            s.close(linger=0)
        node.context.term()


def test_the_ring_check_counts_every_workers_ring():
    """Each worker's ring was checked alone: 8 workers of 3.7 GiB passed on a 23.5 GiB
    machine, for the OOM killer to stop (review)."""
    from node.builder import ring_bytes
    from node.preflight import check_ring_fits

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    window = 1 << 20
    n_in = 1
    while ring_bytes(2, n_in, 1, 4, window) <= memory // 8:  # doubling: a ring over 1/8 of the memory, not 1/4
        n_in *= 2
    assert ring_bytes(2, n_in, 1, 4, window) <= memory // 2
    check_ring_fits(2, n_in, 1, 4, window)  # one worker: fits
    with pytest.raises(config.ConfigError, match="one ring in each of 4 workers"):
        check_ring_fits(2, n_in, 1, 4, window, workers=4)


def test_a_worker_that_cannot_start_fails_the_node_as_a_node_that_cannot_start(tmp_path):
    """Worker 1's input port (the base port + 1) taken: the supervisor exited 1, where a
    single node with a port taken exits 2, the code a health check reads as 'my mistake'
    (review)."""
    import socket as sock_mod

    port = free_port()
    taken = sock_mod.socket()
    try:
        taken.bind(("127.0.0.1", port + 1))
    except OSError:
        pytest.skip("the port after a free one is taken already")
    taken.listen()
    try:
        toml = "[node]\nworkers = 2\n[fragment]\nn_inputs = 4\nn_outputs = 1\n[sink]\nwrite_files = false\n"
        path = tmp_path / "node.toml"
        path.write_text(toml + f'[[input]]\nendpoint = "tcp://127.0.0.1:{port}"\n')
        out = cli("node", "--config", str(path), timeout=120)
    finally:
        taken.close()
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"tcp://127.0.0.1:{port + 1}: cannot bind" in out.stderr


@pytest.mark.parametrize("problem", ["no fragment layout", "no manifest there"])
def test_a_node_with_workers_that_cannot_start_says_why_once_before_starting_any(tmp_path, problem):
    """With node.workers > 1 a layout or manifest error surfaced only inside the workers:
    the supervisor started them, each printed the same error, and worker-exited lines
    followed.  It is now said once, before any worker starts, as a single node says it."""
    base = free_ports(2)
    text = (
        '[node]\nsources = [0]\nworkers = 2\n[sink]\ndirectory = "out"\n'
        f'[[input]]\nendpoint = "tcp://127.0.0.1:{base}"\n'
    )
    if problem == "no manifest there":
        text += '[fallback]\nmanifest = "nowhere/emulator"\n'
    cfg = tmp_path / "node.toml"
    cfg.write_text(text)
    r = subprocess.run([sys.executable, "-m", "node.daemon", str(cfg)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("node: error: "), r.stderr
    want = "fragment.n_inputs and fragment.n_outputs" if problem == "no fragment layout" else "fallback.manifest: "
    assert want in lines[0], lines[0]
    assert not list(tmp_path.glob("node-status.json*")), "no worker (nor the supervisor) started"


def test_node_status_of_a_configuration_whose_status_file_another_node_wrote_says_so(tmp_path):
    """Two configurations in one folder, each with the default status_file: the second's
    `node status` showed its own node.name over the first node's status (its counters,
    its failure).  The status file names the node that wrote it, and `node status` of
    another node's configuration says whose it is."""
    first = basic_config(tmp_path, free_port(), sources=[0], node={"name": "alpha"})
    d = Daemon(first)
    try:
        d.stop()
    finally:
        d.kill()
    assert json.loads((tmp_path / "node-status.json").read_text())["node"] == "alpha"
    other = tmp_path / "beta.toml"
    other.write_text(first.read_text().replace('name = "alpha"', 'name = "beta"'))
    shown = cli("node", "status", "--config", str(other))
    assert shown.returncode == 2, shown.stdout + shown.stderr
    line = shown.stderr.strip().splitlines()[-1]
    assert "node-status.json holds the status of node 'alpha', not of 'beta'" in line, line
    assert "node.status_file" in line, line
    assert cli("node", "status", "--config", str(first)).returncode == 3  # its own: stopped
