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

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from node import protocol

FORMATS = {"hdf5": ".h5", "root": ".root"}


def columns(records: np.ndarray) -> dict[str, np.ndarray]:
    """A structured array as one contiguous array per field (reserved fields left out)."""
    return {name: np.ascontiguousarray(records[name]) for name in records.dtype.names if name != "reserved"}


def _import_h5py():
    try:
        import h5py
    except ImportError:
        raise RuntimeError("the HDF5 sink needs h5py: pip install 'fpgaflow[node]'") from None
    return h5py


class _HDF5Writer:
    """One compound dataset per file (a table of records), written a whole chunk at a
    time with HDF5's direct chunk write: no type conversion, no data-sieve copies (4x
    faster than ``dataset[a:b] = records`` here)."""

    def __init__(self, path: Path, tree: str, attrs: dict[str, Any]):
        self.file = _import_h5py().File(path, "w")
        self.name, self.attrs = tree, attrs
        self.dataset = None
        self.rows = 0  # records written to the dataset (not those still in the chunk buffer)

    def _create(self, dtype: np.dtype) -> None:
        self.chunk = np.zeros(max(1, (1 << 20) // dtype.itemsize), dtype)  # ~1 MB chunks
        self.fill = 0
        self.dataset = self.file.create_dataset(
            self.name, (0,), dtype, maxshape=(None,), chunks=(len(self.chunk),)
        )
        for k, v in self.attrs.items():
            self.dataset.attrs[k] = v

    def write(self, parts: list[np.ndarray]) -> None:
        if self.dataset is None:
            self._create(parts[0].dtype)
        size = len(self.chunk)
        for p in parts:
            direct = p.dtype == self.chunk.dtype and p.flags.c_contiguous
            while len(p):
                if direct and self.fill == 0 and len(p) >= size:
                    # a whole chunk of built events as they are: no copy into the chunk buffer
                    self._write_chunk(p[:size], size)
                    p = p[size:]
                    continue
                n = min(size - self.fill, len(p))
                self.chunk[self.fill : self.fill + n] = p[:n]
                self.fill += n
                p = p[n:]
                if self.fill == size:
                    self._write_chunk(self.chunk, size)
                    self.fill = 0

    def _write_chunk(self, block: np.ndarray, n: int) -> None:
        """Append ``n`` records as the next chunk (``block`` is one chunk long; past ``n``
        it is padding outside the dataset's extent)."""
        start = self.rows
        self.rows += n
        self.dataset.id.set_extent((self.rows,))  # the low-level call: h5py's resize costs 0.1 ms more
        self.dataset.id.write_direct_chunk((start,), block)

    def close(self) -> None:
        if self.dataset is not None and self.fill:
            self.chunk[self.fill :] = np.zeros(1, self.chunk.dtype)  # a partial last chunk is padded
            self._write_chunk(self.chunk, self.fill)
            self.fill = 0
        self.file.flush()
        self.file.close()


class _ROOTWriter:
    """A TTree with one branch per field (fixed-size arrays stay arrays)."""

    def __init__(self, path: Path, tree: str, attrs: dict[str, Any]):
        try:
            import uproot
        except ImportError:
            raise RuntimeError("the ROOT sink needs uproot: pip install uproot") from None
        self.file = uproot.recreate(path)
        self.tree_name = tree
        self.tree = None
        self.file[f"{tree}_info"] = str(attrs)

    def write(self, parts: list[np.ndarray]) -> None:
        cols = columns(np.concatenate(parts))
        if self.tree is None:
            self.tree = self.file.mktree(self.tree_name, {k: np.dtype((a.dtype, a.shape[1:])) for k, a in cols.items()})
        self.tree.extend(cols)

    def close(self) -> None:
        self.file.close()


class RotatingFiles:
    """Append structured records to files that rotate by size and age; atomic renames.

    Records are gathered in memory and written ``flush_bytes`` at a time (or after
    ``flush_s``): one write to a file costs about a millisecond whatever its size, and a
    much larger write would stall the daemon's loop (and every event's latency)."""

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
        self.index = 0
        self.writer = None
        self.records_in_file = 0
        self.opened = 0.0
        self.written = 0  # records in closed (renamed) files
        self.files: list[Path] = []
        self.pending: list[np.ndarray] = []
        self.pending_records = 0
        self.pending_bytes = 0
        self.pending_since = 0.0

    @property
    def accepted(self) -> int:
        """Records handed to this sink so far (in files, open or closed, or about to be)."""
        return self.written + self.records_in_file + self.pending_records

    def _open(self) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self.final = self.directory / f"{self.prefix}-{stamp}-{self.index:05d}{FORMATS[self.fmt]}"
        self.tmp = self.final.with_name(self.final.name + ".tmp")
        self.index += 1
        cls = _HDF5Writer if self.fmt == "hdf5" else _ROOTWriter
        self.writer = cls(self.tmp, self.tree, self.attrs)
        self.records_in_file = 0
        self.opened = time.monotonic()

    def write(self, records: np.ndarray) -> None:
        if len(records) == 0:
            return
        if not self.pending:
            self.pending_since = time.monotonic()
        self.pending.append(records)
        self.pending_records += len(records)
        self.pending_bytes += records.nbytes
        if self.pending_bytes >= self.flush_bytes:
            self.flush()

    def flush(self) -> None:
        """Write the gathered records, splitting them across files at ``max_records``."""
        if not self.pending:
            return
        pending, self.pending, self.pending_records, self.pending_bytes = self.pending, [], 0, 0
        while pending:
            if self.writer is None:
                self._open()
            room = self.max_records - self.records_in_file
            parts, n = [], 0
            while pending and n < room:
                p = pending.pop(0)
                if n + len(p) > room:  # split at the file boundary
                    p, rest = p[: room - n], p[room - n :]
                    pending.insert(0, rest)
                parts.append(p)
                n += len(p)
            self.writer.write(parts)
            self.records_in_file += n
            if self.records_in_file >= self.max_records:
                self._close_file()

    def tick(self) -> None:
        """Flush and rotate on time (called from the daemon's loop)."""
        now = time.monotonic()
        if self.pending and now - self.pending_since >= self.flush_s:
            self.flush()
        if self.writer is not None and now - self.opened >= self.max_seconds:
            self._close_file()

    def _close_file(self) -> None:
        if self.writer is None:
            return
        self.writer.close()
        self.writer = None
        os.replace(self.tmp, self.final)
        self.files.append(self.final)
        self.written += self.records_in_file
        self.records_in_file = 0

    def close(self) -> None:
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
        self.socket.bind(endpoint)
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
