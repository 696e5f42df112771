"""Event building by event number, vectorised over whole drains of fragments.

A plain dict keyed by event number costs a few microseconds of Python per fragment,
which caps a builder far below what ZeroMQ delivers.  Here the events in flight live in
a ring of ``window`` slots (slot = event number mod window) held in NumPy arrays, and a
drain of thousands of fragments is placed with a handful of array operations.

Policy when the in-flight bound is hit (documented in docs/node.md): the builder holds
the ``window`` consecutive event numbers ending at the highest one seen.  A fragment of a
newer event moves the window forward and every event that falls out of it leaves at
once, flagged incomplete and EVICTED, with its missing sources; nothing is dropped.
Fragments of events already gone (or older than the window) are late: counted and handed
to the late sink.  Duplicates (same event, same source) are counted and dropped.  An event
number more than ``max_event_jump`` beyond the highest seen is rejected as malformed, so one
corrupt header cannot flush the whole window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from node import protocol

EMPTY, OPEN, DONE = 0, 1, 2
U64_MAX = np.iinfo(np.uint64).max


@dataclass
class BuilderCounts:
    fragments: int = 0  # accepted into an event
    duplicates: int = 0
    late: int = 0
    jumps: int = 0  # rejected: event number jumps too far ahead
    complete: int = 0
    timed_out: int = 0
    evicted: int = 0
    drained: int = 0


@dataclass
class Late:
    """Fragments that came after their event left (with their source indices)."""

    source_index: np.ndarray
    fragments: np.ndarray
    received_ns: int = field(default_factory=time.time_ns)


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
    ):
        if not 1 <= n_sources <= protocol.MAX_SOURCES:
            raise ValueError(f"sources: {n_sources} sources, expected 1..{protocol.MAX_SOURCES}")
        capacity = 1 << max(1, int(window - 1).bit_length())
        self.capacity, self.mask = capacity, np.uint64(capacity - 1)
        self.n_sources = n_sources
        self.timeout_ns = int(timeout_s * 1e9)
        self.max_event_jump = max_event_jump
        self.event_dtype = protocol.event_dtype(n_sources, n_inputs, n_outputs, raw_bytes)
        raw = np.dtype(f"<i{raw_bytes}")
        c, s = capacity, n_sources
        self.slot_event = np.zeros(c, np.uint64)
        self.state = np.zeros(c, np.uint8)
        self.arrived = np.zeros((c, s), bool)
        self.arrived_flat = self.arrived.reshape(-1)
        self.n_arrived = np.zeros(c, np.int16)
        self.opened_ns = np.zeros(c, np.int64)  # monotonic clock: for the timeout
        self.timestamp = np.zeros((c, s), np.uint64)  # board clock: for the latency
        self.flags = np.zeros((c, s), np.uint32)
        self.inputs = np.zeros((c, s, n_inputs), raw)
        self.fpga = np.zeros((c, s, n_outputs), raw)
        self._owner = np.zeros(c * s, np.int64)  # scratch for in-drain duplicates
        self._bits = np.left_shift(np.uint64(1), np.arange(s, dtype=np.uint64))
        self.high: int | None = None  # highest event number accepted
        self.n_open = 0
        self.counts = BuilderCounts()
        self.out: list[np.ndarray] = []  # built events (event records) waiting to be taken
        self.late: list[Late] = []

    # ------------------------------------------------------------------ intake
    def add(self, source_index: np.ndarray, frags: np.ndarray, now_ns: int | None = None) -> None:
        """Place a drain of fragments (any sources, any events, any order)."""
        if len(frags) == 0:
            return
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        ev = frags["event"]
        if self.high is None:
            self.high = int(ev[0])
        limit = min(self.high + self.max_event_jump, int(U64_MAX))
        jump = ev > np.uint64(limit)
        if jump.any():
            self.counts.jumps += int(jump.sum())
            keep = ~jump
            ev, frags, source_index = ev[keep], frags[keep], source_index[keep]
            if len(ev) == 0:
                return
        new_high = max(self.high, int(ev.max()))
        low = max(0, new_high - self.capacity + 1)
        if new_high > self.high:
            self.high = new_high
            if self.n_open:
                self._evict_below(low)
        slot = (ev & self.mask).astype(np.intp)
        cur = self.slot_event[slot]
        st = self.state[slot]
        late = (ev < np.uint64(low)) | ((cur == ev) & (st == DONE))
        if late.any():
            self.counts.late += int(late.sum())
            self.late.append(Late(source_index[late], frags[late].copy()))
            live = ~late
            ev, frags, source_index, slot, cur, st = (
                ev[live], frags[live], source_index[live], slot[live], cur[live], st[live]
            )  # fmt: skip
            if len(ev) == 0:
                return
        claim = (st == EMPTY) | (cur != ev)
        if claim.any():
            self._claim(slot[claim], ev[claim], now_ns)
        key = slot * self.n_sources + source_index
        order = np.arange(len(key))
        self._owner[key[::-1]] = order[::-1]
        dup = self.arrived_flat[key] | (self._owner[key] != order)
        if dup.any():
            self.counts.duplicates += int(dup.sum())
            ok = ~dup
            frags, source_index, slot, key = frags[ok], source_index[ok], slot[ok], key[ok]
        self.counts.fragments += len(key)
        self.arrived_flat[key] = True
        self.flags[slot, source_index] = frags["flags"]
        self.timestamp[slot, source_index] = frags["timestamp_ns"]
        self.inputs[slot, source_index] = frags["inputs"]
        self.fpga[slot, source_index] = frags["result"]
        self.n_arrived[slot] = self.arrived[slot].sum(axis=1)
        done = slot[self.n_arrived[slot] == self.n_sources]
        if len(done):
            done = np.unique(done)
            self.counts.complete += len(done)
            self._emit(done, protocol.COMPLETE)

    def _claim(self, slots: np.ndarray, events: np.ndarray, now_ns: int) -> None:
        slots, first = np.unique(slots, return_index=True)
        self.n_open += len(slots)
        self.slot_event[slots] = events[first]
        self.state[slots] = OPEN
        self.arrived[slots] = False
        self.n_arrived[slots] = 0
        self.opened_ns[slots] = now_ns
        self.flags[slots] = 0
        self.inputs[slots] = 0
        self.fpga[slots] = 0

    # ----------------------------------------------------------------- leaving
    def _evict_below(self, low: int) -> None:
        slots = np.flatnonzero((self.state == OPEN) & (self.slot_event < np.uint64(low)))
        if len(slots):
            self.counts.evicted += len(slots)
            self._emit(slots, protocol.EVICTED)

    def expire(self, now_ns: int | None = None) -> None:
        """Let events older than the timeout go, flagged TIMED_OUT with their missing sources."""
        if not self.n_open:
            return
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        slots = np.flatnonzero((self.state == OPEN) & (self.opened_ns < now_ns - self.timeout_ns))
        if len(slots):
            self.counts.timed_out += len(slots)
            self._emit(slots, protocol.TIMED_OUT)

    def drain(self) -> None:
        """Let every open event go (shutdown), flagged DRAINED."""
        slots = np.flatnonzero(self.state == OPEN)
        if len(slots):
            self.counts.drained += len(slots)
            self._emit(slots, protocol.DRAINED)

    def _emit(self, slots: np.ndarray, status: int) -> None:
        arrived = self.arrived[slots]
        rec = np.zeros(len(slots), self.event_dtype)
        rec["event"] = self.slot_event[slots]
        rec["status"] = status
        rec["missing"] = ((~arrived) * self._bits).sum(axis=1, dtype=np.uint64)
        rec["first_ns"] = np.where(arrived, self.timestamp[slots], U64_MAX).min(axis=1)
        rec["built_ns"] = time.time_ns()
        rec["flags"] = self.flags[slots]
        rec["inputs"] = self.inputs[slots]
        rec["fpga"] = self.fpga[slots]
        self.state[slots] = DONE
        self.n_open -= len(slots)
        self.out.append(rec)

    def take(self) -> list[np.ndarray]:
        """Built events since the last call (lists of event-record arrays)."""
        out, self.out = self.out, []
        return out

    def take_late(self) -> list[Late]:
        late, self.late = self.late, []
        return late


def missing_sources(missing: int, sources: list[int]) -> list[int]:
    """Source ids named by an event's ``missing`` bit mask."""
    return [s for i, s in enumerate(sources) if missing >> i & 1]
