"""The board stand-in: one process behaving like an FPGA board running a project's
firmware next to the detector.

Streaming: the readout hands it events at a configured rate; it computes the firmware's
answer (the emulator) and pushes fragments in the node's wire format with its source
id, routed by event number when there are several nodes (``sim.wire.source``).  Offload:
it binds a ROUTER socket and answers the node's offload requests instead.  Faults
(``sim.board.faults``) are injected on the way out, and every one is counted.

The board reports its counters in a status file (JSON, written atomically every half
second and at exit, so a killed board leaves its last word) and its injected faults by
event number in ``<status>.faults.npz``.
"""

from __future__ import annotations

import heapq
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from sim.board.faults import Faults, Injector
from sim.board.offload import compute
from sim.board.readout import Readout
from sim.board.replay import Acks, ReplayRing
from sim.board.sender import Sender
from sim.manifest import Manifest
from sim.wire import protocol
from sim.wire.endpoint import prepare

STATUS_EVERY_S = 0.5


@dataclass
class BoardConfig:
    manifest: str  # the firmware: a manifest folder (build/emulator of a synthesized project)
    source_id: int = 0
    nodes: list[str] = field(default_factory=list)  # PUSH endpoints (event e -> nodes[e % len])
    rate: float = 0.0  # events per second; 0: as fast as it can
    start_at: float | None = None  # wall-clock start (time.time()), so several boards trigger together
    events: int | None = None  # events to send; None: until stopped
    first_event: int = 0
    batch: int = 16  # fragments per message
    block: int = 1024  # events generated per step (upper bound)
    pool: int = 4096
    cache: bool = True
    input_file: str | None = None
    dataset: str | None = None
    seed: int = 0
    layout: tuple[int, int, int] | None = None  # pad to a node's (n_inputs, n_outputs, raw_bytes)
    acks: list[str] = field(default_factory=list)  # the nodes' built-event PUB endpoints
    ack_index: int | None = None  # this board's index in the nodes' source lists
    replay_capacity: int = 1 << 17
    ack_wait_s: float = 10.0  # after the last event: how long to wait for the nodes' acknowledgements
    offload: str = ""  # ROUTER endpoint to bind: answer offload requests instead of streaming
    status_file: str = ""
    faults: Faults = field(default_factory=Faults)
    sndhwm: int = 1000
    max_queued: int = 1000  # messages waiting in the board per node before it blocks (its buffer)
    curve_secret: str = ""  # this board's NAME.key_secret: CURVE to a node that asks for it
    curve_server_key: str = ""  # the node's public NAME.key
    curve_clients: str = ""  # offload: folder of the nodes' public keys allowed to ask (CURVE server)


class Board:
    def __init__(self, cfg: BoardConfig, manifest: Manifest | None = None):
        """``manifest``: ``cfg.manifest`` already read (``fpgaflow board`` checks it against
        the project first), so that the board runs the firmware that was checked."""
        import sim

        self.cfg = cfg
        self.emulator = sim.from_manifest(manifest) if manifest is not None else sim.load(cfg.manifest)
        self.n_inputs = int(np.prod(self.emulator.input_shape))
        self.n_outputs = int(np.prod(self.emulator.output_shape))
        it, ot = self.emulator.input_type, self.emulator.output_type
        self.raw_bytes = max(protocol.raw_bytes_for(it.width, it.signed), protocol.raw_bytes_for(ot.width, ot.signed))
        if cfg.layout is not None:
            n_in, n_out, raw = cfg.layout
            if n_in < self.n_inputs or n_out < self.n_outputs or raw < self.raw_bytes:
                raise ValueError(
                    f"layout {cfg.layout} cannot hold this firmware's fragments "
                    f"({self.n_inputs} inputs, {self.n_outputs} outputs, {self.raw_bytes}-byte raw integers)"
                )
            self.wire = (n_in, n_out, raw)
        else:
            self.wire = (self.n_inputs, self.n_outputs, self.raw_bytes)
        self.injector = Injector(cfg.faults, cfg.source_id, ot)
        self.curve = None
        if cfg.offload:  # a CURVE server: its own key, and the nodes it answers
            if bool(cfg.curve_secret) != bool(cfg.curve_clients):
                raise ValueError("with --offload, --curve-secret and --curve-clients go together")
            if cfg.curve_secret:  # named now, not in a traceback once it serves
                from sim.wire.security import check_clients, load_secret_certificate

                load_secret_certificate(cfg.curve_secret)
                check_clients(cfg.curve_clients, peers="node")
        elif bool(cfg.curve_secret) != bool(cfg.curve_server_key):
            raise ValueError("--curve-secret and --curve-server-key go together")
        elif cfg.curve_secret:
            from sim.wire.security import CurveKeys

            self.curve = CurveKeys.from_files(cfg.curve_secret, cfg.curve_server_key)
        self.readout: Readout | None = None
        if not cfg.offload:  # now: a bad --input is an error naming it (``main``), not a traceback once it streams
            self.readout = Readout(
                self.emulator, source_id=cfg.source_id, seed=cfg.seed, pool=cfg.pool,
                input_file=cfg.input_file, dataset=cfg.dataset, cache=cfg.cache,
            )  # fmt: skip
        self.counts: dict[str, Any] = {
            "generated": 0, "sent_fragments": 0, "sent_messages": 0, "replayed_fragments": 0,
            "reconnects": 0, "offload_requests": 0, "offload_answered": 0, "offload_ignored": 0,
            "offload_fragments": 0, "bad_requests": 0,
        }  # fmt: skip
        self.state = "starting"
        self._stop = False
        self.sender: Sender | None = None
        self._next_status = 0.0
        self.started = time.time()
        self.context = zmq.Context()
        self._offload: tuple[zmq.Socket, Any] | None = None
        try:  # now, each naming its option: they were tracebacks once the board ran
            if cfg.offload:
                self._offload = self._bind_offload()
            self._first_status()
        except BaseException:
            self._close_offload()
            self.context.destroy(linger=0)
            raise

    def _bind_offload(self) -> tuple[zmq.Socket, Any]:
        """The ROUTER the node's offload requests reach (a CURVE server with --curve-secret),
        bound: an address another board (or anything) holds is refused here, naming it."""
        cfg = self.cfg
        sock = self.context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        auth = None
        try:
            if cfg.curve_secret:  # only nodes whose public key is in --curve-clients are answered
                from sim.wire.security import server_curve, start_authenticator

                auth = start_authenticator(self.context, cfg.curve_clients, peers="node")
                server_curve(sock, cfg.curve_secret)
            prepare(sock, cfg.offload)
            sock.bind(cfg.offload)
        except BaseException as exc:
            sock.close(linger=0)
            if auth is not None:
                auth.stop()
            if isinstance(exc, zmq.ZMQError):  # 'Address already in use', as the node says it
                raise ValueError(f"--offload {cfg.offload}: cannot bind ({zmq.strerror(exc.errno)})") from None
            raise
        return sock, auth

    def _close_offload(self) -> None:
        if self._offload is None:
            return
        sock, auth = self._offload
        self._offload = None
        sock.close(linger=0)
        if auth is not None:
            self.counts["curve_refused"] = len(auth.refused)
            auth.stop()

    def _first_status(self) -> None:
        """The status file, written once before the board starts: one it cannot write is
        an error naming --status, not a FileNotFoundError on its .tmp once it streamed."""
        if not self.cfg.status_file:
            return
        path = Path(self.cfg.status_file)
        try:
            self.write_status()
        except OSError as exc:
            if not path.parent.is_dir():
                raise ValueError(f"--status {path}: the folder {path.parent} does not exist") from None
            raise ValueError(f"--status {path}: cannot write it ({exc.strerror or exc})") from None

    # -------------------------------------------------------------- reporting
    def stop(self, *_: Any) -> None:
        self._stop = True
        if self.sender is not None:
            self.sender.stopping = True

    def status(self) -> dict[str, Any]:
        c = dict(self.counts)
        c["faults"] = self.injector.log.counts()
        c["faults"]["stopped"] = int(self.state == "stopped-by-fault")
        return {
            "source": self.cfg.source_id, "manifest": self.emulator.id, "state": self.state,
            "mode": "offload" if self.cfg.offload else "stream", "pid": os.getpid(),
            "started": self.started, "time": time.time(), "counters": c,
            "fault_settings": self.cfg.faults.as_dict(),
        }  # fmt: skip

    def write_status(self, final: bool = False) -> None:
        if not self.cfg.status_file:
            return
        path = Path(self.cfg.status_file)
        if final:  # first: a status that says final has its fault log whole beside it
            ftmp = path.with_name(path.name + ".faults.tmp.npz")
            np.savez(ftmp, **self.injector.log.arrays())
            os.replace(ftmp, path.with_name(path.name + ".faults.npz"))
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({**self.status(), "final": final}, indent=1))
        os.replace(tmp, path)

    def _tick_status(self) -> None:
        now = time.monotonic()
        if now >= self._next_status:
            if self.sender is not None:  # read the connection monitors: unread, their events pile up
                for link in self.sender.links:
                    link.poll()
            self.write_status()
            self._next_status = now + STATUS_EVERY_S

    # -------------------------------------------------------------- streaming
    def _fragments(self, events: np.ndarray, x: np.ndarray, result: np.ndarray) -> np.ndarray:
        n_in, n_out, raw = self.wire
        frags = np.zeros(len(events), protocol.fragment_dtype(n_in, n_out, raw))
        frags["event"] = events
        frags["timestamp_ns"] = time.time_ns()
        frags["flags"] = protocol.RESULT_VALID
        frags["inputs"][:, : self.n_inputs] = x
        frags["result"][:, : self.n_outputs] = result
        return frags

    def stream(self) -> dict[str, Any]:
        cfg = self.cfg
        if not cfg.nodes:
            raise ValueError("a streaming board needs at least one node endpoint (--node)")
        readout = self.readout
        assert readout is not None  # an offload board has none
        n_in, n_out, raw = self.wire
        ring = ReplayRing(protocol.fragment_dtype(n_in, n_out, raw), cfg.replay_capacity) if cfg.acks else None
        source = Sender(
            cfg.source_id, cfg.nodes, n_inputs=n_in, n_outputs=n_out, raw_bytes=raw,
            manifest_id=self.emulator.id, batch=cfg.batch, sndhwm=cfg.sndhwm, max_queued=cfg.max_queued,
            context=self.context,
            on_sent=ring.sent if ring is not None else None, curve=self.curve,
        )  # fmt: skip
        self.sender = source
        acks = Acks(cfg.acks, self.context, cfg.ack_index, curve=self.curve) if cfg.acks else None
        watch = source.links if cfg.acks else []  # the node came back: send what it did not acknowledge
        delayed: list[tuple[float, int, np.ndarray]] = []  # (due, tiebreak, fragments)
        faults, inj = cfg.faults, self.injector
        first = cfg.first_event
        end = first + cfg.events if cfg.events is not None else None
        if faults.stop_after is not None:
            end = first + faults.stop_after if end is None else min(end, first + faults.stop_after)
        next_event = first
        if cfg.start_at is not None:
            self.state = "waiting"
            self.write_status()
            while time.time() < cfg.start_at and not self._stop:
                time.sleep(min(0.01, max(cfg.start_at - time.time(), 0.0)))
        t0 = time.monotonic()
        if cfg.start_at is not None:  # a board that started late catches up with the shared trigger
            t0 -= max(time.time() - cfg.start_at, 0.0)
        done_at: float | None = None
        self.state = "running"

        send = source.send
        while not self._stop:
            now = time.monotonic()
            if end is None or next_event < end:
                due = next_event + cfg.block if cfg.rate <= 0 else first + int((now - t0) * cfg.rate) + 1
                if end is not None:
                    due = min(due, end)
                n = min(due - next_event, cfg.block)
                if n > 0:
                    events = np.arange(next_event, next_event + n, dtype=np.uint64)
                    x, result = readout.block(events)
                    frags = self._fragments(events, x, result)
                    plan = inj.plan(events) if faults.any else None
                    if plan is not None:
                        frags = self._inject(frags, plan, delayed, now)
                    send(frags)
                    if plan is not None and plan.duplicate.any():
                        send(frags[plan.duplicate[~(plan.drop | plan.delay)]])
                    next_event += n
                    self.counts["generated"] += n
            while delayed and delayed[0][0] <= now:
                send(heapq.heappop(delayed)[2])
            if acks is not None:
                for ev in acks.poll():
                    ring.ack(ev)
                for k, w in enumerate(watch):
                    if w.came_back():
                        again = ring.unacked(k, len(source.sockets))
                        self.counts["reconnects"] += 1
                        if len(again):
                            source.send_route(k, again)
                            ring.replayed += len(again)
            source.flush()
            self.counts["sent_fragments"] = source.sent_fragments
            self.counts["sent_messages"] = source.sent_messages
            self.counts["queued_messages"] = source.queued
            if ring is not None:
                self.counts["replayed_fragments"] = ring.replayed
                self.counts["unacked"] = ring.pending
                self.counts["replay_overwritten"] = ring.overwritten
            self._tick_status()
            if end is not None and next_event >= end and not delayed and not source.queued:
                done_at = done_at or time.monotonic()
                if ring is None or ring.pending == 0 or time.monotonic() - done_at > cfg.ack_wait_s:
                    break
                time.sleep(0.005)  # keep answering reconnects until the nodes acknowledged everything
            elif cfg.rate > 0 and (end is None or next_event < end):
                # wait until a full message of events is due (at most 5 ms): one fragment per
                # message would cost the node a receive per fragment
                wait = (next_event - first + cfg.batch) / cfg.rate - (time.monotonic() - t0)
                time.sleep(min(max(wait, 0.0), 0.005))
            elif delayed:
                time.sleep(min(max(delayed[0][0] - time.monotonic(), 0.0), 0.005))
            elif source.queued:
                time.sleep(0.001)  # a node is away or slow: its queue waits
        if faults.stop_after is not None and next_event >= first + faults.stop_after:
            self.state = "stopped-by-fault"
            source.close(linger_ms=0)  # a dead board: whatever is queued dies with it
        else:
            self.state = "finished" if not self._stop else "stopped"
            source.close()
        if source.undelivered:  # a node that never took the connection: nothing reached it
            self.state = "undelivered"
            self.counts["undelivered"] = [{"node": ep, "why": why} for ep, why in source.undelivered]
            for ep, why in source.undelivered:
                print(f"board {cfg.source_id}: error: nothing reached {ep}: {why}", file=sys.stderr)
        if acks is not None:
            acks.close()
        self.counts["sent_fragments"] = source.sent_fragments
        self.counts["sent_messages"] = source.sent_messages
        return self._finish()

    def _inject(self, frags: np.ndarray, plan, delayed: list, now: float) -> np.ndarray:
        inj, ev = self.injector, frags["event"]
        log = inj.log
        log.add("drop", ev[plan.drop])
        log.add("delay", ev[plan.delay])
        log.add("duplicate", ev[plan.duplicate & ~(plan.drop | plan.delay)])
        log.add("bitflip", ev[plan.bitflip])
        log.add("error", ev[plan.error])
        result = frags["result"][:, : self.n_outputs].astype(np.int64)
        corrupt = np.flatnonzero(plan.bitflip | plan.error)
        inj.corrupt(result, corrupt, ev[corrupt])
        frags["result"][:, : self.n_outputs] = result
        frags["flags"][plan.error] |= protocol.ERROR
        if plan.delay.any():
            due = now + self.cfg.faults.delay_ms / 1e3
            heapq.heappush(delayed, (due, int(ev[plan.delay][0]), frags[plan.delay].copy()))
        return frags[~(plan.drop | plan.delay)]

    # ---------------------------------------------------------------- offload
    def serve_offload(self) -> dict[str, Any]:
        """Answer the node's offload requests (DEALER -> this ROUTER) until stopped."""
        faults = self.cfg.faults
        assert self._offload is not None  # bound when the board was made
        sock = self._offload[0]
        late: list[tuple[float, int, list[bytes]]] = []
        c = self.counts
        try:
            poller = zmq.Poller()
            poller.register(sock, zmq.POLLIN)
            self.state = "running"
            while not self._stop:
                timeout = 50 if not late else max(0, min(50, int((late[0][0] - time.monotonic()) * 1e3)))
                if poller.poll(timeout):
                    while True:
                        try:
                            identity, request = sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        except ValueError:
                            c["bad_requests"] += 1
                            continue
                        c["offload_requests"] += 1
                        if faults.offload_silent_after is not None and c["offload_answered"] + len(late) >= (
                            faults.offload_silent_after
                        ):
                            c["offload_ignored"] += 1
                            continue
                        try:
                            reply = self.answer(request)
                        except protocol.ProtocolError:
                            c["bad_requests"] += 1
                            continue
                        due = time.monotonic() + faults.offload_delay_ms / 1e3
                        heapq.heappush(late, (due, c["offload_requests"], [identity, reply]))
                now = time.monotonic()
                while late and late[0][0] <= now:
                    sock.send_multipart(heapq.heappop(late)[2])
                    c["offload_answered"] += 1
                self._tick_status()
        finally:
            self._close_offload()
        self.state = "stopped"
        return self._finish()

    def answer(self, request: bytes) -> bytes:
        """The reply to one offload request: the firmware's result for each fragment."""
        h, frags = protocol.decode(request)
        if h.type != protocol.OFFLOAD_REQUEST:
            raise protocol.ProtocolError("bad-type", f"expected an offload request, got message type {h.type}")
        if h.n_inputs < self.n_inputs:
            raise protocol.ProtocolError("bad-descriptor", f"{h.n_inputs} inputs, the firmware takes {self.n_inputs}")
        x = frags["inputs"].astype(np.int64).reshape(len(frags), -1)[:, : self.n_inputs]
        raw, flags = compute(self.emulator, x)  # inputs the firmware cannot hold: ERROR, no result
        self.counts["offload_fragments"] += len(frags)
        n_out = self.wire[1]
        out = np.zeros(len(frags), protocol.fragment_dtype(0, n_out, h.raw_bytes))
        out["event"] = frags["event"]
        out["timestamp_ns"] = time.time_ns()
        out["flags"] = flags
        out["result"][:, : self.n_outputs] = raw
        return protocol.encode(
            protocol.OFFLOAD_REPLY, self.cfg.source_id, h.sequence, out, n_inputs=0, n_outputs=n_out,
            raw_bytes=h.raw_bytes, manifest=h.manifest, sent_ns=time.time_ns(),
        )  # fmt: skip

    # ------------------------------------------------------------------ common
    def _finish(self) -> dict[str, Any]:
        self.write_status(final=True)
        self.context.destroy(linger=0)
        return self.status()

    def run(self) -> dict[str, Any]:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        return self.serve_offload() if self.cfg.offload else self.stream()


def main(cfg: BoardConfig) -> int:
    """Run a board until it has sent its events or is stopped; exit status."""
    try:
        board = Board(cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"board {cfg.source_id}: error: {exc}", file=sys.stderr)
        return 2
    status = board.run()
    return 1 if status["state"] == "undelivered" else 0
