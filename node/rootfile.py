"""One ROOT file of event records (uproot): a TTree with one branch per field, and the
entries log a killed writer's file is rebuilt from.

uproot updates a tree in place, in several writes per ``extend``; a file cut between them
can read back with no error and not add up (the tree counting more entries than its
branches give, or one branch more than another).  So each ``extend`` is followed by an
entry in a log beside the file (``NAME.root.tmp.entries``: the tree's entries so far, 8
bytes little-endian, behind a header with the boot it was written in and whether it
syncs), written once the file's bytes are out of the process.  The next start rebuilds
the file from the entries the log names and no further (``RecoveredTree``: read basket by
basket, a few MB at a time); cut after each of its writes, a tree's baskets before the cut
always gave back the right rows (uproot 5.7.7, 2026-11-24; ``tests/test_node_root_recovery.py``
replays every cut).  With ``fsync`` the file is synced every ``SYNC_BYTES`` or ``SYNC_S``
before an entry, which then says so (its top bit); after a restart of the machine only
those are trusted, and an unsynced log not at all (as an HDF5 chunk log,
``node.chunklog.distrust``).  A sync per extend (every 1 MB) cost the node's thread ~25%
of a ROOT sink's events/s.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from node.chunklog import boot_id
from node.durable import sync_fd

ENTRIES_SUFFIX = ".entries"
ENTRY = 8  # bytes per entries-log entry: the tree's entries so far, little-endian
SYNCED = 1 << 63  # an entry whose bytes were synced to the disk before it was written
MAGIC = b"FFROOT01"
HEADER = 64  # MAGIC, b"S" (syncs) or b"-", the boot id (ASCII), padded with spaces
SYNC_BYTES = 4 << 20  # with fsync: the file synced at least every 4 MB (as an HDF5 chunk) ...
SYNC_S = 1.0  # ... or every second, whichever comes first (at the extend that passes it)
# a rebuild reads and writes this many bytes of records at a time (a basket per branch per
# extend): read whole, a 1 GB .tmp took 2 GB of memory at start; written in one extend, a
# branch of more than 2 GiB (~510k events of 4 KB, half the default max_events_per_file)
# was refused by uproot ("too large to fit in a TBasket"), and the start failed
REBUILD_BYTES = 4 << 20


def entries_path(tmp: Path) -> Path:
    """The entries log beside a ROOT file being written."""
    return tmp.with_name(tmp.name + ENTRIES_SUFFIX)


def columns(records: np.ndarray, keep_reserved: bool = False) -> dict[str, np.ndarray]:
    """A structured array as one contiguous array per field (reserved fields left out,
    but in late files, where a fragment refused for its reserved field shows why)."""
    names = [n for n in records.dtype.names if keep_reserved or n != "reserved"]
    return {name: np.ascontiguousarray(records[name]) for name in names}


def _uproot() -> Any:
    try:
        import uproot
    except ImportError:
        raise RuntimeError("the ROOT sink needs uproot: pip install uproot") from None
    return uproot


class ROOTWriter:
    """A TTree with one branch per field (fixed-size arrays stay arrays); with
    ``entries_log``, the log a killed writer's file is rebuilt from (see the module)."""

    def __init__(self, path: Path, tree: str, attrs: dict[str, Any], fsync: bool = False,
                 entries_log: bool = True):  # fmt: skip
        uproot = _uproot()
        self.path = path
        self.fsync = fsync
        self.entries = 0  # in the tree, and named by the log once ``write`` returns
        self._log = -1
        self.logged = entries_log  # an entries log is kept (``saved``: what it names outlives a failed close)
        self._synced_at, self._synced_bytes = time.monotonic(), 0  # the last sync (fsync), the file's size then
        self._out = open(path, "w+b")  # noqa: SIM115 (closed in close): flushed before each log entry
        try:
            self.file = uproot.recreate(self._out)
            self.tree_name = tree
            self.tree = None
            # the HDF5 dataset's attributes, as JSON (readable from C++ ROOT, unlike a Python repr)
            self.file[f"{tree}_info"] = json.dumps(attrs, default=str)
            if entries_log:
                self._log = os.open(entries_path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
                head = MAGIC + (b"S" if fsync else b"-") + (boot_id() or "").encode()
                if os.write(self._log, head.ljust(HEADER)) != HEADER:
                    raise OSError(f"{entries_path(path)}: short write")
        except BaseException:
            self._out.close()
            raise

    # written in the caller's thread, all at once: never queued, never waiting for room
    busy, waiting, written_out = False, None, True

    def finish(self) -> None:
        pass

    @property
    def saved(self) -> int:
        """Records that survive a failed close: those the entries log names (the next
        start rebuilds them)."""
        return self.entries if self.logged else 0

    def wait_room(self, timeout: float) -> None:
        pass

    def give_up(self) -> None:
        pass

    def check(self) -> None:
        pass

    def write(self, parts: list[np.ndarray]) -> None:
        self.write_columns(columns(np.concatenate(parts), keep_reserved=self.tree_name == "late"))

    def write_columns(self, cols: dict[str, np.ndarray]) -> None:
        """Extend the tree, then name its entries in the log (the file's bytes first)."""
        if self.tree is None:
            self.tree = self.file.mktree(self.tree_name, {k: np.dtype((a.dtype, a.shape[1:])) for k, a in cols.items()})
        self.tree.extend(cols)
        self._out.flush()  # out of the process: a killed writer's kernel keeps them
        n = len(next(iter(cols.values())))
        if self._log < 0:
            self.entries += n
            return
        entry = self.entries + n
        size = os.fstat(self._out.fileno()).st_size  # (not tell(): uproot's last write is its header, at 0)
        if self.fsync and (size - self._synced_bytes >= SYNC_BYTES or time.monotonic() - self._synced_at >= SYNC_S):
            # on the disk before an entry says so: after a power loss no synced entry names bytes the disk lacks
            sync_fd(os.fdatasync, self._out.fileno(), self.path)
            self._synced_at, self._synced_bytes = time.monotonic(), size
            entry |= SYNCED
        # an entry the disk lost names fewer entries, never ones it lacks; a synced one is synced
        # itself (the log is a few bytes), so that a power loss keeps what it names rebuildable
        if os.write(self._log, entry.to_bytes(ENTRY, "little")) != ENTRY:
            raise OSError(f"{entries_path(self.path)}: short write")
        if entry & SYNCED:
            sync_fd(os.fdatasync, self._log, entries_path(self.path))
        self.entries += n

    def close(self, on_wait: Callable[[], None] | None = None) -> None:
        try:
            self.file.close()
        finally:
            self._out.close()
            if self._log >= 0:
                os.close(self._log)
                self._log = -1


def logged_entries(tmp: Path) -> int | str | None:
    """The entries a killed writer's log names (its last whole entry; a cut one is not
    taken; after a restart of the machine its last synced one); None if there is no log;
    why, if it cannot be trusted: a header that does not read (the writer died, or the
    power went, before it was whole), or a log written without syncing by a machine that
    has restarted since (the power went, or the kernel crashed: it may name entries whose
    bytes never reached the disk)."""
    try:
        data = entries_path(tmp).read_bytes()
    except FileNotFoundError:
        return None
    if len(data) < HEADER or not data.startswith(MAGIC):
        return "its entries log's header does not read"
    then, now = data[len(MAGIC) + 1 : HEADER].decode("ascii", "replace").strip(), boot_id()
    body = data[HEADER:]
    entries = np.frombuffer(body[: len(body) // ENTRY * ENTRY], "<u8")
    if not (then and now and then != now):  # the same boot (or none to tell): a killed process, the kernel wrote all
        return int(entries[-1] & ~np.uint64(SYNCED)) if len(entries) else 0
    if data[len(MAGIC) : len(MAGIC) + 1] != b"S":
        return "its entries log was written without fsync before the machine restarted: its entries may not be on disk"
    synced = entries[(entries & np.uint64(SYNCED)) != 0]  # the power went: only what was synced
    return int(synced[-1] & ~np.uint64(SYNCED)) if len(synced) else 0


def key_names(f: Any) -> set[str]:
    """The names of an open ROOT file's objects, without their cycle numbers (``;1``)."""
    return {k.split(";")[0] for k in f.keys()}


def holds_no_entries(tmp: Path, tree: str) -> bool:
    """Whether a killed writer's ROOT file reads and holds no entry of ``tree`` (no such
    tree, or one of 0 entries): killed before its first records were written, it has
    nothing to lose; one that does not read may hold some."""
    uproot = _uproot()
    try:
        with uproot.open(tmp) as f:
            return tree not in key_names(f) or f[tree].num_entries == 0
    except Exception:  # uproot's errors are of many kinds: it may hold entries
        return False


class Unreadable(Exception):
    """A killed writer's ROOT file does not give back the entries its log names."""


class RecoveredTree:
    """A killed writer's ROOT file, open for its rebuild: its attributes, the entries its
    tree counts, and (``batches``) the first ``entries`` rows of every branch, read basket
    by basket (a tree cut mid-``extend`` counts entries its baskets do not hold yet, and
    uproot's reads of a range check the whole branch against that count, and refuse; the
    baskets before the cut are whole) and handed on a few MB at a time, never the whole
    file in memory (a 2.2 GB file took 4.5 GB read whole).  Anything that does not add up
    is ``Unreadable`` (the file is then left as it is, never rebuilt short)."""

    def __init__(self, tmp: Path, tree: str, entries: int):
        uproot = _uproot()
        self.entries = entries
        try:
            self._file = uproot.open(tmp)
        except Exception as exc:
            raise Unreadable(exc) from None
        try:
            names = key_names(self._file)
            info = f"{tree}_info"
            if info not in names:
                raise Unreadable(f"no {info!r} in it (it holds {sorted(names) or 'nothing'})")
            self.attrs: dict[str, Any] = json.loads(self._file[info])
            if tree not in names:
                raise Unreadable(f"its entries log names {entries} entries, but it has no {tree!r} tree")
            t = self._file[tree]
            self.counted: int = t.num_entries
            if self.counted < entries:
                raise Unreadable(f"its entries log names {entries} entries, its tree counts {self.counted}")
            self._branches = list(t.items())
            # one basket per branch per extend: the baskets of every branch start at the same entries
            starts = {name: self._starts(branch) for name, branch in self._branches}
            if len({tuple(v) for v in starts.values()}) != 1:
                raise Unreadable(f"its branches' baskets do not start at the same entries ({starts})")
            self._starts_ = next(iter(starts.values()))
        except Unreadable:
            self.close()
            raise
        except Exception as exc:  # uproot's errors are of many kinds
            self.close()
            raise Unreadable(exc) from None

    def _starts(self, branch: Any) -> list[int]:
        """The first entry of each of a branch's baskets that start before ``entries``."""
        out = []
        for i in range(branch.num_baskets):
            start = int(branch.basket_entry_start_stop(i)[0])
            if start >= self.entries:
                break
            out.append(start)
        return out

    def batches(self, max_bytes: int = REBUILD_BYTES) -> Iterator[dict[str, np.ndarray]]:
        """The first ``entries`` rows, a column dict of about ``max_bytes`` (or one basket)
        at a time; ``Unreadable`` if a basket does not read or the rows do not add up."""
        group: list[dict[str, np.ndarray]] = []
        size = done = 0
        for i, start in enumerate(self._starts_):
            if start != done:
                raise Unreadable(f"basket {i} starts at entry {start}, after {done} entries")
            try:
                cols = {name: np.asarray(branch.basket(i).array(library="np")) for name, branch in self._branches}
            except Exception as exc:
                raise Unreadable(f"basket {i}: {exc}") from None
            n = min(len(a) for a in cols.values())
            if any(len(a) != n for a in cols.values()) or n == 0:
                rows = {k: len(a) for k, a in cols.items()}
                raise Unreadable(f"basket {i} gives {rows} rows")
            take = min(n, self.entries - done)
            part = {k: a[:take] for k, a in cols.items()}
            nbytes = sum(a.nbytes for a in part.values())
            if group and size + nbytes > max_bytes:
                yield _joined(group)
                group, size = [], 0
            group.append(part)
            size, done = size + nbytes, done + take
        if done != self.entries:
            raise Unreadable(f"its entries log names {self.entries} entries, but its baskets gave {done}")
        if group:
            yield _joined(group)

    def close(self) -> None:
        f = getattr(self, "_file", None)
        if f is not None:
            f.close()
            self._file = None

    def __enter__(self) -> RecoveredTree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _joined(group: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(group) == 1:
        return group[0]
    return {k: np.concatenate([g[k] for g in group]) for k in group[0]}
