"""One HDF5 file of event records: a compound dataset written a whole chunk at a time by
a ``ChunkIO`` thread, with a chunk log for recovery after a crash (``node.chunklog``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from node.arena import PAGE, ChunkArena, chunk_rows
from node.chunkio import OUT_OF_ROOM, ChunkIO, hdf5_errno, until_room
from node.chunklog import ChunkLog, write_tail


def import_h5py():
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
TAIL_S = 1.0  # a chunk not whole after this long is kept in a tail file (node.chunklog.write_tail)


def chunk_layout(dtype: np.dtype, chunk_bytes: int | None = None) -> tuple[int, bool]:
    """Records per HDF5 chunk (~``chunk_bytes``, ``CHUNK_BYTES`` unless given; whole pages
    where that is near), and whether such a chunk is whole pages (``chunk_rows``): what an
    arena needs."""
    return chunk_rows(dtype.itemsize, CHUNK_BYTES if chunk_bytes is None else chunk_bytes)


def rows_per_chunk(dtype: np.dtype, chunk_bytes: int | None = None) -> int:
    """Records per HDF5 chunk (``chunk_layout``)."""
    return chunk_layout(dtype, chunk_bytes)[0]


class HDF5Writer:
    """One compound dataset per file (a table of records), written a whole ~4 MB chunk at a
    time: no type conversion, no data-sieve copies (4x faster than ``dataset[a:b] = records``).

    HDF5 only allocates each chunk (early allocation, no fill values, chunks aligned to
    pages) and a ``ChunkIO`` thread writes it at its file offset: with O_DIRECT where
    ``direct_io`` asks for it and the filesystem takes it, else through the page cache.

    ``fsync``: each chunk is on the disk before the chunk log names it, and so is the log's
    entry before the next chunk is written, so a power loss or kernel crash loses what a
    killed process would (``node/chunklog.py``), with O_DIRECT or without."""

    def __init__(self, path: Path, tree: str, attrs: dict[str, Any], direct_io: bool = True, crash_log: bool = True,
                 fsync: bool = False, dtype: np.dtype | None = None, arena: ChunkArena | None = None,
                 chunk_bytes: int | None = None):  # fmt: skip
        """With ``dtype`` the dataset and the chunk log are made now, not at the first
        write: everything the file needs on the disk before its chunks, in one step that
        either succeeds or leaves nothing open.  ``chunk_bytes``: the chunks' size
        (``CHUNK_BYTES`` unless given); a file takes at least one whole chunk on the disk."""
        self.path, self.crash_log = path, crash_log
        self.chunk_bytes = chunk_bytes
        self.log: ChunkLog | None = None  # where the chunks lie, for a recovery after a hard crash
        self.name, self.attrs = tree, attrs
        self.dataset = None
        self.rows = 0  # records in the dataset's extent (queued for the writer thread or written)
        self.metadata_waiting: tuple[OSError, float] | None = None
        # before h5py truncates the file: same inode; ``arena``: where the builder may have
        # built this file's chunks (node.arena)
        self.io = ChunkIO(path, direct=direct_io, sync=fsync, arena=arena)
        self.file = None
        try:
            self.file = import_h5py().File(path, "w", alignment_threshold=ALIGN_THRESHOLD, alignment_interval=PAGE)
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
        """Records in chunks written and logged, and in the tail written beyond them: they
        survive even if the file does not close (the node's next start rebuilds it from its
        chunk log and tail, ``node.chunklog.recovered_records``)."""
        rows, tail = self.io.rows_written, self.io.tail_saved
        if tail is not None and tail[0] <= rows < tail[0] + tail[1]:
            return tail[0] + tail[1]
        return rows

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
        self.dtype, self.size = dtype, rows_per_chunk(dtype, self.chunk_bytes)
        arena = self.io.arena
        if arena is not None and (arena.dtype != dtype or arena.rows != self.size):
            self.io.arena = None  # not laid out as this file's chunks: gather them
        self.pieces: list[np.ndarray] = []  # the records of the chunk being gathered
        self.fill = 0
        self.partial_since = 0.0  # when the chunk being gathered got its first record (monotonic s)
        self.tail_fill = 0  # its records in the last tail queued
        self.dataset = self.file.create_dataset(
            self.name, (0,), dtype, maxshape=(None,), chunks=(self.size,), **self._allocate_only()
        )
        for k, v in self.attrs.items():
            self.dataset.attrs[k] = v
        if self.crash_log:
            self.log = ChunkLog(self.path, dtype, self.name, self.attrs, sync=self.io.sync)
            self.io.on_written = self.log.record
            self.io.on_tail = lambda pieces, row: write_tail(self.path, pieces, row, self.io.sync)

    def _allocate_only(self) -> dict[str, Any]:
        """Extending the dataset allocates the new chunk's file space at once and writes
        nothing there: the writer thread fills it."""
        h5py = import_h5py()
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
            if not self.fill:
                self.partial_since = time.monotonic()
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
        self.pieces, self.fill, self.tail_fill = [], 0, 0

    def keep_tail(self, now: float) -> None:
        """A chunk that has not filled in ``TAIL_S``: its records so far to the tail file
        (by the writer thread; at most one queued), so a crash does not lose them."""
        if (self.log is not None and self.fill > self.tail_fill and now - self.partial_since >= TAIL_S
                and not self.io.tail_queued):  # fmt: skip
            self.io.submit_tail(list(self.pieces), self.rows)
            self.tail_fill = self.fill

    def finish(self) -> None:
        """Queue the partial last chunk (padded to a whole chunk, past the dataset's extent):
        after this the file takes no more records, and is closed once ``written_out``."""
        if self.dataset is not None and self.fill:
            self._queue_chunk()

    @property
    def written_out(self) -> bool:
        """Every chunk queued has left the writer thread (written, or failed)."""
        return self.io.todo.unfinished_tasks == 0

    def close(self, on_wait: Callable[[], None] | None = None) -> None:
        """Queue the partial last chunk, wait for the writer thread, close the file; a chunk
        write error is raised once the file is closed (so it keeps its ``.tmp`` name).
        HDF5's own metadata, written now, waits for room like the chunks do (``on_wait``
        about once a second meanwhile) unless ``give_up`` was called."""
        try:
            self.finish()
        finally:
            self.io.stop(on_wait)  # every chunk on disk before HDF5 writes its metadata and closes
            try:
                self._flush_metadata(on_wait)
            except BaseException:
                with contextlib.suppress(Exception):  # it fails too, naming neither file nor cause
                    self.file.close()
                raise
            self.file.close()
        self.io.check()

    def release_log(self) -> None:
        """Let go of the chunk log (and its lock): only once the file has its final name, or
        failed, so that a node started meanwhile on the same folder never takes the file for
        a killed writer's while this one still closes it (HDF5's metadata can wait for room)."""
        if self.log is not None:
            self.log.close()

    def _flush_metadata(self, on_wait: Callable[[], None] | None) -> None:
        def waits(exc: OSError) -> None:
            if self.metadata_waiting is None:
                self.metadata_waiting = (exc, time.monotonic())

        try:
            until_room(self.file.flush, abandoned=lambda: self.io.abandoned, waits=waits, on_wait=on_wait)
        except (OSError, RuntimeError) as exc:
            code = hdf5_errno(exc)
            why = f"{exc}{', given up' if code in OUT_OF_ROOM else ''}"
            raise OSError(code, f"writing HDF5's metadata failed: {why}", str(self.path)) from None
        finally:
            self.metadata_waiting = None
