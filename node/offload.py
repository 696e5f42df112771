"""Offload: the node sends batches of inputs to boards and merges the answers back.

One DEALER socket per board (connected to the board's ROUTER), so the node knows which
board holds which batch, bounds the batches in flight per board, and notices a board
that stops answering: a batch not answered within ``timeout`` goes to the CPU fallback
and the board is left alone for ``retry`` seconds before it is tried again.  So is a board
whose socket takes no more requests (ZeroMQ queues them for a board that is not there,
up to the high-water mark; those time out and go to the CPU, but once the queue is full
nothing more is in flight to time out): the request goes to the next board with room.

The board's side is ``sim.board.offload``: a request (OFFLOAD_REQUEST, inputs only) in, a
reply (OFFLOAD_REPLY, results only, same sequence number and event numbers) out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from sim.wire import protocol
from sim.wire.endpoint import prepare
from sim.wire.security import CurveKeys, client_curve


@dataclass
class BoardCounts:
    batches_sent: int = 0
    fragments_sent: int = 0
    batches_answered: int = 0
    timeouts: int = 0
    stale_replies: int = 0  # answers after their batch went to the CPU, or unknown
    bad_replies: int = 0  # undecodable, of another layout or firmware, or for other events
    suspect_answers: int = 0  # answers the board flagged OVERFLOW or ERROR: kept flagged, the CPU computes too
    declined: int = 0  # fragments a board answered without RESULT_VALID (inputs it cannot hold): the CPU's
    refused: int = 0  # requests a board's socket would not take (its queue full: not there, or not reading)


@dataclass
class _Board:
    endpoint: str
    socket: zmq.Socket
    in_flight: dict[int, tuple[Any, int, np.ndarray]] = field(default_factory=dict)  # seq -> (tag, deadline, events)
    dead_until_ns: int = 0


class Boards:
    def __init__(
        self,
        endpoints: list[str],
        *,
        n_inputs: int,
        n_outputs: int,
        raw_bytes: int,
        manifest: bytes,
        max_in_flight: int = 4,
        batch: int = 256,
        timeout_s: float = 0.5,
        retry_s: float = 2.0,
        context: zmq.Context | None = None,
        node_id: int = 0,
        max_message_bytes: int = protocol.Limits.max_message_bytes,
        note: Callable[..., None] | None = None,
        curve: list[CurveKeys] | None = None,
    ):
        self.context = context or zmq.Context.instance()
        # (key, level, event, **fields): a rate-limited log line (the daemon's Log.limited), so
        # that a board whose answers all go to waste says why, not only in counters
        self.note = note or (lambda *a, **k: None)
        self.n_inputs, self.n_outputs, self.raw_bytes = n_inputs, n_outputs, raw_bytes
        self.manifest = manifest
        self.max_in_flight, self.batch = max_in_flight, batch
        self.timeout_ns, self.retry_ns = int(timeout_s * 1e9), int(retry_s * 1e9)
        self.node_id = node_id
        self.sequence = 0
        self.counts = BoardCounts()
        self.boards: list[_Board] = []
        for k, ep in enumerate(endpoints):
            s = self.context.socket(zmq.DEALER)
            try:
                if curve:  # the node as the CURVE client of each board (its own key, the board's public one)
                    client_curve(s, curve[k])
                s.setsockopt(zmq.LINGER, 0)
                s.setsockopt(zmq.SNDHWM, max_in_flight * 2)
                # a board's replies are bounded like the inputs: in size (by the socket) and in number
                s.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
                s.setsockopt(zmq.RCVHWM, max_in_flight * 2)
                prepare(s, ep)
                s.connect(ep)
            except BaseException as exc:  # none left open: a failed start would wait for them in term()
                for sock in (*(b.socket for b in self.boards), s):
                    sock.close(linger=0)
                if isinstance(exc, zmq.ZMQError):  # an endpoint ZeroMQ will not connect to (tcp://*:N, ...)
                    raise ValueError(f"offload.boards[{k}] {ep}: cannot connect ({exc})") from None
                raise
            self.boards.append(_Board(ep, s))
        # a reply from other firmware, or of another layout, is refused (bad_replies), not trusted
        self.limits = protocol.Limits(
            max_message_bytes=max_message_bytes,
            n_outputs=n_outputs,
            raw_bytes=raw_bytes,
            manifest=manifest if any(manifest) else None,
        )

    def any_alive(self, now_ns: int | None = None) -> bool:
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        return any(b.dead_until_ns <= now_ns for b in self.boards)

    def send(self, events: np.ndarray, inputs: np.ndarray, tag: Any, now_ns: int) -> int | None:
        """Send one batch to the least busy live board; None when none takes it.  A board
        whose socket refuses it is left alone for ``retry`` and the next one is tried."""
        live = [b for b in self.boards if b.dead_until_ns <= now_ns and len(b.in_flight) < self.max_in_flight]
        if not live:
            return None
        frags = np.zeros(len(events), protocol.fragment_dtype(self.n_inputs, 0, self.raw_bytes))
        frags["event"] = events
        frags["inputs"] = inputs
        seq = self.sequence
        msg = protocol.encode(
            protocol.OFFLOAD_REQUEST, self.node_id, seq, frags, n_inputs=self.n_inputs, n_outputs=0,
            raw_bytes=self.raw_bytes, manifest=self.manifest, sent_ns=time.time_ns(),
        )  # fmt: skip
        for board in sorted(live, key=lambda b: len(b.in_flight)):
            try:
                board.socket.send(msg, zmq.NOBLOCK)
            except zmq.Again:
                self.counts.refused += 1
                board.dead_until_ns = now_ns + self.retry_ns
                self.note(f"offload-refused/{board.endpoint}", "warning", "offload-refused", board=board.endpoint,
                          why="its queue is full (not connected, or not reading)",
                          action=f"the next board, or the CPU; left alone for {self.retry_ns / 1e9} s")  # fmt: skip
                continue
            self.sequence += 1
            board.in_flight[seq] = (tag, now_ns + self.timeout_ns, np.array(events))
            self.counts.batches_sent += 1
            self.counts.fragments_sent += len(events)
            return seq
        return None

    def replies(self, now_ns: int | None = None) -> tuple[list[tuple[Any, np.ndarray, np.ndarray]], list[Any]]:
        """Answers that arrived: (tag, results, flags) per batch, for exactly the events it
        sent; and the tags of batches whose reply was refused (bad replies: the CPU's now,
        and the board is left alone for ``retry``, as after a timeout, but not counted as one)."""
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        out, refused = [], []
        for board in self.boards:
            # at most what could be in flight, and as many again: a board sending more (stale
            # or unasked replies) cannot hold the loop here
            for _ in range(2 * self.max_in_flight + 2):
                try:
                    msg = board.socket.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                try:
                    h, frags = protocol.decode(msg, self.limits)
                except protocol.ProtocolError as exc:
                    # the batch it answers, if its first bytes say which
                    named = len(msg) >= 16 and msg[:4] == protocol.MAGIC and msg[5] == protocol.OFFLOAD_REPLY
                    entry = board.in_flight.pop(int.from_bytes(msg[8:16], "little"), None) if named else None
                    refused += self._bad_reply(board, entry, now_ns, reason=exc.reason, detail=str(exc))
                    continue
                entry = board.in_flight.pop(h.sequence, None) if h.type == protocol.OFFLOAD_REPLY else None
                if entry is None:
                    self.counts.stale_replies += 1
                    self.note(f"offload-stale/{board.endpoint}", "warning", "offload-stale-reply", board=board.endpoint,
                              type=h.type, sequence=h.sequence, in_flight=sorted(board.in_flight)[:8],
                              why="no request in flight with this sequence (late, or a reply that does not "
                                  "carry its request's sequence)")  # fmt: skip
                    continue
                tag, _, events = entry
                why = (
                    f"{len(frags)} answers for {len(events)} events" if len(frags) != len(events)
                    else f"n_outputs {h.n_outputs}, expected {self.n_outputs}" if h.n_outputs != self.n_outputs
                    else "answers for other events" if not np.array_equal(frags["event"], events)
                    else None
                )  # fmt: skip
                if why is not None:
                    refused += self._bad_reply(board, entry, now_ns, reason=why, sequence=h.sequence)
                    continue
                self.counts.batches_answered += 1
                valid = (frags["flags"] & protocol.RESULT_VALID) != 0
                self.counts.suspect_answers += int(np.count_nonzero(valid & ((frags["flags"] & protocol.SUSPECT) != 0)))
                if not valid.all():  # a board says it could not compute these: the CPU's
                    self.counts.declined += int(np.count_nonzero(~valid))
                    self.note(f"offload-declined/{board.endpoint}", "warning", "offload-declined",
                              board=board.endpoint, fragments=int(np.count_nonzero(~valid)),
                              first_event=int(frags["event"][np.argmin(valid)]),
                              why="answered without RESULT_VALID (inputs its firmware cannot hold)",
                              action="the CPU computes them")  # fmt: skip
                out.append((tag, frags["result"].copy(), frags["flags"].copy()))
        return out, refused

    def _bad_reply(self, board: _Board, entry: tuple[Any, int, np.ndarray] | None, now_ns: int,
                   **why: Any) -> list[Any]:  # fmt: skip
        """A reply refused: counted and logged; the batch it answers (``entry``, if known) is
        the CPU's at once, and its board is left alone for ``retry``. Its tag, if any."""
        self.counts.bad_replies += 1
        self.note(f"offload-bad/{board.endpoint}", "warning", "offload-bad-reply", board=board.endpoint, **why)
        if entry is None:
            return []
        board.dead_until_ns = now_ns + self.retry_ns
        return [entry[0]]

    def expired(self, now_ns: int) -> list[Any]:
        """Tags of batches past their deadline; their boards count as dead for a while."""
        out = []
        for board in self.boards:
            late = [seq for seq, (_, deadline, _) in board.in_flight.items() if deadline < now_ns]
            if late:
                board.dead_until_ns = now_ns + self.retry_ns
                self.note(f"offload-timeout/{board.endpoint}", "warning", "offload-timeout", board=board.endpoint,
                          batches=len(late),
                          action=f"to the CPU; the board is left alone for {self.retry_ns / 1e9} s")  # fmt: skip
            for seq in late:
                out.append(board.in_flight.pop(seq)[0])
                self.counts.timeouts += 1
        return out

    def in_flight(self) -> int:
        return sum(len(b.in_flight) for b in self.boards)

    def close(self) -> None:
        for b in self.boards:
            b.socket.close(linger=0)
