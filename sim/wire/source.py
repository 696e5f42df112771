"""The sending side of the protocol, for boards, the board stand-in, demos and tests.

A ``Source`` owns one PUSH (or PUB) socket per node endpoint, numbers its messages per
endpoint (so the node sees gaps even on PUB), and routes fragments by event number when
a node runs several builder workers: every source must send event ``e`` to endpoint
``e % len(endpoints)`` so that all fragments of an event meet in the same worker.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import zmq

from sim.wire import protocol
from sim.wire.endpoint import prepare
from sim.wire.security import CurveKeys, client_curve


class Source:
    """One data source (a board, or a slice of the detector readout).

    >>> src = Source(3, ["tcp://127.0.0.1:5555"], n_inputs=16, n_outputs=5)
    >>> src.send(events, inputs, results)   # batches of up to ``batch`` fragments per message
    """

    def __init__(
        self,
        source_id: int,
        endpoints: str | Sequence[str],
        *,
        n_inputs: int,
        n_outputs: int,
        raw_bytes: int = 4,
        manifest_id: str | bytes | None = None,
        batch: int = 16,
        socket_type: int = zmq.PUSH,
        bind: bool = False,
        sndhwm: int = 1000,
        curve: CurveKeys | None = None,
        context: zmq.Context | None = None,
    ):
        self.source_id = source_id
        self.endpoints = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        self.n_inputs, self.n_outputs, self.raw_bytes = n_inputs, n_outputs, raw_bytes
        self.manifest = protocol.manifest_bytes(manifest_id)
        self.batch = batch
        self.context = context or zmq.Context.instance()
        self.sockets: list[zmq.Socket] = []
        for ep in self.endpoints:
            s = self.context.socket(socket_type)
            s.setsockopt(zmq.SNDHWM, sndhwm)
            s.setsockopt(zmq.LINGER, 5000)
            if curve is not None:
                client_curve(s, curve)
            prepare(s, ep)
            (s.bind if bind else s.connect)(ep)
            self.sockets.append(s)
        self.sequence = [0] * len(self.sockets)
        self.sent_fragments = 0
        self.sent_messages = 0

    def fragments(self, events, inputs, result=None, flags=None) -> np.ndarray:
        """Fragments stamped with the current time (ns), ready for ``send_fragments``.

        Without ``result`` the result field is zeros and the flags default to 0 (no FPGA
        result: the node computes one, or offloads it)."""
        events = np.asarray(events, dtype=np.uint64).reshape(-1)
        if result is None:
            result = np.zeros((len(events), self.n_outputs), np.int64)
            flags = 0 if flags is None else flags
        return protocol.make_fragments(events, inputs, result, flags, time.time_ns(), self.raw_bytes)

    def send(self, events, inputs, result=None, flags=None) -> None:
        """Send fragments for ``events`` (in messages of up to ``batch`` fragments)."""
        self.send_fragments(self.fragments(events, inputs, result, flags))

    def send_fragments(self, frags: np.ndarray) -> None:
        n_routes = len(self.sockets)
        if n_routes == 1:
            self._send_route(0, frags)
            return
        route = (frags["event"] % np.uint64(n_routes)).astype(np.intp)
        for k in range(n_routes):
            part = frags[route == k]
            if len(part):
                self._send_route(k, part)

    def _send_route(self, k: int, frags: np.ndarray) -> None:
        sock = self.sockets[k]
        for start in range(0, len(frags), self.batch):
            chunk = frags[start : start + self.batch]
            msg = protocol.encode_buffer(
                protocol.FRAGMENTS, self.source_id, self.sequence[k], chunk,
                n_inputs=self.n_inputs, n_outputs=self.n_outputs, raw_bytes=self.raw_bytes,
                manifest=self.manifest, sent_ns=time.time_ns(),
            )  # fmt: skip
            sock.send(msg, copy=msg.nbytes < 65536)
            self.sequence[k] += 1
            self.sent_messages += 1
            self.sent_fragments += len(chunk)

    def send_raw(self, message: bytes, route: int = 0) -> None:
        """Send bytes as they are (tests of malformed input)."""
        self.sockets[route].send(message)

    def close(self, linger_ms: int = 5000) -> None:
        for s in self.sockets:
            s.close(linger=linger_ms)
        self.sockets = []

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
