"""A crash log beside each HDF5 file being written: where its chunks lie.

HDF5 writes a file's metadata (the chunk index, the dataset's extent) when it closes the
file, so a writer killed before that (SIGKILL, the OOM killer) leaves a ``.tmp`` that HDF5
cannot open: up to ``max_seconds_per_file`` of events.  The chunks themselves are in it,
at offsets HDF5 allocated.  The sink appends one 32-byte entry per chunk once the chunk is
written (first row, rows, byte offset, bytes), behind a header naming the records' dtype,
and ``recover`` rebuilds a proper file from a killed writer's ``.tmp`` and its log.  What a
hard crash still loses: the chunk being written and the events not yet in a chunk (the
sink gathers up to 1 MB or 0.5 s, and fills a ~4 MB chunk before writing it): a chunk
that has not filled for ``TAIL_S`` is kept in a tail file beside the log (``write_tail``),
so at a low rate that is a second or two of events, not minutes.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from node.durable import durable_replace, sync_fd

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")  # Linux: a new one at every boot
ENTRY = np.dtype([("row", "<u8"), ("rows", "<u8"), ("offset", "<u8"), ("nbytes", "<u8")])
SUFFIX = ".chunks"
TAIL_SUFFIX = ".tail"
TAIL_HEAD = np.dtype([("magic", "S8"), ("row", "<u8"), ("rows", "<u8")])
TAIL_MAGIC = b"FFTAIL01"


def log_path(tmp: Path) -> Path:
    return tmp.with_name(tmp.name + SUFFIX)


def tail_path(tmp: Path) -> Path:
    return tmp.with_name(tmp.name + TAIL_SUFFIX)


def write_tail(tmp: Path, pieces: list[np.ndarray], row: int, sync: bool) -> None:
    """Keep the records of the chunk not yet whole (rows ``row``..) beside the file, so that
    a writer killed before the chunk fills loses seconds of events, not the chunk's worth
    (at a low rate a chunk takes minutes to fill).  Written whole under a new name and
    renamed over the last one (with ``sync``: on the disk before the rename, and the rename
    after it), so a crash leaves the last tail or this one, never half of one."""
    new = tmp.with_name(tmp.name + TAIL_SUFFIX + ".new")
    head = np.array([(TAIL_MAGIC, row, sum(len(p) for p in pieces))], TAIL_HEAD)
    try:
        with open(new, "wb") as f:
            f.write(head.tobytes())
            for p in pieces:
                f.write(memoryview(np.ascontiguousarray(p)).cast("B"))
        durable_replace(new, tail_path(tmp), sync)
    except BaseException:
        new.unlink(missing_ok=True)
        raise


def read_tail(tmp: Path, dtype: np.dtype) -> tuple[int, np.ndarray] | None:
    """(first row, records) of ``tmp``'s tail; None without one, or one that does not read."""
    try:
        raw = tail_path(tmp).read_bytes()
    except OSError:
        return None
    if len(raw) < TAIL_HEAD.itemsize:
        return None
    head = np.frombuffer(raw, TAIL_HEAD, 1)[0]
    n = int(head["rows"])
    if head["magic"] != TAIL_MAGIC or len(raw) != TAIL_HEAD.itemsize + n * dtype.itemsize:
        return None
    return int(head["row"]), np.frombuffer(raw, dtype, n, TAIL_HEAD.itemsize)


def _plain(value: Any) -> Any:
    """JSON for attribute values (NumPy scalars and arrays included)."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


class ChunkLog:
    """Appends an entry per written chunk; written from one thread at a time.  With
    ``sync`` each entry is on the disk before ``record`` returns (fdatasync)."""

    def __init__(self, tmp: Path, dtype: np.dtype, tree: str, attrs: dict[str, Any], sync: bool = False):
        self.path = log_path(tmp)
        self.sync = sync
        header = io.BytesIO()
        head = {"tree": tree, "attrs": attrs, "boot": boot_id(), "synced": sync}
        header.write(json.dumps(head, default=_plain).encode() + b"\n")
        np.lib.format.write_array(header, np.zeros(0, dtype))  # the dtype, as NumPy itself writes it
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o666)
        # held while the file is written (the kernel drops it when the writer dies): a node
        # started on the same directory must not take a live file for a killed one's
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.size = 0
        try:
            self._append(header.getvalue())
        except BaseException:  # no room for it: let go of the file and its lock (a retry takes them again)
            os.close(self.fd)
            raise

    def record(self, row: int, rows: int, offset: int, nbytes: int) -> None:
        """Call once the chunk's bytes are in the file (one write: never half an entry)."""
        before = self.size
        self._append(np.array([(row, rows, offset, nbytes)], ENTRY).tobytes())
        if self.sync:
            try:
                sync_fd(os.fdatasync, self.fd, self.path)
            except OSError:  # taken back: the chunk's retry writes the entry again
                os.ftruncate(self.fd, before)
                self.size = before
                raise

    def _append(self, data: bytes) -> None:
        """All of ``data`` or nothing: a write cut short (the disk full, the file-size
        limit) is cut off again and raised as ENOSPC, so that a retry does not leave half
        an entry in front of the next one (every entry after it would be misread)."""
        n = os.write(self.fd, data)
        if n != len(data):
            os.ftruncate(self.fd, self.size)
            raise OSError(errno.ENOSPC, f"only {n} of {len(data)} bytes written", str(self.path))
        self.size += n

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def boot_id() -> str | None:
    """This boot's id; None where the system has none to give."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return None


def distrust(tmp: Path) -> str | None:
    """Why the chunk log of ``tmp`` cannot be trusted, or None.  A log written without
    syncing (``sink.fsync`` off) by a machine
    that has restarted since: the power went, or the kernel crashed, with the file open,
    and the log may name chunks whose bytes never reached the disk (they would be rebuilt
    as events of zeros).  A killed process does not matter: the kernel wrote both.  Nor
    can a log whose header does not read (empty or torn: the writer died, or the power
    went, before its header reached the disk)."""
    try:
        with open(log_path(tmp), "rb") as f:
            head, _ = _read_header(f)
    except (OSError, ValueError) as exc:
        return f"its chunk log's header does not read ({exc})"
    then, now = head.get("boot"), boot_id()
    if head.get("synced") or then is None or now is None or then == now:
        return None
    return "written without fsync before the machine restarted: its chunks may not have reached the disk"


def writer_alive(tmp: Path) -> bool:
    """Whether some process still writes ``tmp`` (holds its log's lock)."""
    try:
        fd = os.open(log_path(tmp), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # and with it the lock, if this took it


def _read_header(f: BinaryIO) -> tuple[dict[str, Any], np.dtype]:
    """The log's header (tree, attrs, boot, synced) and the records' dtype; ``f`` is left
    at the first entry."""
    head = json.loads(f.readline())
    if not (isinstance(head, dict) and isinstance(head.get("tree"), str) and isinstance(head.get("attrs"), dict)):
        raise ValueError("its header is not a chunk log's (tree, attrs)")
    try:
        dtype = np.lib.format.read_array(f).dtype  # object types refused (allow_pickle is off)
    except Exception as exc:  # NumPy's reader raises more than ValueError on garbage
        raise ValueError(f"its records' type does not read ({exc})") from None
    if dtype.itemsize == 0:  # no records of it could be counted in a chunk's bytes
        raise ValueError(f"its records' type {dtype} has no size")
    return head, dtype


def read_log(path: Path) -> tuple[str, dict[str, Any], np.dtype, np.ndarray]:
    """(tree, attrs, dtype, entries) of a chunk log; a torn last entry is left out."""
    with open(path, "rb") as f:
        head, dtype = _read_header(f)
        raw = f.read()
    entries = np.frombuffer(raw[: len(raw) // ENTRY.itemsize * ENTRY.itemsize], ENTRY)
    return head["tree"], head["attrs"], dtype, entries


def recovered_records(tmp: Path) -> tuple[str, dict[str, Any], np.ndarray, str | None]:
    """The records of a killed writer's ``.tmp``: every logged chunk, in row order, up to
    the first row no chunk covers or the first chunk not wholly in the file (as if the log
    ended there), then its tail's records from there (``write_tail``); and, where logged
    chunks or a tail were left out so, why (None: nothing was), so that the caller keeps
    what could not be placed instead of deleting it."""
    tree, attrs, dtype, entries = read_log(log_path(tmp))
    entries = np.sort(entries, order="row")
    parts, row, left = [], 0, None
    with open(tmp, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        room = size  # chunks do not overlap: together they are no bigger than the file
        for e in entries:
            if int(e["row"]) < row:  # the same chunk logged twice (written again after an error)
                continue
            if int(e["row"]) != row:  # a gap: nothing after it can be placed
                left = f"no chunk is logged for row {row}, but one is for row {int(e['row'])}"
                break
            offset, nbytes = int(e["offset"]), int(e["rows"]) * dtype.itemsize
            # bytes beyond the file's end (a corrupt entry naming rows by the billion among
            # them: reading them was a MemoryError or OverflowError and the node did not start)
            if offset + nbytes > size or nbytes > room:
                left = (f"the entry for {int(e['rows'])} rows from row {row} names bytes {offset}.. "
                        f"{offset + nbytes} of a {size}-byte file")  # fmt: skip
                break
            f.seek(offset)
            parts.append(np.frombuffer(f.read(nbytes), dtype))
            row += int(e["rows"])
            room -= nbytes
    tail = read_tail(tmp, dtype)
    if tail is not None and tail[0] <= row < tail[0] + len(tail[1]):  # (one that chunks since covered: none)
        parts.append(tail[1][row - tail[0] :])
    elif tail is not None and tail[0] > row and left is None:
        left = f"its tail holds rows {tail[0]}.., but the chunks end at row {row}"
    records = np.concatenate(parts) if parts else np.zeros(0, dtype)
    return tree, attrs, records, left
