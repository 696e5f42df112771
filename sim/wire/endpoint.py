"""ZeroMQ endpoints as the node and its peers open them.

ZeroMQ takes an IPv6 address (``tcp://[::1]:5555``) only on a socket told to: a bind
fails with 'No such device', and a connect is accepted and never connects (an offload
board on IPv6 would time out on every batch, silently).  Every socket the node, its
sources and the board stand-ins open goes through ``prepare``.
"""

from __future__ import annotations

import zmq


def prepare(sock: zmq.Socket, endpoint: str) -> None:
    """Set what ``endpoint`` needs on ``sock`` before it binds or connects there."""
    if endpoint.startswith("tcp://["):  # an IPv6 address
        sock.setsockopt(zmq.IPV6, 1)
