"""One PUSH socket's connection to a node, as its ZeroMQ monitor reports it: whether the
node ever took the connection (the handshake, CURVE's included), why not, and when it
came back after a loss.

ZeroMQ queues messages for an endpoint before (and whether or not) anything listens
there, so a board that counted what it handed to ZeroMQ as sent said "200 fragments
sent" to a node that was not there, or that refused its key.  One monitor per socket
(ZeroMQ allows one), read without blocking from the board's loop.
"""

from __future__ import annotations

import time

import zmq

EVENTS = (
    zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)  # fmt: skip
WHY = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "the node refused this board's key (CURVE: its public key is not in the "
    "node's security.curve_clients, or --curve-server-key is not the node's)",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "the handshake failed (one side uses CURVE and the other does not?)",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "the handshake failed (one side uses CURVE and the other does not?)",
}


class Link:
    def __init__(self, socket: zmq.Socket, endpoint: str):
        self.endpoint = endpoint
        self.monitor = socket.get_monitor_socket(EVENTS)
        self.handshakes = 0  # connections the node took (ZeroMQ's handshake done)
        self.failure: str | None = None  # why the last handshake failed
        self.lost = False
        self._back = False

    def poll(self) -> None:
        """Read what the monitor has (never waits)."""
        while True:
            try:
                frames = self.monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            event = int.from_bytes(frames[0][:2], "little")
            if event == zmq.EVENT_DISCONNECTED:
                self.lost = True
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.handshakes += 1
                self.failure = None
                if self.lost:
                    self._back, self.lost = True, False
            elif event in WHY:
                self.failure = WHY[event]

    def came_back(self) -> bool:
        """Whether the node took the connection again after a loss (once per time)."""
        self.poll()
        back, self._back = self._back, False
        return back

    def wait_taken(self, timeout_s: float) -> bool:
        """Whether the node has taken the connection, waiting up to ``timeout_s`` for it."""
        deadline = time.monotonic() + timeout_s
        self.poll()
        while not self.handshakes and time.monotonic() < deadline:
            if self.monitor.poll(max(1, int((deadline - time.monotonic()) * 1e3))):
                self.poll()
        return self.handshakes > 0

    def why_not(self) -> str:
        return self.failure or "no node took the connection (none listening there?)"

    def close(self) -> None:
        self.monitor.close(linger=0)
