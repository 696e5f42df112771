"""The node daemon: receive, build, fallback and sinks in one thread per process.

``Node`` is one builder worker: it polls its input sockets, drains each ready socket in
a batch of non-blocking receives, validates the drain (as one array when the messages
are alike), builds events, runs the fallback stage and writes/publishes what leaves.
``node.supervisor.Supervisor`` runs several workers as processes (fragments routed by event number, see
``sim.wire.source``) under one status file and one Prometheus endpoint.

Run it with ``fpgaflow node --config node.toml`` or ``python -m node.daemon node.toml``;
embed it with ``Node(config).run()`` (returns the final counters) or ``start()`` /
``stop()`` for a subprocess.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from node import config as config_mod
from node import heap, preflight
from node import metrics as metrics_mod
from node.builder import WHY_BAD_FLAGS, WHY_LATE, Builder, Late, missing_sources
from node.fallback import Fallback
from node.metrics import WAITING_LOG_S, Log, Metrics, write_status_logged
from node.orphan import SupervisorGone, SupervisorWatch
from node.sequences import Sequences
from node.sinks import (
    LATE_CHUNK_BYTES,
    NO_FILES_WRITTEN,
    REBUILT,
    REBUILT_NO_FILES,
    PrefixInUse,
    Publisher,
    RotatingFiles,
    late_records,
    sink_prefixes,
    tmp_files_found,
)
from node.supervisor import Supervisor
from sim.wire import protocol
from sim.wire.endpoint import prepare

EXPIRE_EVERY_NS = 5_000_000  # how often open events are checked against the timeout
# a socket whose last message began this many events beyond another ready socket's waits its
# turn, MAX_SKIPS turns in a row at most; a turn is TURN messages (Node._drain)
LEAD_EVENTS = 64
MAX_SKIPS = 16
TURN = 8  # messages a socket gives in its turn
# no drain starts sooner than this after the inputs are bound: senders that kept sending
# while the node was down (restarted) each reconnect on their own timer (ZeroMQ retries
# every reconnect_ivl + up to as much again: 100-200 ms by default) and hand over their
# backlog at once; read as they came, the first ones' backlogs ran thousands of events
# ahead of the last one's, and the window evicted what that one's backlog was about to
# complete.  Senders that connect later (a run starting) find the node reading at once.
START_GRACE_S = 0.25
RECEIVE_BUFFER = 16 << 20  # bytes one drain may take (beyond room for one maximal message)
# at a stop (see Node._last_intake): the inputs are drained until nothing comes for QUIET_S;
# senders still sending after STILL_SENDING_S are cut off; and it all ends by LAST_INTAKE_S
QUIET_S, STILL_SENDING_S, LAST_INTAKE_S = 0.05, 1.0, 5.0
# an input socket takes messages up to this many times security.max_message_bytes, so that
# one too long is counted (its first bytes land in the receive buffer, the rest is cut);
# at the limit itself ZeroMQ dropped the sender's connection, and with it the message and
# those behind it, counted nowhere
OVERSIZE_KEPT = 4
# counters the loop adds to as things happen (the others are copied from counts each snapshot)
COUNTED = ("received_messages", "received_bytes", "received_fragments", "drains", "malformed_messages",
           "sequence_resets", "events_out", "events_complete", "events_incomplete", "late_fragments",
           "status_write_errors", "curve_refused", "refused_fragments")  # fmt: skip


def _load_manifest(cfg: config_mod.Config, path: str, key: str) -> Any:
    """The emulator of a manifest the configuration names; a folder that holds none is an
    error naming the key (a project folder given for its build/emulator said only "no
    manifest here (run `fpgaflow synth` ...)")."""
    import sim
    from sim.manifest import ManifestError

    try:
        return sim.load(cfg.resolve(path))
    except ManifestError as exc:
        raise config_mod.ConfigError(f"{key}: {exc}") from None


def _fallback_emulator(cfg: config_mod.Config) -> Any:
    """The emulator of ``fallback.manifest`` (or, boards of different firmwares padded to
    one layout, of ``fallback.source_manifests``); None without one."""
    if cfg.fallback.manifest:
        return _load_manifest(cfg, cfg.fallback.manifest, "fallback.manifest")
    if cfg.fallback.source_manifests:
        from sim.per_source import PerSource

        paths = cfg.fallback.source_manifests
        return PerSource([_load_manifest(cfg, m, f"fallback.source_manifests[{i}]") for i, m in enumerate(paths)])
    return None


def _fragment_layout(cfg: config_mod.Config, emulator: Any) -> tuple[int, int, int]:
    f = cfg.fragment
    n_in, n_out, raw = f.n_inputs, f.n_outputs, f.raw_bytes
    if emulator is not None:
        e_in, e_out = int(np.prod(emulator.input_shape)), int(np.prod(emulator.output_shape))
        for name, given, want in (("n_inputs", n_in, e_in), ("n_outputs", n_out, e_out)):
            if given is not None and given != want:
                raise config_mod.ConfigError(f"fragment.{name} = {given}, but the manifest's firmware has {want}")
        n_in, n_out = e_in, e_out
        need = max(
            protocol.raw_bytes_for(emulator.input_type.width, emulator.input_type.signed),
            protocol.raw_bytes_for(emulator.output_type.width, emulator.output_type.signed),
        )
        if raw is not None and raw < need:
            raise config_mod.ConfigError(f"fragment.raw_bytes = {raw} cannot hold the firmware's types ({need} needed)")
        raw = raw or need
    if n_in is None or n_out is None:
        raise config_mod.ConfigError("fragment.n_inputs and fragment.n_outputs are needed without fallback.manifest")
    return n_in, n_out, raw or 4


class _SinkMemory:
    """The builder's ``BlockMemory``: the events sink's arena, at the file rows after
    every built event not yet handed to the sink (in the builder, or held by the fallback)."""

    def __init__(self, sink: RotatingFiles, builder: Builder, fallback: Fallback):
        self.sink, self.builder, self.fallback = sink, builder, fallback

    def reserve(self, n: int) -> np.ndarray | None:
        ahead = sum(len(b) for b in self.builder.out) + self.fallback.held()
        return self.sink.reserve(ahead, n)

    def give_back(self, records: np.ndarray) -> None:
        self.sink.arena.give_back(records)


class Node:
    """One builder worker (the whole node when ``node.workers`` is 1)."""

    def __init__(
        self,
        cfg: config_mod.Config,
        worker: int = 0,
        *,
        status_file: str | Path | None = None,
        serve_metrics: bool = True,
        context: zmq.Context | None = None,
        supervisor: SupervisorWatch | None = None,
    ):
        """``supervisor``: a supervisor's worker stops once that is gone (``node.orphan``).
        Starting with no input bound yet, ``SupervisorGone`` is raised out of the step it
        is in, and the start is abandoned as a failed one is; later the loop stops in
        order (at its start if the supervisor died while the status file was written)."""
        try:
            self._setup(cfg, worker, status_file, serve_metrics, context, supervisor)
        except BaseException as exc:
            if supervisor is not None:
                supervisor.raising = False  # the cleaning up is not to be cut short
            # a start that failed (a busy port, say) leaves no socket or thread behind
            self._abandon(cut_short=isinstance(exc, SupervisorGone))
            raise

    def _abandon(self, cut_short: bool = False) -> None:
        """Close what a failed start had opened: else the caller's ZeroMQ context (an
        embedding program's) would wait for it in ``term()`` for ever.  ``cut_short``: by
        ``SupervisorGone``, which can come between a socket made and kept, so that the
        node's own context is destroyed (every socket closed) rather than waited for."""
        for sock in getattr(self, "inputs", None) or []:
            sock.close(linger=0)
        for sink in (getattr(self, "events_sink", None), getattr(self, "late_sink", None)):
            if sink is not None:  # nothing written yet: lets go of its prefix for the next start
                sink.close()
        for part in (getattr(self, "publisher", None), getattr(self, "boards", None)):
            if part is not None:
                part.close()
        if getattr(self, "auth", None) is not None:
            self.auth.stop()
        if getattr(self, "prometheus", None) is not None:
            self.prometheus[0].shutdown()
        self._let_go_of_status()
        if getattr(self, "_own_context", False):
            if cut_short:
                self.context.destroy(linger=0)
            else:
                self.context.term()

    def _let_go_of_status(self) -> None:
        """Release the status file (``metrics.hold_status``) for the next node; once."""
        if getattr(self, "_status_lock", -1) >= 0:
            os.close(self._status_lock)
            self._status_lock = -1

    def _tell_recovery(self, sink: RotatingFiles) -> None:
        """Log what a sink's start rebuilt of a killed predecessor's files, and what it left,
        since it last told (``RotatingFiles.untold``): the sink's ``on_recovery``, called as
        each file is done, so that a start cut short has named every file it rebuilt."""
        recovered, removed_empty, removed_partial, unrecovered = sink.untold()
        if recovered:  # a killed predecessor's files, rebuilt (node.chunklog)
            self.log("warning", "recovered-files", files=[str(f) for f in recovered],
                     events=[sink.recovered_events[f] for f in recovered])  # fmt: skip
        if removed_empty:  # a killed writer's ROOT .tmp with no entry in it (node.rootfile)
            self.log("info", "empty-files-removed", files=[str(f) for f in removed_empty])
        if removed_partial:  # a rebuild a start cut short, beside the .tmp and log it came from
            self.log("info", "partial-rebuilds-removed", files=[str(f) for f in removed_partial])
        for tmp, reason in unrecovered:  # left as they are, or kept as .damaged: why
            self.log("warning", "unrecovered-file", file=str(tmp), reason=reason)
        self._unrecovered += len(unrecovered)
        self._recovered[sink.tree] += sum(sink.recovered_events[f] for f in recovered)

    def _recover_unowned(self, directory: Path) -> None:
        """Rebuild (or name) this node's files that no sink of it takes now, as their own
        sink's start would: a killed worker's of an index beyond ``node.workers`` (the node
        ran with more), late files with ``sink.late`` off.  Each start looked only at its own
        sinks' prefixes, so these stayed ``.tmp`` for good, never named."""
        cfg, s = self.cfg, self.cfg.sink
        taken = {p for k in range(cfg.node.workers) for p in sink_prefixes(cfg.node.name, k)[: 2 if s.late else 1]}
        for prefix in sorted(tmp_files_found(directory, cfg.node.name).keys() - taken):
            late = not prefix.startswith(f"{cfg.node.name}-w")
            try:
                sink = RotatingFiles(
                    directory, prefix, fmt=s.format, tree="late" if late else "events", direct_io=False,
                    fsync=s.fsync, chunk_bytes=LATE_CHUNK_BYTES if late else None, on_recovery=self._tell_recovery,
                )  # fmt: skip
            except PrefixInUse:  # a live sink has them after all (a node of this name with more workers)
                continue
            sink.close()

    def _name_left_behind(self, directory: Path) -> None:
        """A node that writes no files (``sink.write_files = false``) rebuilds none either:
        it names the ``.tmp`` files an earlier run of its name left in ``sink.directory``
        (killed, then started to publish only), which stayed there unnamed, and touches
        nothing there (no lock, no rebuild)."""
        for _, files in sorted(tmp_files_found(directory, self.cfg.node.name).items()):
            for tmp in files:
                why = REBUILT_NO_FILES if tmp.name.endswith(REBUILT) else NO_FILES_WRITTEN
                self.log("warning", "unrecovered-file", file=str(tmp), reason=why)
                self._unrecovered += 1

    def _setup(self, cfg: config_mod.Config, worker: int, status_file: str | Path | None, serve_metrics: bool,
               context: zmq.Context | None, supervisor: SupervisorWatch | None) -> None:  # fmt: skip
        self.cfg, self.worker = cfg, worker
        self.log = Log(f"{cfg.node.name}/{worker}", cfg.node.log_level)
        # process-wide, once: the event blocks of every drain reuse freed memory, faulted in now (node.heap)
        self.heap_kept = heap.keep_freed_memory()
        self.metrics = Metrics()
        for name in COUNTED:  # every series from the start: a first increment is a rate(), not a new series
            self.metrics.c[name] = 0
        self.context = context or zmq.Context()
        self._own_context = context is None
        self._stop = False
        self.supervisor = supervisor  # a supervisor's worker: stop once the supervisor is gone
        self.status_file = Path(status_file) if status_file else cfg.resolve(cfg.node.status_file)
        self._status_lock = -1  # the status file's (metrics.hold_status): a supervisor's worker's is the supervisor's
        if supervisor is None:  # first: a node refused for it must not have touched anything of the other's
            self._status_lock = metrics_mod.hold_status(self.status_file)
        if cfg.security.curve_secret_key:  # read before any socket opens: a bad one is named, not met half-open
            from sim.wire.security import load_secret_certificate

            try:
                load_secret_certificate(cfg.resolve(cfg.security.curve_secret_key))
            except ValueError as exc:
                raise config_mod.ConfigError(f"security.curve_secret_key: {exc}") from None

        self.emulator = _fallback_emulator(cfg)
        manifest = protocol.manifest_bytes(self.emulator.id) if cfg.fallback.manifest else bytes(8)
        self.n_inputs, self.n_outputs, self.raw_bytes = _fragment_layout(cfg, self.emulator)
        self.limits = protocol.Limits(
            max_message_bytes=cfg.security.max_message_bytes,
            n_inputs=self.n_inputs,
            n_outputs=self.n_outputs,
            raw_bytes=self.raw_bytes,
            manifest=manifest if self.emulator is not None and self.emulator.id else None,
        )
        self.sources = list(cfg.node.sources)
        self.source_ids = np.array(self.sources, np.uint16)
        self.source_index = np.full(65536, -1, np.int64)
        self.source_index[self.source_ids] = np.arange(len(self.sources))
        self.sequences = Sequences()

        one = protocol.HEADER_SIZE + protocol.fragment_dtype(self.n_inputs, self.n_outputs, self.raw_bytes).itemsize
        if one > cfg.security.max_message_bytes:  # every message would be refused
            raise config_mod.ConfigError(
                f"security.max_message_bytes = {cfg.security.max_message_bytes}: a message of one fragment "
                f"({self.n_inputs} inputs, {self.n_outputs} results of {self.raw_bytes} bytes) takes {one} bytes"
            )
        b = cfg.builder
        preflight.check_ring_fits(
            len(self.sources), self.n_inputs, self.n_outputs, self.raw_bytes, b.window, cfg.node.workers
        )
        self.builder = Builder(
            len(self.sources), self.n_inputs, self.n_outputs, self.raw_bytes,
            window=b.window, timeout_s=b.timeout_s, max_event_jump=b.max_event_jump,
            max_block_bytes=cfg.security.max_message_bytes, stride=cfg.node.workers, worker=worker,
        )  # fmt: skip
        self.boards = None
        if cfg.offload.boards:
            from node.offload import Boards

            o = cfg.offload
            preflight.check_offload_fits(
                o.batch, self.n_inputs, self.n_outputs, self.raw_bytes, cfg.security.max_message_bytes
            )
            curve = None
            if o.board_keys:
                from sim.wire.security import CurveKeys

                node_key = cfg.resolve(cfg.security.curve_secret_key)
                curve = [CurveKeys.from_files(node_key, cfg.resolve(k)) for k in o.board_keys]
            self.boards = Boards(
                o.boards, n_inputs=self.n_inputs, n_outputs=self.n_outputs, raw_bytes=self.raw_bytes,
                manifest=manifest, max_in_flight=o.max_in_flight, batch=o.batch, timeout_s=o.timeout_ms / 1e3,
                retry_s=o.retry_s, context=self.context, node_id=cfg.node.id,
                max_message_bytes=cfg.security.max_message_bytes, note=self.log.limited, curve=curve,
            )  # fmt: skip
        fb = cfg.fallback
        self.fallback = Fallback(
            self.emulator, validate_every=fb.validate_every, batch=fb.batch, max_delay_s=fb.max_delay_ms / 1e3,
            boards=self.boards, on_mismatch=self._mismatch, on_bad_inputs=self._bad_inputs,
        )  # fmt: skip
        s = cfg.sink
        attrs = {
            "node": cfg.node.name, "worker": worker, "sources": self.sources, "protocol_version": protocol.VERSION,
            "manifest": self.emulator.id if self.emulator is not None else "",
        }  # fmt: skip
        directory = cfg.resolve(s.directory)
        # files the start left as .tmp or kept as .damaged (gauge sink_unrecovered_files): only a
        # log line said so, and a node watched by its metrics and status looked whole
        self._unrecovered = 0
        # records the start rebuilt from a killed predecessor's files, per sink (counters
        # events_recovered, late_recovered): only the recovered-files lines told them
        self._recovered = {"events": 0, "late": 0}
        if s.write_files:  # now, not at the first flush: a directory that cannot be written would lose events then
            try:
                directory.mkdir(parents=True, exist_ok=True)
                preflight.check_writable(directory)
            except OSError as exc:
                raise config_mod.ConfigError(f"sink.directory {directory}: cannot write there ({exc})") from None
        try:
            self.events_sink = None if not s.write_files else RotatingFiles(
                directory, sink_prefixes(cfg.node.name, worker)[0], fmt=s.format, tree="events",
                max_records=s.max_events_per_file, max_seconds=s.max_seconds_per_file, attrs=attrs,
                direct_io=s.direct_io, fsync=s.fsync, on_recovery=self._tell_recovery,
            )  # fmt: skip
            # (each sink's start logs each file it rebuilt once it has its final name: a start cut
            # short, killed or refused, at a later file or at the late sink, has named it)
            self.late_sink = (
                RotatingFiles(directory, sink_prefixes(cfg.node.name, worker)[1], fmt=s.format, tree="late",
                              max_records=s.max_events_per_file, max_seconds=s.max_seconds_per_file, attrs=attrs,
                              direct_io=s.direct_io, fsync=s.fsync, chunk_bytes=LATE_CHUNK_BYTES,
                              on_recovery=self._tell_recovery)
                if s.late and s.write_files else None
            )  # fmt: skip
        except PrefixInUse as exc:  # a second node of this name on the folder, or a node still stopping
            raise config_mod.ConfigError(exc.refusal(cfg.node.name)) from None
        self.sinks = [sink for sink in (self.events_sink, self.late_sink) if sink is not None]
        self._waiting_since: dict[Path, float] = {}  # file -> since when its sink waits for room
        self._waiting_logged = 0.0
        self._waiting_told_stop = False  # logged since the stop: a second SIGTERM gives up
        self._waiting_status = 0.0  # when _report_waiting last wrote the status file
        self._rated: tuple[float, int, int] | None = None  # (monotonic s, received, out) at the rates' last update
        self.failed = False  # a sink could not write everything: the exit status says so
        self._reanchors = 0  # the builder's re-anchors logged so far
        self._reanchor_evicted = 0  # evictions told by builder-reanchored lines (not the window's doing)
        self._timed_out_missing = 0  # sources (bits) missing from events timed out since the last line
        self._failed_sinks: list[RotatingFiles] = []
        for sink in self.sinks:
            sink.on_wait = self._report_waiting
        if worker == 0 and s.write_files:
            self._recover_unowned(directory)
        elif worker == 0 and directory.is_dir():
            self._name_left_behind(directory)
        self.auth = None
        if cfg.security.curve_secret_key:  # before any socket binds: none takes a client unchecked
            from sim.wire.security import start_authenticator

            self.auth = start_authenticator(self.context, cfg.resolve(cfg.security.curve_clients))
        self.publisher = None
        if s.publish:
            size = protocol.HEADER_SIZE + self.builder.event_dtype.itemsize
            if size > cfg.security.max_message_bytes:  # every EVENTS message would be over the limit
                raise config_mod.ConfigError(
                    f"security.max_message_bytes = {cfg.security.max_message_bytes}: sink.publish sends built "
                    f"events, and one message of one event ({len(self.sources)} sources) takes {size} bytes"
                )
            endpoint = config_mod.worker_endpoint(s.publish, worker)
            try:
                self.publisher = Publisher(endpoint, self.context, cfg.node.id,
                                           max_message_bytes=cfg.security.max_message_bytes,
                                           manifest=self.limits.manifest or bytes(8),
                                           curve_secret=cfg.resolve(cfg.security.curve_secret_key)
                                           if cfg.security.curve_secret_key else None)  # fmt: skip
            except zmq.ZMQError as exc:
                raise config_mod.ConfigError(f"sink.publish {endpoint}: cannot bind ({exc})") from None
        # build the events where the files' chunks are written from (node.arena); not where
        # they are published too: those blocks carry room for a message header instead
        if (
            self.events_sink is not None
            and self.publisher is None
            and self.events_sink.use_arena(self.builder.event_dtype)
        ):
            self.builder.memory = _SinkMemory(self.events_sink, self.builder, self.fallback)
            # in the order built, so that they reach the rows they were built for; not with
            # boards, whose answers (or time-outs) would hold every later event back
            self.fallback.keep_order = self.boards is None
        # one receive buffer, reused by every drain: no allocation per message
        self._buf = np.empty(cfg.security.max_message_bytes + RECEIVE_BUFFER, np.uint8)
        self._buf.fill(0)  # touched now: its first drains would fault it in page by page
        self._buf_view = memoryview(self._buf)
        if supervisor is not None:  # from the first input on, what ZeroMQ takes in is the node's: a
            supervisor.raising = False  # supervisor that dies now stops the loop in order (drained, not dropped)
        self.inputs = self._open_inputs()
        self._bound_ns = time.monotonic_ns()  # (no drain before START_GRACE_S from here)
        self._last_event = dict.fromkeys(self.inputs, -1)  # per input: its last message's first event
        self._skipped = dict.fromkeys(self.inputs, 0)  # per input: turns skipped in a row (see _drain)
        # messages cut for their size in this drain: (place among its messages, first bytes, size),
        # refused in that order by _ingest, so that their sequence numbers are taken in turn
        self._cut: list[tuple[int, bytes, int]] = []
        self.prometheus = None
        self.published = self.snapshot()
        if serve_metrics and cfg.metrics.port:
            # the HTTP thread reads the snapshot the loop last published, never live state
            self.prometheus = metrics_mod.serve_prometheus(lambda: self.published, cfg.metrics.host, cfg.metrics.port)
        try:  # last, once all is ready: a status file that cannot be written is an error now, not a crash mid-run
            # (as write_status_logged does: `status` tells a killed node by them)
            self.published["pid"], self.published["host"] = os.getpid(), socket.gethostname()
            with supervisor.interrupting("writing its status file") if supervisor else contextlib.nullcontext():
                metrics_mod.write_status(self.status_file, self.published)  # (a file on a mount that hangs)
        except SupervisorGone as gone:  # inputs bound: run() stops at once, in order (drains what ZeroMQ took in)
            self.log("error", "supervisor-gone", parent=gone.pid, starting=True, during=gone.during)
            self._stop = True
        except OSError as exc:
            raise config_mod.ConfigError(f"node.status_file {self.status_file}: cannot write it ({exc})") from None

    # ------------------------------------------------------------------ sockets
    def _open_inputs(self) -> list[zmq.Socket]:
        socks = []
        self._left: list[tuple[str, bool]] = []  # per input: (endpoint, bound), to leave at a stop
        for inp in self.cfg.inputs:
            sock = self.context.socket(zmq.PULL if inp.type == "pull" else zmq.SUB)
            try:
                left = self._open_input(sock, inp)
            except BaseException:
                for s in (*socks, sock):  # the ones opened so far too: a failed start leaves nothing open
                    s.close(linger=0)
                raise
            socks.append(sock)
            self._left.append((left, inp.bind))
        return socks

    def _open_input(self, sock: zmq.Socket, inp: config_mod.Input) -> str:
        """Set up one input socket and bind or connect it; the endpoint to leave at a stop."""
        sec = self.cfg.security
        sock.setsockopt(zmq.RCVHWM, inp.hwm)
        # a message up to OVERSIZE_KEPT x the limit is taken, counted oversize and let go
        # (the connection stays); ZeroMQ drops the peer's connection beyond that
        sock.setsockopt(zmq.MAXMSGSIZE, OVERSIZE_KEPT * sec.max_message_bytes)
        sock.setsockopt(zmq.LINGER, 0)
        prepare(sock, inp.endpoint)
        if inp.type == "sub":
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        if sec.curve_secret_key:
            from sim.wire.security import server_curve

            server_curve(sock, self.cfg.resolve(sec.curve_secret_key))
        endpoint = config_mod.worker_endpoint(inp.endpoint, self.worker)
        try:
            (sock.bind if inp.bind else sock.connect)(endpoint)
        except zmq.ZMQError as exc:
            verb = "bind" if inp.bind else "connect"
            raise config_mod.ConfigError(f"input {endpoint}: cannot {verb} ({exc})") from None
        return sock.last_endpoint.decode() if inp.bind else endpoint

    # ------------------------------------------------------------------- intake
    def _drain(self, socks: list[zmq.Socket]) -> None:
        """Receive what is waiting on the ready sockets straight into the reusable receive
        buffer, end to end, and hand it to ``_ingest`` as one drain.

        With several sockets (one per board, or a SUB per publishing board) each gives a few
        messages in turn (``TURN``), up to ``drain_max`` each, so that an event's fragments are
        built together, straight into the records it leaves in (drained socket by socket,
        every event went through the ring).  A socket more than ``LEAD_EVENTS`` ahead of
        another that has messages waiting skips its turn, so boards that drifted apart (one
        ran on while another's sender waited for a core) are read back into step: a fair
        queue would keep the lead for good, and every event would wait in the ring for its
        last fragment (measured: 14% more built events/s from 4 free-running senders)."""
        buf, mv = self._buf, self._buf_view
        limit = self.limits.max_message_bytes
        stop_at = len(buf) - limit  # room for one more of any allowed size
        drain_max = self.cfg.node.drain_max
        ends: list[int] = []
        pos = 0
        try:  # what was received is built even if the socket fails mid-drain (a context terminated)
            if len(socks) == 1:  # the usual configuration: no turns to take
                sock = socks[0]
                try:
                    for _ in range(drain_max):
                        n = sock.recv_into(mv[pos:], flags=zmq.NOBLOCK)
                        if n > limit:  # its first bytes are here, the rest was cut: counted, let go (_ingest)
                            self._cut.append((len(ends), bytes(mv[pos : pos + protocol.HEADER_SIZE]), n))
                            continue
                        pos += n  # never truncated: n <= max_message_bytes <= room left
                        ends.append(pos)
                        if pos > stop_at:
                            break
                except zmq.Again:
                    pass
            else:
                last, skipped = self._last_event, self._skipped
                turn = min(TURN, drain_max)
                active, turns, max_turns = list(socks), 0, drain_max // turn
                while active and turns < max_turns and pos <= stop_at:
                    low = min(last[sock] for sock in active) + LEAD_EVENTS
                    still = []
                    for sock in active:
                        # ahead of a socket with more waiting: wait a turn (a few at most in a row,
                        # so one garbage event number cannot hold a socket back for long)
                        if last[sock] > low and skipped[sock] < MAX_SKIPS:
                            skipped[sock] += 1
                            still.append(sock)
                            continue
                        skipped[sock] = 0
                        start = -1
                        try:
                            for _ in range(turn):  # a few messages a turn: the bookkeeping is per turn
                                n = sock.recv_into(mv[pos:], flags=zmq.NOBLOCK)
                                if n > limit:  # cut: counted, let go (see above)
                                    self._cut.append((len(ends), bytes(mv[pos : pos + protocol.HEADER_SIZE]), n))
                                    continue
                                start, pos = pos, pos + n
                                ends.append(pos)
                                if pos > stop_at:
                                    break
                            still.append(sock)
                        except zmq.Again:
                            pass  # empty for now: its turns are over
                        head = start + protocol.HEADER_SIZE  # the last message's first fragment's event
                        if start >= 0 and pos - head >= 8 and mv[start : start + 4] == protocol.MAGIC:
                            last[sock] = int.from_bytes(mv[head : head + 8], "little")  # (checked later)
                        if pos > stop_at:
                            break
                    active, turns = still, turns + 1
        finally:
            if ends or self._cut:
                self._ingest(ends)

    def _ingest(self, ends: list[int]) -> None:
        """Validate and build one drain: messages ``buf[ends[i-1]:ends[i]]`` (and refuse the
        ones cut for their size, in their places among them)."""
        cut, self._cut = self._cut, []
        if not ends:
            for _, head, size in cut:
                self._oversize(head, size)
            return
        c = self.metrics.c
        n = len(ends)
        c["received_messages"] += n
        c["drains"] += 1
        c["received_bytes"] += ends[-1]
        if "first_message_time" not in self.metrics.g:
            self.metrics.g["first_message_time"] = time.time()
        length = ends[0]
        if not cut and length and ends[-1] == length * n and ends == list(range(length, length * n + 1, length)):
            try:
                fast = protocol.decode_same_length(self._buf_view[: ends[-1]], n, length, self.limits)
            except protocol.ProtocolError:
                fast = None  # the slow path below finds and counts the bad ones
            if fast is not None:
                hd, frags = fast
                sidx = self.source_index[hd["source"]]
                if (sidx >= 0).all():
                    self._sequences(hd["source"], hd["sequence"])
                    c["received_fragments"] += frags.size
                    self.builder.add(np.repeat(sidx, frags.shape[1]), frags)
                    return
        starts = [0, *ends[:-1]]
        msgs = [self._buf_view[a:b] for a, b in zip(starts, ends, strict=True)]
        good_idx, good = [], []
        cut.reverse()  # popped from the end, oldest first
        for i, m in enumerate(msgs):
            while cut and cut[-1][0] == i:
                _, head, size = cut.pop()
                self._oversize(head, size)
            try:
                h, frags = protocol.decode(m, self.limits, check=False)  # each fragment judged below
                if h.type != protocol.FRAGMENTS:
                    raise protocol.ProtocolError("unexpected-type", f"byte 5: message type {h.type} on an input")
                if self.source_index[h.source] < 0:
                    raise protocol.ProtocolError(
                        "unknown-source", f"bytes 6-7 (source) are {h.source}, not one of {self.sources}"
                    )
            except protocol.ProtocolError as exc:
                self._malformed(m, exc)
                continue
            self._sequences(np.array([h.source]), np.array([h.sequence], np.uint64))  # any u64: garbage too
            bad = protocol.bad_fragments(frags)
            if bad.any():  # those fragments refused, not their message: a bit flip in one lost them all
                frags = self._refuse(m, self.source_index[h.source], frags, bad)
            good_idx.append(np.full(len(frags), self.source_index[h.source]))
            good.append(frags)
        for _, head, size in reversed(cut):  # cut after the last message
            self._oversize(head, size)
        if good:
            frags = np.concatenate(good)
            c["received_fragments"] += len(frags)
            self.builder.add(np.concatenate(good_idx), frags)

    def _refuse(self, msg: memoryview, source_index: int, frags: np.ndarray, bad: np.ndarray) -> np.ndarray:
        """Refuse the fragments of a readable message that carry unknown flag bits or a
        reserved field set (corrupt, or a newer protocol): the message counts as malformed
        (``bad-flags``), they go to the late files (``why`` 3) and ``refused_fragments``,
        and the message's other fragments are built.  Returns those."""
        try:
            protocol.check_fragments(frags)
        except protocol.ProtocolError as exc:
            n = int(np.count_nonzero(bad))
            detail = f"{exc.detail}; {n} of its {len(frags)} fragments refused (to the late files), the rest built"
            self._malformed(msg, protocol.ProtocolError(exc.reason, detail))
            self.metrics.c["refused_fragments"] += n
            if self.late_sink is not None:
                refused = Late(np.full(n, source_index), frags[bad], why=WHY_BAD_FLAGS)
                self.late_sink.write(late_records(self.source_ids, refused))
        return frags[~bad]

    def _oversize(self, head: bytes | memoryview, size: int) -> None:
        """A message longer than ``security.max_message_bytes``, of which ``head`` arrived."""
        limit = self.limits.max_message_bytes
        self._malformed(head, protocol.ProtocolError("oversize", f"{size} bytes exceed the maximum {limit}"), size)

    def _malformed(self, msg: bytes | memoryview, exc: protocol.ProtocolError, size: int | None = None) -> None:
        """Count and log a refused message.  If it is its source's next message by number, it
        took its turn: the next one would count it missing too (``sequence_gaps`` on top of
        ``malformed``), so its number is taken as seen."""
        source = "unknown"
        if len(msg) >= 8 and bytes(msg[:4]) == protocol.MAGIC:
            sid = int.from_bytes(msg[6:8], "little")
            if self.source_index[sid] >= 0:
                source = str(sid)
                if len(msg) >= 16:
                    self.sequences.took_turn(sid, int.from_bytes(msg[8:16], "little"))
        self.metrics.c["malformed_messages"] += 1
        self.metrics.malformed[(source, exc.reason)] += 1
        self.log.limited(f"malformed/{source}/{exc.reason}", "warning", "malformed", source=source,
                         reason=exc.reason, detail=str(exc), bytes=len(msg) if size is None else size)  # fmt: skip

    def _sequences(self, sources: np.ndarray, seqs: np.ndarray) -> None:
        """Count messages missing per source (gaps in its sequence numbers) and resets."""
        gaps, resets = self.sequences.check(sources, seqs)
        for sid, n in gaps.items():
            self.metrics.seq_gaps[str(sid)] += n
            self.log.limited(f"gap/{sid}", "warning", "sequence-gap", source=sid, missing=n)
        if resets:
            self.metrics.c["sequence_resets"] += resets

    def _bad_inputs(self, event: int, source_index: int) -> None:
        """Inputs outside the firmware's input type: named in the log (``Log.note``)."""
        self.log.note("bad-inputs", "warning", "fallback-bad-inputs", event, self.sources[source_index])

    def _mismatch(self, event: int, source_index: int) -> None:
        """An FPGA result that differs from the CPU's: named in the log (``Log.note``)."""
        self.log.note("mismatch", "error", "fpga-cpu-mismatch", event, self.sources[source_index])

    # ------------------------------------------------------------------- output
    def _out(self, events: np.ndarray) -> None:
        now = time.time_ns()
        events["built_ns"] = now
        first = events["first_ns"].astype(np.int64)
        self.metrics.observe_latency(np.maximum(now - first, 0) / 1e9)
        c = self.metrics.c
        c["events_out"] += len(events)
        complete = int(np.count_nonzero(events["status"] & np.uint32(protocol.COMPLETE)))
        c["events_complete"] += complete
        c["events_incomplete"] += len(events) - complete
        self.metrics.g["last_event_out_time"] = time.time()
        if self.events_sink is not None:  # the record first: a failing publish must not cost it
            self.events_sink.write(events)
        if self.publisher is not None:
            self.publisher.publish(events)

    def _refused_clients(self) -> None:
        """Clients CURVE refused (the ZAP thread notes them): counted, and logged with their
        address and the reason, at most once a second."""
        refused = getattr(self.auth, "refused", None)
        while refused:
            address, why = refused.popleft()
            self.metrics.c["curve_refused"] += 1
            self.log.limited("curve-refused", "warning", "curve-refused", address=address, why=why,
                             hint="its public key is not in security.curve_clients")  # fmt: skip

    def _late(self) -> None:
        counts = self.builder.counts
        if counts.reanchors != self._reanchors:  # rare: say it where it shows
            self._reanchors = counts.reanchors
            why = "event numbers far from the window in a row, from two sources: the numbering is elsewhere"
            evicted = counts.evicted - self._reanchor_evicted - self.log.tallied("evicted")  # not yet told
            self._reanchor_evicted += evicted
            self.log("warning", "builder-reanchored", reanchors=counts.reanchors, late=counts.late, jumps=counts.jumps,
                     evicted=evicted, why=why)  # fmt: skip
        b = self.builder
        self.log.tally(
            "jump",
            "warning",
            "event-number-jump",
            counts.jumps,
            lambda: dict(
                source=self.sources[b.last_jump[0]], event_number=b.last_jump[1], high=b.high, why=b.last_jump_why
            ),
        )
        if self.log.tally("evicted", "warning", "events-evicted", counts.evicted - self._reanchor_evicted,
                          self._evicted_fields):  # fmt: skip
            b.forget_evicted()  # the builder's tally of them runs from one written line to the next
        self.log.tally("misrouted", "warning", "misrouted-fragments", counts.misrouted, lambda: dict(
            source=self.sources[b.last_misrouted[0]], event_number=b.last_misrouted[1], worker=self.worker,
            belongs_to=b.last_misrouted[1] % b.stride,
            why="node.workers > 1: event e goes to worker e % workers (Source with every worker's endpoint "
                "does this); built here, its event is split in two"))  # fmt: skip
        for late in self.builder.take_late():  # late ones, and jumps (counted and logged above)
            if late.why == WHY_LATE:
                self.metrics.c["late_fragments"] += len(late.fragments)
                self.log.limited("late", "info", "late-fragments", count=len(late.fragments),
                                 first_event=int(late.fragments["event"][0]),
                                 source=self.sources[int(late.source_index[0])])  # fmt: skip
            if self.late_sink is not None:
                self.late_sink.write(late_records(self.source_ids, late))

    def _evicted_fields(self) -> dict[str, Any]:
        """What an ``events-evicted`` line tells besides its count: the events' numbers, and
        each source they lacked: in how many, how many of those it had not reached then (it
        runs behind: they come late), and how far behind the window's top it is now."""
        b, span, counted = self.builder, self.builder.evicted_range, self.builder.evicted_lacking
        lacking = []
        for i in np.flatnonzero(counted[0]).tolist():
            highest = b.highest(i)
            behind = None if highest is None or b.high is None else b.high - highest
            lacking.append({"source": self.sources[i], "events": int(counted[0, i]),
                            "not_reached": int(counted[1, i]), "highest": highest,
                            "behind": behind})  # fmt: skip
        return dict(
            first_event=None if span is None else span[0], last_event=None if span is None else span[1],
            high=b.high, window=b.capacity,
            open_events=b.n_open, lacking=lacking,
            why="a newer event number moved the window (builder.window event numbers, up to high) past them "
                "before they were complete",
            hint="events a source had not reached (not_reached) come late, into the late files: it runs behind "
                 "the others (by behind; highest null: nothing from it yet), e.g. a sender whose backlog came "
                 "after the others' (reconnecting late after a node restart) or a stalled board: size "
                 "builder.window above how far the sources run apart. The others it had passed: they never "
                 "came here (sent to this node's predecessor: a restart's first events, DRAINED by a node "
                 "stopped or lost with one killed; dropped upstream), the "
                 "numbering leapt ahead, or builder.window is smaller than rate x timeout x the spacing of "
                 "the event numbers")  # fmt: skip

    def _advance(self, now_ns: int, force: bool = False) -> None:
        self._late()
        for events in self.builder.take():
            if events["status"][0] & protocol.TIMED_OUT:  # a block the timeout let go: whose fragments it lacks
                self._timed_out_missing |= int(np.bitwise_or.reduce(events["missing"]))
            self.fallback.submit(events)
        # a source silent or slow: say which, not only count it
        if self.log.tally("timed-out", "warning", "events-timed-out", self.builder.counts.timed_out, lambda: dict(
                missing_sources=missing_sources(self._timed_out_missing, self.sources),
                why="nothing from these sources within builder.timeout_s: silent, slow, lost")):  # fmt: skip
            self._timed_out_missing = 0  # (held back: the next line tells all since)
        for events in self.fallback.step(now_ns, force=force):
            self._out(events)
        self.log.flush_notes(force)
        if self.events_sink is not None:
            self.events_sink.tick()
        if self.late_sink is not None:
            self.late_sink.tick()

    # ----------------------------------------------------------------- the loop
    def snapshot(self) -> dict[str, Any]:
        m = self.metrics
        for k, v in vars(self.builder.counts).items():
            m.c[f"builder_{k}"] = v
        for k, v in vars(self.fallback.counts).items():
            m.c[f"fallback_{k}"] = v
        if self.boards is not None:
            for k, v in vars(self.boards.counts).items():
                m.c[f"offload_{k}"] = v
            m.g["offload_in_flight"] = self.boards.in_flight()
        m.c["events_written"] = self.events_sink.saved if self.events_sink else 0  # safe: never goes down
        m.c["late_written"] = self.late_sink.saved if self.late_sink else 0
        m.c["events_recovered"], m.c["late_recovered"] = self._recovered["events"], self._recovered["late"]
        m.c["events_unwritten"] = self.events_sink.lost if self.events_sink else 0
        m.c["sink_tail_errors"] = sum(s.tail_errors for s in self.sinks)
        arena = self.events_sink.arena if self.events_sink else None
        if arena is not None:  # how often the files' chunks were written from where they were built
            m.c["sink_built_in_arena"] = arena.served
            m.c["sink_chunks_in_place"] = arena.chunks_in_place
            m.c["sink_chunks_gathered"] = arena.chunks_gathered
        m.c["log_lines_lost"] = self.log.lost
        m.c["late_unwritten"] = self.late_sink.lost if self.late_sink else 0
        now = time.monotonic()
        m.g["sink_unrecovered_files"] = self._unrecovered
        m.g["sink_waiting_s"] = max((now - since for since in self._waiting_since.values()), default=0.0)
        m.g["events_in_flight"] = self.builder.n_open
        m.g["events_pending_fallback"] = sum(len(p.events) for p in self.fallback.pending)
        self._rates(now)
        return m.snapshot()

    def _rates(self, now: float) -> None:
        """The rates now (gauges ``received_fragments_per_s``, ``events_out_per_s``): over the
        last status interval or so, so that ``node status`` says what the node does, not an
        average since its start that idle hours pull down.  Snapshots closer together than
        half an interval leave them as they were (a rate over a few ms says little)."""
        m = self.metrics
        counts = (m.c["received_fragments"], m.c["events_out"])
        if self._rated is None:
            self._rated = (now, *counts)
            m.g["received_fragments_per_s"] = m.g["events_out_per_s"] = 0.0
            return
        dt = now - self._rated[0]
        if dt >= self.cfg.node.status_interval_s / 2:
            m.g["received_fragments_per_s"] = (counts[0] - self._rated[1]) / dt
            m.g["events_out_per_s"] = (counts[1] - self._rated[2]) / dt
            self._rated = (now, *counts)

    def stop(self, *_: Any) -> None:
        """Stop intake; ``run`` then drains, flushes, closes and returns (signal-safe).  A
        second call gives up waiting for room on the disk (``give_up``)."""
        if self._stop:
            self.give_up()
        self._stop = True

    def stop_intake(self, *_: Any) -> None:
        """``stop`` without the give-up on a second call: a supervisor's worker, which one
        systemctl stop may signal twice (systemd and the supervisor); its give-up comes
        apart, as SIGUSR1 (signal-safe)."""
        self._stop = True

    def give_up(self, *_: Any) -> None:
        """Stop waiting for room on the disk: what is not written by now is counted
        (``events_unwritten``) and the exit status is 1 (signal-safe: flags only)."""
        for sink in self.sinks:
            sink.give_up()

    # ------------------------------------------------------ a disk behind or full
    def _sinks_busy(self) -> bool:
        return any(sink.busy for sink in self.sinks)

    def _write_status(self, snap: dict[str, Any]) -> None:
        if not write_status_logged(self.log, self.status_file, snap):
            self.metrics.c["status_write_errors"] += 1

    def _check_sinks(self) -> None:
        """A sink that failed (a write error, or given up) stops the node in order: logged
        once, counted, and the exit status is 1."""
        for sink in self.sinks:
            if sink.error is not None and sink not in self._failed_sinks:
                self._failed_sinks.append(sink)
                self.failed = self._stop = True
                self._waiting_since.clear()  # given up, not resumed
                self.log("error", "sink-failed", file=str(getattr(sink, "tmp", sink.directory)),
                         error=str(sink.error), records_unwritten=sink.lost)  # fmt: skip

    def _wait_for_sinks(self) -> None:
        """Read no input while a sink takes no more (the disk behind, or full): ZeroMQ
        holds it and its senders wait, so nothing is lost and memory stays bounded."""
        for sink in self.sinks:
            if sink.busy:
                sink.wait_room(0.02)
        self._report_waiting()

    def _report_waiting(self) -> None:
        """Log the sinks waiting for room on the disk (every ``WAITING_LOG_S``), and when
        they go on writing."""
        now = time.monotonic()
        waiting = {w[0]: w for w in (sink.waiting for sink in self.sinks) if w is not None}
        for path in [p for p in self._waiting_since if p not in waiting]:
            self.log("warning", "sink-resumed", file=str(path), waited_s=round(now - self._waiting_since.pop(path), 3))
        for path, w in waiting.items():
            if path not in self._waiting_since:
                self._waiting_since[path] = w[2]
                self._waiting_logged = 0.0
        if waiting and (now - self._waiting_logged >= WAITING_LOG_S or self._stop and not self._waiting_told_stop):
            self._waiting_logged, self._waiting_told_stop = now, self._stop
            for path, (_, exc, since) in waiting.items():
                self.log("error", "sink-waiting", file=str(path), error=exc.strerror, waited_s=round(now - since, 1),
                         events_held=self.builder.n_open + sum(s.unsaved for s in self.sinks),
                         stopping=self._stop, hint="free space on the disk; a second SIGTERM gives up")  # fmt: skip
        if waiting and now - self._waiting_status >= self.cfg.node.status_interval_s:
            # the loop may be held in a file's close (a rotation, or the shutdown), not writing it
            self._waiting_status = now
            self.published = self.snapshot()
            self._write_status(self.published)

    def run(self) -> dict[str, Any]:
        """Serve until ``stop``; returns the final counters."""
        endpoints = [config_mod.worker_endpoint(i.endpoint, self.worker) for i in self.cfg.inputs]
        self.log("info", "started", inputs=endpoints, sources=self.sources, n_inputs=self.n_inputs,
                 n_outputs=self.n_outputs, raw_bytes=self.raw_bytes,
                 manifest=self.emulator.id if self.emulator is not None else None,
                 heap_kept=self.heap_kept, gc_frozen=gc.get_freeze_count())  # fmt: skip
        poller = zmq.Poller()
        for s in self.inputs:
            poller.register(s, zmq.POLLIN)
        if self.boards is not None:
            for b in self.boards.boards:
                poller.register(b.socket, zmq.POLLIN)
        next_expire = next_status = last_drain = 0
        first = True  # no drain yet: none before START_GRACE_S after the bind (senders reconnecting)
        status_every = int(self.cfg.node.status_interval_s * 1e9)
        coalesce = int(self.cfg.node.coalesce_ms * 1e6)
        try:
            while not self._stop:
                if self.sinks and self._sinks_busy():
                    self._wait_for_sinks()
                    ready = {}
                else:
                    if self._waiting_since:
                        self._report_waiting()  # the sink writes again
                    busy = not self.fallback.idle()
                    ready = dict(poller.poll(1 if busy else 20))
                socks = [sock for sock in self.inputs if sock in ready]
                if socks:
                    if first:  # every sender's backlog on hand, read in turn (fair queue, turns)
                        first = False
                        wait = self._bound_ns + int(START_GRACE_S * 1e9) - time.monotonic_ns()
                        if wait > 0:
                            time.sleep(wait / 1e9)
                    if coalesce:  # let more arrive: one drain's fixed cost for all of them
                        wait = last_drain + coalesce - time.monotonic_ns()
                        if wait > 0:
                            time.sleep(wait / 1e9)
                        last_drain = time.monotonic_ns()
                    self._drain(socks)
                now = time.monotonic_ns()
                if now >= next_expire:
                    self.builder.expire(now)
                    next_expire = now + EXPIRE_EVERY_NS
                self._advance(now)
                if self.sinks:
                    self._check_sinks()
                if self.supervisor is not None and self.supervisor.signalled:  # a SIGHUP: look now
                    self.supervisor.signalled = False
                    next_status = now
                if now >= next_status:
                    if self.supervisor is not None and not self._stop and self.supervisor.gone():
                        self.log("error", "supervisor-gone", parent=self.supervisor.pid)  # orphaned: stop in order
                        self._stop = True
                    self._refused_clients()
                    self.published = self.snapshot()
                    self._write_status(self.published)
                    next_status = now + status_every
        except zmq.ContextTerminated:
            pass
        except BaseException as exc:
            # a bug: still drain and close the files (nothing received is lost), then fail loudly
            self.log("error", "crashed", error=repr(exc))
            self._shutdown()
            raise
        return self._shutdown()

    def _finish_events(self) -> None:
        """Let every open event go and finish its results (boards get their time)."""
        self.builder.drain()
        deadline = time.monotonic() + (self.cfg.offload.timeout_ms / 1e3 if self.boards else 0) + 5
        self._advance(time.monotonic_ns(), force=True)
        while not self.fallback.idle() and time.monotonic() < deadline:
            time.sleep(0.001)
            self._advance(time.monotonic_ns(), force=True)
        if not self.fallback.idle():  # boards that never answered: their events must still leave
            moved = self.fallback.abandon_boards()
            self.log("warning", "offload-abandoned", fragments=moved, cpu=self.emulator is not None)
            self._advance(time.monotonic_ns(), force=True)

    def _last_intake(self) -> int:
        """Keep what has reached the node: ZeroMQ's queues and the kernel's socket buffers
        (closed with them full, those messages were lost, though their senders had handed
        them over). The inputs are drained until nothing comes for ``QUIET_S``, as after a
        run's last trigger; if the senders still send after ``STILL_SENDING_S`` (at once
        if a sink waits for room, or failed: the senders are held back, and had better stay
        so, or what comes would be taken in only to be counted unwritten), the
        inputs leave their endpoints (unbind or disconnect: no new connections, no more
        bytes read; what the kernel still held for them goes with the connections) and
        what ZeroMQ had queued (``hwm`` messages per peer at most) is drained. Returns
        how many messages that was."""
        c = self.metrics.c
        before = c["received_messages"]
        poller = zmq.Poller()
        for sock in self.inputs:
            poller.register(sock, zmq.POLLIN)
        start = time.monotonic()
        # at once if a sink waits for room or has failed: what comes now could not be written
        cut_at = start + (0 if self.sinks and (self._sinks_busy() or self._failed_sinks) else STILL_SENDING_S)
        left = False
        try:
            while time.monotonic() < start + LAST_INTAKE_S:
                if not left and time.monotonic() >= cut_at:
                    for sock, (endpoint, bound) in zip(self.inputs, self._left, strict=True):
                        (sock.unbind if bound else sock.disconnect)(endpoint)
                    left = True
                ready = dict(poller.poll(QUIET_S * 1e3))
                socks = [sock for sock in self.inputs if sock in ready]
                if not socks:
                    break
                self._drain(socks)
                self._advance(time.monotonic_ns())
        except zmq.ZMQError:
            pass  # the context is gone (a stop by its termination): nothing more to read
        if left:
            self._tell_cut_off(cut_at - start)
        return c["received_messages"] - before

    def _tell_cut_off(self, after_s: float) -> None:
        """A stop cut its inputs off (``_last_intake``): say so, with the last message number
        taken from each source: what a sender sent after it and the kernel still held went
        with the connections, in no file and no counter here (a sender that keeps its
        numbers can tell which, and send them again to the next node)."""
        seq = self.sequences
        last = [{"source": sid, "last_sequence": int(seq.last[sid])} for sid in self.sources if seq.seen[sid]]
        self.log("warning", "senders-cut-off", after_s=round(after_s, 3), last_received=last,
                 why=f"senders still sending {STILL_SENDING_S:g} s after the stop began" if after_s else
                     "a sink waits for room or has failed: nothing more is taken in",
                 lost="messages sent after each source's last_sequence that had reached this machine's "
                      "socket buffers but not the node went with the connections: not written, not counted here",
                 )  # fmt: skip

    def _shutdown(self) -> dict[str, Any]:
        queued = self._last_intake()
        for s in self.inputs:
            s.close(linger=0)
        self.log("info", "stopping", in_flight=self.builder.n_open, queued_messages=queued)
        try:
            self._finish_events()
        except Exception as exc:  # a bug in the stages (or what crashed the loop, again)
            self.failed = True
            self.log("error", "drain-failed", error=repr(exc))
            try:
                for events in self.fallback.release_all():  # as they are: written, not lost
                    self._out(events)
            except Exception as again:  # _out itself (the publisher, say): close the files all the same
                self.log("error", "drain-failed", error=repr(again))
        for sink in self.sinks:
            sink.close()  # raises nothing: a failure is in sink.error
        self._check_sinks()
        self._report_waiting()
        if self.publisher is not None:
            self.publisher.close()
        if self.boards is not None:
            self.boards.close()
        if self.auth is not None:
            self.auth.stop()
            self._refused_clients()
        if self.prometheus is not None:
            server, _thread = self.prometheus
            server.shutdown()
        self.log.flush_suppressed()
        snap = self.snapshot()
        snap["final"] = True
        snap["failed"] = self.failed
        self._write_status(snap)
        self._let_go_of_status()
        self.log("error" if self.failed else "info", "stopped", **{k: snap["counters"].get(k, 0) for k in (
            "received_fragments", "events_out", "events_complete", "events_incomplete", "late_fragments",
            "malformed_messages", "fallback_cpu_fragments", "fallback_mismatches", "events_unwritten")})  # fmt: skip
        if self._own_context:
            self.context.destroy(linger=0)
        return snap


def serve(config_path: str | Path, worker: int | None = None, supervisor_pid: int | None = None) -> int:
    """Run the node from a configuration file until SIGTERM/SIGINT; exit status.  A worker
    is given its supervisor's pid: one that dies while the worker still starts leaves it
    another parent, which ``os.getppid()`` read later would take for the supervisor.  A
    worker whose supervisor died before its inputs were bound gives up its start (0)."""
    early: list[int] = []  # signals while starting (the ring, h5py, the sockets): acted on once it runs
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(signum, lambda signum, _frame: early.append(signum))
    config_path = Path(config_path)
    cfg = config_mod.load(config_path)
    if worker is None and cfg.node.workers > 1:
        # what every worker would refuse, said once before any starts (each said it, after the start)
        _fragment_layout(cfg, _fallback_emulator(cfg))
        runner: Node | Supervisor = Supervisor(cfg, config_path.resolve())
    elif worker is None:
        runner = Node(cfg)
    else:
        watch = SupervisorWatch(supervisor_pid if supervisor_pid is not None else os.getppid())
        try:
            watch.start()
            sup = Supervisor(cfg, config_path)
            runner = Node(cfg, worker, status_file=sup.worker_status(worker), serve_metrics=False, supervisor=watch)
        except SupervisorGone as gone:  # nothing taken in yet, nothing opened left open: as a stop before the run
            Log(f"{cfg.node.name}/{worker}", cfg.node.log_level)(
                "error", "supervisor-gone", parent=gone.pid, starting=True, during=gone.during
            )
            return 0
    on_stop = runner.stop_intake if isinstance(runner, Node) and worker is not None else runner.stop
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGUSR1, runner.give_up)
    for signum in early:
        (runner.give_up if signum == signal.SIGUSR1 else on_stop)()
    # what start-up made (modules, h5py, NumPy, the config: ~30k objects) is never garbage,
    # but every full collection scans it: ~10 ms here, a stall of the loop that shows in
    # the p99 latency. Only for the daemon's own process: an embedding program keeps its gc.
    gc.collect()
    gc.freeze()
    snap = runner.run()
    codes = snap.get("exit_codes", [0])
    if 2 in codes:  # a worker refused to start (its error is on stderr): as a node that cannot start
        return 2
    return 0 if all(c == 0 for c in codes) and not snap.get("failed") else 1


def start(config_path: str | Path, *, stderr=None) -> subprocess.Popen:
    """The daemon as a subprocess (for demos and tests); stop it with ``stop``."""
    return subprocess.Popen([sys.executable, "-m", "node.daemon", str(config_path)], stderr=stderr)


def stop(proc: subprocess.Popen, config_path: str | Path, timeout: float = 60.0) -> dict[str, Any]:
    """SIGTERM, wait for the drain, and return the final counters from the status file."""
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout)
    cfg = config_mod.load(config_path)
    snap = metrics_mod.read_status(cfg.resolve(cfg.node.status_file))
    snap["exit_code"] = code
    return snap


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m node.daemon", description="the fpgaflow node daemon")
    ap.add_argument("config", help="node.toml")
    ap.add_argument("--worker", type=int, help="run only builder worker K (the supervisor starts these)")
    ap.add_argument("--supervisor-pid", type=int, help="a worker: its supervisor (it stops in order without one)")
    args = ap.parse_args(argv)
    try:
        return serve(args.config, args.worker, args.supervisor_pid)
    except (config_mod.ConfigError, ValueError, RuntimeError, OSError) as exc:
        print(f"node: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
