"""Nothing lost across a node restart: sender-side replay of unacknowledged fragments.

ZeroMQ keeps a PUSH socket's queue across a reconnect, but whatever sat in the dying
node's receive queue or in the kernel's buffers is gone.  So the board keeps every
fragment it sent in a ring keyed by event number until the node *acknowledges* the
event — the node's PUB socket of built events (``sink.publish``) is the acknowledgement,
since the node publishes an event only after writing it to its sink.  When the board's
socket to a node reconnects after a disconnect, it sends again every fragment for that
node not yet acknowledged.  Delivery is at least once: an event the old node wrote but
whose acknowledgement was lost may be built again by the new node (counted by the
demo and the tests as built twice across the restart, never as lost), and a fragment
that ZeroMQ delivered from its queue after the reconnect arrives twice (the builder
drops the copy, or writes it to the late sink when its event already left).  Sending
only what was handed to ZeroMQ before the loss was seen lost fragments here: whether a
queued message survives a disconnect is ZeroMQ's business, so the board does not guess.
"""

from __future__ import annotations

import numpy as np
import zmq

from sim.wire import protocol
from sim.wire.endpoint import prepare
from sim.wire.security import CurveKeys, client_curve

EMPTY, UNACKED = 0, 1


class ReplayRing:
    """Sent fragments by event number (slot = event mod capacity) until acknowledged."""

    def __init__(self, fragment_dtype: np.dtype, capacity: int = 1 << 17):
        capacity = 1 << max(1, int(capacity - 1).bit_length())
        self.mask = np.uint64(capacity - 1)
        self.frags = np.zeros(capacity, fragment_dtype)
        self.state = np.zeros(capacity, np.uint8)
        self.overwritten = 0  # unacknowledged fragments pushed out by newer ones (ring too small)
        self.acked = 0
        self.replayed = 0

    def sent(self, frags: np.ndarray) -> None:
        slot = (frags["event"] & self.mask).astype(np.intp)
        over = (self.state[slot] == UNACKED) & (self.frags["event"][slot] != frags["event"])
        self.overwritten += int(over.sum())
        self.frags[slot] = frags
        self.state[slot] = UNACKED

    def ack(self, events: np.ndarray) -> None:
        events = np.asarray(events, np.uint64)
        slot = (events & self.mask).astype(np.intp)
        hit = (self.state[slot] == UNACKED) & (self.frags["event"][slot] == events)
        self.acked += int(hit.sum())
        self.state[slot[hit]] = EMPTY

    def unacked(self, route: int | None = None, n_routes: int = 1) -> np.ndarray:
        """Unacknowledged fragments (for one node route), oldest event first."""
        idx = np.flatnonzero(self.state == UNACKED)
        frags = self.frags[idx]
        if route is not None and n_routes > 1:
            frags = frags[frags["event"] % np.uint64(n_routes) == np.uint64(route)]
        return frags[np.argsort(frags["event"], kind="stable")]

    @property
    def pending(self) -> int:
        return int((self.state == UNACKED).sum())


class Acks:
    """Subscribes to the nodes' built-event publishers; event numbers that left a node
    (with ``index``: only those in which this board's fragment arrived, so a fragment
    lost in a dying node's queue is sent again even when its event left incomplete)."""

    def __init__(self, endpoints: list[str], context: zmq.Context, index: int | None = None,
                 curve: CurveKeys | None = None):  # fmt: skip
        self.index = index  # this board's place in the node's source list: ack only events holding its fragment
        self.sockets = []
        for ep in endpoints:
            s = context.socket(zmq.SUB)
            s.setsockopt(zmq.SUBSCRIBE, b"")
            s.setsockopt(zmq.RCVHWM, 100_000)
            s.setsockopt(zmq.LINGER, 0)
            if curve is not None:  # a node with CURVE publishes with it too
                client_curve(s, curve)
            prepare(s, ep)
            s.connect(ep)
            self.sockets.append(s)
        self.bad = 0

    def poll(self, max_messages: int = 10_000) -> list[np.ndarray]:
        out = []
        for s in self.sockets:
            for _ in range(max_messages):
                try:
                    msg = s.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                try:
                    h, records = protocol.decode(msg)
                except protocol.ProtocolError:
                    self.bad += 1
                    continue
                if h.type != protocol.EVENTS:
                    continue
                if self.index is not None and self.index < h.n_sources:
                    arrived = (records["missing"] >> np.uint64(self.index)) & np.uint64(1) == 0
                    out.append(records["event"][arrived].copy())
                else:
                    out.append(records["event"].copy())
        return out

    def close(self) -> None:
        for s in self.sockets:
            s.close(linger=0)
