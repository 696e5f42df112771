"""Chunks of a file written at given offsets from a thread of their own, and waiting for
room on the disk: what the HDF5 sink's writer does off the daemon's thread.

A write that finds no room (``OUT_OF_ROOM``: a full disk, a used-up quota, the process's
file-size limit) is tried again until there is room or the caller gives up, so that a
disk that fills up holds the senders back (the daemon stops reading) instead of losing
events.
"""

from __future__ import annotations

import errno
import mmap
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from node.arena import PAGE, ChunkArena
from node.durable import sync_fd

T = TypeVar("T")
# No room for a write: the disk is full, the quota used up, or the file at the process's
# file-size limit (``ulimit -f``).  The writer keeps the chunk and tries again (an
# operator frees space), and the daemon stops reading its input meanwhile, so that the
# senders wait (ZeroMQ's back pressure) and nothing is lost.
OUT_OF_ROOM = frozenset((errno.ENOSPC, errno.EDQUOT, errno.EFBIG))
RETRY_S = (0.05, 1.0)  # the first pause before trying a write again, and the longest


def _pwrite_all(fd: int, data: np.ndarray, offset: int) -> None:
    """``os.pwrite`` until every byte is written (a regular file may take fewer at once)."""
    view = memoryview(data)
    while len(view):
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


TAIL = -1  # the offset of a queued tail (``ChunkIO.submit_tail``): not a chunk


class ChunkIO:
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
        self.tail_queued = False  # a tail (``submit_tail``) waits in the queue: one at a time
        self.tail_errors = 0  # tails that could not be written (no room): those records wait for their chunk
        self.tail_error: Exception | None = None
        self.tail_saved: tuple[int, int] | None = None  # (row, rows) of the last tail written
        self.on_written: Callable[[int, int, int, int], None] | None = None  # (row, rows, offset, nbytes)
        self.on_tail: Callable[[list[np.ndarray], int], None] | None = None  # (pieces, row): a tail to keep
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

    def submit_tail(self, pieces: list[np.ndarray], row: int) -> None:
        """Queue the records of a chunk not yet whole (rows ``row``..) for its tail file
        (``node.chunklog.write_tail``): what a killed writer's file is rebuilt with beyond
        its logged chunks.  Not a chunk: the arena's memory stays reserved."""
        self.tail_queued = True
        self.todo.put((TAIL, pieces, 0, row, sum(len(p) for p in pieces)))

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
            if item[0] == TAIL:
                try:
                    if self.error is None and self.on_tail is not None:
                        self.on_tail(item[1], item[3])
                        self.tail_saved = (item[3], item[4])
                except Exception as exc:  # best effort: the chunk itself is still to be written
                    self.tail_errors += 1
                    self.tail_error = exc
                finally:
                    self.tail_queued = False
                    self.todo.task_done()
                    self.room.set()
                continue
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
            until_room(attempt, abandoned=lambda: self.abandoned, waits=waits)
            self.rows_written += rows
        except Exception as exc:  # raised in the caller's thread by check()
            self.error = (offset, exc)
        finally:
            self.waiting = None

    def _gather(self, pieces: list[np.ndarray], nbytes: int) -> np.ndarray:
        """The chunk's bytes, zero-padded, in the page-aligned buffer; or where they lie, if
        they were built there (``arena``)."""
        if self.arena is not None:
            whole = self.arena.whole_chunk(pieces)  # its size is the file's chunk's (see HDF5Writer._create)
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
        if not self.thread.is_alive():  # unmapped now, not whenever the garbage collector finds the file's cycle
            self.buffer = np.zeros(0, np.uint8)  # (a chunk's 4 MB per file: 20-60 MB at a 5 s rotation)


def hdf5_errno(exc: Exception) -> int | None:
    """The system's error number behind an h5py error: h5py raises OSError or
    RuntimeError, and gives the number in the message where it gives no ``errno``."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    found = re.search(r"errno = (\d+)", str(exc))
    return int(found.group(1)) if found else None


def until_room(attempt: Callable[[], T], *, abandoned: Callable[[], bool], waits: Callable[[OSError], None],
               on_wait: Callable[[], None] | None = None) -> T:  # fmt: skip
    """``attempt()`` until it does not fail for want of room (``OUT_OF_ROOM``), pausing
    50 ms and doubling to 1 s; ``waits(error)`` at each miss, ``on_wait()`` before each
    pause.  Any other error, and one once ``abandoned()``, is raised as it came."""
    pause = RETRY_S[0]
    while True:
        try:
            return attempt()
        except (OSError, RuntimeError) as exc:
            code = hdf5_errno(exc)
            if code not in OUT_OF_ROOM or abandoned():
                raise
            waits(OSError(code, os.strerror(code)))
        if on_wait is not None:
            on_wait()
        time.sleep(pause)
        pause = min(2 * pause, RETRY_S[1])
