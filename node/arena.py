"""Memory laid out as an HDF5 file's chunks, for the builder to build events in.

Without it the writer thread gathers every ~4 MB chunk from the blocks the builder left
events in: one more copy of every event, ~0.65 us of CPU per 4 KB event and memory
bandwidth the receiving threads wanted (~15% fewer built events/s with files, measured).
Here the builder asks for each output block at the rows of the file it is going to
(``reserve``), in page-aligned memory laid out chunk by chunk; a chunk whose records all
arrived where they were built is written from there as it is (O_DIRECT, ``whole_chunk``).

A prediction that does not hold (a block held back by the fallback while a later one
overtook it, a block split across files, a rotation in between) costs the copy it saves
elsewhere, never a wrong record: a chunk is written from the arena only if its records
lie there back to back, in the order handed to the sink, filling the chunk's memory
(``whole_chunk``); any other is gathered into the writer's own buffer as before.  The
writer never writes into the arena, reservations never overlap (each starts past the
last), and a chunk's memory is reserved again only once every record reserved in it
before has been written (``written_out``); records never written (a sink that failed)
only keep the arena from serving.

The memory is mapped twice, back to back (``_Mirrored``, Linux), so that a block that
runs past the arena's end goes on at its start without a break (without it ~20% of the
records, those of blocks across the end, were built elsewhere and copied).

Threads: the daemon's thread reserves; the file's writer thread counts what it wrote.
Each count is added to by one thread only.
"""

from __future__ import annotations

import ctypes
import math
import mmap
import os

import numpy as np

PAGE = 4096  # O_DIRECT wants file offsets, lengths and memory aligned to the device's block size
MAP_FIXED = 0x10  # Linux on x86, arm, powerpc, s390, riscv, mips, sparc (the mmap module does not name it;
# elsewhere the mapping lands at another address, which _Mirrored.make checks: then no mirror)


def chunk_rows(itemsize: int, chunk_bytes: int) -> tuple[int, bool]:
    """Rows per HDF5 chunk of about ``chunk_bytes``, and whether whole chunks of them are
    whole pages (so that chunk after chunk of one array stays page-aligned): the largest
    such count not above ``chunk_bytes`` (or the smallest, if that is within twice it)."""
    unit = PAGE // math.gcd(itemsize, PAGE)
    rows = max(unit, chunk_bytes // itemsize // unit * unit)
    if rows * itemsize <= 2 * chunk_bytes:
        return rows, True
    return max(1, chunk_bytes // itemsize), False


class ChunkArena:
    """``slots`` chunks of ``rows`` records in one page-aligned array (see the module)."""

    def __init__(self, dtype: np.dtype, rows: int, slots: int):
        if rows * dtype.itemsize % PAGE:
            raise ValueError(f"arena: {rows} records of {dtype.itemsize} bytes are not whole pages")
        self.dtype, self.rows, self.slots = dtype, rows, slots
        self.total = rows * slots
        nbytes = self.total * dtype.itemsize
        mirror = _Mirrored.make(nbytes)
        self.mirrored = mirror is not None
        if mirror is None:  # one mapping: a block cannot run past the end
            both = np.frombuffer(mmap.mmap(-1, nbytes), dtype)
        else:  # the arrays keep the mapping alive; it goes when the last of them does
            both = np.asarray(mirror).view(dtype)
        self.records = both[: self.total]
        self.records.view(np.uint8)[:] = 0  # touch every page now: first-touch faults mid-run add latency
        if len(both) > self.total:  # and map the second mapping's pages in too (a read of each)
            int(both[self.total :].view(np.uint8)[::PAGE].sum())
        self._both = both  # a reservation's view, past the end into the second mapping where there is one
        self.address = self.records.ctypes.data
        self.end = self.address + len(both) * dtype.itemsize
        self.base = 0  # the arena row (counted on, never wrapped) of the current file's row 0
        self.frontier = 0  # the arena row past the last reservation: the next one starts there or later
        self.chunk_in = [-1] * slots  # the chunk (arena row // rows) each slot holds rows of
        self.reserved = [0] * slots  # rows reserved in each slot, ever (daemon's thread)
        self.written = [0] * slots  # rows the writer thread wrote (or gathered) from each slot, ever
        self.served = 0  # records reserved (given back: not counted)
        self.chunks_in_place = 0  # chunks written from where they were built (writer thread)
        self.chunks_gathered = 0  # chunks with records in the arena, gathered (writer thread)

    # ------------------------------------------------------------ daemon's thread
    def reserve(self, file_row: int, n: int) -> np.ndarray | None:
        """``n`` records at rows ``file_row``.. of the current file, or None where the
        arena cannot serve them (its memory there is still in use, or wraps; or they would
        span more chunks than it has, so that their first and last chunk share a slot)."""
        start = self.base + file_row
        if n <= 0 or start < self.frontier or start % self.total + n > len(self._both):
            return None
        if start % self.rows + n > self.total:
            return None
        first, last = start // self.rows, (start + n - 1) // self.rows
        for chunk in range(first, last + 1):
            slot = chunk % self.slots
            if self.chunk_in[slot] != chunk and (self.chunk_in[slot] > chunk or self._outstanding(slot)):
                return None
        for chunk in range(first, last + 1):
            self.chunk_in[chunk % self.slots] = chunk
        self._count(self.reserved, start % self.total, n)
        self.frontier = start + n
        self.served += n
        return self._both[start % self.total : start % self.total + n]

    def give_back(self, records: np.ndarray) -> None:
        """Un-reserve the tail of the last reservation (rows the caller used as scratch)."""
        if not len(records):
            return
        row = self._row(records)
        if row is None or (self.frontier - len(records)) % self.total != row:
            raise ValueError("arena: only the tail of the last reservation can be given back")
        self._count(self.reserved, row, -len(records))
        self.frontier -= len(records)
        self.served -= len(records)

    def next_file(self) -> None:
        """The next file's row 0 at the next whole chunk past every reservation."""
        self.base = -(-self.frontier // self.rows) * self.rows
        self.frontier = self.base

    # ------------------------------------------------------------ writer thread
    def whole_chunk(self, pieces: list[np.ndarray]) -> np.ndarray | None:
        """The chunk's bytes where they lie, if ``pieces`` lie back to back in the arena, in
        their order, filling one chunk's memory (writer thread), else None."""
        rows = [self._row(p) for p in pieces]
        row = rows[0]
        if row is None or row % self.rows:
            self.chunks_gathered += any(r is not None for r in rows)
            return None
        at = row
        for p, r in zip(pieces, rows, strict=True):
            if r != at % self.total:
                self.chunks_gathered += 1
                return None
            at += len(p)
        if at - row != self.rows:
            self.chunks_gathered += 1
            return None
        self.chunks_in_place += 1
        return self.records[row : row + self.rows].view(np.uint8)

    def written_out(self, records: np.ndarray) -> None:
        """Rows the writer thread wrote (or gathered): their memory may be reserved again."""
        row = self._row(records)
        if row is not None:
            self._count(self.written, row, len(records))

    # ------------------------------------------------------------------ helpers
    def _row(self, records: np.ndarray) -> int | None:
        """The arena row ``records`` start at (wrapped), if they lie in the arena."""
        at = records.ctypes.data if len(records) else -1
        if not self.address <= at < self.end or records.dtype != self.dtype:
            return None
        return (at - self.address) // self.dtype.itemsize % self.total

    def _outstanding(self, slot: int) -> int:
        return self.reserved[slot] - self.written[slot]

    def _count(self, counts: list[int], row: int, n: int) -> None:
        """Add ``n`` (rows from wrapped arena row ``row`` on) to each slot's count."""
        left = abs(n)
        sign = 1 if n > 0 else -1
        while left:
            slot = row // self.rows % self.slots
            k = min(left, self.rows - row % self.rows)
            counts[slot] += sign * k
            row, left = row + k, left - k


class _Mirrored:
    """``nbytes`` of memory mapped twice, back to back (a ring whose end runs on into its
    start), as an array interface; unmapped when it is collected (no array uses it then)."""

    def __init__(self, libc: ctypes.CDLL, address: int, nbytes: int):
        self._libc, self._address, self._nbytes = libc, address, nbytes
        self.__array_interface__ = {"shape": (2 * nbytes,), "typestr": "|u1", "data": (address, False), "version": 3}

    def __del__(self) -> None:
        self._libc.munmap(self._address, 2 * self._nbytes)

    @classmethod
    def make(cls, nbytes: int) -> _Mirrored | None:
        """None where it cannot be had (no ``memfd_create``, or the mappings are refused)."""
        if not hasattr(os, "memfd_create"):
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mmap.restype = ctypes.c_void_p
            libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                  ctypes.c_long]  # fmt: skip
            libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
            fd = os.memfd_create("fpgaflow-arena", getattr(os, "MFD_CLOEXEC", 0))
        except (OSError, AttributeError):
            return None
        try:
            os.ftruncate(fd, nbytes)
            # room for both mappings in one place, then each mapping put in its half
            base = libc.mmap(None, 2 * nbytes, 0, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)  # PROT_NONE
            if base in (None, ctypes.c_void_p(-1).value):
                return None
            for half in (base, base + nbytes):
                flags = mmap.MAP_SHARED | MAP_FIXED
                if libc.mmap(half, nbytes, mmap.PROT_READ | mmap.PROT_WRITE, flags, fd, 0) != half:
                    libc.munmap(base, 2 * nbytes)
                    return None
            return cls(libc, base, nbytes)
        except OSError:
            return None
        finally:
            os.close(fd)
