"""Where built events (and late fragments) go: rotating files and a PUB socket.

Files are written under a temporary name (``*.tmp``), flushed, closed and only then
renamed to their final name, so a file with a final name is always complete: a crash
leaves at most one ``.tmp`` file behind per sink, never a corrupt ``.h5``/``.root``.

HDF5 (h5py) is the default: a built event is a record with fixed-size N-d arrays
(sources x inputs), which HDF5 stores natively as chunked, appendable datasets that
NumPy, pandas and ROOT's own ``TFile``-free tools read directly; the records are
written a whole chunk at a time (``node.hdf5file``).  ROOT (uproot) is offered for analyses that live in ROOT.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from node import lockfile
from node.arena import ChunkArena
from node.chunkio import until_room
from node.chunklog import SUFFIX, TAIL_SUFFIX, distrust, log_path, recovered_records, tail_path, writer_alive
from node.durable import durable_replace
from node.hdf5file import HDF5Writer, chunk_layout, import_h5py
from node.rootfile import (
    ENTRIES_SUFFIX,
    RecoveredTree,
    ROOTWriter,
    Unreadable,
    entries_path,
    holds_no_entries,
    key_names,
    logged_entries,
)
from sim.wire import protocol
from sim.wire.endpoint import prepare
from sim.wire.security import server_curve

FORMATS = {"hdf5": ".h5", "root": ".root"}
REBUILT = ".rebuilt"  # NAME.h5.tmp.rebuilt, NAME.root.tmp.rebuilt: a killed writer's .tmp being rebuilt (_rebuilding)
DAMAGED = ".damaged"  # NAME.h5.damaged{,.chunks,.tail}: a .tmp's bytes its chunk log could not place, kept
# why a start leaves a .tmp of its prefix as it is (``unrecovered``): said at every start, until someone acts
NO_LOG = ("no chunk log beside it: its writer was killed before making one, so before any event went to the file "
          "(or the log was removed); nothing to rebuild it from, left as it is")  # fmt: skip
ROOT_NO_LOG = ("a ROOT file its writer never closed, with no entries log beside it (an earlier version's, or its "
               "writer was killed before making one); nothing says which of its entries are whole (read as it is, "
               "its tree may count more entries than its branches give back: a write cut short); "
               "left as it is")  # fmt: skip
ROOT_NO_ENTRY = ("a ROOT file its writer never closed, whose entries log names no entries but whose tree holds some "
                 "(killed between its first write and its log entry); none is vouched for, left as it is")  # fmt: skip
ROOT_NOT_REBUILT = ("a ROOT file its writer never closed: only a sink with sink.format = \"root\" rebuilds it, "
                    "this one writes HDF5; left as it is")  # fmt: skip
HDF5_NOT_REBUILT = ("an HDF5 file its writer never closed: only a sink with sink.format = \"hdf5\" rebuilds it, "
                    "this one writes ROOT; left as it is")  # fmt: skip
REBUILT_LEFT = ("a file a start was rebuilding from a killed writer's .tmp when it was cut short (killed, or its "
                "rename to its final name failed); its .tmp or its log is no longer there to rebuild it again: it "
                "may hold some or all of that .tmp's events, nothing says which; left as it is")  # fmt: skip
REBUILT_NO_FILES = ("a file an earlier start of this node was rebuilding from a killed writer's .tmp when it was cut "
                    "short; this node writes no files (sink.write_files = false) and touches none: a start with files "
                    "deletes it if that .tmp and its log are there to rebuild it again, else names it; "
                    "left as it is")  # fmt: skip
NO_FILES_WRITTEN = ("a file an earlier run of this node left unclosed; this node writes no files "
                    "(sink.write_files = false) and so rebuilds none: a start with files rebuilds an HDF5 one "
                    "from its chunk log, a ROOT one from its entries log; left as it is")  # fmt: skip
# late files hold few records (late fragments are rare), and every HDF5 file takes at least
# a whole chunk on the disk: ~4 MB chunks made each late file of a soak run ~2 MB for a
# few KB of fragments (117 MB for 3 MB, rotating every 5 s); a late storm costs a write
# per 256 KB, ~200 us of the writer thread's CPU each
LATE_CHUNK_BYTES = 256 << 10
ARENA_SLOTS = 12  # chunks of arena (node.arena): the writer's queue (8) and the chunks being gathered
# what follows PREFIX- in a file's name (``_open``): PREFIX-* also matched the files of the
# prefix PREFIX-wK (node.name "n-w1" against node "n"'s worker 1), which a start then took
STAMPED = "[0-9]" * 8 + "T" + "[0-9]" * 6 + "-[0-9]*"


def sink_prefixes(name: str, worker: int) -> tuple[str, str]:
    """The file prefixes of worker ``worker`` of node ``name``: its events, its late fragments."""
    return f"{name}-w{worker}", f"late-{name}-w{worker}"


def tmp_files_found(directory: Path, name: str) -> dict[str, list[Path]]:
    """Node ``name``'s files left as ``.tmp`` in ``directory`` (and rebuilds of them cut
    short, ``.tmp.rebuilt``), sorted, by their prefix (``sink_prefixes``, any worker)."""
    stamped = re.compile(rf"((?:late-)?{re.escape(name)}-w\d+)-\d{{8}}T\d{{6}}-\d+\.(?:h5|root)\.tmp(?:\{REBUILT})?")
    found: dict[str, list[Path]] = {}
    for path in sorted(directory.glob(f"*{name}-w*.tmp*")):
        m = stamped.fullmatch(path.name)
        if m:
            found.setdefault(m.group(1), []).append(path)
    return found


class PrefixInUse(RuntimeError):
    """Another live sink, of this process or another, writes a directory's files of a prefix."""

    def __init__(self, directory: Path, prefix: str, held: lockfile.Held):
        self.directory, self.prefix, self.pid = directory, prefix, held.pid
        super().__init__(f"{directory}: {held.holder} writes the files named {prefix}-* there")

    def refusal(self, name: str) -> str:
        """The one line a node of ``node.name`` ``name`` is refused with (its worker or its supervisor)."""
        return f"node.name {name!r}: {self}; two nodes on one sink.directory need names of their own"


def check_prefix_free(directory: Path, prefix: str) -> None:
    """Raise ``PrefixInUse`` if a live sink holds ``directory``'s files of ``prefix``,
    creating and writing nothing: a supervisor asks before it starts its workers, to be
    refused in the one line a single node is (each worker was refused in a line of its
    own, and the supervisor wrote a final, failed status)."""
    try:
        lockfile.check_free(directory / f".{prefix}.lock")
    except lockfile.Held as held:
        raise PrefixInUse(directory, prefix, held) from None


def hold_prefix(directory: Path, prefix: str) -> int:
    """Lock ``directory``'s files of ``prefix`` for one sink (the fd; close it to let go):
    two nodes started on one folder with one ``node.name`` both rebuilt a killed writer's
    ``.tmp`` (racing on its ``.rebuilt``, the renames and unlinks), and a ``.tmp`` found at
    start can only be a dead writer's if no live one of the prefix runs beside
    (``node.lockfile``: the kernel drops the lock with its process)."""
    try:
        return lockfile.hold(directory / f".{prefix}.lock")
    except lockfile.Held as held:
        raise PrefixInUse(directory, prefix, held) from None


def _keep(tmp: Path, kept: Path) -> None:
    """Rename a killed writer's ``tmp``, its chunk log and its tail to ``kept``'s names
    (``NAME.h5.damaged``, ``.damaged.chunks``, ``.damaged.tail``): the log and the tail
    first, the ``.tmp`` last, so that a crash in between leaves the ``.tmp`` for the next
    start to find and finish (``_recover``); renamed first, it left a log without its
    ``.tmp``, which a start deletes as a closed file's."""
    for leftover, to in ((log_path(tmp), log_path(kept)), (tail_path(tmp), tail_path(kept)), (tmp, kept)):
        if leftover.exists():
            leftover.rename(to)


@contextmanager
def _rebuilding(tmp: Path, log: str) -> Iterator[Path]:
    """The ``.rebuilt`` file a killed writer's ``tmp`` is rebuilt into from its ``log``,
    deleted if the rebuild fails or is cut short (an exception from a signal handler): no
    half file left.  A failure is an ``OSError`` naming ``tmp``, but ``Unreadable`` (the
    ``.tmp``'s own rows, not the rebuild, are at fault: the caller leaves it as it is)."""
    rebuilt = tmp.with_name(tmp.name + REBUILT)
    try:
        yield rebuilt
    except BaseException as exc:
        rebuilt.unlink(missing_ok=True)
        if not isinstance(exc, Exception) or isinstance(exc, Unreadable):
            raise
        raise OSError(getattr(exc, "errno", None), f"rebuilding it from its {log} failed: {exc}", str(tmp)) from None


def _root_unreadable(entries: int, exc: Exception) -> str:
    """What ``unrecovered`` says of a ROOT ``.tmp`` whose tree does not give back what its log names."""
    return f"its tree does not give back the {entries} entries its entries log names ({exc}); left as it is"


def _kept_why(kept: Path, final: Path, records: np.ndarray | None = None, left: str | None = None) -> str:
    """What ``unrecovered`` says of a file kept as ``kept``: how many events went to ``final``
    and why the rest did not (read again from the kept files where not given: a keep that a
    crash cut short, finished by the next start)."""
    if records is None:
        try:
            _, _, records, left = recovered_records(kept)
        except (OSError, ValueError) as exc:
            return f"its chunk log could not place all of it ({exc}); kept as {kept.name}*"
    why = f"{len(records)} events rebuilt into {final.name}, the rest not: {left}"
    return f"{why}; the .tmp and its chunk log are kept as {kept.name}*"


@dataclass(eq=False)
class _Closing:
    """The file rotated out, closed once its writer thread has written its chunks."""

    writer: HDF5Writer | ROOTWriter
    tmp: Path
    final: Path
    records: int
    failed: bool  # the sink failed while this was its file: it keeps its .tmp name


class RotatingFiles:
    """Append structured records to files that rotate by size and age; atomic renames.

    Records are gathered in memory and handed to the file ``flush_bytes`` at a time (or
    after ``flush_s``), so that its bookkeeping runs once per MB, not once per drain.
    HDF5 chunks go to the file from a writer thread (see ``ChunkIO``), ``direct_io``: with
    O_DIRECT where the filesystem allows it.  ``fsync``: each HDF5 chunk is on the disk
    before the chunk log names it, and a file before it gets its final name
    (``durable_replace``).

    While the HDF5 writer is ``busy`` (the disk behind, or no room for a chunk:
    ``waiting``) records are only gathered, and the caller should wait (``wait_room``)
    rather than hand over more; ``give_up`` ends the waiting for room.  A write that fails
    (given up, or any error but no room) ends the sink: ``error`` says why, the file keeps
    its ``.tmp`` name (and chunk log: the next start rebuilds the chunks written, counted
    in ``written``), and every record not in a file, then or later, is counted in
    ``lost``.  No method raises for a failed write: the caller checks ``error``.

    A directory's files of one prefix are one sink's from its start to its ``close``:
    another, in this process or another, is refused meanwhile (``PrefixInUse``)."""

    def __init__(
        self,
        directory: str | Path,
        prefix: str,
        *,
        fmt: str = "hdf5",
        tree: str = "events",
        max_records: int = 1_000_000,
        max_seconds: float = 300.0,
        flush_bytes: int = 1 << 20,
        flush_s: float = 0.5,
        attrs: dict[str, Any] | None = None,
        direct_io: bool = True,
        fsync: bool = True,
        chunk_bytes: int | None = None,
        on_recovery: Callable[[RotatingFiles], None] | None = None,
    ):
        if fmt not in FORMATS:
            raise ValueError(f"sink.format: {fmt!r} is not one of {sorted(FORMATS)}")
        if fmt == "hdf5":
            import_h5py()  # now, not at the first write: importing it mid-stream stalls the loop ~60 ms
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prefix, self.fmt, self.tree = prefix, fmt, tree
        self.max_records, self.max_seconds = max_records, max_seconds
        self.flush_bytes, self.flush_s = flush_bytes, flush_s
        self.attrs = attrs or {}
        self.direct_io = direct_io
        self.fsync = fsync
        self.chunk_bytes = chunk_bytes  # HDF5 chunks (None: node.hdf5file.CHUNK_BYTES); see LATE_CHUNK_BYTES
        self.index = 0
        self.writer: HDF5Writer | ROOTWriter | None = None
        # the file rotated out, until it is closed (its chunks written: ``tick``); the next
        # file is opened after that
        self.closing: _Closing | None = None
        self.opening: tuple[Path, OSError, float] | None = None  # a new file waiting for room: (file, error, since)
        self.records_in_file = 0
        self.opened = 0.0
        self.written = 0  # records in closed (renamed) files, or in the logged chunks of one that failed to close
        self.files: list[Path] = []
        self.pending: list[np.ndarray] = []
        self.pending_records = 0
        self.pending_bytes = 0
        self.pending_since = 0.0
        self.lost = 0  # records accepted but in no file: a write failed, or was given up
        self._tail_errors = 0  # tails the files already closed could not write (``tail_errors``)
        # called about once a second while a file's close or opening waits for room (the caller's thread is held)
        self.on_wait: Callable[[], None] | None = None
        self.gave_up = False
        self.error: Exception | None = None  # the write failure that ended this sink
        self.unrecovered: list[tuple[Path, str]] = []  # (.tmp left as it is, or kept as .damaged, why)
        # a killed writer's files, rebuilt under their final names: the events in each (logged with its name)
        self.recovered_events: dict[Path, int] = {}
        self.removed_empty: list[Path] = []  # a killed writer's ROOT .tmp that held no entry: deleted
        self.removed_partial: list[Path] = []  # a rebuild cut short (.rebuilt) beside its .tmp and log: deleted
        # called (with this sink) as each file's recovery is done, before the next: see ``untold``
        self.on_recovery = on_recovery
        self._told = (0, 0, 0, 0)  # how much of each of ``untold``'s lists it gave
        # the prefix's files are this sink's until ``close``: its start finds only dead writers' .tmp
        self._prefix_lock = hold_prefix(self.directory, prefix)
        try:
            self._recover()
        except BaseException:
            self._let_go()
            raise
        self.arena: ChunkArena | None = None  # see use_arena

    def use_arena(self, dtype: np.dtype) -> bool:
        """Offer memory laid out as the files' chunks (``node.arena``) for records of
        ``dtype`` to be built in (``reserve``); HDF5 only, and only where whole chunks of
        them are whole pages.  Made now: its pages are touched at once."""
        rows, whole_pages = chunk_layout(dtype, self.chunk_bytes)
        if self.fmt == "hdf5" and whole_pages:
            try:
                self.arena = ChunkArena(dtype, rows, ARENA_SLOTS)
            except (OSError, ValueError, MemoryError):  # no memory for it: the writer copies as before
                self.arena = None
        return self.arena is not None

    def reserve(self, ahead: int, n: int) -> np.ndarray | None:
        """Memory for ``n`` records that will be handed to ``write`` after ``ahead`` other
        records (not yet handed over) and nothing else: at the rows of the file they will
        go to, where the arena can serve them; else None (any memory will do then)."""
        if self.arena is None or self.error is not None:
            return None
        row = self.records_in_file + self.pending_records + ahead
        if row + n > self.max_records:  # they go (in part) to the next file
            return None
        return self.arena.reserve(row, n)

    @property
    def recovered(self) -> list[Path]:
        """The files the start rebuilt, in the order it rebuilt them."""
        return list(self.recovered_events)

    def untold(self) -> tuple[list[Path], list[Path], list[Path], list[tuple[Path, str]]]:
        """What the start did with a killed writer's files since the last call: the files it
        rebuilt (``recovered``), removed (``removed_empty``, ``removed_partial``) and left
        or kept (``unrecovered``).  Asked by ``on_recovery`` as each file is done: a start
        cut short (killed, or failing on a later file) has told all it did before."""
        lists = (self.recovered, self.removed_empty, self.removed_partial, self.unrecovered)
        told, self._told = self._told, tuple(len(x) for x in lists)
        recovered, empty, partial, unrecovered = (x[n:] for x, n in zip(lists, told, strict=True))
        return recovered, empty, partial, unrecovered

    def _tell(self) -> None:
        """Hand what the start did so far to ``on_recovery``."""
        if self.on_recovery is not None:
            self.on_recovery(self)

    def _let_go(self) -> None:
        """Release the prefix (``hold_prefix``) for the next sink of it; once."""
        if self._prefix_lock >= 0:
            os.close(self._prefix_lock)
            self._prefix_lock = -1

    def _recover(self) -> None:
        """Rebuild the files a killed writer of this prefix left as ``.tmp`` under their
        final names (``recovered``): HDF5 files from their chunk logs (``_recover_hdf5``),
        ROOT files from their entries logs (``_recover_root``).  One that cannot be rebuilt
        is left as it is and listed in ``unrecovered`` with the reason, so that the operator
        hears of it: a file of the other format than the sink's among them.  Each file is
        told (``on_recovery``) once it has its final name, before its ``.tmp`` goes.
        First the rebuilds a start cut short left (``_sweep_rebuilt``), of either format."""
        self._sweep_rebuilt()
        roots = sorted(self.directory.glob(f"{self.prefix}-{STAMPED}{FORMATS['root']}.tmp"))
        found = sorted(self.directory.glob(f"{self.prefix}-{STAMPED}{FORMATS['hdf5']}.tmp"))
        if self.fmt != "hdf5":  # (h5py need not be there)
            self.unrecovered += [(tmp, HDF5_NOT_REBUILT) for tmp in found]
            self._recover_root(roots)
        else:
            self.unrecovered += [(tmp, ROOT_NOT_REBUILT) for tmp in roots]
            self._recover_hdf5(found)
        self._tell()

    def _sweep_rebuilt(self) -> None:
        """The ``.rebuilt`` files of this prefix, of either format, that a start cut short
        left (SIGKILL mid-rebuild; a rename that failed): one beside its ``.tmp`` and that
        one's log is deleted (``removed_partial``), whatever it holds: all of it comes from
        them, and a start of its format rebuilds it again (a start of the other format names
        the ``.tmp``).  One without them is all there may be of its events: left as it is and
        named (``unrecovered``).  Before, a start of the other format named neither, nor did
        any start one without its ``.tmp``."""
        for fmt, ext in FORMATS.items():
            for rebuilt in sorted(self.directory.glob(f"{self.prefix}-{STAMPED}{ext}.tmp{REBUILT}")):
                tmp = rebuilt.with_name(rebuilt.name.removesuffix(REBUILT))
                log = entries_path(tmp) if fmt == "root" else log_path(tmp)
                if tmp.exists() and log.exists():
                    rebuilt.unlink()
                    self.removed_partial.append(rebuilt)
                else:
                    self.unrecovered.append((rebuilt, REBUILT_LEFT))
        self._tell()

    def _recover_hdf5(self, found: list[Path]) -> None:
        """Rebuild the HDF5 files a killed writer of this prefix left as ``.tmp`` from their
        chunk logs (``node.chunklog``).  One another process still writes (one that does not
        hold the prefix: an older version) is left alone; one without a log, or with a log
        that cannot be trusted (``distrust``), is listed in ``unrecovered``.
        What a log cannot place is kept as ``.damaged`` (``_keep``); a keep cut short by a
        crash is finished here."""
        for tmp in found:
            final = tmp.with_name(tmp.name.removesuffix(".tmp"))
            kept = final.with_name(final.name + DAMAGED)
            if not log_path(tmp).exists():
                if log_path(kept).exists():  # a start cut short keeping it: its log was moved, the .tmp not yet
                    _keep(tmp, kept)
                    self.unrecovered.append((kept, _kept_why(kept, final)))
                    self._tell()  # now: no later start names a file kept as .damaged
                else:
                    self.unrecovered.append((tmp, NO_LOG))
                continue
            if writer_alive(tmp):
                continue
            reason = distrust(tmp)
            if reason is not None:
                self.unrecovered.append((tmp, reason))
                continue
            tree, attrs, records, left = recovered_records(tmp)
            attrs = {**attrs, "recovered": f"{len(records)} events from the chunks of a killed writer"}
            with _rebuilding(tmp, "chunk log") as rebuilt:
                # the dataset (and its attributes, ``recovered`` among them) even with no chunk to rebuild
                writer = HDF5Writer(rebuilt, tree, attrs, direct_io=False, crash_log=False, dtype=records.dtype,
                                    chunk_bytes=self.chunk_bytes)  # fmt: skip
                writer.give_up()  # at start a full disk is an error naming the file, not a wait
                try:
                    if len(records):
                        writer.write([records])
                finally:
                    writer.close()
            # on the disk, and its name too, before the .tmp goes, whatever sink.fsync says (it
            # spares the stream its syncs): else a power loss could keep the unlink, not the bytes
            durable_replace(rebuilt, final)
            self.recovered_events[final] = len(records)
            if left is not None:  # what could not be placed stays on the disk, under a name no recovery takes again
                self.unrecovered.append((kept, _kept_why(kept, final, records, left)))
            # told before the .tmp goes: a start cut short from here on has named it (one cut
            # before its log goes names it again, rebuilt again from the same .tmp)
            self._tell()
            if left is None:
                for leftover in (tmp, log_path(tmp), tail_path(tmp)):
                    leftover.unlink(missing_ok=True)
            else:
                _keep(tmp, kept)
        finished: dict[Path, Path] = {}  # kept: final
        for suffix in (SUFFIX, TAIL_SUFFIX, TAIL_SUFFIX + ".new"):
            for log in self.directory.glob(f"{self.prefix}-{STAMPED}{FORMATS['hdf5']}.tmp{suffix}"):
                tmp = log.with_name(log.name.removesuffix(suffix))
                if tmp.exists():
                    continue
                final = tmp.with_name(tmp.name.removesuffix(".tmp"))
                kept = final.with_name(final.name + DAMAGED)
                to = kept.with_name(kept.name + suffix)
                if suffix != TAIL_SUFFIX + ".new" and kept.exists() and not to.exists():
                    # a keep cut short after its .tmp was renamed (an earlier version renamed it
                    # first; a power loss need not keep the order): the log is the kept file's
                    log.rename(to)
                    finished[kept] = final
                else:
                    log.unlink()  # its file got its final name just before a crash: nothing to recover
        self.unrecovered += [(kept, _kept_why(kept, final)) for kept, final in finished.items()]

    def _recover_root(self, found: list[Path]) -> None:
        """Rebuild the ROOT files a killed writer of this prefix left as ``.tmp`` from the
        entries their logs name (``node.rootfile``), under their final names; what a log
        does not name is not trusted: a file whose tree counts other entries is kept as
        ``NAME.root.damaged`` beside the rebuilt one.  One that holds no entry at all is
        deleted (``removed_empty``); one that cannot be rebuilt (no log, a tree that does not
        give back the entries the log names) is left as it is and listed in ``unrecovered``."""
        for tmp in found:
            final = tmp.with_name(tmp.name.removesuffix(".tmp"))
            entries = logged_entries(tmp)
            if entries is None:
                why = ROOT_NO_LOG
            elif isinstance(entries, str):  # a log that cannot be trusted
                why = f"{entries}; left as it is"
            else:  # (a file without its tree cannot be made: the branches' types come with the records)
                why = ROOT_NO_ENTRY if entries == 0 else None
            if why is not None:  # nothing the log vouches for
                if holds_no_entries(tmp, self.tree):  # killed before its first records (at a rotation, mostly)
                    tmp.unlink()  # nothing in it: named at every start, it counted as unrecovered for good
                    entries_path(tmp).unlink(missing_ok=True)
                    self.removed_empty.append(tmp)
                else:
                    self.unrecovered.append((tmp, why))
                continue
            try:
                source = RecoveredTree(tmp, self.tree, entries)
            except Unreadable as exc:
                self.unrecovered.append((tmp, _root_unreadable(entries, exc)))
                continue
            attrs = {**source.attrs, "recovered": f"{entries} events from the entries log of a killed writer"}
            with source:
                try:
                    with _rebuilding(tmp, "entries log") as rebuilt:
                        writer = ROOTWriter(rebuilt, self.tree, attrs, entries_log=False)
                        try:
                            for cols in source.batches():  # a few MB at a time: a basket per branch each
                                writer.write_columns(cols)
                        finally:
                            writer.close()
                except Unreadable as exc:  # found part way: nothing rebuilt, the .tmp left as it is
                    self.unrecovered.append((tmp, _root_unreadable(entries, exc)))
                    continue
            counted = source.counted
            durable_replace(rebuilt, final)  # on the disk before the .tmp goes, whatever sink.fsync says
            self.recovered_events[final] = entries
            kept = final.with_name(final.name + DAMAGED)
            if counted != entries:  # entries written after the log's last: not trusted, not deleted (a name
                # no start takes again)
                why = (f"{entries} events rebuilt into {final.name}, the entries its log names; its tree counts "
                       f"{counted} (a write cut short); the .tmp is kept as {kept.name}")  # fmt: skip
                self.unrecovered.append((kept, why))
            self._tell()  # before the .tmp goes (see _recover_hdf5)
            if counted == entries:
                tmp.unlink()
            else:
                tmp.rename(kept)
            entries_path(tmp).unlink(missing_ok=True)  # last: a crash before it leaves the .tmp to rebuild again
        for log in self.directory.glob(f"{self.prefix}-{STAMPED}{FORMATS['root']}.tmp{ENTRIES_SUFFIX}"):
            if not log.with_name(log.name.removesuffix(ENTRIES_SUFFIX)).exists():
                log.unlink()  # its file got its final name (or was rebuilt) just before a crash

    @property
    def tail_errors(self) -> int:
        """Tails (``node.chunklog.write_tail``) not written, for want of room or otherwise:
        their events waited for their chunk, as before tails.  All files so far."""
        writers = [w for w in (self.writer, self.closing.writer if self.closing is not None else None) if w]
        return self._tail_errors + sum(w.io.tail_errors for w in writers if isinstance(w, HDF5Writer))

    @property
    def accepted(self) -> int:
        """Records handed to this sink so far (in files, open or closed, or about to be,
        or ``lost``)."""
        closing = self.closing.records if self.closing is not None else 0
        return self.written + closing + self.records_in_file + self.pending_records + self.lost

    @property
    def saved(self) -> int:
        """Records safe in files: closed ones, and the chunks (and tail) of open ones that
        the next start rebuilds should the node die.  Never goes down (``accepted`` less
        ``lost`` did, when records counted in an open file were lost with it)."""
        c = self.closing
        open_files = (c.writer.saved if c is not None else 0) + (self.writer.saved if self.writer is not None else 0)
        return self.written + open_files

    @property
    def unsaved(self) -> int:
        """Records accepted and not yet safe in a file (gathered, queued, being written):
        what a give-up now would lose."""
        c = self.closing
        closing = c.records - c.writer.saved if c is not None else 0
        current = self.records_in_file - (self.writer.saved if self.writer is not None else 0)
        return self.pending_records + current + closing

    @property
    def busy(self) -> bool:
        """A writer (the current file's, or the last one's) has as much queued as it takes,
        or waits for room: hand over no more."""
        return any(writer.busy for writer in self._writers())

    @property
    def waiting(self) -> tuple[Path, OSError, float] | None:
        """(file, error, since when) while the file being written or closed waits for
        room on the disk, else None."""
        for writer in self._writers():
            w = writer.waiting
            if w is not None:
                return (writer.path, *w)
        return self.opening

    def _writers(self) -> list[HDF5Writer | ROOTWriter]:
        """The last file's (rotated out, not yet closed) and the current file's."""
        return [w for w in (self.closing.writer if self.closing is not None else None, self.writer) if w is not None]

    def wait_room(self, timeout: float) -> None:
        """Wait until the busy writer takes more, at most ``timeout`` seconds."""
        for writer in self._writers():
            if writer.busy:
                writer.wait_room(timeout)
                return

    def give_up(self) -> None:
        """Stop waiting for room (signal-safe): what is not written by now is lost, and the
        file keeps its ``.tmp`` name and chunk log (the next start rebuilds what is in it)."""
        self.gave_up = True
        for writer in self._writers():
            writer.give_up()

    def _open(self, dtype: np.dtype) -> None:
        """A new file, with what it needs on the disk before its records; where there is no
        room for that, try again (as a chunk would, ``on_wait`` meanwhile) until there is
        or ``give_up``."""

        def attempt() -> HDF5Writer | ROOTWriter:
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            while True:  # never a name in use: an earlier run's file (a restart within the second, a clock set back)
                self.final = self.directory / f"{self.prefix}-{stamp}-{self.index:05d}{FORMATS[self.fmt]}"
                self.tmp = self.final.with_name(self.final.name + ".tmp")
                kept = self.final.with_name(self.final.name + DAMAGED)  # (its NAME.h5 may have been taken away)
                rebuilt = self.tmp.with_name(self.tmp.name + REBUILT)  # (one left without its .tmp: named, kept)
                taken = (self.final, self.tmp, log_path(self.tmp), entries_path(self.tmp), kept, rebuilt)
                if not any(p.exists() for p in taken):
                    break
                self.index += 1
            try:
                if self.fmt == "hdf5":
                    return HDF5Writer(self.tmp, self.tree, self.attrs, direct_io=self.direct_io, fsync=self.fsync,
                                      dtype=dtype, arena=self.arena, chunk_bytes=self.chunk_bytes)  # fmt: skip
                return ROOTWriter(self.tmp, self.tree, self.attrs, fsync=self.fsync)
            except BaseException:
                for partial in (self.tmp, log_path(self.tmp), entries_path(self.tmp)):
                    partial.unlink(missing_ok=True)
                raise

        def waits(exc: OSError) -> None:
            if self.opening is None:
                self.opening = (self.tmp, exc, time.monotonic())

        try:
            self.writer = until_room(attempt, abandoned=lambda: self.gave_up, waits=waits, on_wait=self.on_wait)
        finally:
            self.opening = None
        self.index += 1
        self.records_in_file = 0
        self.opened = time.monotonic()

    def write(self, records: np.ndarray) -> None:
        """Append records; they must not change afterwards (they are written later, maybe
        from the HDF5 writer thread)."""
        if len(records) == 0:
            return
        if self.error is not None:  # this sink failed: nothing more goes to its files
            self.lost += len(records)
            return
        if not self.pending:
            self.pending_since = time.monotonic()
        self.pending.append(records)
        self.pending_records += len(records)
        self.pending_bytes += records.nbytes
        if self.pending_bytes >= self.flush_bytes and not self.busy and self._next_file_ready():
            self.flush()

    def _next_file_ready(self) -> bool:
        """Whether a flush can go on: no file closing (``tick`` closes it), or a whole file's
        worth gathered meanwhile (the flush then waits for that close: memory stays bounded
        however small the files)."""
        return self.closing is None or self.pending_records >= self.max_records

    def flush(self) -> None:
        """Write the gathered records, splitting them across files at ``max_records``; those
        past a file's end wait (gathered) until that file is closed (``tick``), or, with a
        whole file's worth waiting, this flush waits for that close."""
        if not self.pending:
            return
        # the records stay counted as pending until the writer has them (a new file may wait for room)
        pending, self.pending, self.pending_bytes = self.pending, [], 0
        try:
            while pending and self.error is None:
                if self.writer is None:
                    if not self._next_file_ready():  # one file at a time: the next once the last is closed
                        break
                    self._close_written(wait=True)
                    if self.error is not None:  # that file failed: the sink with it
                        break
                    self._open(pending[0].dtype)
                    if self.gave_up:
                        self.writer.give_up()
                room = self.max_records - self.records_in_file
                parts, n = [], 0
                while pending and n < room:
                    p = pending.pop(0)
                    if n + len(p) > room:  # split at the file boundary
                        p, rest = p[: room - n], p[room - n :]
                        pending.insert(0, rest)
                    parts.append(p)
                    n += len(p)
                self.records_in_file += n  # now: if the write fails, closing the file counts them lost
                self.pending_records -= n
                self.writer.write(parts)
                if self.records_in_file >= self.max_records:
                    self._rotate()
        except Exception as exc:
            self._fail(exc)
        if self.error is None:  # waiting for the last file's close: gathered again, first
            self.pending = pending + self.pending
            self.pending_bytes = sum(p.nbytes for p in self.pending)
            return
        left = sum(len(p) for p in pending)  # the sink failed: they go to no file
        self.lost += left
        self.pending_records -= left

    def tick(self) -> None:
        """Close the last file once its chunks are written, flush (enough gathered, or on
        time) and rotate on time (called from the daemon's loop); a write error of the
        writer thread ends the sink now, not at the next chunk."""
        self._close_written()
        if self.writer is not None:
            try:
                self.writer.check()
            except Exception as exc:
                self._fail(exc)
        if self.busy:
            return
        now = time.monotonic()
        due = self.pending_bytes >= self.flush_bytes or now - self.pending_since >= self.flush_s
        if self.pending and due and self._next_file_ready():
            self.flush()
        if isinstance(self.writer, HDF5Writer):
            self.writer.keep_tail(now)
        if self.writer is not None and now - self.opened >= self.max_seconds:
            self._rotate()

    def _fail(self, exc: Exception) -> None:
        """End the sink: keep the first error and close the current file as failed."""
        if self.error is None:
            self.error = exc
        self._rotate(failed=True)

    def _rotate(self, failed: bool = False) -> None:
        """Take no more records into the current file and queue its last chunk.  The file is
        closed once its chunks are written (``tick``), so that this thread does not wait for
        the writer thread at every new file (~5 ms here); with ``failed`` now, as failed."""
        if self.writer is None:
            return
        self._close_written(wait=True)  # (none is: the next file is opened only once the last is closed)
        writer = self.writer
        # closing before the writer leaves: a give_up (a signal) in between still finds it
        self.closing = _Closing(writer, self.tmp, self.final, self.records_in_file, failed)
        self.writer = None
        self.records_in_file = 0
        if self.arena is not None:
            self.arena.next_file()
        try:
            writer.finish()
        except Exception as exc:  # (h5py) it fails to close too: as failed
            self.error = self.error or exc
            self.closing.failed = True
        self._close_written(wait=failed or self.closing.failed)

    def _close_written(self, wait: bool = False) -> None:
        """Close the last file if its chunks are all written (with ``wait``: once they are)."""
        c = self.closing
        if c is not None and self.gave_up:
            c.writer.give_up()  # (before the check: a chunk waiting for room then ends its wait)
        if c is None or not (wait or c.writer.written_out):
            return
        whole = False
        try:
            c.writer.close(self.on_wait)  # a chunk's write error is raised here
            if not c.failed:
                durable_replace(c.tmp, c.final, self.fsync)
                whole = True
                if isinstance(c.writer, ROOTWriter):
                    entries_path(c.tmp).unlink(missing_ok=True)
                else:
                    log_path(c.tmp).unlink(missing_ok=True)
                    tail_path(c.tmp).unlink(missing_ok=True)
        except Exception as exc:
            self.error = self.error or exc
        finally:
            self.closing = None  # listed while it closes: where give_up and waiting find it
            if isinstance(c.writer, HDF5Writer):
                c.writer.release_log()  # only now: until here the file is this writer's
                self._tail_errors += c.writer.io.tail_errors
        if not whole:  # it keeps its .tmp name; its records not in logged chunks (or the tail) are lost
            self.written += c.writer.saved  # in the .tmp's logged chunks and tail: the next start rebuilds them
            self.lost += c.records - c.writer.saved
            return
        self.files.append(c.final)
        self.written += c.records

    def close(self) -> None:
        """Write what is gathered and close the files (see ``error`` for how it went), then
        let go of the prefix."""
        try:
            self.flush()
            while self.closing is not None:
                self._close_written(wait=True)
                self.flush()  # what waited for that file (after a failure: counted lost)
            self._rotate()
            self._close_written(wait=True)
        finally:
            self._let_go()


class Publisher:
    """Built events on a PUB socket for downstream consumers (EVENTS messages of at most
    ``max_message_bytes``, so a subscriber with the same limit as the node reads them all)."""

    def __init__(
        self, endpoint: str, context: zmq.Context, node_id: int, hwm: int = 1000, max_message_bytes: int = 4 << 20,
        manifest: bytes = bytes(8), curve_secret: Path | None = None,
    ):  # fmt: skip
        self.socket = context.socket(zmq.PUB)
        self.socket.setsockopt(zmq.SNDHWM, hwm)
        self.socket.setsockopt(zmq.LINGER, 1000)
        try:  # a failed start leaves no socket open (the context's term() would wait for it)
            if curve_secret is not None:  # subscribers as the inputs' senders: a key in security.curve_clients
                server_curve(self.socket, curve_secret)
            prepare(self.socket, endpoint)
            self.socket.bind(endpoint)
        except BaseException:
            self.socket.close(linger=0)
            raise
        self.node_id = node_id
        self.manifest = manifest  # the fallback's firmware (zeros: none, or one per source)
        self.sequence = 0
        self.max_message_bytes = max_message_bytes

    def publish(self, events: np.ndarray) -> None:
        per_message = max(1, (self.max_message_bytes - protocol.HEADER_SIZE) // events.dtype.itemsize)
        if len(events) <= per_message:
            self._send(events)  # the usual case: sent as it is, no copy
            return
        for start in range(0, len(events), per_message):  # a backlog drained at once: pieces (copied)
            self._send(events[start : start + per_message])

    def _send(self, events: np.ndarray) -> None:
        d = events.dtype
        msg = protocol.encode_buffer(
            protocol.EVENTS, self.node_id, self.sequence, events,
            n_inputs=d["inputs"].shape[1], n_outputs=d["fpga"].shape[1], raw_bytes=d["inputs"].base.itemsize,
            n_sources=d["flags"].shape[0], sent_ns=time.time_ns(), manifest=self.manifest,
        )  # fmt: skip
        self.sequence += 1
        try:
            self.socket.send(msg, zmq.NOBLOCK, copy=msg.nbytes < 65536)
        except zmq.Again:  # PUB never blocks; a slow subscriber loses messages by design
            pass

    def close(self) -> None:
        self.socket.close()


def late_records(source_ids: np.ndarray, late) -> np.ndarray:
    """Fragments set aside (late, or refused: jumps, bad flags) as records with their
    source id, arrival time and why (``node.builder.WHY_*``), for the late sink."""
    f = late.fragments
    head = [("source", "<u2"), ("received_ns", "<u8"), ("why", "u1")]
    dtype = np.dtype(head + [(n, f.dtype.fields[n][0]) for n in f.dtype.names])
    out = np.zeros(len(f), dtype)
    out["source"] = source_ids[late.source_index]
    out["received_ns"] = late.received_ns
    out["why"] = late.why
    for n in f.dtype.names:
        out[n] = f[n]
    return out


def read_events(path: str | Path, tree: str | None = None) -> dict[str, np.ndarray]:
    """Every column of one sink file (HDF5 or ROOT), for tests, demos and analyses: its
    ``tree`` (None: the one table a node's file holds, ``events`` or ``late``); a file
    without it is a KeyError naming the file and what it holds, never an empty answer."""
    path = Path(path)
    if path.suffix == ".root":
        import uproot

        with uproot.open(path) as f:
            names = sorted(key_names(f))
            t = _table(path, tree, names)
            return {k: np.asarray(v) for k, v in f[t].arrays(library="np").items()}
    import h5py

    with h5py.File(path, "r") as f:
        table = _table(path, tree, sorted(f.keys()))
        records = f[table][()]
    # reserved is 0 in every event; in a late file it may be why a fragment was refused (why 3)
    return {name: records[name] for name in records.dtype.names if name != "reserved" or table == "late"}


def _table(path: Path, tree: str | None, names: list[str]) -> str:
    if tree is None:
        tree = next((t for t in ("events", "late") if t in names), "events")
    if tree not in names:
        raise KeyError(f"{path}: no {tree!r} table; it holds {names or 'none'}")
    return tree
