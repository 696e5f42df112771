"""Where built events (and late fragments) go: rotating files and a PUB socket.

Files are written under a temporary name (``*.tmp``), flushed, closed and only then
renamed to their final name, so a file with a final name is always complete: a crash
leaves at most one ``.tmp`` file behind, never a corrupt ``.h5``/``.root``.

HDF5 (h5py) is the default: a built event is a record with fixed-size N-d arrays
(sources x inputs), which HDF5 stores natively as chunked, appendable datasets that
NumPy, pandas and ROOT's own ``TFile``-free tools read directly; appending a drain costs
one write per column.  ROOT (uproot) is offered for analyses that live in ROOT.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import zmq

from node import protocol
from node.arena import PAGE, ChunkArena, chunk_rows
from node.chunklog import SUFFIX, ChunkLog, distrust, log_path, recovered_records, writer_alive
from node.durable import durable_replace, sync_fd
from node.endpoint import prepare

FORMATS = {"hdf5": ".h5", "root": ".root"}
T = TypeVar("T")


def columns(records: np.ndarray) -> dict[str, np.ndarray]:
    """A structured array as one contiguous array per field (reserved fields left out)."""
    return {name: np.ascontiguousarray(records[name]) for name in records.dtype.names if name != "reserved"}


def _import_h5py():
    try:
        import h5py
    except ImportError:
        raise RuntimeError("the HDF5 sink needs h5py: pip install 'fpgaflow[node]'") from None
    return h5py


# PAGE (node.arena): O_DIRECT wants file offsets, lengths and memory aligned to the device's block size
ALIGN_THRESHOLD = 64 << 10  # file objects at least this large (the chunks) start on a PAGE boundary
# HDF5 chunk size: each chunk is one write. Here a write costs ~150-200 us of CPU however
# small (O_DIRECT on virtio-blk), so 4 MB writes cost 0.3 us per 4 KB event and 1 MB
# writes 0.75; in the daemon the writer thread fell from ~2.1 to ~1.4 us per event, and
# the node stopped waiting for it (it had, for up to 0.7 s in 3 s runs). 8 MB: no better.
CHUNK_BYTES = 4 << 20
ARENA_SLOTS = 12  # chunks of arena (node.arena): the writer's queue (8) and the chunks being gathered
# No room for a write: the disk is full, the quota used up, or the file at the process's
# file-size limit (``ulimit -f``).  The writer keeps the chunk and tries again (an
# operator frees space), and the daemon stops reading its input meanwhile, so that the
# senders wait (ZeroMQ's back pressure) and nothing is lost.
OUT_OF_ROOM = frozenset((errno.ENOSPC, errno.EDQUOT, errno.EFBIG))
RETRY_S = (0.05, 1.0)  # the first pause before trying a write again, and the longest


def rows_per_chunk(dtype: np.dtype) -> int:
    """Records per HDF5 chunk: ~``CHUNK_BYTES``, whole pages where that is near (``chunk_rows``)."""
    return chunk_rows(dtype.itemsize, CHUNK_BYTES)[0]


def _pwrite_all(fd: int, data: np.ndarray, offset: int) -> None:
    """``os.pwrite`` until every byte is written (a regular file may take fewer at once)."""
    view = memoryview(data)
    while len(view):
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


class _ChunkIO:
    """Writes chunks at given file offsets from a thread, off the daemon's: with ``direct``
    (where the platform and the filesystem take it) the whole pages with O_DIRECT and the
    last partial page (a chunk need not be whole pages) through the page cache; without,
    all of it through the page cache.

    Why O_DIRECT: on a VM whose new page-cache pages can be cold host memory (Firecracker
    with free-page reporting) writing through the page cache costs 0.3-4.5 ms of CPU per MB
    in the writing thread; O_DIRECT ~0.35 ms (the copy into the aligned buffer and the 4 MB
    write, measured here).  The thread also gathers each chunk's records into its
    page-aligned buffer, so the caller only queues references to them; with ``depth``
    chunks (32 MB) queued it is ``busy`` (the disk is behind by that much) and the caller
    should wait (``wait_room``) rather than queue more.  A write that finds no room
    (``OUT_OF_ROOM``) is tried again until it succeeds (``waiting`` says since when) or
    the caller gives up (``give_up``); any other write error is kept and raised in the
    caller's thread (``check``) naming the file, and so is one given up.

    With ``sync`` each chunk is on the disk (fdatasync: ~0.1-0.2 ms of CPU per 4 MB chunk
    with O_DIRECT here) before ``on_written`` puts it in the chunk log, so that after a
    power loss the log never points at a chunk whose bytes did not survive (an O_DIRECT
    write is on the device but the file's extent that holds it is not until the journal
    commits; a page-cache write is not on the device at all).  The page-cache path pays for
    that in this thread too, not in the daemon's."""

    def __init__(self, path: Path, direct: bool = True, depth: int = 8, sync: bool = False,
                 arena: ChunkArena | None = None):  # fmt: skip
        self.path = path
        self.arena = arena  # a chunk built there whole is written from there (node.arena)
        self.cached_fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
        self.direct_fd = -1
        flag = getattr(os, "O_DIRECT", 0) if direct else 0  # 0: not on this platform (macOS)
        if flag:
            try:
                self.direct_fd = os.open(path, os.O_WRONLY | flag)
            except OSError as exc:
                if exc.errno != errno.EINVAL:  # EINVAL: this filesystem refuses it (tmpfs)
                    os.close(self.cached_fd)
                    raise
        self.sync = sync
        # False without a descriptor, or once a first O_DIRECT write is refused: through the cache
        self.direct = self.direct_fd >= 0
        self.proven = False  # an O_DIRECT write succeeded: a later EINVAL is an error, not a refusal
        self.buffer = np.zeros(0, np.uint8)  # page-aligned (mmap), grown to a chunk at the first write
        self.depth = depth
        self.todo: queue.Queue[tuple[int, list[np.ndarray], int, int, int] | None] = queue.Queue()
        self.on_written: Callable[[int, int, int, int], None] | None = None  # (row, rows, offset, nbytes)
        self.error: tuple[int, Exception] | None = None
        self.rows_written = 0  # records in chunks written (and logged): only this thread adds to it
        self.waiting: tuple[int, OSError, float] | None = None  # (offset, error, since): no room for a chunk
        self.room = threading.Event()  # set whenever a chunk leaves the queue
        # give_up: stop trying chunks that find no room (a plain flag: set from a signal
        # handler, which must take no lock the interrupted thread may hold)
        self.abandoned = False
        self.thread = threading.Thread(target=self._run, name="hdf5-sink-writer", daemon=True)
        self.thread.start()

    def submit(self, offset: int, pieces: list[np.ndarray], nbytes: int, row: int, rows: int) -> None:
        """Queue a chunk: the records ``pieces`` (contiguous, not to be changed any more),
        zero-padded to ``nbytes``, for the file at ``offset`` (rows ``row``.. of the dataset)."""
        self.check()
        self.todo.put((offset, pieces, nbytes, row, rows))

    @property
    def busy(self) -> bool:
        """``depth`` chunks queued, or one waiting for room: queue no more for now."""
        return self.waiting is not None or self.todo.unfinished_tasks >= self.depth

    def wait_room(self, timeout: float) -> None:
        """Return once a chunk has left the queue, or after ``timeout`` seconds."""
        self.room.clear()
        if self.busy:
            self.room.wait(timeout)

    def give_up(self) -> None:
        """Stop trying chunks that find no room: they and the ones queued after them are
        not written, and ``check`` raises the error (within a pause: up to a second)."""
        self.abandoned = True

    def _run(self) -> None:
        while (item := self.todo.get()) is not None:
            try:
                if self.error is None:  # after an error the file is lost: only drain the queue
                    self._store(*item)
            finally:
                if self.arena is not None:  # written, or lost: the arena may reuse their memory
                    for piece in item[1]:
                        self.arena.written_out(piece)
                self.todo.task_done()
                self.room.set()

    def _store(self, offset: int, pieces: list[np.ndarray], nbytes: int, row: int, rows: int) -> None:
        """Write one chunk and log it; where there is no room, try again until there is
        (the whole chunk: a short write left part of it)."""

        def attempt() -> None:
            self._write(offset, data)
            if self.sync:
                sync_fd(os.fdatasync, self.cached_fd, self.path)
            if self.on_written is not None:
                self.on_written(row, rows, offset, nbytes)

        def waits(exc: OSError) -> None:
            if self.waiting is None:
                self.waiting = (offset, exc, time.monotonic())

        try:
            data = self._gather(pieces, nbytes)
            _until_room(attempt, abandoned=lambda: self.abandoned, waits=waits)
            self.rows_written += rows
        except Exception as exc:  # raised in the caller's thread by check()
            self.error = (offset, exc)
        finally:
            self.waiting = None

    def _gather(self, pieces: list[np.ndarray], nbytes: int) -> np.ndarray:
        """The chunk's bytes, zero-padded, in the page-aligned buffer; or where they lie, if
        they were built there (``arena``)."""
        if self.arena is not None:
            whole = self.arena.whole_chunk(pieces)  # its size is the file's chunk's (see _HDF5Writer._create)
            if whole is not None:
                return whole
        if len(self.buffer) < nbytes:
            self.buffer = np.frombuffer(mmap.mmap(-1, -(-nbytes // PAGE) * PAGE), np.uint8)
        pos = sum(p.nbytes for p in pieces)
        # one call for all pieces (many small blocks when the node drains little at a time)
        np.concatenate(pieces, out=self.buffer[:pos].view(pieces[0].dtype))
        self.buffer[pos:nbytes] = 0
        return self.buffer[:nbytes]

    def _write(self, offset: int, data: np.ndarray) -> None:
        head = len(data) // PAGE * PAGE if self.direct and offset % PAGE == 0 else 0
        if head:
            try:
                _pwrite_all(self.direct_fd, data[:head], offset)
                self.proven = True
            except OSError as exc:
                if exc.errno != errno.EINVAL or self.proven:
                    raise
                self.direct, head = False, 0  # opened but refused (some filesystems): use the cache
        _pwrite_all(self.cached_fd, data[head:], offset + head)

    def check(self) -> None:
        """Raise the thread's write error, if any, naming the file."""
        if self.error is None:
            return
        offset, exc = self.error
        if isinstance(exc, OSError):
            why = f"{exc.strerror}{', given up' if exc.errno in OUT_OF_ROOM else ''}"
            raise OSError(exc.errno, f"writing a chunk at byte {offset} failed: {why}", str(self.path))
        raise RuntimeError(f"{self.path}: writing a chunk at byte {offset} failed: {exc!r}") from exc

    def stop(self, on_wait: Callable[[], None] | None = None) -> None:
        """Wait for every queued write and close the descriptors (errors are left to
        ``check``); ``on_wait`` is called about once a second while a chunk waits for room."""
        if self.thread.is_alive():
            self.todo.put(None)
            while self.thread.is_alive():
                self.thread.join(1.0)
                if self.waiting is not None and on_wait is not None:
                    on_wait()
        for fd in (self.direct_fd, self.cached_fd):
            if fd >= 0:
                os.close(fd)
        self.direct_fd = self.cached_fd = -1


def _hdf5_errno(exc: Exception) -> int | None:
    """The system's error number behind an h5py error: h5py raises OSError or
    RuntimeError, and gives the number in the message where it gives no ``errno``."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    found = re.search(r"errno = (\d+)", str(exc))
    return int(found.group(1)) if found else None


def _until_room(attempt: Callable[[], T], *, abandoned: Callable[[], bool], waits: Callable[[OSError], None],
                on_wait: Callable[[], None] | None = None) -> T:  # fmt: skip
    """``attempt()`` until it does not fail for want of room (``OUT_OF_ROOM``), pausing
    50 ms and doubling to 1 s; ``waits(error)`` at each miss, ``on_wait()`` before each
    pause.  Any other error, and one once ``abandoned()``, is raised as it came."""
    pause = RETRY_S[0]
    while True:
        try:
            return attempt()
        except (OSError, RuntimeError) as exc:
            code = _hdf5_errno(exc)
            if code not in OUT_OF_ROOM or abandoned():
                raise
            waits(OSError(code, os.strerror(code)))
        if on_wait is not None:
            on_wait()
        time.sleep(pause)
        pause = min(2 * pause, RETRY_S[1])


class _HDF5Writer:
    """One compound dataset per file (a table of records), written a whole ~4 MB chunk at a
    time: no type conversion, no data-sieve copies (4x faster than ``dataset[a:b] = records``).

    HDF5 only allocates each chunk (early allocation, no fill values, chunks aligned to
    pages) and a ``_ChunkIO`` thread writes it at its file offset: with O_DIRECT where
    ``direct_io`` asks for it and the filesystem takes it, else through the page cache.

    ``fsync``: each chunk is on the disk before the chunk log names it, and so is the log's
    entry before the next chunk is written, so a power loss or kernel crash loses what a
    killed process would (``node/chunklog.py``), with O_DIRECT or without."""

    def __init__(self, path: Path, tree: str, attrs: dict[str, Any], direct_io: bool = True, crash_log: bool = True,
                 fsync: bool = False, dtype: np.dtype | None = None, arena: ChunkArena | None = None):  # fmt: skip
        """With ``dtype`` the dataset and the chunk log are made now, not at the first
        write: everything the file needs on the disk before its chunks, in one step that
        either succeeds or leaves nothing open."""
        self.path, self.crash_log = path, crash_log
        self.log: ChunkLog | None = None  # where the chunks lie, for a recovery after a hard crash
        self.name, self.attrs = tree, attrs
        self.dataset = None
        self.rows = 0  # records in the dataset's extent (queued for the writer thread or written)
        self.metadata_waiting: tuple[OSError, float] | None = None
        # before h5py truncates the file: same inode; ``arena``: where the builder may have
        # built this file's chunks (node.arena)
        self.io = _ChunkIO(path, direct=direct_io, sync=fsync, arena=arena)
        self.file = None
        try:
            self.file = _import_h5py().File(path, "w", alignment_threshold=ALIGN_THRESHOLD, alignment_interval=PAGE)
            if dtype is not None:
                self._create(dtype)
        except BaseException:
            if self.log is not None:
                self.log.close()
            if self.file is not None:
                with contextlib.suppress(Exception):
                    self.file.close()
            self.io.stop()
            raise

    @property
    def direct(self) -> bool:
        """Whether the chunks go to the file with O_DIRECT."""
        return self.io.direct

    @property
    def saved(self) -> int:
        """Records in chunks written and logged: they survive even if the file does not
        close (the node's next start rebuilds it from its chunk log)."""
        return self.io.rows_written

    @property
    def busy(self) -> bool:
        return self.io.busy

    @property
    def waiting(self) -> tuple[OSError, float] | None:
        """(error, since when) while a chunk or HDF5's metadata waits for room."""
        w = self.io.waiting
        return (w[1], w[2]) if w is not None else self.metadata_waiting

    def wait_room(self, timeout: float) -> None:
        self.io.wait_room(timeout)

    def give_up(self) -> None:
        self.io.give_up()

    def check(self) -> None:
        """Raise the writer thread's error, if any (naming the file)."""
        self.io.check()

    def _create(self, dtype: np.dtype) -> None:
        self.dtype, self.size = dtype, rows_per_chunk(dtype)
        arena = self.io.arena
        if arena is not None and (arena.dtype != dtype or arena.rows != self.size):
            self.io.arena = None  # not laid out as this file's chunks: gather them
        self.pieces: list[np.ndarray] = []  # the records of the chunk being gathered
        self.fill = 0
        self.dataset = self.file.create_dataset(
            self.name, (0,), dtype, maxshape=(None,), chunks=(self.size,), **self._allocate_only()
        )
        for k, v in self.attrs.items():
            self.dataset.attrs[k] = v
        if self.crash_log:
            self.log = ChunkLog(self.path, dtype, self.name, self.attrs, sync=self.io.sync)
            self.io.on_written = self.log.record

    def _allocate_only(self) -> dict[str, Any]:
        """Extending the dataset allocates the new chunk's file space at once and writes
        nothing there: the writer thread fills it."""
        h5py = _import_h5py()
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        return {"dcpl": dcpl, "fill_time": "never"}

    def write(self, parts: list[np.ndarray]) -> None:
        if self.dataset is None:
            self._create(parts[0].dtype)
        for p in parts:
            self._collect(np.ascontiguousarray(p, self.dtype))

    def _collect(self, p: np.ndarray) -> None:
        """Queue each full chunk's records (references, no copy here)."""
        while len(p):
            n = min(self.size - self.fill, len(p))
            self.pieces.append(p[:n])
            self.fill += n
            p = p[n:]
            if self.fill == self.size:
                self._queue_chunk()

    def _queue_chunk(self) -> None:
        start = self.rows
        self.rows += self.fill
        self.dataset.id.set_extent((self.rows,))  # the low-level call: h5py's resize costs 0.1 ms more
        offset = self.dataset.id.get_chunk_info_by_coord((start,)).byte_offset  # allocated by the extent
        self.io.submit(offset, self.pieces, self.size * self.dtype.itemsize, start, self.fill)
        self.pieces, self.fill = [], 0

    def close(self, on_wait: Callable[[], None] | None = None) -> None:
        """Queue the partial last chunk, wait for the writer thread, close the file; a chunk
        write error is raised once the file is closed (so it keeps its ``.tmp`` name).
        HDF5's own metadata, written now, waits for room like the chunks do (``on_wait``
        about once a second meanwhile) unless ``give_up`` was called."""
        try:
            if self.dataset is not None and self.fill:
                self._queue_chunk()  # padded to a whole chunk, past the dataset's extent
        finally:
            self.io.stop(on_wait)  # every chunk on disk before HDF5 writes its metadata and closes
            if self.log is not None:
                self.log.close()  # removed once the file has its final name
            try:
                self._flush_metadata(on_wait)
            except BaseException:
                with contextlib.suppress(Exception):  # it fails too, naming neither file nor cause
                    self.file.close()
                raise
            self.file.close()
        self.io.check()

    def _flush_metadata(self, on_wait: Callable[[], None] | None) -> None:
        def waits(exc: OSError) -> None:
            if self.metadata_waiting is None:
                self.metadata_waiting = (exc, time.monotonic())

        try:
            _until_room(self.file.flush, abandoned=lambda: self.io.abandoned, waits=waits, on_wait=on_wait)
        except (OSError, RuntimeError) as exc:
            code = _hdf5_errno(exc)
            why = f"{exc}{', given up' if code in OUT_OF_ROOM else ''}"
            raise OSError(code, f"writing HDF5's metadata failed: {why}", str(self.path)) from None
        finally:
            self.metadata_waiting = None


class _ROOTWriter:
    """A TTree with one branch per field (fixed-size arrays stay arrays)."""

    def __init__(self, path: Path, tree: str, attrs: dict[str, Any]):
        try:
            import uproot
        except ImportError:
            raise RuntimeError("the ROOT sink needs uproot: pip install uproot") from None
        self.path = path
        self.file = uproot.recreate(path)
        self.tree_name = tree
        self.tree = None
        self.file[f"{tree}_info"] = str(attrs)

    # written in the caller's thread, all at once: never queued, never waiting for room
    busy, waiting = False, None

    @property
    def saved(self) -> int:
        """Records that survive a failed close: none (a ROOT file is only whole once closed)."""
        return 0

    def wait_room(self, timeout: float) -> None:
        pass

    def give_up(self) -> None:
        pass

    def check(self) -> None:
        pass

    def write(self, parts: list[np.ndarray]) -> None:
        cols = columns(np.concatenate(parts))
        if self.tree is None:
            self.tree = self.file.mktree(self.tree_name, {k: np.dtype((a.dtype, a.shape[1:])) for k, a in cols.items()})
        self.tree.extend(cols)

    def close(self, on_wait: Callable[[], None] | None = None) -> None:
        self.file.close()


class RotatingFiles:
    """Append structured records to files that rotate by size and age; atomic renames.

    Records are gathered in memory and handed to the file ``flush_bytes`` at a time (or
    after ``flush_s``), so that its bookkeeping runs once per MB, not once per drain.
    HDF5 chunks go to the file from a writer thread (see ``_ChunkIO``), ``direct_io``: with
    O_DIRECT where the filesystem allows it.  ``fsync``: each HDF5 chunk is on the disk
    before the chunk log names it, and a file before it gets its final name
    (``durable_replace``).

    While the HDF5 writer is ``busy`` (the disk behind, or no room for a chunk:
    ``waiting``) records are only gathered, and the caller should wait (``wait_room``)
    rather than hand over more; ``give_up`` ends the waiting for room.  A write that fails
    (given up, or any error but no room) ends the sink: ``error`` says why, the file keeps
    its ``.tmp`` name (and chunk log: the next start rebuilds the chunks written, counted
    in ``written``), and every record not in a file, then or later, is counted in
    ``lost``.  No method raises for a failed write: the caller checks ``error``."""

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
    ):
        if fmt not in FORMATS:
            raise ValueError(f"sink.format: {fmt!r} is not one of {sorted(FORMATS)}")
        if fmt == "hdf5":
            _import_h5py()  # now, not at the first write: importing it mid-stream stalls the loop ~60 ms
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prefix, self.fmt, self.tree = prefix, fmt, tree
        self.max_records, self.max_seconds = max_records, max_seconds
        self.flush_bytes, self.flush_s = flush_bytes, flush_s
        self.attrs = attrs or {}
        self.direct_io = direct_io
        self.fsync = fsync
        self.index = 0
        self.writer: _HDF5Writer | _ROOTWriter | None = None
        self.closing: _HDF5Writer | _ROOTWriter | None = None  # the file being closed, while it is
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
        # called about once a second while a file's close or opening waits for room (the caller's thread is held)
        self.on_wait: Callable[[], None] | None = None
        self.gave_up = False
        self.error: Exception | None = None  # the write failure that ended this sink
        self.unrecovered: list[tuple[Path, str]] = []  # (.tmp left as it is, why)
        self.recovered = self._recover() if fmt == "hdf5" else []
        self.arena: ChunkArena | None = None  # see use_arena

    def use_arena(self, dtype: np.dtype) -> bool:
        """Offer memory laid out as the files' chunks (``node.arena``) for records of
        ``dtype`` to be built in (``reserve``); HDF5 only, and only where whole chunks of
        them are whole pages.  Made now: its pages are touched at once."""
        rows, whole_pages = chunk_rows(dtype.itemsize, CHUNK_BYTES)
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

    def _recover(self) -> list[Path]:
        """Rebuild the files a killed writer of this prefix left as ``.tmp``, from their chunk
        logs (``node.chunklog``), under their final names; a ``.tmp`` without a log, or one
        another process still writes, is left alone, and so is one whose log cannot be
        trusted (``distrust``: listed in ``unrecovered`` with the reason)."""
        done = []
        for tmp in sorted(self.directory.glob(f"{self.prefix}-*{FORMATS['hdf5']}.tmp")):
            if not log_path(tmp).exists() or writer_alive(tmp):
                continue
            reason = distrust(tmp)
            if reason is not None:
                self.unrecovered.append((tmp, reason))
                continue
            tree, attrs, records = recovered_records(tmp)
            final = tmp.with_name(tmp.name.removesuffix(".tmp"))
            rebuilt = tmp.with_name(tmp.name + ".rebuilt")
            attrs = {**attrs, "recovered": f"{len(records)} events from the chunks of a killed writer"}
            try:
                writer = _HDF5Writer(rebuilt, tree, attrs, direct_io=False, crash_log=False)
                writer.give_up()  # at start a full disk is an error naming the file, not a wait
                try:
                    if len(records):
                        writer.write([records])
                finally:
                    writer.close()
            except Exception as exc:
                rebuilt.unlink(missing_ok=True)
                raise OSError(getattr(exc, "errno", None), f"rebuilding it from its chunk log failed: {exc}",
                              str(tmp)) from None  # fmt: skip
            durable_replace(rebuilt, final, self.fsync)
            for leftover in (tmp, log_path(tmp)):
                leftover.unlink(missing_ok=True)
            done.append(final)
        for log in self.directory.glob(f"{self.prefix}-*{FORMATS['hdf5']}.tmp{SUFFIX}"):
            if not log.with_name(log.name.removesuffix(SUFFIX)).exists():
                log.unlink()  # its file got its final name just before a crash: nothing to recover
        return done

    @property
    def accepted(self) -> int:
        """Records handed to this sink so far (in files, open or closed, or about to be,
        or ``lost``)."""
        return self.written + self.records_in_file + self.pending_records + self.lost

    @property
    def unsaved(self) -> int:
        """Records accepted and not yet safe in a file (gathered, queued, being written):
        what a give-up now would lose."""
        w = self.writer or self.closing
        return self.pending_records + self.records_in_file - (w.saved if w is not None else 0)

    @property
    def busy(self) -> bool:
        """The writer has as much queued as it takes, or waits for room: hand over no more."""
        return self.writer is not None and self.writer.busy

    @property
    def waiting(self) -> tuple[Path, OSError, float] | None:
        """(file, error, since when) while the file being written or closed waits for
        room on the disk, else None."""
        for writer in (self.writer, self.closing):
            w = writer.waiting if writer is not None else None
            if w is not None:
                return (writer.path, *w)
        return self.opening

    def wait_room(self, timeout: float) -> None:
        """Wait until the writer takes more, at most ``timeout`` seconds."""
        if self.writer is not None:
            self.writer.wait_room(timeout)

    def give_up(self) -> None:
        """Stop waiting for room (signal-safe): what is not written by now is lost, and the
        file keeps its ``.tmp`` name and chunk log (the next start rebuilds what is in it)."""
        self.gave_up = True
        for writer in (self.writer, self.closing):
            if writer is not None:
                writer.give_up()

    def _open(self, dtype: np.dtype) -> None:
        """A new file, with what it needs on the disk before its records; where there is no
        room for that, try again (as a chunk would, ``on_wait`` meanwhile) until there is
        or ``give_up``."""

        def attempt() -> _HDF5Writer | _ROOTWriter:
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            self.final = self.directory / f"{self.prefix}-{stamp}-{self.index:05d}{FORMATS[self.fmt]}"
            self.tmp = self.final.with_name(self.final.name + ".tmp")
            try:
                if self.fmt == "hdf5":
                    return _HDF5Writer(self.tmp, self.tree, self.attrs, direct_io=self.direct_io, fsync=self.fsync,
                                       dtype=dtype, arena=self.arena)  # fmt: skip
                return _ROOTWriter(self.tmp, self.tree, self.attrs)
            except BaseException:
                for partial in (self.tmp, log_path(self.tmp)):
                    partial.unlink(missing_ok=True)
                raise

        def waits(exc: OSError) -> None:
            if self.opening is None:
                self.opening = (self.tmp, exc, time.monotonic())

        try:
            self.writer = _until_room(attempt, abandoned=lambda: self.gave_up, waits=waits, on_wait=self.on_wait)
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
        if self.pending_bytes >= self.flush_bytes and not self.busy:
            self.flush()

    def flush(self) -> None:
        """Write the gathered records, splitting them across files at ``max_records``."""
        if not self.pending:
            return
        # the records stay counted as pending until the writer has them (a new file may wait for room)
        pending, self.pending, self.pending_bytes = self.pending, [], 0
        try:
            while pending and self.error is None:
                if self.writer is None:
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
                    self._close_file()
        except Exception as exc:
            self._fail(exc)
        left = sum(len(p) for p in pending)  # left over only when the sink failed
        self.lost += left
        self.pending_records -= left

    def tick(self) -> None:
        """Flush and rotate on time (called from the daemon's loop); a write error of the
        writer thread ends the sink now, not at the next chunk."""
        if self.writer is not None:
            try:
                self.writer.check()
            except Exception as exc:
                self._fail(exc)
        if self.busy:
            return
        now = time.monotonic()
        if self.pending and now - self.pending_since >= self.flush_s:
            self.flush()
        if self.writer is not None and now - self.opened >= self.max_seconds:
            self._close_file()

    def _fail(self, exc: Exception) -> None:
        """End the sink: keep the first error and close the file as failed."""
        if self.error is None:
            self.error = exc
        self._close_file()

    def _close_file(self) -> None:
        """Close the file and give it its final name; if a write to it failed (now or
        before), it keeps its ``.tmp`` name, and its records not in logged chunks are lost."""
        if self.writer is None:
            return
        writer = self.closing = self.writer  # where give_up finds it, while it closes
        self.writer = None
        if self.arena is not None:
            self.arena.next_file()
        if self.gave_up:
            writer.give_up()
        whole = False
        try:
            writer.close(self.on_wait)  # a chunk's write error is raised here
            if self.error is None:
                durable_replace(self.tmp, self.final, self.fsync)
                whole = True
        except Exception as exc:
            self.error = self.error or exc
        finally:
            self.closing = None
        if not whole:
            self.written += writer.saved  # in the .tmp's logged chunks: the next start rebuilds them
            self.lost += self.records_in_file - writer.saved
            self.records_in_file = 0
            return
        log_path(self.tmp).unlink(missing_ok=True)
        self.files.append(self.final)
        self.written += self.records_in_file
        self.records_in_file = 0

    def close(self) -> None:
        """Write what is gathered and close the file (see ``error`` for how it went)."""
        self.flush()
        self._close_file()


class Publisher:
    """Built events on a PUB socket for downstream consumers (EVENTS messages of at most
    ``max_message_bytes``, so a subscriber with the same limit as the node reads them all)."""

    def __init__(
        self, endpoint: str, context: zmq.Context, node_id: int, hwm: int = 1000, max_message_bytes: int = 4 << 20
    ):
        self.socket = context.socket(zmq.PUB)
        self.socket.setsockopt(zmq.SNDHWM, hwm)
        self.socket.setsockopt(zmq.LINGER, 1000)
        prepare(self.socket, endpoint)
        try:
            self.socket.bind(endpoint)
        except zmq.ZMQError:
            self.socket.close(linger=0)
            raise
        self.node_id = node_id
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
            n_sources=d["flags"].shape[0], sent_ns=time.time_ns(),
        )  # fmt: skip
        self.sequence += 1
        try:
            self.socket.send(msg, zmq.NOBLOCK, copy=msg.nbytes < 65536)
        except zmq.Again:  # PUB never blocks; a slow subscriber loses messages by design
            pass

    def close(self) -> None:
        self.socket.close()


def late_records(source_ids: np.ndarray, late) -> np.ndarray:
    """Late fragments as records with their source id and arrival time, for the late sink."""
    f = late.fragments
    dtype = np.dtype([("source", "<u2"), ("received_ns", "<u8")] + [(n, f.dtype.fields[n][0]) for n in f.dtype.names])
    out = np.zeros(len(f), dtype)
    out["source"] = source_ids[late.source_index]
    out["received_ns"] = late.received_ns
    for n in f.dtype.names:
        out[n] = f[n]
    return out


def read_events(path: str | Path, tree: str = "events") -> dict[str, np.ndarray]:
    """Every column of one sink file (HDF5 or ROOT), for tests, demos and analyses."""
    path = Path(path)
    if path.suffix == ".root":
        import uproot

        with uproot.open(path) as f:
            return {k: np.asarray(v) for k, v in f[tree].arrays(library="np").items()}
    import h5py

    with h5py.File(path, "r") as f:
        if tree not in f:
            return {}
        records = f[tree][()]
    return {name: records[name] for name in records.dtype.names if name != "reserved"}
