"""Results for built events: the CPU fallback (the firmware emulator), offload to boards,
and the bit-for-bit comparison of FPGA and CPU results.

Split/merge: each built event breaks into sub-tasks, one per fragment that needs a
result (FPGA result missing or flagged; every fragment of an event in the validation
sample; in offload mode every fragment without a result goes to a board first).  Tasks
from many events are merged into one emulator call (the per-call NumPy overhead is paid
once per batch, not per event), the results are attached back to their events, and an
event leaves only when all its tasks are done.  A partial batch runs after ``max_delay``
so batching never buys throughput with latency.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.emulator import holdable, input_bounds
from sim.wire import protocol


@dataclass
class FallbackCounts:
    cpu_fragments: int = 0  # fragments computed by the emulator
    cpu_batches: int = 0
    fallback_events: int = 0  # events with a CPU result for a missing or suspect FPGA result
    validated_events: int = 0
    compared_fragments: int = 0
    mismatches: int = 0  # fragments where FPGA and CPU raw results differ
    mismatch_events: int = 0
    no_emulator: int = 0  # fragments that needed the CPU, but no manifest is configured
    bad_inputs: int = 0  # fragments whose inputs the firmware's input type cannot hold: no CPU result


@dataclass
class _Pending:
    """Built events waiting for results, and their open tasks."""

    events: np.ndarray
    rows: np.ndarray  # task -> row in events
    srcs: np.ndarray  # task -> source index
    cpu: np.ndarray  # task needs the CPU (bool)
    board: np.ndarray  # task waits for a board (bool; in flight or not yet sent)
    sent: np.ndarray  # task sent to a board (bool)
    since_ns: int = field(default_factory=time.monotonic_ns)
    ran: np.ndarray = field(init=False)  # task the CPU has run (bool): never queued again

    def __post_init__(self) -> None:
        self.ran = np.zeros(len(self.rows), bool)

    @property
    def open(self) -> bool:
        return bool(self.cpu.any() or self.board.any())


SAMPLE_MIX = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio, odd: Fibonacci hashing


def in_validation_sample(events: np.ndarray, every: int) -> np.ndarray:
    """Which event numbers are in the 1-in-``every`` validation sample.

    By a hash of the number, not ``event % every``: numbers by bunch crossing, or every
    1000th after a prescale, or one worker's share (every Nth), made the sample all or
    none of the events.  The high half of event x 0x9E3779B97F4A7C15 (mod 2^64) is spread
    evenly for any even spacing of the numbers, and an event is in the sample when it lies
    in the lowest 1/``every`` of its range (its top bits: ``% every`` of it tested low
    bits, uneven for large spacings); deterministic, so an analysis (and the demo) can
    tell which events were validated."""
    if every <= 0:
        return np.zeros(np.shape(events), bool)
    mixed = np.multiply(np.asarray(events, np.uint64), SAMPLE_MIX) >> np.uint64(32)  # wraps mod 2^64
    return mixed < np.uint64((1 << 32) // every)


class Fallback:
    """The results stage between the builder and the sinks (one per builder worker)."""

    def __init__(
        self,
        emulator: Any | None,
        *,
        validate_every: int = 100,
        batch: int = 256,
        max_delay_s: float = 0.002,
        boards: Any | None = None,
        on_mismatch=None,
        on_bad_inputs=None,
    ):
        self.emulator = emulator
        self.validate_every = validate_every
        self.batch = batch
        self.max_delay_ns = int(max_delay_s * 1e9)
        self.boards = boards  # node.offload.Boards or None
        self.on_mismatch = on_mismatch or (lambda event, source: None)
        self.on_bad_inputs = on_bad_inputs or (lambda event, source: None)
        self.pending: list[_Pending] = []
        self.ready: list[np.ndarray] = []
        # events leave in the order they came (not only those with tasks by theirs): set
        # where the sink guessed where they go from that order (node.arena); a block
        # without tasks then waits behind earlier ones for at most ``max_delay``
        self.keep_order = False
        self.counts = FallbackCounts()
        if emulator is not None:
            self.input_shape = tuple(emulator.input_shape)
            self.low, self.high = input_bounds(emulator)

    # ------------------------------------------------------------------ intake
    def submit(self, events: np.ndarray) -> None:
        """Decide which fragments of these built events need a result computed."""
        flags = events["flags"]
        missing = events["missing"]
        if missing.any():
            bits = np.left_shift(np.uint64(1), np.arange(flags.shape[1], dtype=np.uint64))
            arrived = (missing[:, None] & bits) == 0
        else:  # complete events, the usual case
            arrived = np.ones(flags.shape, bool)
        # a valid FPGA result that is not flagged suspect
        trusted = (flags & np.uint32(protocol.RESULT_VALID | protocol.SUSPECT)) == protocol.RESULT_VALID
        if self.emulator is None and self.boards is None:
            # nothing can compute: count what needed the CPU, let the events go as they are
            self.counts.no_emulator += int(np.count_nonzero(arrived & ~trusted))
            self.ready.append(events)
            return
        has_result = (flags & protocol.RESULT_VALID) != 0
        sampled = np.zeros(len(events), bool)
        if self.validate_every and (self.emulator is not None):
            sampled = in_validation_sample(events["event"], self.validate_every)
        # a board computes what came without a result; a fragment its FPGA flagged (OVERFLOW,
        # ERROR) goes to the CPU, as without offload, so that it keeps its flags and its
        # event says FALLBACK (a board's answer would have been stored under them, suspect)
        # (without a CPU, as before: the board's answer, kept under the fragment's flags)
        flagged = (flags & np.uint32(protocol.SUSPECT)) != 0 if self.emulator is not None else np.zeros_like(arrived)
        need_board = arrived & ~has_result & ~flagged if self.boards is not None else np.zeros_like(arrived)
        need_cpu = (arrived & ~trusted & ~need_board) | (arrived & sampled[:, None])
        if sampled.any():
            events["status"][sampled] |= protocol.VALIDATED
            self.counts.validated_events += int(sampled.sum())
        task = need_cpu | need_board
        if not task.any():
            self._pass(events)
            return
        if self.emulator is None:
            # no manifest: nothing can compute; count, and let the events go as they are
            self.counts.no_emulator += int((need_cpu & ~need_board).sum())
            need_cpu[:] = False
            task = need_board
            if not task.any():
                self._pass(events)
                return
        rows, srcs = np.nonzero(task)
        self.pending.append(
            _Pending(events, rows, srcs, need_cpu[rows, srcs], need_board[rows, srcs], np.zeros(len(rows), bool))
        )

    def _pass(self, events: np.ndarray) -> None:
        """Events with no task: out at the next ``step``, behind the earlier ones where
        the order is kept."""
        if self.keep_order and self.pending:
            none = np.zeros(0, np.intp)
            self.pending.append(_Pending(events, none, none, none.astype(bool), none.astype(bool), none.astype(bool)))
        else:
            self.ready.append(events)

    # -------------------------------------------------------------------- work
    def step(self, now_ns: int | None = None, force: bool = False) -> list[np.ndarray]:
        """Offload, run the CPU where due, and return the events whose results are all in."""
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        if self.boards is not None:  # with nothing pending too: a late reply is read, not left to wake the loop
            self._offload(now_ns)
        if self.pending:
            n_cpu = sum(int(p.cpu.sum()) for p in self.pending)
            oldest = min(p.since_ns for p in self.pending if p.cpu.any()) if n_cpu else now_ns
            if n_cpu and (force or n_cpu >= self.batch or now_ns - oldest >= self.max_delay_ns):
                self._run_cpu()
            self._release()
        ready, self.ready = self.ready, []
        return ready

    def held(self) -> int:
        """Events submitted and not yet returned by ``step``."""
        return sum(len(p.events) for p in self.pending) + sum(len(e) for e in self.ready)

    def idle(self) -> bool:
        return not self.pending and not self.ready

    def abandon_boards(self) -> int:
        """At shutdown, once the boards had their time: the tasks still waiting for one go to
        the CPU (without an emulator the events leave as they are, counted as
        ``no_emulator``), so every event still leaves. Returns how many tasks that was."""
        moved = 0
        for p in self.pending:
            tasks = np.flatnonzero(p.board)
            moved += len(tasks)
            self._to_cpu(p, tasks)
        if self.emulator is not None and any(p.cpu.any() for p in self.pending):
            self._run_cpu()
        self._release()
        return moved

    def release_all(self) -> list[np.ndarray]:
        """Every event still held, as it is (results missing where they are): the way out
        when the stage itself failed, so that its events are written, not lost."""
        out = self.ready + [p.events for p in self.pending]
        self.ready, self.pending = [], []
        return out

    def _run_cpu(self) -> None:
        """One emulator call over the CPU tasks of all pending events (split/merge).

        A fragment whose inputs its firmware's input type cannot hold (corrupt data: no
        board could have been given them) gets no CPU result, and its event is flagged
        BAD_INPUTS, rather than the call failing (the BDT emulator refuses such inputs,
        and a network's result for them would be taken for a firmware fault)."""
        parts = [(p, np.flatnonzero(p.cpu)) for p in self.pending if p.cpu.any()]
        x = np.concatenate([p.events["inputs"][p.rows[t], p.srcs[t]] for p, t in parts]).astype(np.int64)
        srcs = np.concatenate([p.srcs[t] for p, t in parts])
        bounds = srcs if len(self.low) > 1 else 0
        good = holdable(x, self.low[bounds], self.high[bounds])
        everyone = bool(good.all())
        raw = None
        if good.any():
            xs, ss = (x, srcs) if everyone else (x[good], srcs[good])
            if hasattr(self.emulator, "predict_raw_sources"):  # a firmware per source (sim.per_source)
                pred = self.emulator.predict_raw_sources(xs, ss)
            else:
                pred = self.emulator.predict_raw(xs.reshape((len(xs),) + self.input_shape))
            raw = np.asarray(pred.raw).reshape(len(xs), -1)
            if not everyone:
                raw_all = np.zeros((len(x), raw.shape[1]), raw.dtype)
                raw_all[good] = raw
                raw = raw_all
            self.counts.cpu_batches += 1
            self.counts.cpu_fragments += len(xs)
        start = 0
        for p, t in parts:
            g = good[start : start + len(t)]
            rows, srcs_p = p.rows[t], p.srcs[t]
            if raw is not None:
                r = raw[start : start + len(t)]
                if everyone:
                    p.events["cpu"][rows, srcs_p] = r
                    p.events["cpu_valid"][rows, srcs_p] = 1
                else:
                    p.events["cpu"][rows[g], srcs_p[g]] = r[g]
                    p.events["cpu_valid"][rows[g], srcs_p[g]] = 1
            if not everyone:
                bad_rows, bad_srcs = rows[~g], srcs_p[~g]
                p.events["status"][bad_rows] |= protocol.BAD_INPUTS
                self.counts.bad_inputs += len(bad_rows)
                for row, src in zip(bad_rows, bad_srcs, strict=True):
                    self.on_bad_inputs(int(p.events["event"][row]), int(src))
            start += len(t)
            p.cpu[t] = False
            p.ran[t] = True

    def _offload(self, now_ns: int) -> None:
        boards = self.boards
        answered, refused = boards.replies(now_ns)
        for batch_id, result, flags in answered:
            self._attach_board(batch_id, result, flags)
        for batch_id in refused + boards.expired(now_ns):
            self._board_failed(batch_id)
        # send unsent board tasks, oldest first, while a board takes them
        taken = True
        for p in self.pending:
            todo = np.flatnonzero(p.board & ~p.sent)
            while taken and len(todo):
                chunk = todo[: boards.batch]
                x = p.events["inputs"][p.rows[chunk], p.srcs[chunk]]
                taken = boards.send(p.events["event"][p.rows[chunk]], x, (p, chunk), now_ns) is not None
                if taken:
                    p.sent[chunk] = True
                    todo = todo[len(chunk) :]
            # what no board took: the CPU's after max_delay if no board is there, and after a
            # board's timeout anyway (boards busy for that long are not keeping up)
            waited = now_ns - p.since_ns
            if len(todo) and waited >= self.max_delay_ns:
                if waited >= boards.timeout_ns or not boards.any_alive(now_ns):
                    self._to_cpu(p, todo)

    def _attach_board(self, tag: Any, result: np.ndarray, flags: np.ndarray) -> None:
        """A board's answers into their fragments.  One the board flagged suspect (OVERFLOW,
        ERROR) is kept with that flag, as an FPGA's would be, and the CPU computes it too;
        one without RESULT_VALID (the board could not compute it) is the CPU's alone."""
        p, chunk = tag
        declined = (flags & np.uint32(protocol.RESULT_VALID)) == 0
        if declined.any():
            self._to_cpu(p, chunk[declined])
            chunk, result, flags = chunk[~declined], result[~declined], flags[~declined]
            if not len(chunk):
                return
        rows, srcs = p.rows[chunk], p.srcs[chunk]
        suspect = flags & np.uint32(protocol.SUSPECT)
        p.events["fpga"][rows, srcs] = result.reshape(len(chunk), -1)
        # which source: the board's
        p.events["flags"][rows, srcs] |= protocol.RESULT_VALID | protocol.FROM_BOARD | suspect
        p.events["status"][np.unique(rows)] |= protocol.OFFLOADED
        p.board[chunk] = False
        if suspect.any():
            self._to_cpu(p, chunk[suspect != 0])

    def _board_failed(self, tag: Any) -> None:
        p, chunk = tag
        self._to_cpu(p, chunk[p.board[chunk]])

    def _to_cpu(self, p: _Pending, tasks: np.ndarray) -> None:
        """Board tasks no board will do: the CPU's, or without an emulator (offload and
        no manifest) nobody's: counted as ``no_emulator`` and the events leave as they are.
        A task in the validation sample is queued for the CPU already, or the CPU ran it
        (its result is in, or its inputs were bad: counted and logged once)."""
        p.board[tasks] = False
        if self.emulator is not None:
            p.cpu[tasks[~p.ran[tasks]]] = True
        else:
            self.counts.no_emulator += len(tasks)

    def _release(self) -> None:
        keep = []
        for p in self.pending:
            if p.open or (self.keep_order and keep):
                keep.append(p)
            else:
                if len(p.rows):
                    self._finish(p.events)
                self.ready.append(p.events)
        self.pending = keep

    def _finish(self, ev: np.ndarray) -> None:
        """Compare FPGA and CPU where both exist; flag the events the CPU stood in for."""
        flags, cpu_valid = ev["flags"], ev["cpu_valid"] != 0
        trusted = ((flags & protocol.RESULT_VALID) != 0) & ((flags & protocol.SUSPECT) == 0)
        fallback = (cpu_valid & ~trusted).any(axis=1)
        ev["status"][fallback] |= protocol.FALLBACK
        self.counts.fallback_events += int(fallback.sum())
        both = cpu_valid & trusted
        if not both.any():
            return
        self.counts.compared_fragments += int(both.sum())
        differ = both & (ev["fpga"] != ev["cpu"]).any(axis=2)
        if differ.any():
            self.counts.mismatches += int(differ.sum())
            bad = differ.any(axis=1)
            self.counts.mismatch_events += int(bad.sum())
            ev["status"][bad] |= protocol.MISMATCH
            for row, src in zip(*np.nonzero(differ), strict=True):
                self.on_mismatch(int(ev["event"][row]), int(src))
