"""The board's side of offload: a request of raw inputs (OFFLOAD_REQUEST) in, a reply of
the firmware's results (OFFLOAD_REPLY, same sequence number and event numbers) out.  The
node's side, which sends the batches and merges the answers, is ``node.offload``."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import zmq

from sim.emulator import holdable, input_bounds
from sim.wire import protocol
from sim.wire.endpoint import prepare


def compute(emulator: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A board's answers for raw inputs ``x`` (fragments x the firmware's inputs): (results,
    flags).  Inputs its firmware's input type cannot hold (corrupt data; the node's CPU flags
    them BAD_INPUTS) get ERROR and no result, instead of failing the whole request (the BDT
    emulator refuses them: the board died, and every later batch timed out)."""
    low, high = input_bounds(emulator)
    ok = holdable(x, low[0], high[0])
    raw = np.zeros((len(x), int(np.prod(emulator.output_shape))), np.int64)
    if ok.any():
        xs = x if ok.all() else x[ok]
        raw[ok] = np.asarray(emulator.predict_raw(xs.reshape((len(xs),) + tuple(emulator.input_shape))).raw).reshape(
            len(xs), -1
        )
    return raw, np.where(ok, np.uint32(protocol.RESULT_VALID), np.uint32(protocol.ERROR))


def answer(request: bytes, emulator: Any, board_id: int = 0) -> bytes:
    """A board's reply to an offload request: its emulator (or firmware) results."""
    h, frags = protocol.decode(request)
    if h.type != protocol.OFFLOAD_REQUEST:
        raise protocol.ProtocolError("bad-type", f"expected an offload request, got message type {h.type}")
    raw, flags = compute(emulator, frags["inputs"].astype(np.int64).reshape(len(frags), -1))
    out = np.zeros(len(frags), protocol.fragment_dtype(0, raw.shape[1], h.raw_bytes))
    out["event"] = frags["event"]
    out["timestamp_ns"] = time.time_ns()
    out["flags"] = flags
    out["result"] = raw
    return protocol.encode(
        protocol.OFFLOAD_REPLY, board_id, h.sequence, out, n_inputs=0, n_outputs=raw.shape[1],
        raw_bytes=h.raw_bytes, manifest=h.manifest, sent_ns=time.time_ns(),
    )  # fmt: skip


def serve_board(endpoint: str, emulator: Any, *, board_id: int = 0, answer_limit: int | None = None,
                context: zmq.Context | None = None) -> None:  # fmt: skip
    """A board on a ROUTER socket answering offload requests (a stand-in for tests and
    demos); after ``answer_limit`` answers it goes silent, like a hung board."""
    context = context or zmq.Context.instance()
    sock = context.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    prepare(sock, endpoint)
    sock.bind(endpoint)
    answered = 0
    try:
        while answer_limit is None or answered < answer_limit:
            identity, request = sock.recv_multipart()
            try:
                reply = answer(request, emulator, board_id)
            except (protocol.ProtocolError, ValueError):  # not a request for this firmware: unanswered
                continue
            sock.send_multipart([identity, reply])
            answered += 1
        while True:  # hung: keep reading, never answer
            sock.recv_multipart()
    finally:
        sock.close()
