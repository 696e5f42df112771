"""A writer killed with SIGKILL leaves a .tmp that HDF5 cannot open; the next sink of the
same prefix rebuilds it from the chunk log: every chunk written before the kill, in order."""

from __future__ import annotations

import errno
import io
import os
import signal
import socket
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from node_helpers import (
    ROOT,
    Daemon,
    basic_config,
    free_port,
    free_ports,
    kill_when_written,
    needs_o_direct,
    read_status,
    wait_for,
)

from node import chunklog, config
from node.chunklog import boot_id, log_path, tail_path
from node.hdf5file import HDF5Writer, rows_per_chunk
from node.sinks import PrefixInUse, RotatingFiles, read_events
from sim.wire import protocol as p
from sim.wire.source import Source

WRITER = """
import sys, time
import numpy as np
from sim.wire import protocol as p
from node.sinks import RotatingFiles
directory, direct_io, n, fsync = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4] == "1"
dtype = p.event_dtype(4, 248, 2, 4)
sink = RotatingFiles(directory, "ev", flush_bytes=1 << 16, direct_io=direct_io, fsync=fsync,
                     attrs={"node": "n1", "sources": [1, 2]})
ev = np.zeros(n, dtype)
ev["event"] = np.arange(n)
ev["inputs"] = (np.arange(n) % 1000)[:, None, None]
for start in range(0, n, 300):
    sink.write(ev[start : start + 300])
sink.flush()
print("written", flush=True)
time.sleep(600)
"""


def kill_writer(directory, direct_io: bool, n: int, fsync: bool = True) -> None:
    args = [str(directory), "1" if direct_io else "0", str(n), "1" if fsync else "0"]
    kill_when_written(WRITER, *args, settle=1.0)  # (the writer thread's queue empties)


@pytest.mark.parametrize("direct_io", [True, False])
def test_a_killed_writers_file_is_rebuilt_from_its_chunks(tmp_path, direct_io):
    dtype = p.event_dtype(4, 248, 2, 4)
    per_chunk = rows_per_chunk(dtype)
    n = 5 * per_chunk + 77  # five whole chunks written; the partial sixth was never written
    kill_writer(tmp_path, direct_io, n)
    (tmp,) = tmp_path.glob("ev-*.h5.tmp")
    assert log_path(tmp).exists()
    with pytest.raises(OSError):  # the reason for the log: HDF5 writes its metadata at close
        h5py.File(tmp, "r")

    sink = RotatingFiles(tmp_path, "ev")
    assert [f.name for f in sink.recovered] == [tmp.name.removesuffix(".tmp")]
    assert not list(tmp_path.glob("*.tmp*")) and not list(tmp_path.glob("*.chunks"))
    ev = read_events(sink.recovered[0])
    assert np.array_equal(ev["event"], np.arange(5 * per_chunk))
    assert np.array_equal(ev["inputs"][:, 2, 7], np.arange(5 * per_chunk) % 1000)
    with h5py.File(sink.recovered[0], "r") as f:
        assert f["events"].attrs["node"] == "n1" and list(f["events"].attrs["sources"]) == [1, 2]
        assert "killed writer" in f["events"].attrs["recovered"]
    sink.close()  # nothing written: no new file
    assert len(list(tmp_path.glob("ev-*.h5"))) == 1


def test_a_killed_writers_file_without_a_whole_chunk_is_rebuilt_empty_but_readable(tmp_path):
    """Killed before its first whole chunk (a low rate, or the late file): the rebuilt file
    had no dataset at all (no ``recovered`` attribute; ``read_events`` gave {})."""
    kill_writer(tmp_path, False, 77)
    sink = RotatingFiles(tmp_path, "ev")
    (recovered,) = sink.recovered
    with h5py.File(recovered, "r") as f:
        assert f["events"].shape == (0,) and "0 events from the chunks" in f["events"].attrs["recovered"]
        assert f["events"].dtype == p.event_dtype(4, 248, 2, 4) and f["events"].attrs["node"] == "n1"
    sink.close()


@pytest.mark.parametrize("fsync", [True, False])
@pytest.mark.parametrize("direct_io", [True, False])
def test_after_a_restart_only_a_synced_log_is_trusted(tmp_path, monkeypatch, direct_io, fsync):
    """A writer killed, then the machine restarted (a power loss, as far as the disk knows):
    with fsync every logged chunk was on the disk before its entry, with O_DIRECT or through
    the page cache, and the file is rebuilt; without, the log may name chunks that never got
    there, so the file is left as it is, with the reason, rather than rebuilt with zeros."""
    if direct_io:
        needs_o_direct(tmp_path)
    dtype = p.event_dtype(4, 248, 2, 4)
    per_chunk = rows_per_chunk(dtype)
    kill_writer(tmp_path, direct_io, 2 * per_chunk + 7, fsync)
    (tmp,) = tmp_path.glob("ev-*.h5.tmp")
    assert boot_id() is not None, "no boot id on this system: the check is not exercised"
    other_boot = tmp_path / "boot_id"
    other_boot.write_text("0d0c0b0a-0000-4000-8000-000000000000\n")
    monkeypatch.setattr(chunklog, "BOOT_ID", other_boot)
    sink = RotatingFiles(tmp_path, "ev")
    if fsync:
        assert len(sink.recovered) == 1 and sink.unrecovered == []
        assert np.array_equal(read_events(sink.recovered[0])["event"], np.arange(2 * per_chunk))
    else:
        assert sink.recovered == [] and [t for t, _ in sink.unrecovered] == [tmp]
        assert "restarted" in sink.unrecovered[0][1]
        assert tmp.exists() and log_path(tmp).exists()  # nothing lost: left for a person to judge
    sink.close()


def _npy_of(dtype) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.zeros(0, dtype))
    return buf.getvalue()


@pytest.mark.parametrize(
    "log",
    [
        b"",
        b'{"tree": "events", "attrs"',
        b"[1, 2]\n" + _npy_of(np.dtype("<u8")),  # a header that is not a chunk log's: AttributeError at start
        b'{"tree": "events", "attrs": {}}\nxx',
        b'{"tree": "events", "attrs": {}}\n' + _npy_of(np.dtype([])),  # records of no size: none could be counted
    ],
)
def test_a_chunk_log_without_a_whole_header_leaves_its_file_as_it_is(tmp_path, log):
    """The writer died (or the power went) before the log's header reached the disk: the
    node still starts, and the .tmp is left for a person, with the reason."""
    tmp = tmp_path / "ev-20261123T000000-00000.h5.tmp"
    tmp.write_bytes(b"\0" * 4096)
    log_path(tmp).write_bytes(log)
    sink = RotatingFiles(tmp_path, "ev")
    assert sink.recovered == [] and [t for t, _ in sink.unrecovered] == [tmp]
    assert "header does not read" in sink.unrecovered[0][1] and tmp.exists() and log_path(tmp).exists()
    sink.close()


def test_the_node_starts_beside_a_file_it_cannot_rebuild_and_says_so(tmp_path):
    """The daemon's side: a .tmp of its own prefix whose log cannot be trusted is named in
    a warning with the reason, left in place, and the node runs and stops cleanly."""
    out = tmp_path / "out"
    out.mkdir()
    tmp = out / "node-w0-20261123T000000-00000.h5.tmp"
    tmp.write_bytes(b"\0" * 4096)
    log_path(tmp).write_bytes(b"")
    d = Daemon(basic_config(tmp_path, free_port()))
    try:
        d.stop()
    finally:
        d.kill()
    (line,) = [x for x in d.log_lines() if x.get("event") == "unrecovered-file"]
    assert line["file"] == str(tmp) and "header does not read" in line["reason"] and line["level"] == "warning"
    assert tmp.exists() and log_path(tmp).exists()


TAIL_WRITER = """
import sys, time
import numpy as np
from sim.wire import protocol as p
from node.hdf5file import TAIL_S
from node.sinks import RotatingFiles
directory, n, more = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
dtype = p.event_dtype(4, 248, 2, 4)
sink = RotatingFiles(directory, "ev", flush_bytes=1 << 16)
ev = np.zeros(n + more, dtype)
ev["event"] = np.arange(n + more)
ev["inputs"] = (np.arange(n + more) % 1000)[:, None, None]
sink.write(ev[:n])
sink.flush()
time.sleep(TAIL_S + 0.1)
sink.tick()  # the loop's turn: the chunk not whole after TAIL_S goes to its tail
sink.write(ev[n : n + more])  # then more, in no tail yet: lost with the writer
sink.flush()
time.sleep(0.5)
print("written", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("whole_chunks", [0, 2])
def test_a_chunk_that_did_not_fill_is_kept_in_a_tail_and_rebuilt(tmp_path, whole_chunks):
    """At a low rate a ~4 MB chunk takes minutes to fill: a killed writer lost every event
    since its last whole chunk (the node had published them).  A chunk not whole after
    TAIL_S goes to a tail file beside the chunk log, and the rebuilt file ends with it."""
    per_chunk = rows_per_chunk(p.event_dtype(4, 248, 2, 4))
    n = whole_chunks * per_chunk + 77
    kill_when_written(TAIL_WRITER, str(tmp_path), str(n), "5")
    (tmp,) = tmp_path.glob("ev-*.h5.tmp")
    assert tail_path(tmp).exists()
    sink = RotatingFiles(tmp_path, "ev")
    (recovered,) = sink.recovered
    ev = read_events(recovered)
    assert np.array_equal(ev["event"], np.arange(n))  # the 5 written after the tail: lost
    assert np.array_equal(ev["inputs"][:, 3, 200], np.arange(n) % 1000)
    assert not list(tmp_path.glob("*.tail*")) and not list(tmp_path.glob("*.chunks"))
    sink.close()


def test_a_node_killed_at_a_low_rate_loses_seconds_of_events_not_a_chunk(tmp_path):
    """The daemon's side (found by hand: 2,000 events published, SIGKILL 9 s later, the
    rebuilt file empty): events older than TAIL_S + sink.flush_s are in the rebuilt file."""
    port = free_port()
    cfg = basic_config(tmp_path, port, sources=[0, 1])
    d = Daemon(cfg)
    try:
        srcs = [Source(s, f"tcp://127.0.0.1:{port}", n_inputs=8, n_outputs=2) for s in (0, 1)]
        for s in srcs:
            s.send(np.arange(300), np.ones((300, 8)), np.zeros((300, 2)))
            s.close()
        d.wait_counter("events_out", 300)
        time.sleep(3.0)  # > TAIL_S + sink.flush_s and a turn of the writer thread
        d.proc.kill()
        d.proc.wait()
    finally:
        d.kill()
    d = Daemon(cfg)
    status = d.stop()
    (line,) = [x for x in d.log_lines() if x.get("event") == "recovered-files"]
    got = np.concatenate([read_events(f)["event"] for f in sorted((tmp_path / "out").glob("node-w0-*.h5"))])
    assert sorted(got.tolist()) == list(range(300)), line
    # the line says how many events each rebuilt file holds, not only its name
    assert line["events"] == [len(read_events(f)["event"]) for f in line["files"]] and sum(line["events"]) == 300
    # and so do the counters, apart from what the stream wrote (none here)
    c = status["counters"]
    assert (c["events_recovered"], c["late_recovered"], c["events_written"]) == (300, 0, 0)


def test_a_closed_file_leaves_no_log_and_nothing_to_recover(tmp_path):
    dtype = p.event_dtype(2, 8, 1, 4)
    sink = RotatingFiles(tmp_path, "ev", flush_bytes=1 << 10)
    sink.write(np.zeros(5000, dtype))
    sink.close()
    assert not list(tmp_path.glob("*.chunks")) and not list(tmp_path.glob("*.tmp*"))
    assert RotatingFiles(tmp_path, "ev").recovered == []


def test_a_file_still_closing_is_not_taken_by_a_node_started_meanwhile(tmp_path, monkeypatch):
    """The chunk log's lock was let go before HDF5's metadata and the rename (which can wait
    for room on a full disk): a node started on the folder then rebuilt the file under its
    final name while its writer was still closing it.  Now the lock is held until the
    file has its final name, and so is the sink's on its prefix (``hold_prefix``)."""
    import node.sinks as sinks_mod

    seen = []

    def rename(tmp, final, fsync=True):
        with pytest.raises(PrefixInUse):  # a node of the same name started right now
            RotatingFiles(tmp_path, "ev")
        seen.append(chunklog.writer_alive(tmp))  # what a start not holding the prefix looks at
        return durable_replace(tmp, final, fsync)

    durable_replace = sinks_mod.durable_replace
    monkeypatch.setattr(sinks_mod, "durable_replace", rename)
    sink = RotatingFiles(tmp_path, "ev", flush_bytes=1)
    sink.write(np.zeros(10, p.event_dtype(2, 3, 1, 4)))
    sink.close()
    assert seen == [True] and len(sink.files) == 1 and len(read_events(sink.files[0])["event"]) == 10


def test_a_file_another_live_writer_holds_is_not_taken(tmp_path):
    """Two sinks of one prefix on one directory (a misconfiguration, or a restart racing the
    old process): the new one must not rebuild the file the live one is writing.  It is
    refused (in one process too: the lock is the open file's); a live writer that does not
    hold the prefix (an earlier version's) is still known by its chunk log's lock."""
    dtype = p.event_dtype(2, 8, 1, 4)
    live = RotatingFiles(tmp_path, "ev", flush_bytes=1 << 10, direct_io=False)
    live.write(np.zeros(200_000, dtype))  # several chunks written, the file open
    (tmp,) = tmp_path.glob("ev-*.h5.tmp")
    with pytest.raises(PrefixInUse, match=f"this process \\(pid {os.getpid()}\\) writes the files named ev-"):
        RotatingFiles(tmp_path, "ev")
    assert tmp.exists()
    live.close()
    assert len(read_events(next(tmp_path.glob("ev-*.h5")))["event"]) == 200_000
    earlier = HDF5Writer(tmp_path / "ev-20261123T000000-00000.h5.tmp", "events", {}, direct_io=False, dtype=dtype)
    earlier.write([np.zeros(20_000, dtype)])
    start = RotatingFiles(tmp_path, "ev")
    start.close()
    assert start.recovered == [] and start.unrecovered == [] and earlier.path.exists()
    earlier.close()
    earlier.release_log()


def test_a_chunk_log_entry_cut_short_is_taken_back_whole(tmp_path):
    """No room for the whole 32-byte entry (here the file-size limit; a full disk alike):
    the part written is cut off again, so the entry written once there is room is read
    back where it belongs, not behind half of it."""
    import resource

    log = chunklog.ChunkLog(tmp_path / "ev.h5.tmp", p.event_dtype(2, 8, 1, 4), "events", {})
    log.record(0, 10, 4096, 8192)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (log.path.stat().st_size + 20, hard))  # room for 20 of its 32 bytes
    try:
        with pytest.raises(OSError, match="only 20 of 32 bytes") as info:
            log.record(10, 10, 12288, 8192)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(log.path)
    log.record(10, 10, 12288, 8192)
    log.close()
    *_, entries = chunklog.read_log(log.path)
    assert entries["row"].tolist() == [0, 10] and entries["offset"].tolist() == [4096, 12288]


SMALL = p.event_dtype(2, 8, 1, 4)  # the records of the hand-written .tmp files below


def _killed_writer_tmp(directory, entries, prefix: str = "ev", index: int = 0) -> tuple:
    """A killed writer's ``.tmp`` (file ``index`` of ``prefix``) holding events 0..29 of
    ``SMALL`` back to back, and its chunk log with ``entries`` (row, rows, byte offset,
    bytes); (the .tmp, its events)."""
    tmp = directory / f"{prefix}-20261123T000000-{index:05d}.h5.tmp"
    ev = np.zeros(30, SMALL)
    ev["event"] = np.arange(30)
    tmp.write_bytes(ev.tobytes())
    log = chunklog.ChunkLog(tmp, SMALL, "events", {})
    for entry in entries:
        log.record(*entry)
    log.close()
    return tmp, ev


def _chunks(*rows: int) -> list:
    """Log entries of 10-row chunks at their own rows' place in the file."""
    return [(row, 10, row * SMALL.itemsize, 10 * SMALL.itemsize) for row in rows]


def test_a_chunk_logged_twice_is_rebuilt_once_and_the_chunks_after_it_too(tmp_path):
    """A chunk written again after an error (its first entry's sync failed on a full disk)
    may be logged twice: the rebuild took the second entry for a gap and dropped the rest."""
    tmp, _ = _killed_writer_tmp(tmp_path, _chunks(0, 10, 10, 20))
    _, _, records, left = chunklog.recovered_records(tmp)
    assert records["event"].tolist() == list(range(30)) and left is None


@pytest.mark.parametrize(
    "rows, offset",
    [
        (10**12, 20 * SMALL.itemsize),  # rows by the trillion: a MemoryError at start
        (4 * 10**18, 20 * SMALL.itemsize),  # more bytes than an index holds: an OverflowError at start
        (10, 2**63 + 5),  # an offset no file reaches
        (10, 25 * SMALL.itemsize),  # five of its ten rows beyond the file's end
        (30, 0),  # within the file, but more bytes than the file has left for chunks
    ],
)
def test_a_chunk_log_entry_beyond_the_file_ends_the_rebuild_there(tmp_path, rows, offset):
    """A corrupt entry (bytes beyond the .tmp's end, or more than the file holds) is read as
    the end of the log, as a chunk not wholly in the file always was: the chunks before it
    are rebuilt.  Its rows were read unchecked, and the node did not start (MemoryError,
    OverflowError) until someone deleted the file.  The .tmp and its log, which hold the
    bytes not rebuilt, are kept aside (they were deleted) and named in ``unrecovered``."""
    tmp, ev = _killed_writer_tmp(tmp_path, [*_chunks(0, 10), (20, rows, offset, rows * SMALL.itemsize % 2**64)])
    sink = RotatingFiles(tmp_path, "ev")
    assert len(sink.recovered) == 1
    assert read_events(sink.recovered[0])["event"].tolist() == list(range(20))
    sink.close()
    kept = tmp_path / "ev-20261123T000000-00000.h5.damaged"
    [(path, reason)] = sink.unrecovered
    assert path == kept and "20 events rebuilt" in reason and f"names bytes {offset}" in reason
    assert kept.read_bytes() == ev.tobytes()
    assert chunklog.read_log(kept.with_name(kept.name + ".chunks"))[3]["row"].tolist() == [0, 10, 20]
    assert not tmp.exists() and RotatingFiles(tmp_path, "ev").recovered == []  # not taken for a .tmp again


def test_chunks_logged_after_a_gap_are_kept_on_the_disk(tmp_path):
    """A gap in the log (no entry for rows 10..19): the chunks after it cannot be placed in
    row order; the rebuild stops there, and the .tmp that holds them is kept, not deleted."""
    _, ev = _killed_writer_tmp(tmp_path, _chunks(0, 20))
    sink = RotatingFiles(tmp_path, "ev")
    assert read_events(sink.recovered[0])["event"].tolist() == list(range(10))
    sink.close()
    [(path, reason)] = sink.unrecovered
    assert "no chunk is logged for row 10, but one is for row 20" in reason
    assert path.read_bytes() == ev.tobytes() and path.with_name(path.name + ".chunks").exists()


# Dies (SIGKILL) just before its K-th rename, replace or unlink of a file in DIRECTORY: what a
# crash between two steps of the recovery (or of a rotation) leaves on the disk.  Prints
# "done" when it got through with fewer steps than K.
KILLED_AT_STEP = """
import os, signal, sys
import numpy as np
from sim.wire import protocol as p
from node.sinks import RotatingFiles
directory, scenario, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
steps = 0

def hook(real):
    def call(path, *args, **kwargs):
        global steps
        if os.fspath(path).startswith(directory):
            steps += 1
            if steps == k:
                os.kill(os.getpid(), signal.SIGKILL)
        return real(path, *args, **kwargs)
    return call

for name in ("replace", "rename", "unlink"):
    setattr(os, name, hook(getattr(os, name)))
if scenario == "rotation":  # three files closed, one after the other (renamed, log and tail removed)
    sink = RotatingFiles(directory, "ev", max_records=10, flush_bytes=1)
    ev = np.zeros(25, p.event_dtype(2, 8, 1, 4))
    ev["event"] = np.arange(25)
    sink.write(ev)
    sink.close()
else:  # the start that rebuilds the killed writer's .tmp
    RotatingFiles(directory, "ev")
print("done", flush=True)
"""


def _crash_at(directory, scenario: str, k: int) -> bool:
    """Run ``scenario`` in a process killed before its ``k``-th step; whether it got through."""
    out = subprocess.run([sys.executable, "-c", KILLED_AT_STEP, str(directory), scenario, str(k)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode in (0, -signal.SIGKILL), out.stderr
    return out.stdout.strip() == "done"


def _with_tail(tmp, ev, row: int) -> bytes:
    """A tail of ``tmp`` holding ``ev[row:]`` (as the writer thread keeps it); its bytes."""
    chunklog.write_tail(tmp, [ev[row:]], row, sync=False)
    return tail_path(tmp).read_bytes()


@pytest.mark.parametrize("scenario", ["damaged", "rebuilt", "rotation"])
def test_a_crash_between_any_two_steps_loses_nothing_and_the_next_start_finishes(tmp_path, scenario):
    """A process killed just before each rename or unlink in turn (the rebuild of a killed
    writer's file, whole or keeping what it could not place; the close of rotating files):
    the next start finds every event where a finished run would have put it, nothing
    under a .tmp name, and says what it kept.  A rebuild that kept a damaged .tmp renamed
    the .tmp first, and the next start deleted its chunk log as one whose file had got its
    final name."""
    k = 0
    while True:
        k += 1
        directory = tmp_path / f"k{k}"
        directory.mkdir()
        if scenario != "rotation":
            ev = np.zeros(35, SMALL)
            ev["event"] = np.arange(35)
            tmp, _ = _killed_writer_tmp(directory, _chunks(0, 20) if scenario == "damaged" else _chunks(0, 10, 20))
            tail = _with_tail(tmp, ev, 30)
            log = log_path(tmp).read_bytes()
            original = tmp.read_bytes()
        if _crash_at(directory, scenario, k):
            break
        sink = RotatingFiles(directory, "ev")  # the next start
        sink.close()
        assert not list(directory.glob("*.tmp*")), (k, sorted(directory.iterdir()))
        files = sorted(directory.glob("ev-*.h5"))
        got = np.concatenate([read_events(f)["event"] for f in files]).tolist()
        if scenario == "rotation":  # killed closing file j (3 steps each): files 0..j hold their events
            j = (k - 1) // 3
            assert len(files) == j + 1 and sorted(got) == list(range(min(10 * (j + 1), 25))), k
            continue
        kept = tmp.with_name(tmp.name.removesuffix(".tmp") + ".damaged")
        if scenario == "rebuilt":
            assert got == list(range(35)) and sink.unrecovered == [], k
            assert sorted(directory.iterdir()) == [directory / ".ev.lock", *files], k
            continue
        assert got == list(range(10)), k
        assert [path for path, _ in sink.unrecovered] == [kept], k
        assert "no chunk is logged for row 10" in sink.unrecovered[0][1], k
        assert kept.read_bytes() == original and log_path(kept).read_bytes() == log, k
        assert tail_path(kept).read_bytes() == tail, k
        again = RotatingFiles(directory, "ev")  # nothing left to do
        assert again.recovered == [] and again.unrecovered == [], k
        again.close()
    assert k == (5 if scenario != "rotation" else 10)  # every step was a kill point before the run got through


@pytest.mark.parametrize(
    "behind",
    [
        (".chunks", ".tail"),  # the .tmp renamed first, as the version before did, and killed there
        (".tail",),  # ... and killed after its log
        ("",),  # the log and tail first, as now, and killed before the .tmp
        ("", ".tail"),  # ... and killed before the tail
        # a power loss: renames not synced in between need not reach the disk in their order
        ("", ".chunks"),
        (".chunks",),
    ],
)
def test_a_keep_cut_short_after_any_of_its_renames_is_finished_not_its_log_deleted(tmp_path, behind):
    """A start killed while it kept a damaged .tmp as NAME.h5.damaged leaves some of the
    .tmp, its log and its tail (``behind``) under their .tmp names, the rest renamed.  The
    .tmp renamed first left its log and tail, which the next start deleted as a closed
    file's; whichever are left, the next start now gives them the kept file's names."""
    ev = np.zeros(35, SMALL)
    ev["event"] = np.arange(35)
    tmp, original = _killed_writer_tmp(tmp_path, _chunks(0, 20))
    tail = _with_tail(tmp, ev, 30)
    log = log_path(tmp).read_bytes()
    RotatingFiles(tmp_path, "ev").close()  # kept whole, then put back as the crash left it:
    kept = tmp_path / "ev-20261123T000000-00000.h5.damaged"
    for suffix in behind:
        kept.with_name(kept.name + suffix).rename(tmp.with_name(tmp.name + suffix))
    sink = RotatingFiles(tmp_path, "ev")
    sink.close()
    assert kept.read_bytes() == original.tobytes()
    assert log_path(kept).read_bytes() == log and tail_path(kept).read_bytes() == tail
    [(path, reason)] = sink.unrecovered
    assert path == kept and "no chunk is logged for row 10" in reason
    assert not list(tmp_path.glob("*.tmp*"))
    assert read_events(tmp_path / "ev-20261123T000000-00000.h5")["event"].tolist() == list(range(10))
    again = RotatingFiles(tmp_path, "ev")
    assert again.recovered == [] and again.unrecovered == []
    again.close()


@pytest.mark.parametrize("fsync", [True, False])
def test_a_rebuilt_file_is_on_the_disk_before_the_tmp_it_came_from_is_deleted(tmp_path, monkeypatch, fsync):
    """What a power loss after the rebuild needs (it cannot be staged here): the rebuilt
    file synced, renamed, the rename synced, and only then the killed writer's .tmp and log
    deleted, with ``sink.fsync`` off too (it only spares the stream its syncs): else the
    .tmp's unlink could outlive the rebuilt file's bytes, and both copies be lost."""
    _killed_writer_tmp(tmp_path, _chunks(0, 10, 20))
    done: list[tuple[str, str]] = []
    real_fsync, real_replace, real_unlink = os.fsync, os.replace, os.unlink
    monkeypatch.setattr(os, "fsync", lambda fd: (done.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                 real_fsync(fd))[1])  # fmt: skip
    monkeypatch.setattr(os, "replace", lambda a, b: (done.append(("rename", str(b))), real_replace(a, b))[1])
    monkeypatch.setattr(os, "unlink", lambda a: (done.append(("unlink", str(a))), real_unlink(a))[1])
    sink = RotatingFiles(tmp_path, "ev", fsync=fsync)
    (final,) = sink.recovered
    tmp = f"{final}.tmp"
    mine = [d for d in done if d[1].startswith(str(tmp_path))]
    assert mine[:5] == [("fsync", tmp + ".rebuilt"), ("rename", str(final)), ("fsync", str(tmp_path)),
                        ("unlink", tmp), ("unlink", tmp + ".chunks")], mine  # fmt: skip
    assert read_events(final)["event"].tolist() == list(range(30))
    sink.close()


def test_the_longest_node_name_taken_leaves_room_for_every_file_a_start_makes(tmp_path):
    """The configuration's check of node.name counted file names up to ``.h5.tmp.chunks``;
    a start that keeps a damaged file makes ``NAME.h5.damaged.chunks``, 4 longer (a tail's
    ``.h5.tmp.tail.new`` 2, a rebuild's ``.h5.tmp.rebuilt`` 1): with a name within 4 of
    the limit every start failed there (ENAMETOOLONG) and the node never started.  The
    longest name taken, on a real filesystem: the late sink's file is rebuilt and kept."""

    def taken(n: int) -> bool:
        try:
            config.parse({"node": {"name": "n" * n}})
            return True
        except config.ConfigError:
            return False

    longest = max(n for n in range(150, 256) if taken(n))
    prefix = f"late-{'n' * longest}-w0"
    ev = np.zeros(35, SMALL)
    ev["event"] = np.arange(35)
    tmp, _ = _killed_writer_tmp(tmp_path, _chunks(0, 20), prefix)
    _with_tail(tmp, ev, 30)
    sink = RotatingFiles(tmp_path, prefix)
    sink.close()
    [(kept, _)] = sink.unrecovered
    assert log_path(kept).exists() and tail_path(kept).exists() and kept.exists()
    assert read_events(sink.recovered[0])["event"].tolist() == list(range(10))


def test_a_new_file_never_takes_the_name_of_a_file_kept_as_damaged(tmp_path):
    """A kept ``NAME.h5.damaged`` whose rebuilt ``NAME.h5`` was taken away (shipped, as
    files with a final name are) did not count as a name in use: a run stamped the same
    second (a clock set back) took NAME again, and its own keep would have been renamed
    over the earlier one's files."""
    now = time.time()
    for t in range(int(now) - 2, int(now) + 60):
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t))
        (tmp_path / f"ev-{stamp}-00000.h5.damaged").write_bytes(b"earlier")
    sink = RotatingFiles(tmp_path, "ev", flush_bytes=1)
    sink.write(np.zeros(5, SMALL))
    sink.close()
    (final,) = sink.files
    assert not final.with_name(final.name + ".damaged").exists(), final.name
    assert all(f.read_bytes() == b"earlier" for f in tmp_path.glob("*.damaged"))


def test_a_start_takes_only_its_own_prefixs_files_not_a_longer_prefixs(tmp_path):
    """A node named "n-w1" writes ``n-w1-w0-*``, which ``n-w1-*`` (worker 1 of node "n" on
    the same directory) matched too: that start rebuilt the other node's file, or left its
    log half moved, while the other's own start did the same."""
    tmp, _ = _killed_writer_tmp(tmp_path, _chunks(0, 10, 20), prefix="n-w1-w0")
    other = RotatingFiles(tmp_path, "n-w1")
    other.close()
    assert other.recovered == [] and other.unrecovered == [] and tmp.exists() and log_path(tmp).exists()
    own = RotatingFiles(tmp_path, "n-w1-w0")
    own.close()
    assert [f.name for f in own.recovered] == ["n-w1-w0-20261123T000000-00000.h5"]
    assert read_events(own.recovered[0])["event"].tolist() == list(range(30))


# A start of the sink "ev" on DIRECTORY held in its recovery, its rebuilt file written and
# closed, until a line comes on stdin; then it goes on, closes and names what it rebuilt
HELD_RECOVERY = """
import sys
import node.sinks as sinks
directory = sys.argv[1]
replace = sinks.durable_replace

def held(*args, **kwargs):
    print("rebuilt", flush=True)
    sys.stdin.readline()
    return replace(*args, **kwargs)

sinks.durable_replace = held
sink = sinks.RotatingFiles(directory, "ev")
sink.close()
print("recovered", *[f.name for f in sink.recovered], flush=True)
"""

# Another start of the sink "ev" on DIRECTORY: what it rebuilt, or why it could not start
START = """
import sys
from node.sinks import RotatingFiles
try:
    sink = RotatingFiles(sys.argv[1], "ev")
except Exception as exc:
    print("refused", exc, flush=True)
else:
    sink.close()
    print("started", *[f.name for f in sink.recovered], flush=True)
"""


@pytest.mark.parametrize("first", ["finishes", "is killed"])
def test_a_second_start_of_one_prefix_is_refused_while_the_first_recovers(tmp_path, first):
    """Two starts of one prefix on one directory at once (two nodes of one node.name): both
    found the killed writer's .tmp unowned and rebuilt it, writing one ``.rebuilt`` file,
    renaming and deleting under each other.  Now the second is refused, naming the
    directory, the files and the first's pid; the first's recovery ends as it would alone.
    The lock it leaves on the disk (finished, or killed in the middle) blocks no later start."""
    tmp, _ = _killed_writer_tmp(tmp_path, _chunks(0, 10, 20))
    final = tmp.with_name(tmp.name.removesuffix(".tmp"))
    held = subprocess.Popen([sys.executable, "-c", HELD_RECOVERY, str(tmp_path)], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert held.stdout.readline().strip() == "rebuilt"
        second = subprocess.run([sys.executable, "-c", START, str(tmp_path)], cwd=ROOT, capture_output=True,
                                text=True, timeout=120)  # fmt: skip
        if first == "finishes":
            held.stdin.write("\n")
            held.stdin.close()
            assert held.stdout.readline().split() == ["recovered", final.name]
        else:
            held.kill()
    finally:
        held.kill()
        held.wait()
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("refused"), second.stdout
    assert f"{tmp_path}: another process (pid {held.pid}) writes the files named ev-* there" in second.stdout
    lock = tmp_path / ".ev.lock"
    assert lock.exists()  # left behind, as a crash leaves it
    again = RotatingFiles(tmp_path, "ev")  # not blocked by it
    again.close()
    assert again.recovered == ([] if first == "finishes" else [final]) and again.unrecovered == []
    assert sorted(tmp_path.iterdir()) == [lock, final]  # no .tmp, .rebuilt, .damaged or log left
    assert read_events(final)["event"].tolist() == list(range(30))


def test_a_second_node_of_one_name_on_one_directory_is_refused_while_the_first_runs(tmp_path):
    """The daemon's side: a second node started with the first's node.name and
    sink.directory (its own ports and status file) is refused at start, in one line naming
    the name, the directory and the first's pid, with the status of a start error (2); the
    first runs on, and once it has stopped the second starts."""
    out = tmp_path / "out"
    first = Daemon(basic_config(tmp_path, free_port()))
    (tmp_path / "second").mkdir()
    cfg = basic_config(tmp_path / "second", free_port(), sink={"directory": str(out)})
    try:
        with open(tmp_path / "second" / "node.log", "w") as log:
            second = subprocess.Popen([sys.executable, "-m", "node.daemon", str(cfg)], cwd=tmp_path / "second",
                                      stderr=log, env=dict(os.environ, PYTHONPATH=str(ROOT)))  # fmt: skip
        try:  # its exit, or its status file (started: the test fails)
            wait_for(lambda: second.poll() is not None or (tmp_path / "second/node-status.json").exists(), 60)
        finally:
            second.kill()
            second.wait()
        errors = (tmp_path / "second" / "node.log").read_text()
        assert second.returncode == 2, errors
        assert errors.splitlines() == [
            f"node: error: node.name 'node': {out}: another process (pid {first.proc.pid}) writes the files "
            "named node-w0-* there; two nodes on one sink.directory need names of their own"
        ]
        assert first.proc.poll() is None
        first.stop()
    finally:
        first.kill()
    again = Daemon(cfg)
    try:
        again.stop()
    finally:
        again.kill()


def test_a_second_supervisor_of_one_name_on_one_directory_is_refused_in_one_line(tmp_path):
    """With several workers, a second node of the first's node.name and sink.directory (its
    own ports and status file) started its workers, each refused in a line of its own
    among the supervisor's JSON lines, and wrote a final, failed status.  Now the
    supervisor is refused before it starts a worker, in the one line a single node says."""
    out = tmp_path / "out"
    first = Daemon(basic_config(tmp_path, free_ports(2), node={"workers": 2}))
    (tmp_path / "second").mkdir()
    cfg = basic_config(tmp_path / "second", free_ports(2), node={"workers": 2}, sink={"directory": str(out)})
    try:
        wait_for(lambda: first.status()["workers"] == 2, 60, "both workers started")
        worker0 = read_status(tmp_path / "node-status.json.w0")["pid"]
        second = subprocess.run([sys.executable, "-m", "node.daemon", str(cfg)], cwd=tmp_path / "second",
                                capture_output=True, text=True, timeout=120,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)))  # fmt: skip
        assert second.returncode == 2, second.stderr
        assert second.stderr.splitlines() == [
            f"node: error: node.name 'node': {out}: another process (pid {worker0}) writes the files named "
            "node-w0-* there; two nodes on one sink.directory need names of their own"
        ]
        assert not (tmp_path / "second" / "node-status.json").exists()
        assert first.proc.poll() is None
        first.stop()
    finally:
        first.kill()


def test_a_lock_file_another_user_left_blocks_no_start(tmp_path, monkeypatch):
    """The lock file of an earlier run as another user (root, say: 0644) cannot be opened
    for writing; an flock needs only the file open, so the start takes it all the same,
    and holds it.  Its pid is not written there then: a start refused meanwhile named the
    pid the earlier run left (a process long gone, or another since given its number),
    and now names the holder, as the kernel gives it."""
    (tmp_path / ".ev.lock").write_text("4242\n")
    real_open = os.open

    def as_another_user(path, flags, *args):
        if str(path).endswith(".lock") and flags & os.O_RDWR:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", as_another_user)
    sink = RotatingFiles(tmp_path, "ev")
    with pytest.raises(PrefixInUse) as refused:
        RotatingFiles(tmp_path, "ev")
    sink.close()
    RotatingFiles(tmp_path, "ev").close()
    if os.path.exists("/proc/locks"):  # the holder, not the pid the earlier run left (4242: a process long gone)
        assert refused.value.pid == os.getpid(), str(refused.value)


def test_a_lock_held_from_another_host_names_that_host(tmp_path, monkeypatch):
    """On a directory shared between hosts (NFS), the kernel here does not list a lock that
    another host's node holds, and the pid written in the lock file was named as if it were
    a process on this host (a process of that number here, or none).  The holder writes its
    host beside its pid, and a refusal names it."""
    from node import lockfile

    fd = lockfile.hold(tmp_path / ".ev.lock")
    try:
        assert (tmp_path / ".ev.lock").read_text().split() == [str(os.getpid()), socket.gethostname()]
        os.pwrite(fd, b"4242 daq-node-7\n", 0)  # as the other host's node wrote it
        real_open = open

        def no_proc_locks(path, *args, **kwargs):  # as for a lock held on the NFS server
            if str(path) == "/proc/locks":
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr("builtins.open", no_proc_locks)
        with pytest.raises(PrefixInUse) as refused:
            RotatingFiles(tmp_path, "ev")
    finally:
        os.close(fd)
    assert "another process (pid 4242 on host daq-node-7) writes the files named ev-*" in str(refused.value)


# A sink of PREFIX on DIRECTORY killed (SIGKILL) in its first file: an HDF5 file's before
# its chunk log is made; a ROOT file's before its entries log is
KILLED_IN_FIRST_FILE = """
import os, signal, sys
import numpy as np
import node.hdf5file, node.rootfile
from node.sinks import RotatingFiles
from sim.wire import protocol as p
directory, prefix, fmt = sys.argv[1:]
node.hdf5file.ChunkLog = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
node.rootfile.entries_path = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
sink = RotatingFiles(directory, prefix, fmt=fmt, flush_bytes=1)
sink.write(np.zeros(10, p.event_dtype(2, 3, 1, 4)))
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("fmt, why", [("hdf5", "no chunk log beside it")])
def test_the_node_names_a_killed_writers_file_it_cannot_rebuild_at_start(tmp_path, fmt, why):
    """A .tmp no log can rebuild: an HDF5 file whose writer was killed before it made the
    chunk log.  The start passed over it without a word; now its warning names the file
    and why, and leaves it as it is.  (A ROOT file killed before its entries log holds no
    entry, and the start removes it: ``tests/test_node_root_recovery.py``.)"""
    out = tmp_path / "out"
    out.mkdir()
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_FIRST_FILE, str(out), "node-w0", fmt], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (tmp,) = out.glob(f"node-w0-*.{'h5' if fmt == 'hdf5' else 'root'}.tmp")
    assert not log_path(tmp).exists()
    left = tmp.read_bytes()
    d = Daemon(basic_config(tmp_path, free_port(), sink={"format": fmt}))
    try:
        d.stop()
    finally:
        d.kill()
    (line,) = [x for x in d.log_lines() if x.get("event") == "unrecovered-file"]
    assert line["file"] == str(tmp) and line["level"] == "warning", line
    assert line["reason"].startswith(why) and line["reason"].endswith("left as it is"), line
    assert tmp.read_bytes() == left


def test_a_root_sink_names_an_hdf5_file_it_does_not_rebuild(tmp_path):
    """A node switched to sink.format = "root" passed over a killed writer's HDF5 .tmp
    without a word (only an HDF5 sink rebuilds one); an HDF5 sink still does later."""
    tmp, _ = _killed_writer_tmp(tmp_path, _chunks(0, 10, 20))
    sink = RotatingFiles(tmp_path, "ev", fmt="root")
    sink.close()
    assert sink.recovered == [] and [t for t, _ in sink.unrecovered] == [tmp], sink.unrecovered
    assert 'only a sink with sink.format = "hdf5" rebuilds it' in sink.unrecovered[0][1]
    assert tmp.exists() and log_path(tmp).exists()
    sink = RotatingFiles(tmp_path, "ev")
    sink.close()
    assert read_events(sink.recovered[0])["event"].tolist() == list(range(30)) and sink.unrecovered == []


def test_a_directory_that_refuses_locks_is_named(tmp_path, monkeypatch):
    """A sink.directory on a filesystem that refuses flock (ENOLCK: NFS without a lock
    daemon, say) stopped the start with "[Errno 37] No locks available", naming no file
    and no key.  Now the error names the lock file it could not lock."""
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.raises(OSError) as refused:
        RotatingFiles(tmp_path, "ev")
    assert refused.value.errno == errno.ENOLCK and refused.value.filename == str(tmp_path / ".ev.lock")
    assert "No locks available" in str(refused.value)


@pytest.mark.parametrize("left_by", ["worker 1 of a node run with two", "a late sink, now sink.late = false"])
def test_files_no_sink_of_the_node_takes_now_are_rebuilt_at_its_start(tmp_path, left_by):
    """Each start looked only at its own sinks' prefixes: a killed writer's file of a worker
    the node no longer runs (node.workers lowered after a crash), or of its late sink once
    sink.late is off, stayed a .tmp for good, never named.  Now the node's start (worker 0)
    rebuilds it as that sink's start would, and says so."""
    out = tmp_path / "out"
    out.mkdir()
    late = left_by.startswith("a late sink")
    tmp, _ = _killed_writer_tmp(out, _chunks(0, 10, 20), prefix="late-node-w0" if late else "node-w1")
    node = Daemon(basic_config(tmp_path, free_port(), sink={"late": False} if late else {}))
    try:
        status = node.stop()
    finally:
        node.kill()
    final = tmp.with_name(tmp.name.removesuffix(".tmp"))
    assert not tmp.exists() and read_events(final)["event"].tolist() == list(range(30))
    told = [x for x in node.log_lines() if x["event"] in ("recovered-files", "unrecovered-file")]
    assert [(x["event"], x.get("files")) for x in told] == [("recovered-files", [str(final)])], told
    c = status["counters"]  # counted as the sink's whose prefix it has
    assert (c["events_recovered"], c["late_recovered"]) == ((0, 30) if late else (30, 0))
