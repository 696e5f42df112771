"""Several builder workers as processes under one status file and one Prometheus endpoint.

A node scales across cores by running one builder worker (``node.daemon.Node``) per
process, fragments routed by event number (``sim.wire.source``).  The supervisor starts
them (``python -m node.daemon CONFIG --worker K``), merges their status files into the
node's, forwards SIGTERM/SIGUSR1, and stops them all in order when one ends on its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from node import config as config_mod
from node import metrics as metrics_mod
from node.metrics import WAITING_LOG_S, Log, write_status_logged
from node.sinks import PrefixInUse, check_prefix_free, sink_prefixes


class Supervisor:
    """Several builder workers as processes, one status file and one metrics endpoint."""

    def __init__(self, cfg: config_mod.Config, config_path: Path):
        self.cfg, self.config_path = cfg, config_path
        self.status_file = cfg.resolve(cfg.node.status_file)
        self.log = Log(cfg.node.name, cfg.node.log_level)
        self._stop = False
        self.procs: list[subprocess.Popen] = []
        self.latest: dict[str, Any] = metrics_mod.merge([])

    def worker_status(self, k: int) -> Path:
        return self.status_file.with_name(f"{self.status_file.name}.w{k}")

    def _collect(self) -> dict[str, Any]:
        snaps = []
        for k in range(self.cfg.node.workers):
            try:
                snaps.append(metrics_mod.read_status(self.worker_status(k)))
            except (OSError, ValueError):
                continue
        self.latest = metrics_mod.merge(snaps)
        self.latest["final"] = bool(snaps) and all(s.get("final") for s in snaps) and len(snaps) == len(self.procs)
        return self.latest

    def stop(self, *_: Any) -> None:
        """Stop the workers; a second call tells them to give up waiting for room (SIGUSR1)."""
        if self._stop:
            self.give_up()
        self._stop = True

    def give_up(self, *_: Any) -> None:
        """The workers stop waiting for room on the disk (SIGUSR1 to each, as to one node)."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGUSR1)

    def _wait_for_workers(self) -> list[int]:
        """Wait for every worker to stop, keeping the node's status current, and say every
        ``WAITING_LOG_S`` which ones are still running (draining, waiting for room on the
        disk: a second SIGTERM gives up; or hung: its status goes stale) and for how long
        they have said nothing, instead of waiting without a word.  Their exit codes."""
        said = time.monotonic()
        while any(p.poll() is None for p in self.procs):
            time.sleep(min(0.2, self.cfg.node.status_interval_s))
            write_status_logged(self.log, self.status_file, self._collect())
            if time.monotonic() - said >= WAITING_LOG_S:
                said = time.monotonic()
                for k, p in enumerate(self.procs):
                    if p.poll() is None:
                        try:
                            age = round(time.time() - float(metrics_mod.read_status(self.worker_status(k))["time"]), 1)
                        except (OSError, ValueError, KeyError, TypeError):
                            age = None
                        self.log("warning", "waiting-for-worker", worker=k, pid=p.pid, status_age_s=age,
                                 hint="it drains or waits for room on the disk (a second SIGTERM gives up); "
                                      "a status many intervals old: hung")  # fmt: skip
        return [p.returncode for p in self.procs]

    def _ready(self, k: int) -> bool:
        """Worker ``k`` has its signal handlers (it writes its status file after them)."""
        return self.worker_status(k).exists() or self.procs[k].poll() is not None

    def _refuse_a_second_node(self) -> None:
        """Refuse to start where a node of this name writes this sink.directory, as its
        workers would be refused (``node.sinks.hold_prefix``), but in one line, as a single
        node is, and before a worker starts: each was refused in a line of its own, and the
        supervisor's final status said failed."""
        s = self.cfg.sink
        if not s.write_files:
            return
        directory = self.cfg.resolve(s.directory)
        for k in range(self.cfg.node.workers):
            for prefix in sink_prefixes(self.cfg.node.name, k)[: 2 if s.late else 1]:
                try:
                    check_prefix_free(directory, prefix)
                except PrefixInUse as exc:
                    raise config_mod.ConfigError(exc.refusal(self.cfg.node.name)) from None

    def run(self) -> dict[str, Any]:
        # first: a second start of this configuration touches nothing of the running node's
        status_lock = metrics_mod.hold_status(self.status_file)
        try:
            return self._run()
        finally:
            os.close(status_lock)

    def _run(self) -> dict[str, Any]:
        self._refuse_a_second_node()
        prom = None  # before the workers: a metrics port taken fails the start with no worker started
        if self.cfg.metrics.port:
            prom = metrics_mod.serve_prometheus(lambda: self.latest, self.cfg.metrics.host, self.cfg.metrics.port)
        for k in range(self.cfg.node.workers):
            self.worker_status(k).unlink(missing_ok=True)
            cmd = [sys.executable, "-m", "node.daemon", str(self.config_path), "--worker", str(k),
                   "--supervisor-pid", str(os.getpid())]  # fmt: skip
            self.procs.append(subprocess.Popen(cmd))
        self.log("info", "supervisor-started", workers=len(self.procs), pids=[p.pid for p in self.procs])
        while not self._stop and all(p.poll() is None for p in self.procs):
            time.sleep(min(0.2, self.cfg.node.status_interval_s))
            write_status_logged(self.log, self.status_file, self._collect())
        if not self._stop:  # a worker ended on its own (a crash, the OOM killer, a failed sink)
            for k, p in enumerate(self.procs):
                if p.poll() is not None:
                    self.log("error", "worker-exited", worker=k, pid=p.pid, exit_code=p.returncode,
                             action="stopping the other workers")  # fmt: skip
        # a worker still starting has no handler yet: SIGTERM would kill it, statusless
        deadline = time.monotonic() + 60
        while not all(self._ready(k) for k in range(len(self.procs))) and time.monotonic() < deadline:
            time.sleep(0.01)
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = self._wait_for_workers()
        snap = self._collect()
        snap["exit_codes"] = codes
        snap["final"] = True  # the node has stopped, even if a dead worker never wrote its final status
        snap["failed"] = any(code != 0 for code in codes) or snap.get("failed", False)
        write_status_logged(self.log, self.status_file, snap)
        if prom is not None:
            prom[0].shutdown()
        self.log("info", "supervisor-stopped", exit_codes=codes)
        return snap
