"""Keep freed memory in the process, so that the hot path does not page-fault.

Every drain hands its built events on in a fresh buffer of up to a few MB. glibc serves
blocks of that size with ``mmap`` and unmaps them on ``free`` (its threshold adapts,
but only up to the largest block freed so far, and the top of the heap is trimmed
beyond twice that), so the next buffer faults each 4 KB page in again. On the VM these
numbers come from, a first-touch fault costs ~3.5 us: ~1 us per 1 KB fragment, a
quarter of what the node spends per event. Measured with the node benchmark
(4 sources x 16 fragments/message, no files): 97k -> 140k built events/s.

``keep_freed_memory`` raises both glibc thresholds once at start-up: blocks below
``MMAP_THRESHOLD`` come from the heap and freed ones stay there to be reused, up to
``TRIM_THRESHOLD`` of free memory. The node's working set is bounded (its ring, one
receive buffer, blocks in flight to the sinks), so the process does not grow for it.
It also grows the heap by ``PREFAULT_BYTES`` at once, touched and freed: otherwise the
first second of data pays for faulting the heap up to its high-water mark (p99 latency
in that second was 10x the rest in the node benchmark).
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 32 << 20  # glibc's upper limit on 64-bit systems; above an EVENTS message
TRIM_THRESHOLD = 256 << 20
PREFAULT_BYTES = 64 << 20  # a few drains' event blocks and the sinks' buffers
PIECE = 16 << 20  # below MMAP_THRESHOLD


def keep_freed_memory(prefault_bytes: int = PREFAULT_BYTES) -> bool:
    """Ask glibc to keep freed blocks below 32 MB for reuse; False where that is not
    glibc (musl, macOS): there the allocator's own policy stays, and the node still works."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; setting the mmap threshold also ends its adaptation
    if not (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return False
    # one arena for every thread, this heap: ZeroMQ's I/O thread allocates each large
    # message it receives, and an arena of its own faulted its pages in as it grew (13-14k
    # faults in the first second at 16 KB messages, 600-1,300 a second after; now none)
    mallopt(M_ARENA_MAX, 1)
    # blocks below the mmap threshold come from the heap; zero-filled, so every page is
    # touched; freed together they stay at the heap's top for the blocks to come
    blocks = [bytearray(PIECE) for _ in range(prefault_bytes // PIECE)]
    del blocks
    return True
