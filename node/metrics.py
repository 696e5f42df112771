"""The node's counters, its latency histogram, structured logs, the status file and the
Prometheus endpoint.

The hot loop only adds to plain integers and one NumPy histogram per drain; Prometheus
reads a snapshot when it scrapes (a custom collector), so metrics cost nothing per
fragment.  Worker processes write their snapshots to status files; the supervisor sums
them (``merge``) into one set of metrics for the whole node.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from node import lockfile
from node.config import LOG_LEVELS, ConfigError

# end-to-end latency (board timestamp -> event out), seconds
WAITING_LOG_S = 10.0  # how often a node waiting (a sink for room on the disk, a supervisor for workers) says so
LATENCY_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Log:
    """One JSON object per line on stderr; repeated keys are rate-limited (one line per
    ``interval`` seconds with the number suppressed in between).  A line that cannot be
    written (stderr a file on a full disk, or a closed pipe) is counted in ``lost``, never
    raised: the node's work must not stop for its log."""

    LEVELS = LOG_LEVELS  # node.toml's node.log_level is checked against the same names
    LISTED = 100  # events one noted line names at most

    def __init__(self, name: str, level: str = "info", interval: float = 1.0, stream=None):
        if level not in self.LEVELS:
            raise ValueError(f"node.log_level must be one of {list(self.LEVELS)}, got {level!r}")
        self.name, self.level, self.interval = name, self.LEVELS[level], interval
        self.stream = stream or sys.stderr
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = defaultdict(int)
        self._notes: dict[str, dict[str, Any]] = {}  # see note
        self._held: dict[str, tuple[str, str, dict[str, Any]]] = {}  # see flush_suppressed
        self._tallied: dict[str, tuple[int, int]] = {}  # see tally: (total told, total seen)
        self.lost = 0

    def __call__(self, level: str, what: str, **fields: Any) -> None:
        """One line: ``what`` happened (its ``event`` key), with ``fields``."""
        if self.LEVELS[level] < self.level:
            return
        line = {"ts": round(time.time(), 6), "level": level, "node": self.name, "event": what}
        line.update({("event_number" if k == "event" else k): v for k, v in fields.items()})
        try:
            self.stream.write(json.dumps(line, default=str) + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # ValueError: the stream was closed
            self.lost += 1

    def note(self, key: str, level: str, what: str, event: int, source: int) -> None:
        """An event worth naming (an FPGA/CPU mismatch): the first at once, later ones
        gathered into one line per ``interval`` (``flush_notes``) that lists up to
        ``LISTED`` of them with how many there were, so that a burst is not a flood and
        every event of a trickle is named (rate-limited lines named one a second)."""
        pending = self._notes.get(key)
        if pending is None:
            pending = self._notes[key] = {"level": level, "what": what, "listed": [], "count": 0}
        if len(pending["listed"]) < self.LISTED:
            pending["listed"].append([event, source])
        pending["count"] += 1
        self.flush_notes()

    def flush_notes(self, force: bool = False) -> None:
        """Write the gathered notes whose interval is over (all of them with ``force``)."""
        if not self._notes:
            return
        now = time.monotonic()
        for key in list(self._notes):
            if force or now - self._last.get(key, -1e9) >= self.interval:
                n = self._notes.pop(key)
                self._last[key] = now
                event, source = n["listed"][0]
                self(n["level"], n["what"], event_number=event, source=source, count=n["count"],
                     events=n["listed"])  # fmt: skip

    def limited(self, key: str, level: str, what: str, **fields: Any) -> bool:
        """A line at most once an ``interval`` per key; True if this one was written (a
        caller summing what its lines tell starts afresh only then)."""
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self.interval:
            self._suppressed[key] += 1
            self._held[key] = (level, what, fields)  # the latest, for flush_suppressed
            return False
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        self._held.pop(key, None)
        self(level, what, **fields, **({"suppressed": suppressed} if suppressed else {}))
        return True

    def tally(self, key: str, level: str, what: str, total: int, fields: Callable[[], dict[str, Any]]) -> bool:
        """A counter's growth in ``limited`` lines: none while ``total`` stays put (``fields``
        is called only for a line); each line's ``count`` is all since the last line written,
        so what a held-back call saw is told by the next one (or at a stop). True if written."""
        told, seen = self._tallied.get(key, (0, 0))
        if total == seen:
            return False
        written = self.limited(key, level, what, count=total - told, **fields())
        self._tallied[key] = (total if written else told, total)
        return written

    def tallied(self, key: str) -> int:
        """The total ``tally`` last saw for ``key``."""
        return self._tallied.get(key, (0, 0))[1]

    def flush_suppressed(self) -> None:
        """At a stop: each rate-limited line with repeats not yet told (they were told only on
        its next line, which never came), as its latest repeat with how many came before it
        unwritten (``suppressed``), so every occurrence is in a written line or a count."""
        for key in list(self._held):
            level, what, fields = self._held.pop(key)
            self(level, what, **fields, suppressed=self._suppressed.pop(key, 0) - 1, at_stop=True)


class Metrics:
    """Everything the node counts, as plain numbers (one instance per worker)."""

    def __init__(self) -> None:
        self.c: dict[str, int] = defaultdict(int)  # monotonic counters
        self.g: dict[str, float] = {}  # gauges
        self.malformed: dict[tuple[str, str], int] = defaultdict(int)  # (source, reason)
        self.seq_gaps: dict[str, int] = defaultdict(int)  # source -> messages missing
        self.latency = np.zeros(len(LATENCY_BUCKETS) + 1, np.int64)  # per bucket (+Inf last)
        self.latency_sum = 0.0
        self.started = time.time()

    def observe_latency(self, seconds: np.ndarray) -> None:
        if len(seconds):
            idx = np.searchsorted(LATENCY_BUCKETS, seconds, side="left")
            self.latency += np.bincount(idx, minlength=len(self.latency))
            self.latency_sum += float(seconds.sum())

    def snapshot(self) -> dict[str, Any]:
        return {
            "time": time.time(),
            "started": self.started,
            "counters": dict(self.c),
            "gauges": dict(self.g),
            "malformed": {f"{s}/{r}": n for (s, r), n in self.malformed.items()},
            "sequence_gaps": dict(self.seq_gaps),
            "latency": {"buckets": list(LATENCY_BUCKETS), "counts": self.latency.tolist(), "sum": self.latency_sum},
        }


def merge(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """One node-wide snapshot from the workers' snapshots: sums (gauges add up too), but the
    first message's time is the earliest worker's and the last event's the latest's.  Its
    time is the oldest worker's: a worker that hangs makes the node's status go stale
    (stamped now, the supervisor's file said "running" while a worker's was 13 s old)."""
    out: dict[str, Any] = {
        "time": min((s["time"] for s in snapshots if isinstance(s.get("time"), (int, float))), default=time.time()),
        "started": min((s["started"] for s in snapshots), default=time.time()),
        "counters": defaultdict(int),
        "gauges": defaultdict(float),
        "malformed": defaultdict(int),
        "sequence_gaps": defaultdict(int),
        "latency": {"buckets": list(LATENCY_BUCKETS), "counts": [0] * (len(LATENCY_BUCKETS) + 1), "sum": 0.0},
    }
    for s in snapshots:
        for key in ("counters", "gauges", "malformed", "sequence_gaps"):
            for k, v in s.get(key, {}).items():
                out[key][k] += v
        lat = s.get("latency")
        if lat:
            out["latency"]["counts"] = [a + b for a, b in zip(out["latency"]["counts"], lat["counts"], strict=True)]
            out["latency"]["sum"] += lat["sum"]
    if any(s.get("failed") for s in snapshots):  # one worker's sink failed: the node's run did
        out["failed"] = True
    for k in ("first_message_time", "last_event_out_time"):  # instants, not amounts: the node's span
        times = [s["gauges"][k] for s in snapshots if k in s.get("gauges", {})]
        if times:
            out["gauges"][k] = min(times) if k.startswith("first") else max(times)
    for key in ("counters", "gauges", "malformed", "sequence_gaps"):
        out[key] = dict(out[key])
    out["workers"] = len(snapshots)
    return out


def latency_quantile(snapshot: dict[str, Any], q: float) -> float | None:
    """Upper bucket bound holding the q-quantile of the latency histogram (None: no data)."""
    counts = np.array(snapshot["latency"]["counts"])
    total = counts.sum()
    if not total:
        return None
    i = int(np.searchsorted(np.cumsum(counts), q * total))
    bounds = list(snapshot["latency"]["buckets"]) + [float("inf")]
    return bounds[min(i, len(bounds) - 1)]


def write_status(path: str | Path, snapshot: dict[str, Any]) -> None:
    """Atomically replace the status file (readers never see half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except BaseException:  # no room, or cut short (an exception from a signal handler): no half file left
        tmp.unlink(missing_ok=True)
        raise


def hold_status(path: Path) -> int:
    """Lock the status file ``path`` for this node (or supervisor) until it has written
    its final status (the fd; close it to let go): two nodes writing one file (two
    configurations in one folder, each with the default ``status_file``; the same one
    started twice) made ``node status`` read each in turn, and a second start that failed
    wrote its final, failed status over a running node's.  A ``ConfigError`` in the one
    line a node (or supervisor) is refused with, if another holds it or the lock file
    cannot be made beside it."""
    try:
        return lockfile.hold(path.with_name(f".{path.name}.lock"))
    except lockfile.Held as held:
        raise ConfigError(f"node.status_file {path}: {held.holder} writes it (a node running, starting or still "
                          "stopping); two nodes need status files of their own") from None  # fmt: skip
    except OSError as exc:
        raise ConfigError(f"node.status_file {path}: cannot write it ({exc})") from None


def read_status(path: str | Path) -> dict[str, Any]:
    """A status file's snapshot; ValueError naming the file if it is not one."""
    path = Path(path)
    try:
        snap = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"{path}: not a node status file ({exc})") from None
    if not (
        isinstance(snap, dict)
        and isinstance(snap.get("time"), (int, float))
        and all(isinstance(snap.get(k), dict) for k in ("counters", "gauges", "latency"))
    ):
        raise ValueError(f"{path}: not a node status file (it needs time, counters, gauges and latency)")
    return snap


def serve_prometheus(get_snapshot, host: str, port: int) -> Any:
    """Serve ``get_snapshot()`` as Prometheus metrics over HTTP (prometheus-client)."""
    try:
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
    except ImportError:
        raise RuntimeError("metrics.port needs prometheus-client: pip install 'fpgaflow[node]'") from None

    class Collector:
        def collect(self):
            s = get_snapshot()
            for name, value in sorted(s["counters"].items()):
                yield CounterMetricFamily(f"fpgaflow_node_{name}", f"node counter {name}", value=value)
            for name, value in sorted(s["gauges"].items()):
                yield GaugeMetricFamily(f"fpgaflow_node_{name}", f"node gauge {name}", value=value)
            m = CounterMetricFamily("fpgaflow_node_malformed", "malformed messages", labels=["source", "reason"])
            for key, value in sorted(s["malformed"].items()):
                m.add_metric(key.split("/", 1), value)
            yield m
            g = CounterMetricFamily("fpgaflow_node_sequence_gaps", "messages missing per source", labels=["source"])
            for key, value in sorted(s["sequence_gaps"].items()):
                g.add_metric([key], value)
            yield g
            lat = s["latency"]
            cum = np.cumsum(lat["counts"]).tolist()
            buckets = [(str(b), c) for b, c in zip(lat["buckets"], cum[:-1], strict=True)] + [("+Inf", cum[-1])]
            yield HistogramMetricFamily(
                "fpgaflow_node_latency_seconds",
                "earliest fragment timestamp -> event out",
                buckets=buckets,
                sum_value=lat["sum"],
            )

    registry = CollectorRegistry()
    registry.register(Collector())
    try:
        return start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise RuntimeError(f"metrics.port {port}: cannot serve metrics on {host} ({exc})") from None


def write_status_logged(log: Log, path: Path, snap: dict[str, Any]) -> bool:
    """The status file; failing to write it (a full disk) is logged, never fatal: building
    and writing events do not depend on it.  Whether it was written."""
    snap["pid"], snap["host"] = os.getpid(), socket.gethostname()  # `status` tells a killed node by them
    snap["node"] = log.name.split("/", 1)[0]  # node.name (a worker's log adds /K): `status` tells another's file
    try:
        write_status(path, snap)
        return True
    except OSError as exc:
        log.limited("status-write", "error", "status-write-failed", file=str(path), error=str(exc))
        return False
