"""A ROOT writer killed mid-file: the next sink of its prefix rebuilds the file from the
entries its log names (``node.rootfile``), never more, and leaves one it cannot rebuild
as it is."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from node_helpers import ROOT, Daemon, basic_config, free_port, kill_when_written

from node.rootfile import ENTRY, HEADER, MAGIC, ROOTWriter, entries_path
from node.sinks import RotatingFiles, read_events
from sim.wire import protocol as p

uproot = pytest.importorskip("uproot")  # (a dependency of the project: installed with it)

DTYPE = p.event_dtype(2, 3, 1, 4)
TMP = "ev-20261124T000000-00000.root.tmp"

WRITER = """
import sys, time
import numpy as np
from sim.wire import protocol as p
from node.sinks import RotatingFiles
directory, n = sys.argv[1], int(sys.argv[2])
sink = RotatingFiles(directory, "ev", fmt="root", flush_bytes=1, attrs={"node": "n1", "sources": [1, 2]})
ev = np.zeros(n, p.event_dtype(2, 3, 1, 4))
ev["event"] = np.arange(n)
ev["inputs"] = (np.arange(n) % 1000)[:, None, None]
for start in range(0, n, 70):
    sink.write(ev[start : start + 70])
print("written", flush=True)
time.sleep(600)
"""


def _records(n: int) -> np.ndarray:
    ev = np.zeros(n, DTYPE)
    ev["event"] = np.arange(n)
    ev["inputs"] = np.random.default_rng(3).integers(-(2**20), 2**20, ev["inputs"].shape)
    ev["first_ns"] = 10**18 + np.arange(n)
    return ev


def _killed(tmp, records: np.ndarray, attrs: dict | None = None, extend_bytes: int = 0, **kw) -> ROOTWriter:
    """A ROOT writer on ``tmp`` that wrote ``records`` (in extends of ``extend_bytes``, as
    the sink does, or in one) and was killed: its bytes out of the process, never closed."""
    writer = ROOTWriter(tmp, "events", attrs or {}, **kw)
    step = max(1, extend_bytes // DTYPE.itemsize) if extend_bytes else len(records)
    for start in range(0, len(records), step):
        writer.write([records[start : start + step]])
    writer._out.flush()
    return writer


def test_a_killed_root_writers_file_is_rebuilt_from_its_entries_log(tmp_path):
    """A ROOT sink killed with SIGKILL left its .tmp for good (ROOT files had no log):
    every event in it was lost to the run.  Now the next start rebuilds it, every entry
    the log names, in order, under the file's final name."""
    kill_when_written(WRITER, str(tmp_path), "500")
    (tmp,) = tmp_path.glob("ev-*.root.tmp")
    assert entries_path(tmp).stat().st_size == HEADER + 8 * ENTRY  # one entry per write of 70 records
    sink = RotatingFiles(tmp_path, "ev", fmt="root")
    sink.close()
    final = tmp.with_name(tmp.name.removesuffix(".tmp"))
    assert sink.recovered == [final] and sink.unrecovered == [] and sink.recovered_events == {final: 500}
    ev = read_events(final)
    assert ev["event"].tolist() == list(range(500))
    assert (ev["inputs"][:, 0, 0] == np.arange(500) % 1000).all()
    with uproot.open(final) as f:
        info = json.loads(f["events_info"])
    assert info["node"] == "n1" and info["sources"] == [1, 2]
    assert info["recovered"] == "500 events from the entries log of a killed writer"
    assert not tmp.exists() and not entries_path(tmp).exists()


def test_a_root_file_cut_after_any_write_is_rebuilt_to_its_log_or_left_as_it_is(tmp_path, monkeypatch):
    """uproot updates a tree in place; a file cut between two of its writes can read back
    with no error and not add up.  The writer's every write is replayed up to each cut,
    with the entries log as it stood then (its entry written once the extend's bytes are
    out, so a cut at an extend's end is tried with and without it): the rebuilt file holds
    exactly the rows the log names, or the .tmp is left untouched.  Never more, never
    other values; and every cut with a whole log entry is rebuilt."""
    from uproot.sink.file import FileSink

    writes: list[tuple[int, bytes]] = []
    real = FileSink.write

    def recorded(self, location, serialization):
        writes.append((location, bytes(serialization)))
        return real(self, location, serialization)

    monkeypatch.setattr(FileSink, "write", recorded)
    records = _records(600)
    whole = tmp_path / "whole" / TMP
    whole.parent.mkdir()
    writer = ROOTWriter(whole, "events", {"node": "n1"})
    ends, done = [len(writes)], 0  # the writes before each extend's log entry
    for n in (100, 100, 50, 150, 100, 100):
        writer.write([records[done : done + n]])
        done += n
        ends.append(len(writes))
    log = entries_path(whole).read_bytes()  # (read before the close, which leaves it to the sink to delete)
    writer.close()
    monkeypatch.setattr(FileSink, "write", real)
    logged = np.cumsum([0, 100, 100, 50, 150, 100, 100])
    assert log[HEADER:] == b"".join(int(e).to_bytes(ENTRY, "little") for e in logged[1:])

    states = []  # (writes replayed, the log's entries: None before the log exists)
    for c in range(len(writes) + 1):
        k = np.searchsorted(ends, c, side="right") - 1  # extends whose writes are all replayed
        if k < 0:
            states.append((c, None))
            continue
        states.append((c, int(logged[k])))
        if c == ends[k] and k > 0:
            states.append((c, int(logged[k - 1])))  # its entry not yet written
    rebuilt = left = 0
    for i, (c, entries) in enumerate(states):
        folder = tmp_path / f"cut{i}"
        folder.mkdir()
        data = bytearray()
        for location, chunk in writes[:c]:
            data.extend(b"\0" * max(0, location + len(chunk) - len(data)))
            data[location : location + len(chunk)] = chunk
        tmp = folder / TMP
        tmp.write_bytes(bytes(data))
        if entries is not None:
            entries_path(tmp).write_bytes(log[: HEADER + ENTRY * int(np.searchsorted(logged, entries))])
        sink = RotatingFiles(folder, "ev", fmt="root")
        sink.close()
        final = folder / TMP.removesuffix(".tmp")
        if sink.recovered:
            rebuilt += 1
            assert sink.recovered == [final] and entries, (c, entries)
            ev = read_events(final)
            assert len(ev["event"]) == entries, (c, entries)
            for name, column in ev.items():
                assert np.array_equal(column, records[name][:entries]), (c, entries, name)
        elif not tmp.exists():  # killed before its first records: nothing in it
            left += 1
            assert sink.removed_empty == [tmp] and sink.unrecovered == [] and not entries, (c, entries)
            assert c < ends[1], c  # cut before its first extend was whole: no record in it
        else:
            left += 1
            assert [t for t, _ in sink.unrecovered] == [tmp] and tmp.read_bytes() == bytes(data), (c, entries)
            assert not entries, (c, entries, sink.unrecovered)  # a whole entry: rebuilt
    assert rebuilt == sum(1 for _, e in states if e) and left == sum(1 for _, e in states if not e)


def test_a_root_file_without_an_entries_log_is_named_and_left(tmp_path):
    """A ROOT .tmp with no log (an earlier version's, or killed before it made one) is
    named at the start, with why, and left as it is; an HDF5 sink leaves a ROOT one too,
    and so does a ROOT sink one whose log names no entries (nothing went to it)."""
    tmp = tmp_path / TMP
    _killed(tmp, _records(10), entries_log=False)
    left = tmp.read_bytes()
    for fmt, why in (("root", "a ROOT file its writer never closed, with no entries log"),
                     ("hdf5", 'only a sink with sink.format = "root" rebuilds it')):  # fmt: skip
        sink = RotatingFiles(tmp_path, "ev", fmt=fmt)
        sink.close()
        assert sink.recovered == [] and [t for t, _ in sink.unrecovered] == [tmp], sink.unrecovered
        assert why in sink.unrecovered[0][1] and sink.unrecovered[0][1].endswith("left as it is")
        assert tmp.read_bytes() == left
    for log, why in (((MAGIC + b"S").ljust(HEADER), "names no entries"), (b"", "header does not read"),
                     (MAGIC[:5], "header does not read")):  # fmt: skip
        entries_path(tmp).write_bytes(log)
        sink = RotatingFiles(tmp_path, "ev", fmt="root")
        sink.close()
        assert [t for t, _ in sink.unrecovered] == [tmp] and why in sink.unrecovered[0][1], sink.unrecovered
        assert tmp.read_bytes() == left and sink.unrecovered[0][1].endswith("left as it is")


@pytest.mark.parametrize("fsync", [True, False])
@pytest.mark.parametrize("restarted", [True, False])
def test_after_a_restart_only_synced_entries_are_trusted(tmp_path, monkeypatch, fsync, restarted):
    """With fsync the file is synced every few MB or every second, and the entry after a
    sync says so.  A killed process loses nothing the log names (the kernel wrote it all);
    after a restart of the machine (the power went) only the synced entries are trusted,
    and a log written without fsync not at all: its file is named and left."""
    import node.rootfile

    monkeypatch.setattr(node.rootfile, "SYNC_S", 1e9)
    tmp = tmp_path / TMP
    writer = ROOTWriter(tmp, "events", {}, fsync=fsync)
    records = _records(60)
    for k, every in enumerate((1, 1, 1 << 40)):  # the third extend comes before its sync is due
        monkeypatch.setattr(node.rootfile, "SYNC_BYTES", every)
        writer.write([records[20 * k : 20 * k + 20]])
    writer._out.flush()
    if restarted:
        monkeypatch.setattr(node.rootfile, "boot_id", lambda: "another-boot")
    sink = RotatingFiles(tmp_path, "ev", fmt="root")
    sink.close()
    if fsync or not restarted:
        assert len(sink.recovered) == 1, sink.unrecovered
        expected = 40 if restarted else 60
        assert read_events(sink.recovered[0])["event"].tolist() == list(range(expected))
        assert [t.name for t, _ in sink.unrecovered] == ([TMP.replace(".tmp", ".damaged")] if restarted else [])
    else:
        assert sink.recovered == [] and "without fsync before the machine restarted" in sink.unrecovered[0][1]
        assert tmp.exists()


def test_entries_a_tree_counts_past_its_log_keep_the_tmp_as_damaged(tmp_path):
    """Killed between an extend and its log entry: the rows the log names are rebuilt, and
    the .tmp, whose last rows no log vouches for, is kept as NAME.root.damaged (not
    deleted), named in the warning."""
    tmp = tmp_path / TMP
    writer = ROOTWriter(tmp, "events", {})
    writer.write([_records(30)])
    entries = entries_path(tmp).read_bytes()
    writer.write([_records(50)[30:]])
    writer._out.flush()
    entries_path(tmp).write_bytes(entries)  # as if killed before the second entry
    sink = RotatingFiles(tmp_path, "ev", fmt="root")
    sink.close()
    final = tmp_path / TMP.removesuffix(".tmp")
    kept = final.with_name(final.name + ".damaged")
    assert sink.recovered == [final] and read_events(final)["event"].tolist() == list(range(30))
    assert [t for t, _ in sink.unrecovered] == [kept] and "its tree counts 50" in sink.unrecovered[0][1]
    assert not tmp.exists() and kept.exists() and not entries_path(tmp).exists()


def test_a_node_with_root_files_names_what_it_rebuilt(tmp_path):
    """The daemon's start logs the rebuilt ROOT file and its events (``recovered-files``),
    as it does an HDF5 one."""
    out = tmp_path / "out"
    out.mkdir()
    tmp = out / "node-w0-20261124T000000-00000.root.tmp"
    _killed(tmp, _records(40), {"node": "node"})
    d = Daemon(basic_config(tmp_path, free_port(), sink={"format": "root"}))
    try:
        status = d.stop()
    finally:
        d.kill()
    (line,) = [x for x in d.log_lines() if x.get("event") == "recovered-files"]
    final = str(tmp.with_name(tmp.name.removesuffix(".tmp")))
    assert line["files"] == [final] and line["events"] == [40], line
    assert (status["counters"]["events_recovered"], status["counters"]["late_recovered"]) == (40, 0)
    assert read_events(final)["event"].tolist() == list(range(40))


def test_an_entries_log_left_by_a_close_cut_short_is_deleted_at_the_next_start(tmp_path):
    """Killed between a file's rename and its log's removal: the next start deletes the
    log (its file is whole, under its final name) and touches nothing else."""
    tmp = tmp_path / TMP
    writer = ROOTWriter(tmp, "events", {})
    writer.write([_records(5)])
    writer.close()
    final = tmp_path / TMP.removesuffix(".tmp")
    tmp.rename(final)
    assert entries_path(tmp).exists()
    sink = RotatingFiles(tmp_path, "ev", fmt="root")
    sink.close()
    assert sink.recovered == [] and sink.unrecovered == [] and not entries_path(tmp).exists()
    assert read_events(final)["event"].tolist() == list(range(5))


def test_a_rebuilt_file_is_written_a_few_mb_per_basket(tmp_path):
    """The rebuild wrote every entry in one extend, so one basket per branch: a branch of
    more than 2 GiB (a .tmp of ~510k events of 4 KB, half the default max_events_per_file)
    was refused by uproot ("too large to fit in a TBasket") and the node did not start, at
    every try.  Now it is written a few MB per extend, as the sink's own writes were."""
    tmp = tmp_path / TMP
    records = _records(150_000)  # ~12 MB, written as the sink does: ~1 MB per extend
    _killed(tmp, records, extend_bytes=1 << 20)
    sink = RotatingFiles(tmp_path, "ev", fmt="root")
    sink.close()
    final = tmp_path / TMP.removesuffix(".tmp")
    assert sink.recovered == [final] and sink.unrecovered == []
    ev = read_events(final)
    for name, column in ev.items():
        assert np.array_equal(column, records[name]), name
    with uproot.open(final) as f:
        branch = f["events"]["inputs"]
        rows = [b - a for a, b in (branch.basket_entry_start_stop(i) for i in range(branch.num_baskets))]
    row_bytes = sum(column.nbytes for column in ev.values()) // len(records)  # (no reserved field)
    assert len(rows) > 1 and max(rows) * row_bytes <= 4 << 20, rows  # node.rootfile.REBUILD_BYTES


def test_an_events_file_rebuilt_by_a_start_cut_short_after_it_is_named(tmp_path):
    """A start rebuilt the events sink's files, then the late sink's, and only then logged
    what both rebuilt: killed while the late sink rebuilt a big file (or refused there),
    it had rebuilt the events file under its final name and named it in no line, and the
    next start found nothing to tell (a soak run's 91k-event file).  Now the events
    sink's rebuild is logged before the late sink starts."""
    from node.sinks import hold_prefix

    out = tmp_path / "out"
    out.mkdir()
    tmp = out / "node-w0-20261124T000000-00000.root.tmp"
    _killed(tmp, _records(40), {"node": "node"})
    held = hold_prefix(out, "late-node-w0")  # the start ends at the late sink: as if killed there
    try:
        cfg = basic_config(tmp_path, free_port(), sink={"format": "root"})
        proc = subprocess.run([sys.executable, "-m", "node.daemon", str(cfg)], cwd=tmp_path, capture_output=True,
                              text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    finally:
        os.close(held)
    assert proc.returncode == 2 and "late-node-w0" in proc.stderr, proc.stderr
    final = tmp.with_name(tmp.name.removesuffix(".tmp"))
    assert read_events(final)["event"].tolist() == list(range(40)) and not tmp.exists()
    lines = [json.loads(x) for x in proc.stderr.splitlines() if x.startswith("{")]
    (line,) = [x for x in lines if x.get("event") == "recovered-files"]
    assert line["files"] == [str(final)] and line["events"] == [40], line


def test_a_rebuild_reads_a_few_mb_at_a_time_not_the_whole_file(tmp_path):
    """The rebuild read every branch whole before writing: a 1 GB .tmp took 2 GB of
    memory at start (a full default file of 4 KB events, ~8 GB).  Now the rows come a
    group of baskets at a time, each within the bound, in order, all of them."""
    from node.rootfile import RecoveredTree

    tmp = tmp_path / TMP
    records = _records(60_000)  # ~5 MB, ~1 MB per extend
    _killed(tmp, records, extend_bytes=1 << 20)
    with RecoveredTree(tmp, "events", 50_000) as source:
        groups = list(source.batches(max_bytes=2 << 20))
    assert len(groups) > 2 and all(sum(a.nbytes for a in g.values()) <= 2 << 20 for g in groups)
    for name in groups[0]:
        assert np.array_equal(np.concatenate([g[name] for g in groups]), records[name][:50_000]), name


def test_a_root_writer_killed_before_its_first_records_leaves_nothing_to_name(tmp_path):
    """Killed before its first records (at a rotation, mostly: 7 of 123 kills of a soak),
    a ROOT writer left a .tmp with no entry in it, which every later start named as
    unrecovered and counted in sink_unrecovered_files for good.  It holds nothing: the
    start removes it (and its log) and says so at info."""
    from test_node_recovery import KILLED_IN_FIRST_FILE

    out = tmp_path / "out"
    out.mkdir()
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_FIRST_FILE, str(out), "node-w0", "root"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (tmp,) = out.glob("node-w0-*.root.tmp")
    d = Daemon(basic_config(tmp_path, free_port(), sink={"format": "root"}))
    try:
        d.stop()
    finally:
        d.kill()
    (line,) = [x for x in d.log_lines() if x.get("event") == "empty-files-removed"]
    assert line["files"] == [str(tmp)] and line["level"] == "info", line
    assert not [x for x in d.log_lines() if x.get("event") == "unrecovered-file"]
    assert not tmp.exists() and not entries_path(tmp).exists()


def test_a_failed_root_sink_counts_what_its_log_names_as_written(tmp_path, monkeypatch):
    """A ROOT sink whose write fails keeps its .tmp and entries log: the entries the log
    names are counted written (the next start rebuilds them) and only the rest lost.  The
    close dropped the log's descriptor first, and every record of the file was counted
    lost, though the next start rebuilt them."""
    import errno

    sink = RotatingFiles(tmp_path, "ev", fmt="root", flush_bytes=1)
    records = _records(40)
    for k in range(3):
        sink.write(records[10 * k : 10 * k + 10])
    real = ROOTWriter.write_columns

    def full(self, cols):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ROOTWriter, "write_columns", full)
    sink.write(records[30:])
    monkeypatch.setattr(ROOTWriter, "write_columns", real)
    sink.close()
    assert sink.error is not None and (sink.written, sink.lost) == (30, 10)
    (tmp,) = tmp_path.glob("ev-*.root.tmp")
    again = RotatingFiles(tmp_path, "ev", fmt="root")
    again.close()
    final = tmp.with_name(tmp.name.removesuffix(".tmp"))
    assert again.recovered_events == {final: 30}
    assert read_events(final)["event"].tolist() == list(range(30))


# the node's start (``python -m node.daemon CONFIG``), killed (SIGKILL) just before it gives
# its N-th rebuilt file (``NAME.tmp.rebuilt``) its final name
KILLED_AT_REBUILT = """
import os, signal, sys
from node import daemon
config, n = sys.argv[1], int(sys.argv[2])
real, renamed = os.replace, []

def replace(src, dst, *args, **kwargs):
    if os.fspath(src).endswith(".rebuilt"):
        renamed.append(src)
        if len(renamed) == n:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *args, **kwargs)

os.replace = replace
sys.exit(daemon.main([config]))
"""


def _killed_writers(out, fmt: str) -> tuple[list, list[int]]:
    """Two killed writers' ``.tmp`` files of sink ``node-w0`` in ``out``, of ``fmt``, each
    with its log; (the files, the events each holds)."""
    from test_node_recovery import _chunks, _killed_writer_tmp

    if fmt == "hdf5":
        return [_killed_writer_tmp(out, _chunks(0, 10, 20), "node-w0", k)[0] for k in range(2)], [30, 30]
    tmps = [out / f"node-w0-20261124T000000-{k:05d}.root.tmp" for k in range(2)]
    for tmp in tmps:
        _killed(tmp, _records(40), {"node": "node"})
    return tmps, [40, 40]


def _json_lines(text: str, event: str) -> list[dict]:
    return [x for x in (json.loads(line) for line in text.splitlines() if line.startswith("{")) if x["event"] == event]


@pytest.mark.parametrize("then", ["same", "other"])
@pytest.mark.parametrize("fmt", ["hdf5", "root"])
def test_a_start_killed_mid_rebuild_has_named_the_files_it_rebuilt_before(tmp_path, fmt, then):
    """A sink's start logged the files it rebuilt only once it had rebuilt them all: killed
    while it rebuilt the second of two, it had given the first its final name (and deleted
    its .tmp) and named it in no line, nor did the next start.  Now each is named once it
    has its final name; the next start names the second (rebuilt, or left by a sink of
    the other format), not the first again.  The kill also left the second's
    ``.rebuilt``: the next start deletes it, its .tmp and log being there to rebuild it
    from, and says so (``partial-rebuilds-removed``), whichever format it writes (one of
    the other format passed over it: it stayed, named by no start)."""
    out = tmp_path / "out"
    out.mkdir()
    tmps, events = _killed_writers(out, fmt)
    finals = [tmp.with_name(tmp.name.removesuffix(".tmp")) for tmp in tmps]
    cfg = basic_config(tmp_path, free_port(), sink={"format": fmt})
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_REBUILT, str(cfg), "2"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    partial = tmps[1].with_name(tmps[1].name + ".rebuilt")
    assert finals[0].exists() and not tmps[0].exists() and tmps[1].exists() and partial.exists()
    told = _json_lines(killed.stderr, "recovered-files")
    assert [(x["files"], x["events"]) for x in told] == [([str(finals[0])], events[:1])], killed.stderr
    other = {"hdf5": "root", "root": "hdf5"}[fmt]
    d = Daemon(basic_config(tmp_path, free_port(), sink={"format": fmt if then == "same" else other}))
    try:
        d.stop()
    finally:
        d.kill()
    logs = d.logs()
    (removed,) = _json_lines(logs, "partial-rebuilds-removed")
    assert removed["files"] == [str(partial)] and removed["level"] == "info", removed
    assert not partial.exists() and read_events(finals[0])["event"].tolist() == list(range(events[0]))
    told = [(x["files"], x["events"]) for x in _json_lines(logs, "recovered-files")]
    left = [x["file"] for x in _json_lines(logs, "unrecovered-file")]
    if then == "same":  # the second rebuilt now, the first not named again
        assert told == [([str(finals[1])], events[1:])] and left == [], logs
        assert read_events(finals[1])["event"].tolist() == list(range(events[1])) and not tmps[1].exists()
    else:  # a sink of the other format names the .tmp, as it is
        assert told == [] and left == [str(tmps[1])] and tmps[1].exists() and not finals[1].exists(), logs


@pytest.mark.parametrize("sink_fmt", ["hdf5", "root"])
@pytest.mark.parametrize("left", [".h5", ".root"])
def test_a_rebuilt_file_without_its_tmp_is_kept_and_named_by_any_start(tmp_path, left, sink_fmt):
    """A ``.rebuilt`` whose .tmp (or log) is gone is all that may be left of its events:
    every start names it, of either format, and leaves it as it is (no start named one)."""
    from node.chunklog import log_path

    partial = tmp_path / f"ev-20261124T000000-00000{left}.tmp.rebuilt"
    partial.write_bytes(b"rebuilt in part")
    without_log = tmp_path / f"ev-20261124T000000-00001{left}.tmp"
    without_log.write_bytes(b"a .tmp")  # (named too: without its log it is not rebuilt)
    (tmp_path / f"{without_log.name}.rebuilt").write_bytes(b"rebuilt in part")
    for _ in range(2):
        sink = RotatingFiles(tmp_path, "ev", fmt=sink_fmt)
        sink.close()
        named = {path.name: why for path, why in sink.unrecovered}
        for name in (partial.name, f"{without_log.name}.rebuilt"):
            assert "its .tmp or its log is no longer there" in named[name], sink.unrecovered
            assert (tmp_path / name).read_bytes() == b"rebuilt in part"
        assert sink.recovered == [] and not log_path(without_log).exists()


def test_a_new_file_never_takes_the_name_of_a_rebuilt_file_left(tmp_path):
    """A ``NAME.tmp.rebuilt`` left without its .tmp did not count as a name in use: a run
    stamped the same second took NAME, and its writer killed, the next start took the
    earlier ``.rebuilt`` for a partial rebuild of the new .tmp and deleted it."""
    import time

    now = time.time()
    for t in range(int(now) - 2, int(now) + 60):
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t))
        (tmp_path / f"ev-{stamp}-00000.root.tmp.rebuilt").write_bytes(b"earlier")
    sink = RotatingFiles(tmp_path, "ev", fmt="root", flush_bytes=1)
    sink.write(_records(5))
    sink.close()
    (final,) = sink.files
    assert not final.with_name(final.name + ".tmp.rebuilt").exists(), final.name
    assert all(f.read_bytes() == b"earlier" for f in tmp_path.glob("*.rebuilt"))


@pytest.mark.parametrize("write_files", [True, False])
def test_a_rebuilt_file_no_sink_of_the_node_takes_is_named_at_its_start(tmp_path, write_files):
    """A ``.rebuilt`` left without its .tmp under a prefix no sink of the node takes now
    (worker 1 of a node run with two), or by a node that now writes no files, was named by
    no start (they looked for ``.tmp`` files only).  Worker 0's start names it, counts it
    in sink_unrecovered_files, and leaves it as it is."""
    out = tmp_path / "out"
    out.mkdir()
    partial = out / "node-w1-20261124T000000-00000.root.tmp.rebuilt"
    partial.write_bytes(b"rebuilt in part")
    d = Daemon(basic_config(tmp_path, free_port(), sink={"write_files": write_files}))
    try:
        status = d.stop()
    finally:
        d.kill()
    (line,) = _json_lines(d.logs(), "unrecovered-file")
    assert line["file"] == str(partial) and line["reason"].endswith("left as it is"), line
    assert ("sink.write_files = false" in line["reason"]) != write_files, line
    assert status["gauges"]["sink_unrecovered_files"] == 1 and partial.read_bytes() == b"rebuilt in part"
