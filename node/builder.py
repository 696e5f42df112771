"""Event building by event number, vectorised over whole drains of fragments.

A plain dict keyed by event number costs a few microseconds of Python per fragment,
which caps a builder far below what ZeroMQ delivers.  Here the events in flight live in
a ring of ``window`` slots (slot = event number mod window) held in NumPy arrays, their
fragments in records taken from a stack of free rows, and a drain of thousands of
fragments is placed with a handful of array operations.

Policy when the in-flight bound is hit (documented in docs/node.md): the builder holds
the ``window`` consecutive event numbers ending at the highest one seen.  A fragment of a
newer event moves the window forward and every event that falls out of it leaves at
once, flagged incomplete and EVICTED, with its missing sources; nothing is dropped.
Fragments of events already gone (or older than the window) are late: counted and handed
to the late sink.  Duplicates (same event, same source) are counted and dropped.  An event
number more than ``max_event_jump`` beyond the highest seen is rejected as malformed, and a
lone fragment more than a window beyond it is held until a second one near it confirms
the leap (else, at the timeout, it is a jump too), so one corrupt number cannot flush the
whole window.  A drain that spans more event numbers than
the window (a backlog: 4,096 messages of 16 fragments from one source span 65,536 events)
is placed in pieces one window wide, oldest first, as if it had come in several drains.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from sim.wire import protocol

EMPTY, OPEN, DONE = 0, 1, 2
U64_MAX = np.iinfo(np.uint64).max
FAR_WINDOWS = 16  # a late fragment this many windows below the window is not late, it is elsewhere
JUMP = "beyond builder.max_event_jump of the highest event number"
LONE_LEAP = "a window or more beyond the highest event number, alone, never confirmed within builder.timeout_s"
COMPACT_AT = 4  # claims queued beyond this many windows of events are compacted (``Builder._compact``)
STUCK_FRAGMENTS = 256  # so many far ones in a row, none in the window, from 2 sources ...
# ... for a build timeout (``timeout_s``) at least: re-anchor (see Builder._far_run) ...
NEW_NUMBERING = 16  # ... if so many of them are no backlog's (see Builder._new_numbering)
LEAPS_KEPT = 64  # the ranges the window leapt over that are remembered (the latest)
# why a fragment was set aside into the late files (their ``why`` column)
WHY_LATE = 0  # its event left without it, or it is older than the window
WHY_JUMP = 1  # refused: beyond ``max_event_jump`` of the highest event number
WHY_LONE_LEAP = 2  # refused: a window or more ahead, alone, never confirmed within the timeout
WHY_BAD_FLAGS = 3  # refused by the daemon: unknown flag bits or reserved set (the rest of its message built)


@dataclass
class BuilderCounts:
    fragments: int = 0  # accepted into an event
    duplicates: int = 0
    late: int = 0
    jumps: int = 0  # rejected: event number jumps too far ahead
    complete: int = 0
    direct: int = 0  # of them, built straight from the receive buffer (not through the ring)
    timed_out: int = 0
    evicted: int = 0
    drained: int = 0
    reanchors: int = 0  # the numbering was taken up afresh (see Builder._far_run)
    misrouted: int = 0  # fragments for another worker's events (built here all the same, split from the rest)


@dataclass
class Late:
    """Fragments set aside, with their source indices: late (they came after their event
    left) or refused (``why``: a jump here, bad flags in the daemon), for the late files."""

    source_index: np.ndarray
    fragments: np.ndarray
    received_ns: int = field(default_factory=time.time_ns)
    why: int = WHY_LATE


def ring_bytes(n_sources: int, n_inputs: int, n_outputs: int, raw_bytes: int, window: int) -> int:
    """The memory a builder of ``window`` events takes (all of it touched at start): a
    slot per event rounded up to a power of two, each with a whole event record and its
    bookkeeping (``Builder.__init__``)."""
    capacity = 1 << max(1, int(window - 1).bit_length())
    record = protocol.event_dtype(n_sources, n_inputs, n_outputs, raw_bytes).itemsize
    return capacity * (record + 57 + 17 * n_sources)


class BlockMemory(Protocol):
    """Where the blocks of built events may be built: the file sink's chunk arena (see
    ``node.arena``), so that the writer writes them from there without a copy."""

    def reserve(self, n: int) -> np.ndarray | None:
        """``n`` records for the next block to leave (None: allocate them as usual)."""

    def give_back(self, records: np.ndarray) -> None:
        """The unused tail of the last reservation."""


class Builder:
    def __init__(
        self,
        n_sources: int,
        n_inputs: int,
        n_outputs: int,
        raw_bytes: int,
        *,
        window: int = 8192,
        timeout_s: float = 1.0,
        max_event_jump: int = 1 << 24,
        max_block_bytes: int = 4 << 20,
        direct: bool | None = None,
        stuck_fragments: int = STUCK_FRAGMENTS,
        stride: int = 1,
        worker: int = 0,
    ):
        if not 1 <= n_sources <= protocol.MAX_SOURCES:
            raise ValueError(f"sources: {n_sources} sources, expected 1..{protocol.MAX_SOURCES}")
        capacity = 1 << max(1, int(window - 1).bit_length())
        self.capacity, self.mask = capacity, np.uint64(capacity - 1)
        self.n_sources = n_sources
        self.timeout_ns = int(timeout_s * 1e9)
        self.max_event_jump = max_event_jump
        self.event_dtype = protocol.event_dtype(n_sources, n_inputs, n_outputs, raw_bytes)
        # events leave in blocks of at most this many, so that one EVENTS message of at most
        # max_block_bytes carries a block as it is (a bigger one would be cut and copied)
        self.max_block = max(1, (max_block_bytes - protocol.HEADER_SIZE) // self.event_dtype.itemsize)
        # build a drain's completed events straight from the receive buffer (see _add_direct):
        # None decides drain by drain, by counting copies; True/False always/never (tests)
        self.direct = direct
        c, s = capacity, n_sources
        self.slot_event = np.zeros(c, np.uint64)
        self.state = np.zeros(c, np.uint8)
        self.arrived = np.zeros((c, s), bool)
        self.arrived_flat = self.arrived.reshape(-1)
        self.timestamp = np.zeros((c, s), np.uint64)  # board clock: for the latency
        # the open events' fragments wait in built-event records (an event that waited leaves
        # with one row copy): a row each, taken from a stack of free rows when the event is
        # claimed and given back when it leaves, so the next claims reuse the rows just
        # freed, still in the caches.  A row per slot would come round again only after
        # ``capacity`` events (268 MB of 4 KB records for a 65,536-event window), every
        # fragment written there and every event taken out missing the caches: in-process,
        # with one source thousands of events ahead, 1.9 -> 1.5 us per event.
        self.store = np.zeros(c, self.event_dtype)
        self.store.view(np.uint8)[:] = 0  # touch every page now: first-touch faults mid-run add latency
        self.flags, self.inputs, self.fpga = self.store["flags"], self.store["inputs"], self.store["fpga"]
        self.store_row = np.zeros(c, np.intp)  # an open slot's row in the store (not ``_row``)
        self.free_rows = np.arange(c, dtype=np.intp)  # a stack: the top (last freed) at n_free - 1
        self.n_free = c
        self._owner = np.zeros(c * s, np.int64)  # scratch for in-drain duplicates
        self._mark = np.zeros(c, np.intp)  # scratch for distinct slots (see _first_seen)
        self._row = np.zeros(c, np.intp)  # scratch: a slot's row in a direct drain's records
        self._claimed = np.zeros(c, np.int64)  # the drain (self._drains) that last claimed a slot
        self._drains = 0
        self._bits = np.left_shift(np.uint64(1), np.arange(s, dtype=np.uint64))
        self.high: int | None = None  # highest event number accepted
        self.stuck_fragments = stuck_fragments
        # event numbers this builder sees are this far apart (node.workers: worker k gets e % N == k),
        # so a drain of n fragments from one source in order spans n x stride numbers
        self.stride = max(1, stride)
        self.worker = worker  # and this one's are those with e % stride == worker
        self.last_misrouted: tuple[int, int] | None = None  # (source index, event number) of the latest
        self._far = 0  # fragments in a row far from the window (jumps, or late by FAR_WINDOWS), none in it
        self._far_sources = 0  # their sources (bits)
        # per source, its far fragments no backlog sends (see _new_numbering), until it has one
        # placed again: kept across far runs, which a straggler in the window ends
        self._back = np.zeros(n_sources, np.int64)
        self._back_any = False
        self._in_window_ns = 0  # when a drain last had fragments in the window (monotonic ns)
        self._gone: tuple[int, int] | None = None  # the window let go at a re-anchor: its stragglers are late
        self._anchored_at = -1  # the drain (``_drains``) that let go of the numbering last
        # each source's highest number placed in this numbering, plus one (0: none yet), and
        # the ranges of numbers the window leapt over (never in it): what tells a backlog far
        # behind (it goes on from its source's own numbers, through numbers the window passed)
        # from a new numbering (see _new_numbering)
        self._top = np.zeros(n_sources, np.uint64)
        self._leapt: deque[tuple[int, int]] = deque(maxlen=LEAPS_KEPT)
        self.last_jump: tuple[int, int] | None = None  # (source index, event number) of the latest jump
        self.last_jump_why = JUMP
        # the events the window evicted since ``forget_evicted``: their lowest and highest numbers,
        # and per source how many of them lacked it, and of those how many lay beyond its
        # highest number then (not reached: it runs behind) (for the log line that tells it)
        self.evicted_range: tuple[int, int] | None = None
        self.evicted_lacking = np.zeros((2, n_sources), np.int64)
        # a lone fragment beyond the window's reach, waiting to be confirmed: (source index, fragment, ns)
        self.held: tuple[np.ndarray, np.ndarray, int] | None = None
        self.low = 0  # every event below this has left: the window's start
        # (monotonic ns, slots, events) per claim, oldest first: the timeout looks only at the
        # claims old enough to have timed out, not at the whole ring every few ms
        self.claims: deque[tuple[int, np.ndarray, np.ndarray]] = deque()
        self._queued = 0  # entries in ``claims``: kept below COMPACT_AT x capacity (``_compact``)
        self.n_open = 0
        self.counts = BuilderCounts()
        self.out: list[np.ndarray] = []  # built events (event records) waiting to be taken
        self.late: list[Late] = []
        # where blocks are built, in the order they leave (no room for a message header
        # there: set only where nothing publishes them); None: memory of their own
        self.memory: BlockMemory | None = None

    # ------------------------------------------------------------------ intake
    def add(self, source_index: np.ndarray, frags: np.ndarray, now_ns: int | None = None, *,
            anchored: bool = False, inner: bool = False) -> None:  # fmt: skip
        """Place a drain of fragments (any sources, any events, any order).

        ``frags`` may be 2-d (messages x fragments, a view of the receive buffer) and
        ``source_index`` gives each fragment's source index, flattened.  The bulky
        payload is copied once from the receive buffer: into the records its events leave
        in when that copies less (most of the drain's events complete in it, the usual
        case under load with batched sources; see ``_add_direct``), else into the slots.
        Fragments set aside (late, duplicate, jump) cost one more copy: the rare path.
        (``inner``: a part of a drain placed again from within, already counted.)"""
        if frags.size == 0:
            return
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        self._drains += 1
        # one strided pass over the receive buffer; the comparisons below then read it contiguously
        ev = np.ascontiguousarray(frags["event"]).reshape(-1)
        if self.stride > 1 and not inner:  # a source sending to the wrong worker splits events in two: say so
            m = self.stride
            wrong = (ev & np.uint64(m - 1) if m & (m - 1) == 0 else ev % np.uint64(m)) != np.uint64(self.worker)
            if wrong.any():
                self.counts.misrouted += int(np.count_nonzero(wrong))
                first = int(np.argmax(wrong))
                self.last_misrouted = (int(source_index.reshape(-1)[first]), int(ev[first]))
        if self._gone is not None:
            gone = (ev >= np.uint64(self._gone[0])) & (ev <= np.uint64(self._gone[1]))
            if gone.any():  # stragglers of a numbering let go: late, and no say in the window
                idx, rest = np.flatnonzero(gone), np.flatnonzero(~gone)
                self.counts.late += len(idx)
                self.late.append(Late(source_index.reshape(-1)[idx], _rows(frags, idx)))
                if len(rest):
                    self.add(source_index.reshape(-1)[rest], _rows(frags, rest), now_ns, anchored=anchored, inner=True)
                return
        keep = None  # None: every fragment goes in
        jumped = None  # the jumps set aside from this drain
        if self.high is None:
            # near the median, so that a few corrupt numbers (or stragglers) do not anchor it:
            # the drain's lowest number not more than its fragments below the median (a
            # backlog in order spans up to that many), so none of the backlog is late
            median = int(np.partition(ev, len(ev) // 2)[len(ev) // 2])
            self.high = int(ev[ev >= np.uint64(max(0, median - len(ev) * self.stride))].min())
            self.low = max(0, self.high - self.capacity + 1)  # the window's start, whichever way it is anchored
            self._in_window_ns = now_ns
        limit = min(self.high + self.max_event_jump, int(U64_MAX))
        ev_max = int(ev.max())
        if ev_max > limit:
            jump = ev > np.uint64(limit)
            keep = ~jump
            if not keep.any():
                if not anchored and self._far_run(source_index, ev, jump, now_ns):  # let go: this drain anchors anew
                    return self.add(source_index, frags, now_ns, inner=True)
                self._jumped(source_index, frags, ev, jump)
                return
            jumped = self._jumped(source_index, frags, ev, jump)
            ev_max = int(ev[keep].max())
        held_before, duplicates_before = self.held, self.counts.duplicates
        if ev_max > self.high + self.capacity and not anchored:  # beyond the window's reach: a leap
            held = self._leap(source_index, frags, ev, keep, now_ns)
            if held is None:  # confirmed: the held one and this drain, together
                return
            keep = held
            if not keep.any():
                return
            ev_max = int(ev[keep].max())
        if ev_max - self.capacity >= self.low and ev_max - int(ev.min()) >= self.capacity:
            ahead = ev >= np.uint64(self.low)  # not late
            if keep is not None:
                ahead &= keep
            first = int(ev[ahead].min())
            if ev_max - first >= self.capacity:  # wider than the window: at once, all but its last window would be late
                return self._in_pieces(source_index, frags, ev, keep, first, now_ns)
        new_high = max(self.high, ev_max)
        if self._gone is not None and new_high + self.capacity >= self._gone[0]:
            self._gone = None  # the numbering reached (or passed) the range let go: its numbers are new again
        low = max(0, new_high - self.capacity + 1)
        if new_high > self.high:
            if low > self.high + 1:  # a leap: the numbers between never came through the window
                self._leapt.append((self.high, low))
            self.high = new_high
            self._evict_below(low)
        slot = (ev & self.mask).astype(np.intp)
        cur = self.slot_event[slot]
        st = self.state[slot]
        late = (ev < np.uint64(low)) | ((cur == ev) & (st == DONE))
        if keep is not None:
            late &= keep
        if late.any():
            # a fragment whose number meets an event that left (its slot still DONE): a new
            # event if that one was an old numbering's (claimed before the last let-go) and the
            # fragment goes on from its source's own numbers in the new one (above the highest
            # placed from it since: a new run meeting the old one's events in the ring, sparse
            # numbering comes round only every lcm(spacing, window)); else a copy of one the
            # event left with (a resend after a reconnect: same number, source and nonzero
            # board timestamp) is a duplicate, not late (the late files are for what the
            # events lacked), and other data is late (what the event lacked, a renumbering)
            again = late & (cur == ev) & (st == DONE)
            if again.any():
                renew = again & (self._claimed[slot] <= self._anchored_at) & (ev >= np.uint64(low))
                renew &= ev >= self._top[source_index]  # (``_top``: highest + 1, 0 for none)
                stamp = np.ascontiguousarray(frags["timestamp_ns"]).reshape(-1)
                copy = again & ~renew & self.arrived_flat[slot * self.n_sources + source_index]
                copy &= (self.timestamp[slot, source_index] == stamp) & (stamp != 0)
                if renew.any():
                    st[renew] = EMPTY  # (``st`` is this drain's copy: claimed below)
                    self.state[slot[renew]] = EMPTY
                    late &= ~renew
                again = copy
            keep = ~late if keep is None else keep & ~late
            if not keep.any():  # nothing of this drain in the window: late, or jumps
                far = ev > np.uint64(limit)
                if low > FAR_WINDOWS * self.capacity:
                    far |= ev < np.uint64(low - FAR_WINDOWS * self.capacity)
                if not anchored and self._far_run(source_index, ev, far, now_ns):  # let go: this drain anchors anew
                    self.counts.jumps -= int(np.count_nonzero(ev > np.uint64(limit)))  # counted above ...
                    self.late = [x for x in self.late if x is not jumped]  # ... and set aside
                    self.counts.duplicates = duplicates_before  # (copies of a held one: counted again)
                    if self.held is not None and self.held is not held_before:
                        self.held = None  # held from this drain: it goes in again with the drain
                    return self.add(source_index, frags, now_ns, inner=True)
            if again.any():
                self.counts.duplicates += int(np.count_nonzero(again))
                late &= ~again
            if late.any():
                self.counts.late += int(late.sum())
                self.late.append(Late(source_index[late], _rows(frags, np.flatnonzero(late))))
            if not keep.any():
                return
        self._far = self._far_sources = 0
        self._in_window_ns = now_ns
        claim = (st == EMPTY) | (cur != ev)
        if keep is not None:
            claim &= keep
        if claim.any():
            self._claim(slot[claim], ev[claim], now_ns)
        key = slot * self.n_sources + source_index
        order = np.arange(len(key))
        live = order if keep is None else order[keep]
        self._owner[key[live[::-1]]] = live[::-1]
        dup = self.arrived_flat[key] | (self._owner[key] != order)
        if keep is not None:
            dup &= keep
        if dup.any():
            self.counts.duplicates += int(dup.sum())
            keep = ~dup if keep is None else keep & ~dup
        if keep is None:
            rows, slot_at, src_at, data = None, slot.reshape(frags.shape), source_index.reshape(frags.shape), frags
        else:
            rows = np.flatnonzero(keep)
            slot_at, src_at, data = slot[rows], source_index[rows], _rows(frags, rows)
            key = key[rows]
        self.counts.fragments += key.size
        # ~30 us per 16k fragments: the sources' own numbers (see _new_numbering)
        np.maximum.at(self._top, source_index if rows is None else src_at, (ev if rows is None else ev[rows]) + 1)
        if self._back_any:  # (rare) these sources placed a fragment: what they sent far is theirs no more
            self._back[source_index if rows is None else src_at] = 0
            self._back_any = bool(self._back.any())
        self.arrived_flat[key] = True
        self.timestamp[slot_at, src_at] = data["timestamp_ns"]
        touched = slot if rows is None else slot[rows]
        touched = touched[self._first_seen(touched)]
        complete = self.arrived[touched].all(axis=1)
        done = touched[complete]
        if len(done):
            self.counts.complete += len(done)
            open_ = touched[~complete]
            was_open = self._claimed[done] != self._drains  # carried: it had fragments in the ring
            self._mark[done] = -1
            self._mark[open_] = 0
            to_ring = np.flatnonzero(self._mark[slot_at.reshape(-1)] == 0)  # fragments of events still open
            n_fresh = len(done) - int(np.count_nonzero(was_open))
            if self.direct or (self.direct is None and 2 * len(to_ring) < self.n_sources * n_fresh):
                done = self._by_event(done, self.low)  # in event order, as they leave
                carried = self._claimed[done] != self._drains
                self._add_direct(slot_at, src_at, data, done, carried, open_, to_ring)
                return
        row_at = self.store_row[slot_at]
        self.flags[row_at, src_at] = data["flags"]
        self.inputs[row_at, src_at] = data["inputs"]
        self.fpga[row_at, src_at] = data["result"]
        if len(done):
            self._emit(self._by_event(done, self.low), protocol.COMPLETE)

    def _add_direct(self, slot_at: np.ndarray, src_at: np.ndarray, data: np.ndarray, done: np.ndarray,
                    carried: np.ndarray, open_: np.ndarray, to_ring: np.ndarray) -> None:  # fmt: skip
        """Place a drain straight into the records its completed events leave in, not into
        the ring and out again.

        Each fragment's payload is copied once, from the receive buffer into a fresh array
        of event records (one fancy-index assignment from a view of the drain: no
        temporary).  Its rows are the completed events ``done``, in event order (those
        ``carried``, with fragments in the ring from earlier drains, take those first), in
        blocks a message can carry, each behind a spare row that leaves room for a message
        header (back to back in ``memory``, where it serves them); then the events still
        open, whose new fragments (``to_ring``) are copied on into the ring.  So each
        fragment costs one copy, as through the ring, but the ring's cold memory is
        skipped: there the scatter and the take cost ~2 us per 4 KB event on this VM, this
        ~0.75 us.  It pays when most of the drain's events complete
        in it: the ring path copies each completed event out once more (``S`` fragments),
        this path each fragment of a still-open event twice more (through a temporary)."""
        mb, n_done, size = self.max_block, len(done), self.event_dtype.itemsize
        self.counts.direct += n_done
        n_blocks = -(-n_done // mb)
        rec = self.memory.reserve(n_done + len(open_)) if self.memory is not None else None
        in_memory = rec is not None  # the blocks back to back, as they leave: no room for headers
        # rows of room before each block: 1 unless records are tiny
        spare = 0 if in_memory else -(-protocol.HEADER_SIZE // size)
        r = np.arange(n_done)
        self._row[done] = r + (r // mb + 1) * spare  # block k starts at row k * (mb + spare) + spare
        self._row[open_] = n_done + n_blocks * spare + np.arange(len(open_))
        if rec is None:
            rec = _uninitialised(n_done + n_blocks * spare + len(open_), self.event_dtype)
        pos = np.flatnonzero(carried)  # mostly the oldest events: one run of rows, at the start
        if len(pos):  # each run of rows within a block taken without a temporary
            cut = np.flatnonzero((np.diff(pos) != 1) | (pos[1:] // mb != pos[:-1] // mb)) + 1
            for k, n in zip(pos[np.r_[0, cut]].tolist(), np.diff(np.r_[0, cut, len(pos)]).tolist(), strict=True):
                first = k + (k // mb + 1) * spare
                self.store.take(self.store_row[done[k : k + n]], axis=0, out=rec[first : first + n], mode="clip")
        row_at = self._row[slot_at]
        rec["flags"][row_at, src_at] = data["flags"]
        rec["inputs"][row_at, src_at] = data["inputs"]
        rec["fpga"][row_at, src_at] = data["result"]
        if len(to_ring):  # the few events still open: their new fragments into the ring
            kept = self.store_row[slot_at.reshape(-1)[to_ring]]
            src, row = src_at.reshape(-1)[to_ring], row_at.reshape(-1)[to_ring]
            self.flags[kept, src] = rec["flags"][row, src]
            self.inputs[kept, src] = rec["inputs"][row, src]
            self.fpga[kept, src] = rec["fpga"][row, src]
        if in_memory and len(open_):
            self.memory.give_back(rec[n_done:])  # their rows were scratch
        u8 = memoryview(rec.view(np.uint8))
        for k in range(n_blocks):
            part = done[k * mb : (k + 1) * mb]
            start = (k * (mb + spare) + spare) * size
            if in_memory:
                block = rec[k * mb : k * mb + len(part)]
            else:
                # its own byte buffer, HEADER_SIZE bytes into the spare row: what encode_buffer
                # recognises as room for the header (protocol.records_with_room)
                head = start - protocol.HEADER_SIZE
                room = np.frombuffer(u8, np.uint8, protocol.HEADER_SIZE + len(part) * size, head)
                block = room[protocol.HEADER_SIZE :].view(self.event_dtype)
            block["reserved"] = 0
            block["cpu_valid"] = 0
            block["cpu"] = 0
            self._finish_block(block, part, protocol.COMPLETE)

    def _in_pieces(self, source_index: np.ndarray, frags: np.ndarray, ev: np.ndarray, keep: np.ndarray | None,
                   first: int, now_ns: int) -> None:  # fmt: skip
        """Place a drain wider than the window in pieces of event numbers one window wide
        from ``first`` (its lowest that is not late), oldest first; the late fragments go
        with the first piece, jumps (counted already) with none.  Each piece moves the
        window as a drain of its own would, so an event leaves incomplete only if a source
        is more than a window behind."""
        piece = (ev - np.uint64(first)) // np.uint64(self.capacity)
        piece[ev < np.uint64(first)] = 0
        order = np.argsort(piece, kind="stable")  # arrival order within a piece: the first copy wins
        if keep is not None:
            order = order[keep[order]]
        sorted_piece = piece[order]
        starts = np.flatnonzero(np.r_[True, sorted_piece[1:] != sorted_piece[:-1]])
        src = source_index.reshape(-1)
        for idx in np.split(order, starts[1:]):
            self.add(src[idx], _rows(frags, idx), now_ns, anchored=True, inner=True)

    def _leap(self, source_index: np.ndarray, frags: np.ndarray, ev: np.ndarray, keep: np.ndarray | None,
              now_ns: int) -> np.ndarray | None:  # fmt: skip
        """Fragments more than a window beyond the highest event number: accepted, they move
        the window past every open event.  One such fragment alone (a corrupt event number:
        a bit flip below ``max_event_jump``) is held, not obeyed, until a second one within
        a window of it confirms it (a numbering that really moved on, or a source a window
        ahead of the rest: its next fragment; the held one is placed with that drain) or the
        build timeout passes (then it is a jump).  So one corrupt number no longer flushes
        the window, and a real leap waits for one more fragment.

        Returns the drain's ``keep`` mask without a fragment it held, or None once it has
        placed the drain itself (with the held fragment, confirmed)."""
        leap = ev > np.uint64(self.high + self.capacity)
        if keep is not None:
            leap &= keep
        idx = np.flatnonzero(leap)
        if self.held is not None:
            held_src, held_frag, _ = self.held
            h = int(held_frag["event"][0])  # > high + capacity: h - capacity + 1 > 0
            lo, hi = np.uint64(h - self.capacity + 1), np.uint64(min(h + self.capacity - 1, int(U64_MAX)))
            copy = (ev[idx] == np.uint64(h)) & (source_index.reshape(-1)[idx] == held_src[0])
            if copy.any():  # resent: a duplicate (the first copy wins, and stays held), no confirmation
                self.counts.duplicates += int(np.count_nonzero(copy))
                keep = np.ones(ev.size, bool) if keep is None else keep.copy()
                keep[idx[copy]] = False
                idx = idx[~copy]
                if not len(idx):
                    return keep
            near = (ev[idx] >= lo) & (ev[idx] <= hi)
            if near.any():  # confirmed: the held one first, then the drain (no jumps)
                self.held = None
                rest = np.arange(ev.size) if keep is None else np.flatnonzero(keep)
                src = np.concatenate([held_src, source_index.reshape(-1)[rest]])
                self.add(src, np.concatenate([held_frag, _rows(frags, rest)]), now_ns, anchored=True, inner=True)
                return None
            self._let_held_go()  # not confirmed: a jump
        rest = np.ones(ev.size, bool) if keep is None else keep.copy()
        if len(idx) > 1:  # one fragment and its resent copies: no confirmation, duplicates
            src = source_index.reshape(-1)[idx]
            if (ev[idx] == ev[idx[0]]).all() and (src == src[0]).all():
                self.counts.duplicates += len(idx) - 1
                rest[idx[1:]] = False
                idx = idx[:1]
        if len(idx) != 1:
            return rest
        rest[idx] = False
        e = int(ev[idx[0]])
        others = ev[rest]
        low, high = np.uint64(e - self.capacity + 1), np.uint64(min(e + self.capacity - 1, int(U64_MAX)))
        if ((others >= low) & (others <= high)).any():  # not alone: others of this drain near it confirm it
            rest[idx] = True
            return rest
        self.held = (source_index.reshape(-1)[idx], _rows(frags, idx), now_ns)
        return rest

    def _jumped(self, source_index: np.ndarray, frags: np.ndarray, ev: np.ndarray, jump: np.ndarray,
                why: str = JUMP) -> Late:  # fmt: skip
        """Count the jumps, keep the first one's source, number and reason for the log, and
        set them aside for the late files (refused is not lost: a corrupt number's payload
        is still the board's data)."""
        idx = np.flatnonzero(jump)
        self.counts.jumps += len(idx)
        src = source_index.reshape(-1)[idx]
        self.last_jump = (int(src[0]), int(ev[idx[0]]))
        self.last_jump_why = why
        jumped = Late(src, _rows(frags, idx), why=WHY_LONE_LEAP if why == LONE_LEAP else WHY_JUMP)
        self.late.append(jumped)
        return jumped

    def _far_run(self, source_index: np.ndarray, ev: np.ndarray, far: np.ndarray, now_ns: int) -> bool:
        """Count the fragments far from the window in a row (drains with none in it);
        once there are ``stuck_fragments`` of them from two sources (one, with one source),
        and none has come into the window for a build timeout, the window is where the
        numbering is not: a corrupt event number anchored it or moved it there, or the
        sources started counting afresh.  Then every open event leaves (EVICTED) and the
        numbering is let go (True: the drain at hand anchors it again, near its median),
        instead of everything arriving late, or refused as a jump, from then on.  A backlog
        far behind, from sources that lagged, does not do it: ``NEW_NUMBERING`` far fragments
        must be no backlog's (``_new_numbering``), counted per source until it has a fragment
        placed again (not from the far run's start: a straggler in the window ends the run),
        and only the far run's sources count (not a board that died long ago), so that a new
        run is told by its first fragments, before its numbers pass those its sources had
        reached, and one resent or corrupt fragment in a backlog is not enough."""
        n = int(np.count_nonzero(far))
        if not n:
            self._far = self._far_sources = 0
            return False
        self._far += n
        src = source_index.reshape(-1)[far]
        self._far_sources |= int(np.bitwise_or.reduce(self._bits[src]))
        back = self._new_numbering(src, ev[far])  # (a far drain: the rare path)
        if back.any():
            np.add.at(self._back, src[back], 1)
            self._back_any = True
        if self._far < self.stuck_fragments or self._far_sources.bit_count() < min(2, self.n_sources):
            return False
        if now_ns - self._in_window_ns < self.timeout_ns:
            return False
        ours = [i for i in range(self.n_sources) if self._far_sources >> i & 1]  # (a dead board's is not)
        if int(self._back[ours].sum()) < NEW_NUMBERING:
            return False
        open_ = np.flatnonzero(self.state == OPEN)
        if len(open_):
            self.counts.evicted += len(open_)
            self._emit(self._by_event(open_, self.low), protocol.EVICTED)
        self._gone = (self.low, self.high)
        self.high, self.low = None, 0
        self._anchored_at = self._drains  # slots claimed up to this drain are the old numbering's
        self._in_window_ns = now_ns  # (and the drain placed again cannot let go a second time)
        self._top[:] = 0
        self._leapt.clear()
        self._back[:] = 0
        self._back_any = False
        self._far = self._far_sources = 0
        self.counts.reanchors += 1
        return True

    def _new_numbering(self, source_index: np.ndarray, ev: np.ndarray) -> np.ndarray:
        """Which of these far fragments no backlog sends (sources that fell behind: their
        events left without them, so their fragments are late): they are a new numbering's,
        or a corrupt one's.

        A backlog goes on from each source's own numbers (from about the highest placed
        from it: a message resent after an outage lies just below) through numbers the
        window went through.  A new run goes back more than a window below them; a source
        never placed has none to go on from; the numbers the window leapt over (a corrupt
        leap) or beyond ``max_event_jump`` never were in it.  Judged by what the window saw,
        not by the events it built: a window a corrupt number anchored can hold many."""
        top = self._top[source_index]
        back = (top == 0) | (ev >= np.uint64(self.low))
        back |= (top > np.uint64(self.capacity)) & (ev < top - np.uint64(self.capacity))
        for a, b in self._leapt:
            back |= (ev > np.uint64(a)) & (ev < np.uint64(b))
        return back

    def _first_seen(self, slots: np.ndarray) -> np.ndarray:
        """Mask of each slot's first occurrence: distinct slots without a sort (``np.unique``
        costs ~25 us a call, most of it fixed: a drain at a moderate rate is small)."""
        pos = np.arange(len(slots))
        self._mark[slots[::-1]] = pos[::-1]  # the last write wins: the first occurrence
        return self._mark[slots] == pos

    def _claim(self, slots: np.ndarray, events: np.ndarray, now_ns: int) -> None:
        first = self._first_seen(slots)
        slots, events = slots[first], events[first]
        self.n_open += len(slots)
        self._claimed[slots] = self._drains
        self.claims.append((now_ns, slots, events))
        self._queued += len(slots)
        self.slot_event[slots] = events
        self.state[slots] = OPEN
        self.arrived[slots] = False
        if self._queued > COMPACT_AT * self.capacity:  # (these are open now: compacting keeps them)
            self._compact()
        # rows from the top of the free stack (the window holds at most ``capacity`` open
        # events, so it never runs dry); nothing of their records is touched here: what a
        # missing source left there is zeroed on the way out
        self.n_free -= len(slots)
        self.store_row[slots] = self.free_rows[self.n_free : self.n_free + len(slots)]

    # ----------------------------------------------------------------- leaving
    def _evict_below(self, low: int) -> None:
        """Let the open events below ``low`` go (the window moved past them).

        Only the event numbers the window has just passed can be open there (older ones
        left when it passed them, and are late if they come again), so a move of ``d``
        looks at ``d`` slots, not at the whole ring."""
        start, self.low = self.low, max(self.low, low)
        if not self.n_open or low <= start:
            return
        if low - start >= self.capacity:
            candidates = np.flatnonzero(self.state == OPEN)
        else:
            candidates = (np.arange(start, low, dtype=np.uint64) & self.mask).astype(np.intp)
        slots = candidates[(self.state[candidates] == OPEN) & (self.slot_event[candidates] < np.uint64(low))]
        if len(slots):
            self.counts.evicted += len(slots)
            events = self.slot_event[slots]
            first, last = int(events.min()), int(events.max())
            if self.evicted_range is not None:
                first, last = min(first, self.evicted_range[0]), max(last, self.evicted_range[1])
            self.evicted_range = (first, last)
            lacking = ~self.arrived[slots]
            self.evicted_lacking[0] += np.count_nonzero(lacking, axis=0)
            self.evicted_lacking[1] += np.count_nonzero(lacking & (events[:, None] >= self._top), axis=0)
            self._emit(self._by_event(slots, start), protocol.EVICTED)

    def expire(self, now_ns: int | None = None) -> None:
        """Let events older than the timeout go, flagged TIMED_OUT with their missing sources.

        ``now_ns`` is the monotonic clock the fragments were added with (never decreasing)."""
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        cutoff = now_ns - self.timeout_ns
        if self.held is not None and self.held[2] < cutoff:
            # never confirmed by a leap near it: a corrupt number.  Not placed even where the
            # stream has come up to its number since: it may be a corrupt copy of a real
            # event's fragment, and placed it would take that event's slot (review)
            self._let_held_go()
        old = []
        while self.claims and self.claims[0][0] < cutoff:
            _, slots, events = self.claims.popleft()
            self._queued -= len(slots)
            old.append(slots[(self.state[slots] == OPEN) & (self.slot_event[slots] == events)])
        slots = np.concatenate(old) if old else ()
        if len(slots):
            self.counts.timed_out += len(slots)
            self._emit(self._by_event(np.unique(slots), self.low), protocol.TIMED_OUT)

    def _compact(self) -> None:
        """Keep only the claims of events still open, each with its own claim time.

        A claim stays queued for the timeout even when its events completed at once (the
        usual case), so the queue held rate x ``timeout_s`` entries (~1 GB at 100k events/s
        and a 600 s timeout); the open events are at most ``capacity``, so this runs at
        most once per ``(COMPACT_AT - 1) x capacity`` claimed events, in a few NumPy calls."""
        times = np.fromiter((t for t, _, _ in self.claims), np.int64, len(self.claims))
        lengths = np.fromiter((len(s) for _, s, _ in self.claims), np.int64, len(self.claims))
        slots = np.concatenate([s for _, s, _ in self.claims])
        events = np.concatenate([e for _, _, e in self.claims])
        at = np.repeat(times, lengths)
        keep = (self.state[slots] == OPEN) & (self.slot_event[slots] == events)
        slots, events, at = slots[keep], events[keep], at[keep]
        starts = np.flatnonzero(np.r_[True, at[1:] != at[:-1]]).tolist() if len(at) else []
        ends = starts[1:] + [len(at)] if starts else []
        self.claims = deque((int(at[a]), slots[a:b], events[a:b]) for a, b in zip(starts, ends, strict=True))
        self._queued = len(slots)

    def _let_held_go(self) -> None:
        held_src, held_frag, _ = self.held
        self.held = None
        self._jumped(held_src, held_frag, held_frag["event"], np.ones(1, bool), LONE_LEAP)

    def drain(self) -> None:
        """Let every open event go (shutdown), flagged DRAINED."""
        if self.held is not None:
            self._let_held_go()
        slots = np.flatnonzero(self.state == OPEN)
        if len(slots):
            self.counts.drained += len(slots)
            self._emit(self._by_event(slots, self.low), protocol.DRAINED)

    def _by_event(self, slots: np.ndarray, first: int) -> np.ndarray:
        """Distinct ``slots`` in the order of their events' numbers, which all lie in
        ``first`` .. ``first + capacity - 1``: the slots' own order, turned to start at
        ``first``'s (sorted by slot alone, a drain across a multiple of the ring's size
        would let the events after it out first)."""
        m = self.capacity - 1
        base = int(first) & m
        return (np.sort((slots - base) & m) + base) & m

    def _emit(self, slots: np.ndarray, status: int) -> None:
        for start in range(0, len(slots), self.max_block):  # blocks a message can carry whole
            self._emit_block(slots[start : start + self.max_block], status)

    def _emit_block(self, slots: np.ndarray, status: int) -> None:
        # event, flags, inputs, fpga (cpu fields stay 0), in ``memory`` or behind room for a
        # message header (the publisher then sends these records as they are)
        out = self.memory.reserve(len(slots)) if self.memory is not None else None
        if out is None:
            out = protocol.records_with_room(len(slots), self.event_dtype)
        rec = self.store.take(self.store_row[slots], axis=0, out=out, mode="clip")
        self._finish_block(rec, slots, status)

    def _finish_block(self, rec: np.ndarray, slots: np.ndarray, status: int) -> None:
        """Event numbers, status, missing sources and times of a block of records, and the
        slots let go."""
        rec["event"] = self.slot_event[slots]
        rec["status"] = status
        if status == protocol.COMPLETE:  # every source arrived: nothing missing, nothing to zero
            rec["missing"] = 0
            rec["first_ns"] = self.timestamp[slots].min(axis=1)
        else:
            arrived = self.arrived[slots]
            rec["missing"] = ((~arrived) * self._bits).sum(axis=1, dtype=np.uint64)
            rec["first_ns"] = np.where(arrived, self.timestamp[slots], U64_MAX).min(axis=1)
            rec["flags"][~arrived] = 0
            rec["inputs"][~arrived] = 0
            rec["fpga"][~arrived] = 0
        rec["built_ns"] = time.time_ns()
        self.state[slots] = DONE
        self.n_open -= len(slots)
        self.free_rows[self.n_free : self.n_free + len(slots)] = self.store_row[slots]  # for the next claims
        self.n_free += len(slots)
        self.out.append(rec)

    def forget_evicted(self) -> None:
        """Start ``evicted_range`` and ``evicted_lacking`` anew (their events were told)."""
        self.evicted_range = None
        self.evicted_lacking[:] = 0

    def highest(self, source_index: int) -> int | None:
        """The highest event number placed from a source in this numbering (None: none yet)."""
        top = int(self._top[source_index])
        return top - 1 if top else None

    def take(self) -> list[np.ndarray]:
        """Built events since the last call (lists of event-record arrays)."""
        out, self.out = self.out, []
        return out

    def take_late(self) -> list[Late]:
        late, self.late = self.late, []
        return late


def _uninitialised(n: int, dtype: np.dtype) -> np.ndarray:
    """``n`` records whose every field the caller sets (the tests fill them with garbage)."""
    return np.empty(n, dtype)


def _rows(frags: np.ndarray, flat_index: np.ndarray) -> np.ndarray:
    """Fragments at flat positions of a 1-d or 2-d fragment array (a copy)."""
    if frags.ndim == 1:
        return frags[flat_index]
    return frags[np.unravel_index(flat_index, frags.shape)]


def missing_sources(missing: int, sources: list[int]) -> list[int]:
    """Source ids named by an event's ``missing`` bit mask."""
    return [s for i, s in enumerate(sources) if missing >> i & 1]
