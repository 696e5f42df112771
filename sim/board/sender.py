"""The board's output: fragments to one or more nodes, routed by event number, without
ever blocking the readout while a node is away.

ZeroMQ's PUSH blocks once a peer's queue is full, and while a node is down its socket
has no peer at all, so ``send`` would stall the board (``sim.wire.source.Source`` does
exactly that, which is right for a simple sender).  A board keeps triggering: messages
that cannot go now wait in a sender-side queue per node (the board's buffer, bounded;
past the bound the board blocks, i.e. back pressure) and leave, in order, as soon as
the node takes them.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import numpy as np
import zmq

from sim.board.link import Link
from sim.wire import protocol
from sim.wire.endpoint import prepare
from sim.wire.security import CurveKeys, client_curve


class Sender:
    def __init__(
        self,
        source_id: int,
        endpoints: list[str],
        *,
        n_inputs: int,
        n_outputs: int,
        raw_bytes: int,
        manifest_id: str,
        batch: int = 16,
        sndhwm: int = 1000,
        max_queued: int = 1000,
        context: zmq.Context,
        on_sent: Callable[[np.ndarray], None] | None = None,
        curve: CurveKeys | None = None,
    ):
        self.source_id = source_id
        self.layout = (n_inputs, n_outputs, raw_bytes)
        self.manifest = protocol.manifest_bytes(manifest_id)
        self.batch = batch
        self.max_queued = max_queued
        self.on_sent = on_sent or (lambda frags: None)
        self.sockets: list[zmq.Socket] = []
        self.links: list[Link] = []  # what each node did with the connection (``undelivered``)
        for ep in endpoints:
            s = context.socket(zmq.PUSH)
            s.setsockopt(zmq.SNDHWM, sndhwm)
            s.setsockopt(zmq.LINGER, 5000)
            if curve is not None:
                client_curve(s, curve)
            prepare(s, ep)
            self.links.append(Link(s, ep))  # before the connect: its first events too
            s.connect(ep)
            self.sockets.append(s)
        self.sent_to = [0] * len(self.sockets)  # messages handed to ZeroMQ per node
        self.undelivered: list[tuple[str, str]] = []  # (endpoint, why): nodes that never took a message
        self.queues: list[deque[tuple[bytes, np.ndarray]]] = [deque() for _ in self.sockets]
        self.sequence = [0] * len(self.sockets)
        self.sent_fragments = 0
        self.sent_messages = 0
        self.blocked_s = 0.0  # time the readout waited because a queue was full
        self.stopping = False  # set from a signal handler: stop waiting for a node

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self.queues)

    def send(self, frags: np.ndarray) -> None:
        """Queue fragments (split by route, in messages of ``batch``) and send what can go."""
        n = len(self.sockets)
        if n == 1:
            self._enqueue(0, frags)
        else:
            route = (frags["event"] % np.uint64(n)).astype(np.intp)
            for k in range(n):
                part = frags[route == k]
                if len(part):
                    self._enqueue(k, part)
        self.flush()

    def send_route(self, k: int, frags: np.ndarray) -> None:
        self._enqueue(k, frags)
        self.flush()

    def _enqueue(self, k: int, frags: np.ndarray) -> None:
        n_in, n_out, raw = self.layout
        for start in range(0, len(frags), self.batch):
            chunk = frags[start : start + self.batch]
            msg = protocol.encode(
                protocol.FRAGMENTS, self.source_id, self.sequence[k], chunk, n_inputs=n_in, n_outputs=n_out,
                raw_bytes=raw, manifest=self.manifest, sent_ns=time.time_ns(),
            )  # fmt: skip
            self.sequence[k] += 1
            self.queues[k].append((msg, chunk))

    def flush(self) -> None:
        """Send queued messages until the sockets push back; block only past ``max_queued``."""
        for k, (sock, q) in enumerate(zip(self.sockets, self.queues, strict=True)):
            while q:
                msg, chunk = q[0]
                try:
                    sock.send(msg, zmq.NOBLOCK, copy=len(msg) < 65536)
                except zmq.Again:
                    if self.queued <= self.max_queued:
                        break
                    t = time.monotonic()
                    while not sock.poll(100, zmq.POLLOUT):  # back pressure: the readout waits
                        if self.stopping:
                            return
                    sock.send(msg, copy=len(msg) < 65536)
                    self.blocked_s += time.monotonic() - t
                q.popleft()
                self.sent_to[k] += 1
                self.sent_messages += 1
                self.sent_fragments += len(chunk)
                self.on_sent(chunk)

    def close(self, linger_ms: int = 5000) -> None:
        """Close the sockets, giving each up to ``linger_ms`` to deliver what it queued; a
        node that never took the connection in that time is listed in ``undelivered``
        with the reason (its messages went nowhere)."""
        for k, (s, link) in enumerate(zip(self.sockets, self.links, strict=True)):
            linger = linger_ms
            if linger_ms and self.sent_to[k] and not link.wait_taken(linger_ms / 1e3):
                self.undelivered.append((link.endpoint, link.why_not()))
                linger = 0  # waited once already: lingering again held the context's end as long
            s.close(linger=linger)
            link.close()
        self.sockets, self.links = [], []
