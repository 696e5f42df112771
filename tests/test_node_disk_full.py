"""A disk that fills up mid-run (here: the node's file-size limit, lowered from outside
with prlimit, which fails writes with EFBIG as a full disk fails them with ENOSPC).  The
node stops reading, so ZeroMQ holds its senders back, says so, and goes on once there is
room; nothing is lost.  Stopped while it waits, a second SIGTERM gives up: what was not
written is counted, the exit status is 1, and the next start rebuilds what was."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from node_helpers import ROOT, Daemon, free_ports, read_sink, wait_for, write_config

N = 60_000  # ~1.1 KB events: ~66 MB, far beyond the limit and what sockets and queues hold
LIMIT = 6 << 20  # one 4 MB chunk fits, the second does not

SENDER = """
import sys, numpy as np
from sim.wire.source import Source
ports = [int(p) for p in sys.argv[1].split(",")]  # one per worker: event e goes to worker e % len(ports)
src = Source(0, [f"tcp://127.0.0.1:{p}" for p in ports], n_inputs=256, n_outputs=1, batch=16, sndhwm=10)
for first in range(0, int(sys.argv[2]), 400):
    ev = np.arange(first, first + 400)
    src.send(ev, (ev[:, None] + np.arange(256)) % 1000, ev[:, None] % 7)
src.close()
"""


def start(tmp_path, workers: int = 1, **sink) -> tuple[Daemon, int]:
    port = free_ports(workers)
    cfg = write_config(
        tmp_path,
        {
            "node": {"sources": [0], "status_interval_s": 0.1, "workers": workers},
            "fragment": {"n_inputs": 256, "n_outputs": 1, "raw_bytes": 4},
            "sink": {"directory": "out", **sink},
        },
        [{"endpoint": f"tcp://127.0.0.1:{port}", "hwm": 10}],
    )
    return Daemon(cfg), port


def push(port: int, workers: int = 1) -> subprocess.Popen:
    """A sender process (in its own process: a sender thread held back in a send could not
    be stopped safely, ZeroMQ sockets are not to be closed from another thread)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ports = ",".join(str(port + k) for k in range(workers))
    return subprocess.Popen([sys.executable, "-c", SENDER, ports, str(N)], env=env)


@contextlib.contextmanager
def full_disk(tmp_path, workers: int = 1) -> Iterator[tuple[Daemon, subprocess.Popen, list[int]]]:
    """A node whose processes (the node, or its workers) get no room past LIMIT, and a
    sender pushing N events at it; both are killed on the way out."""
    d, port = start(tmp_path, workers)
    sender = None
    try:
        pids = [d.proc.pid] if workers == 1 else events_logged(d, "supervisor-started")[0]["pids"]
        for pid in pids:
            limit_files(pid, LIMIT)
        sender = push(port, workers)
        yield d, sender, pids
    finally:
        if sender is not None:
            sender.kill()
            sender.wait()
        d.kill()


def limit_files(pid: int, soft: int) -> None:
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard if soft < 0 else soft, hard))


def events_logged(d: Daemon, what: str) -> list[dict]:
    return [line for line in d.log_lines() if line["event"] == what]


def wait_until_held(d: Daemon, sender: subprocess.Popen) -> int:
    """The sink waits for room, the node reads no more and the sender is held back."""
    wait_for(lambda: events_logged(d, "sink-waiting"), 60, "the node to say its sink waits for room")
    wait_for(lambda: d.status()["gauges"].get("sink_waiting_s", 0) > 0, 10, "sink_waiting_s")
    held = d.counter("received_fragments")
    with contextlib.suppress(subprocess.TimeoutExpired):
        sender.wait(1.5)
    assert sender.poll() is None, "the sender was not held back"
    assert d.counter("received_fragments") == held, "the node went on reading while its sink could not write"
    assert held < N
    return held


def test_a_full_disk_holds_the_senders_back_and_loses_nothing(tmp_path):
    with full_disk(tmp_path) as (d, sender, _):
        wait_until_held(d, sender)
        (waiting,) = events_logged(d, "sink-waiting")[:1]
        assert waiting["file"].endswith(".h5.tmp") and waiting["error"] == "File too large"
        limit_files(d.proc.pid, -1)  # room again
        assert sender.wait(120) == 0
        d.wait_counter("events_out", N, timeout=120)
        status = d.stop()
    c = status["counters"]
    assert c["events_out"] == c["events_written"] == N and c["events_unwritten"] == 0
    assert events_logged(d, "sink-resumed")
    ev = read_sink(tmp_path / "out", "node-w0-*.h5", "events")
    assert np.array_equal(ev["event"], np.arange(N))
    np.testing.assert_array_equal(ev["inputs"][:, 0, 5], (np.arange(N) + 5) % 1000)


def test_a_second_sigterm_gives_up_and_counts_what_was_not_written(tmp_path):
    with full_disk(tmp_path) as (d, sender, _):
        held = wait_until_held(d, sender)
        d.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: any(w.get("stopping") for w in events_logged(d, "sink-waiting")), 30,
                 "the node to say it waits for room to stop")  # fmt: skip
        (stopping,) = [w for w in events_logged(d, "sink-waiting") if w.get("stopping")]
        assert stopping["events_held"] > 0  # what a give-up would cost
        assert d.proc.poll() is None, "the node stopped without writing what it held"
        d.proc.send_signal(signal.SIGTERM)
        code = d.proc.wait(60)
    assert code == 1
    status = d.status()
    c = status["counters"]
    assert status["final"] and status["failed"]
    # what ZeroMQ had queued at the stop (hwm 10 messages) is taken in and counted, not dropped
    assert held <= c["received_fragments"] <= held + 2 * 10 * 16 and c["received_fragments"] == c["events_out"]
    assert c["events_unwritten"] > 0 and c["events_out"] == c["events_written"] + c["events_unwritten"]
    (failed,) = events_logged(d, "sink-failed")
    assert failed["file"].endswith(".h5.tmp") and "given up" in failed["error"]
    assert failed["records_unwritten"] == c["events_unwritten"]
    assert list((tmp_path / "out").glob("node-w0-*.h5.tmp.chunks"))

    # the next start (room again) rebuilds the chunks that were written: events_written of them
    d2 = Daemon(tmp_path / "node.toml")
    try:
        assert events_logged(d2, "recovered-files")  # logged before the node's first status
        d2.stop()
    finally:
        d2.kill()
    ev = read_sink(tmp_path / "out", "node-w0-*.h5", "events")
    assert np.array_equal(ev["event"], np.arange(c["events_written"]))


@pytest.mark.parametrize("give_up", [signal.SIGTERM, signal.SIGUSR1], ids=["second-sigterm", "sigusr1"])
def test_with_workers_systemctl_stop_waits_and_a_second_sigterm_to_the_supervisor_gives_up(tmp_path, give_up):
    """systemctl stop signals the supervisor and its workers alike: each worker gets two
    SIGTERMs (systemd's and the supervisor's) and must still wait for room; the give-up
    is the supervisor's second SIGTERM, or a SIGUSR1 to it (which killed it, and left its
    workers running), passed on as SIGUSR1. The merged status says the run failed."""
    with full_disk(tmp_path, workers=2) as (d, sender, workers):
        waiting = lambda: {w["node"] for w in events_logged(d, "sink-waiting")}  # noqa: E731
        wait_for(lambda: waiting() == {"node/0", "node/1"}, 60, "both workers to wait for room")
        for pid in workers:  # systemd's SIGTERM to every process of the unit ...
            os.kill(pid, signal.SIGTERM)
        d.proc.send_signal(signal.SIGTERM)  # ... and to the supervisor, which sends its own
        stopping = lambda: {w["node"] for w in events_logged(d, "sink-waiting") if w.get("stopping")}  # noqa: E731
        wait_for(lambda: stopping() == {"node/0", "node/1"}, 30, "both workers to wait for room to stop")
        time.sleep(2.0)  # a give-up would show within ms: a chunk retry pauses at most 1 s
        assert d.proc.poll() is None and not events_logged(d, "sink-failed"), "a worker gave up at one stop"
        d.proc.send_signal(give_up)  # the operator's: give up
        code = d.proc.wait(60)
    status = d.status()
    c = status["counters"]
    assert code == 1 and status["exit_codes"] == [1, 1] and status["failed"]
    assert {f["node"] for f in events_logged(d, "sink-failed")} == {"node/0", "node/1"}
    assert c["events_unwritten"] > 0 and c["events_out"] == c["events_written"] + c["events_unwritten"]


SINK = """
import json, resource, sys, threading, time
import numpy as np
from sim.wire import protocol as p
from node.sinks import RotatingFiles
directory, fmt, give_up_after = sys.argv[1], sys.argv[2], float(sys.argv[3])
dtype = p.event_dtype(4, 248, 2, 4)  # ~4 KB records: a 4 MB chunk holds 1,036
ev = np.zeros(3000, dtype)
ev["event"] = np.arange(3000)
ev["inputs"] = np.random.default_rng(1).integers(0, 1 << 30, ev["inputs"].shape)  # ROOT compresses zeros away
sink = RotatingFiles(directory, "ev", fmt=fmt, max_records=2000, flush_bytes=1 << 30, direct_io=False)
resource.setrlimit(resource.RLIMIT_FSIZE, (6 << 20, resource.RLIM_INFINITY))  # the first chunk fits
timer = threading.Timer(give_up_after, sink.give_up)
timer.daemon = True
timer.start()
sink.write(ev)
sink.flush()  # fills the first file (2,000 records: 2 chunks); its second chunk finds no room
sink.close()  # the first file's close waits for room: held until the give-up
print(json.dumps({"error": str(sink.error), "accepted": sink.accepted, "written": sink.written,
                  "lost": sink.lost, "files": len(sink.files)}))
"""


def run_sink(tmp_path, fmt: str, give_up_after: float = 1.5) -> dict:
    import json

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", SINK, str(tmp_path), fmt, str(give_up_after)],
                         env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_give_up_while_a_full_file_closes_ends_the_sink_and_counts_every_record(tmp_path):
    """The file reached max_records and its close waits for room (in ``close``, where the
    daemon's loop is held at a stop): the give-up must end that wait, raise nothing, keep the .tmp
    and count each record once, written (in logged chunks) or lost."""
    r = run_sink(tmp_path, "hdf5")
    assert "given up" in r["error"] and r["files"] == 0
    assert r["accepted"] == 3000 and r["written"] + r["lost"] == 3000
    from node.hdf5file import rows_per_chunk
    from node.sinks import RotatingFiles, read_events
    from sim.wire import protocol

    per_chunk = rows_per_chunk(protocol.event_dtype(4, 248, 2, 4))
    assert r["written"] == per_chunk  # the first chunk; the rest, and the 1,000 records after the file, lost
    assert len(list(tmp_path.glob("ev-*.h5.tmp"))) == 1
    again = RotatingFiles(tmp_path, "ev")  # the next start, with room: the chunk written comes back
    assert np.array_equal(read_events(again.recovered[0])["event"], np.arange(per_chunk))


TAIL_SINK = """
import json, resource, sys, threading, time
import numpy as np
from sim.wire import protocol as p
from node.hdf5file import rows_per_chunk
from node.sinks import RotatingFiles
directory = sys.argv[1]
dtype = p.event_dtype(4, 248, 2, 4)
n = rows_per_chunk(dtype) + 77  # a whole chunk, and 77 records of the next
ev = np.zeros(n, dtype)
ev["event"] = np.arange(n)
sink = RotatingFiles(directory, "ev", flush_bytes=1 << 30, direct_io=False)
resource.setrlimit(resource.RLIMIT_FSIZE, (6 << 20, resource.RLIM_INFINITY))  # the first chunk fits
sink.write(ev)
sink.flush()
deadline = time.monotonic() + 30
while sink.writer.io.tail_saved is None and time.monotonic() < deadline:  # the 77 go to the tail after TAIL_S
    sink.tick()
    time.sleep(0.05)
timer = threading.Timer(1.0, sink.give_up)
timer.daemon = True
timer.start()
sink.close()  # the last chunk finds no room: the close waits, held until the give-up
print(json.dumps({"error": str(sink.error), "written": sink.written, "lost": sink.lost, "n": n}))
"""


def test_a_file_given_up_counts_its_tail_as_written_as_its_next_start_rebuilds_it(tmp_path):
    """A file that failed to close counted as written only the records in its logged chunks,
    and the records in its tail as lost: the next start rebuilt them all the same, so the
    run's counts said fewer events were written than its files then held."""
    import json

    from node.sinks import RotatingFiles, read_events

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", TAIL_SINK, str(tmp_path)], env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert "given up" in r["error"] and r["written"] == r["n"] and r["lost"] == 0, r
    again = RotatingFiles(tmp_path, "ev")  # the next start: the chunk and the tail come back
    assert np.array_equal(read_events(again.recovered[0])["event"], np.arange(r["n"]))
    again.close()


def test_a_root_file_that_fails_in_the_nodes_thread_keeps_its_tmp_name(tmp_path):
    """The ROOT sink writes in the caller's thread: its write error ends the sink, the file
    is not renamed as if complete, and its records are counted lost."""
    r = run_sink(tmp_path, "root", give_up_after=60)
    assert r["error"] != "None" and r["files"] == 0
    assert r["accepted"] == 3000 and r["written"] == 0 and r["lost"] == 3000
    assert not list(tmp_path.glob("ev-*.root")) and list(tmp_path.glob("ev-*.root.tmp"))


OPEN = """
import json, resource, sys, threading, time
import numpy as np
from sim.wire import protocol as p
from node.sinks import RotatingFiles
directory, fmt = sys.argv[1], sys.argv[2]
ev = np.zeros(500, p.event_dtype(2, 8, 1, 4))
ev["event"] = np.arange(500)
sink = RotatingFiles(directory, "ev", fmt=fmt, flush_bytes=1 << 30, direct_io=False)
seen = []
sink.on_wait = lambda: seen.append(str(sink.waiting[0]))
resource.setrlimit(resource.RLIMIT_FSIZE, (256, resource.RLIM_INFINITY))  # not even a new file's first bytes

def room():
    time.sleep(1.5)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

threading.Thread(target=room, daemon=True).start()
sink.write(ev)
sink.close()
print(json.dumps({"error": str(sink.error), "files": [str(f) for f in sink.files], "written": sink.written,
                  "lost": sink.lost, "waited_on": seen}))
"""


@pytest.mark.parametrize("fmt", ["hdf5", "root"])
def test_a_new_file_waits_for_room_like_a_chunk(tmp_path, fmt):
    """No room for a new file's first bytes (HDF5's superblock, the chunk log's header,
    ROOT's header): it ended the sink and stopped the node, where a chunk waits."""
    import json

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", OPEN, str(tmp_path), fmt], env=env, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["error"] == "None" and r["written"] == 500 and r["lost"] == 0 and len(r["files"]) == 1
    assert r["waited_on"] and all(w.endswith(".tmp") for w in r["waited_on"])
    # no partial files left (the sink's lock on its files stays, as a crash leaves it: node.sinks.hold_prefix)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ev.lock", Path(r["files"][0]).name]
    from node.sinks import read_events

    assert np.array_equal(read_events(r["files"][0])["event"], np.arange(500))


def test_a_sink_that_fails_cuts_the_senders_off_at_once(tmp_path):
    """A sink that fails (not a full disk: here its folder is gone) stops the node; the
    stop took the senders' messages for another second, every one of them only to be
    counted unwritten (on PUSH/PULL they would have stayed with the senders) (review)."""
    d, port = start(tmp_path, max_events_per_file=2000)  # its next file fails to open
    sender = None
    try:
        sender = push(port)
        d.wait_counter("events_out", 5000, timeout=60)
        written_before = d.counter("events_written")
        (tmp_path / "out").rename(tmp_path / "moved")  # the open file's name and the next file's folder are gone
        (tmp_path / "out").write_text("a file where the folder was")
        code = d.proc.wait(60)
    finally:
        if sender is not None:
            sender.kill()
            sender.wait()
        d.kill()
    assert code == 1
    c = d.status()["counters"]
    (failed,) = events_logged(d, "sink-failed")
    (stopping,) = events_logged(d, "stopping")
    # after the failure only what ZeroMQ had queued (hwm 10 messages of 16 fragments) is taken in
    assert stopping["queued_messages"] <= 2 * 10
    assert c["events_unwritten"] - failed["records_unwritten"] <= 2 * 10 * 16 + 400
    assert c["events_out"] == c["events_written"] + c["events_unwritten"]
    # written: records safe in files, which never goes down (it counted the open file's, then lost them)
    assert 0 < written_before <= c["events_written"]
