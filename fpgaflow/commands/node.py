"""``fpgaflow node --config node.toml``: run the node daemon (until SIGTERM/SIGINT);
``fpgaflow node status``: its counters; ``fpgaflow node keygen NAME``: CURVE keys.

Imports only ``node`` (NumPy, pyzmq), never the heavy front end."""

from __future__ import annotations

import argparse
import os
import socket
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=["run", "status", "keygen"], default="run",
                   help="run (default), status, or keygen")  # fmt: skip
    p.add_argument("name", nargs="?", help="keygen: the key's name, a plain file name (NAME.key, NAME.key_secret)")
    p.add_argument("--config", default="node.toml", help="the node's TOML configuration (default: node.toml)")
    p.add_argument("--dir", default="keys", help="keygen: folder for the key files (default: keys)")
    p.add_argument("--json", action="store_true", help="status: print the raw status as JSON (status exits 0: "
                   "running; 1: failed, or killed (dead); 3: stopped, or no word from it (stale); 2: no status "
                   "file, or one that does not read)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="keygen: replace an existing key pair of that NAME")


def run(args: argparse.Namespace) -> int:
    # an option of another action was ignored: `node status mynode` told of node.toml's node
    if args.name is not None and args.action != "keygen":
        raise ValueError(
            f"node {args.action} takes no NAME (got {args.name!r}): --config names the node's configuration"
        )
    if args.json and args.action != "status":
        raise ValueError("--json is for `fpgaflow node status`")
    if args.force and args.action != "keygen":
        raise ValueError("--force is for `fpgaflow node keygen`")
    try:
        if args.action == "keygen":
            return _keygen(args)
        if args.action == "status":
            return _status(args)
        from node.daemon import serve

        return serve(args.config)
    except RuntimeError as exc:  # a missing optional package (h5py, prometheus-client)
        raise ValueError(str(exc)) from None
    except OSError as exc:  # a file or folder that cannot be made or read: name it
        if isinstance(exc, FileNotFoundError) or exc.filename is None:
            raise
        raise ValueError(f"{exc.filename}: {exc.strerror}") from None


def _keygen(args: argparse.Namespace) -> int:
    from sim.wire.security import keygen

    if not args.name:
        raise ValueError("keygen needs a NAME, e.g. `fpgaflow node keygen node`")
    public, secret = keygen(args.dir, args.name, force=args.force)
    print(f"keygen: public key {public} (give it to peers), secret key {secret} (keep it)")
    return 0


def _status(args: argparse.Namespace) -> int:
    import json

    from node import config, metrics

    cfg = config.load(args.config)
    path = cfg.resolve(cfg.node.status_file)
    if not path.is_file():
        raise ValueError(f"{path}: no status file; is the node running with {args.config}?")
    snap = metrics.read_status(path)
    if snap.get("node", cfg.node.name) != cfg.node.name:  # another configuration's node wrote it last
        raise ValueError(
            f"{path} holds the status of node {snap['node']!r}, not of {cfg.node.name!r} ({args.config}): two "
            "configurations share this node.status_file; give each its own"
        )
    age = time.time() - snap.get("time", 0)
    state = _state(snap, age, cfg.node.status_interval_s)
    code = 1 if snap.get("failed") or state == "dead" else (0 if state == "running" else 3)
    if snap.get("failed"):  # a sink could not write everything, or a worker died: see the log
        state += ", failed"
    if args.json:
        print(json.dumps(snap, indent=1, sort_keys=True))
        return code
    c, g = snap.get("counters", {}), snap.get("gauges", {})
    uptime = max(snap.get("time", 0) - snap.get("started", 0), 1e-9)
    p50, p99 = metrics.latency_quantile(snap, 0.5), metrics.latency_quantile(snap, 0.99)
    workers = snap.get("workers", 1)
    print(f"node {cfg.node.name}: {state} (status {age:.1f} s old, up {uptime:.0f} s, {workers} worker(s))")
    rows = [
        ("received fragments", c.get("received_fragments", 0)),
        ("  rate now (/s)", round(g.get("received_fragments_per_s", 0))),
        ("malformed messages", c.get("malformed_messages", 0)),
        ("events out", c.get("events_out", 0)),
        ("  rate now (/s)", round(g.get("events_out_per_s", 0))),
        ("  complete", c.get("events_complete", 0)),
        ("  incomplete", c.get("events_incomplete", 0)),
        ("  in flight", int(g.get("events_in_flight", 0))),
        ("duplicates", c.get("builder_duplicates", 0)),
        ("late fragments", c.get("late_fragments", 0)),
        ("fallback events", c.get("fallback_fallback_events", 0)),
        ("validated events", c.get("fallback_validated_events", 0)),
        ("FPGA/CPU mismatches", c.get("fallback_mismatches", 0)),
        ("latency p50 / p99 (s, bucket bound)", f"{p50} / {p99}"),
    ]
    for name, value in rows:
        print(f"  {name:<38} {value}")
    if g.get("sink_unrecovered_files"):  # the start's unrecovered-file log lines name them
        print(f"  {'files left unrecovered at start':<38} {int(g['sink_unrecovered_files'])}")
    for key, n in sorted(snap.get("malformed", {}).items()):
        print(f"  malformed {key:<28} {n}")
    for key, n in sorted(snap.get("sequence_gaps", {}).items()):
        print(f"  messages missing from source {key:<9} {n}")
    return code


def _state(snap: dict, age: float, interval_s: float) -> str:
    """stopped (a final status), dead (its process is gone without one: killed), running,
    or stale (no word for 10 status intervals; a node on another host, or one stopped)."""
    if snap.get("final"):
        return "stopped"
    pid = snap.get("pid")
    if isinstance(pid, int) and pid > 0 and snap.get("host") == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "dead"
        except PermissionError:  # alive, another user's
            pass
    return "running" if age < 10 * interval_s + 5 else "stale"
