"""The board stand-in's command line, shared by ``fpgaflow board`` and
``python -m sim.board`` (the latter for node machines without the front end)."""

from __future__ import annotations

import argparse
import re
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", type=int, default=0, help="this board's source id (0..65535)")
    p.add_argument("--node", action="append", default=[], metavar="ENDPOINT",
                   help="a node's input (tcp://127.0.0.1:5555); repeat for several nodes: event e goes to the "
                        "(e mod n)-th")  # fmt: skip
    p.add_argument("--rate", type=float, default=0.0, help="events per second (default 0: as fast as it can)")
    p.add_argument("--start-at", type=float, help="wall-clock start (Unix seconds), so several boards trigger together")
    p.add_argument("--events", type=int, help="events to send, then exit (default: until SIGTERM)")
    p.add_argument("--first-event", type=int, default=0,
                   help="number the events from here (default 0): --events counts on from it; the number picks "
                        "the node, the --input row or generated sample, and the faults")  # fmt: skip
    p.add_argument("--batch", type=int, default=16, help="fragments per message (default 16)")
    p.add_argument("--input", help="detector data from a .npy/.npz file (event e reads row e mod rows)")
    p.add_argument("--dataset", help="array name inside an .npz input")
    p.add_argument("--pool", type=int, default=4096, help="generated readout: distinct detector samples (default 4096)")
    p.add_argument("--no-cache", action="store_true",
                   help="run the emulator on every event instead of once per distinct sample")  # fmt: skip
    p.add_argument("--seed", type=int, default=0,
                   help="generated readout: draws the --pool samples, with the source id (default 0; unused with "
                        "--input)")  # fmt: skip
    p.add_argument("--queue", type=int, default=1000,
                   help="messages the board itself buffers while a node is slow or away, before it blocks "
                        "(default 1000)")  # fmt: skip
    p.add_argument("--sndhwm", type=int, default=1000,
                   help="messages queued per node before the board blocks (back pressure; default 1000)")  # fmt: skip
    p.add_argument("--layout", help="pad fragments to a node's layout N_INPUTS,N_OUTPUTS,RAW_BYTES")
    p.add_argument("--ack", action="append", default=[], metavar="ENDPOINT",
                   help="a node's built-event PUB endpoint: keep fragments until acknowledged there and send "
                        "them again after the node reconnects (nothing lost across a node restart)")  # fmt: skip
    p.add_argument("--ack-index", type=int, help="this board's index in the node's sources list (exact acks)")
    p.add_argument("--offload", metavar="ENDPOINT", help="bind a ROUTER here and answer offload requests instead")
    p.add_argument("--status", default="", help="write counters and injected faults here (JSON, + .faults.npz)")
    p.add_argument("--curve-secret", default="", metavar="FILE",
                   help="this board's CURVE key (NAME.key_secret, from `fpgaflow node keygen`), for a node with "
                        "security.curve_secret_key; its public NAME.key goes in the node's curve_clients")  # fmt: skip
    p.add_argument("--curve-server-key", default="", metavar="FILE", help="the node's public key (NAME.key)")
    p.add_argument("--curve-clients", default="", metavar="DIR",
                   help="with --offload and --curve-secret: the nodes' public keys it answers (a folder)")  # fmt: skip
    f = p.add_argument_group("fault injection (fractions of fragments, each counted in the status)")
    f.add_argument("--drop", type=float, default=0.0, help="never send")
    f.add_argument("--delay", type=float, default=0.0, help="send --delay-ms late")
    f.add_argument("--delay-ms", type=float, default=50.0, help="how late --delay sends (default 50)")
    f.add_argument("--duplicate", type=float, default=0.0, help="send twice")
    f.add_argument("--bitflip", type=float, default=0.0, help="flip one result bit silently")
    f.add_argument("--error", type=float, default=0.0, help="corrupt the result and set the ERROR flag")
    f.add_argument("--stop-after", type=int, help="die after this many events")
    f.add_argument("--offload-delay-ms", type=float, default=0.0, help="answer offload requests this late")
    f.add_argument("--offload-silent-after", type=int, help="stop answering offload requests after this many")
    f.add_argument("--fault-seed", type=int, default=0,
                   help="picks which events' fragments get which fault, with the source id (default 0; the same "
                        "seed hits the same events every run)")  # fmt: skip


def config_from_args(args: argparse.Namespace, manifest: str) -> Any:
    """A ``BoardConfig`` from parsed arguments (NumPy is imported only here, not at --help)."""
    from sim.board.faults import Faults
    from sim.board.runtime import BoardConfig

    if not 0 <= args.source < 65536:
        raise ValueError(f"--source {args.source} is not a source id in 0..65535")
    if args.rate < 0:
        raise ValueError(f"--rate {args.rate} must not be negative")
    if args.queue < 0:
        raise ValueError(f"--queue {args.queue} must not be negative")
    if args.batch < 1:
        raise ValueError(f"--batch {args.batch} must be at least 1")
    if args.events is not None and args.events < 0:
        raise ValueError(f"--events {args.events} must not be negative")
    layout = None
    if args.layout:
        try:
            n_in, n_out, raw = (int(v) for v in args.layout.split(","))
        except ValueError:
            raise ValueError(f"--layout {args.layout!r}: expected N_INPUTS,N_OUTPUTS,RAW_BYTES") from None
        layout = (n_in, n_out, raw)
    if args.offload:  # a board answering offload requests streams nothing: these were ignored
        for option, given in (("--node", args.node), ("--ack", args.ack), ("--events", args.events is not None),
                              ("--start-at", args.start_at is not None)):  # fmt: skip
            if given:
                raise ValueError(
                    f"{option} is for a streaming board; with --offload the board answers the node's requests "
                    "until SIGTERM"
                )
    if not args.offload and not args.node:
        raise ValueError("give --node ENDPOINT (streaming) or --offload ENDPOINT (answer offload requests)")
    for option, endpoints in (("--node", args.node), ("--ack", args.ack)):
        for endpoint in endpoints:
            check_endpoint(endpoint, option, bind=False)
    if args.offload:
        check_endpoint(args.offload, "--offload", bind=True)
    faults = Faults(
        drop=args.drop, delay=args.delay, delay_ms=args.delay_ms, duplicate=args.duplicate, bitflip=args.bitflip,
        error=args.error, stop_after=args.stop_after, offload_delay_ms=args.offload_delay_ms,
        offload_silent_after=args.offload_silent_after, seed=args.fault_seed,
    )  # fmt: skip
    return BoardConfig(
        manifest=manifest, source_id=args.source, nodes=list(args.node), rate=args.rate, start_at=args.start_at,
        events=args.events, first_event=args.first_event, batch=args.batch, pool=args.pool, cache=not args.no_cache,
        input_file=args.input, dataset=args.dataset, seed=args.seed, layout=layout, acks=list(args.ack),
        ack_index=args.ack_index, offload=args.offload or "", status_file=args.status, faults=faults,
        sndhwm=args.sndhwm, max_queued=args.queue, curve_secret=args.curve_secret,
        curve_server_key=args.curve_server_key, curve_clients=args.curve_clients,
    )  # fmt: skip


def check_endpoint(endpoint: str, option: str, bind: bool) -> None:
    """Refuse an endpoint ZeroMQ would refuse later with a traceback (``nonsense``; ``*`` for
    a port to connect to), or take and quietly use another port (99999 is 99999 mod 65536).
    The node's own rules (``node.config.check_endpoint``, ``check_port``), repeated here
    rather than imported: ``sim`` does not import the node's configuration (DESIGN.md's
    layers); keep the two in step."""
    if not re.match(r"^(tcp://.+:(\d+|\*)|ipc://.+|inproc://.+)$", endpoint):
        raise ValueError(f"{option} {endpoint!r} is not a ZeroMQ endpoint (tcp://host:port, ipc://path)")
    port = re.match(r"^tcp://.*:(\d+|\*)$", endpoint)
    if port is None:
        return  # ipc, inproc
    if port.group(1) == "*":
        if not bind:
            raise ValueError(f"{option} {endpoint!r}: a port to connect to is a number ('*' binds any port)")
    elif not 1 <= int(port.group(1)) <= 65535:
        raise ValueError(f"{option} {endpoint!r}: the port must be in 1..65535")
