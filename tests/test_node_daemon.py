"""The daemon as a real process on loopback sockets: building, timeouts, late data,
garbage, shutdown mid-stream, CURVE, back pressure, several workers, SUB inputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from node_helpers import (
    ROOT,
    Daemon,
    basic_config,
    free_port,
    free_ports,
    read_sink,
    read_status,
    wait_for,
    write_config,
)

from node import sinks
from node.builder import WHY_BAD_FLAGS, WHY_JUMP, WHY_LATE, missing_sources
from sim.wire import protocol as p
from sim.wire.source import Source

N_IN, N_OUT = 8, 2
PER_4K = (4096 - p.HEADER_SIZE) // p.fragment_dtype(N_IN, N_OUT, 4).itemsize  # fragments that fill 4096 bytes


def fragments_message(first: int, n: int, seq: int, source: int = 0) -> bytes:
    """A message of ``n`` fragments, events ``first``... (results and all)."""
    ev = np.arange(first, first + n)
    return p.encode_fragments(source, seq, p.make_fragments(ev, np.ones((n, N_IN)), np.zeros((n, N_OUT))))


@contextmanager
def node_not_running(tmp_path) -> Iterator[tuple[Any, zmq.Socket]]:
    """An in-process Node (source 0, ``max_message_bytes`` 4096) whose loop does not run, so
    that what is sent waits on its socket until a test drains it; and a PUSH to it."""
    from node import config
    from node.daemon import Node

    port = free_port()
    node = Node(config.load(basic_config(tmp_path, port, sources=[0], security={"max_message_bytes": 4096})))
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    try:
        yield node, push
    finally:
        push.close(linger=0)
        node._abandon()
        ctx.term()


def queued(node: Any, seconds: float = 0.3) -> None:
    """Wait until what was sent is on the node's socket."""
    assert node.inputs[0].poll(5000)
    time.sleep(seconds)


def inputs_for(events, source):
    events = np.asarray(events, dtype=np.int64)
    return (events[:, None] * 7 + source + np.arange(N_IN)) % 1000


def results_for(events, source):
    events = np.asarray(events, dtype=np.int64)
    return np.stack([events % 997, np.full(len(events), -source)], axis=1)


def send(src: Source, events) -> None:
    src.send(events, inputs_for(events, src.source_id), results_for(events, src.source_id))


def arrived_fragments(ev: dict[str, np.ndarray], n_sources: int) -> int:
    bits = (ev["missing"][:, None] >> np.arange(n_sources, dtype=np.uint64)) & np.uint64(1)
    return int((bits == 0).sum())


def test_complete_out_of_order_duplicate_silent_and_late(tmp_path):
    port, pub = free_port(), free_port()
    cfg = basic_config(tmp_path, port, builder={"timeout_s": 2.0}, sink={"publish": f"tcp://127.0.0.1:{pub}"})
    d = Daemon(cfg)
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(f"tcp://127.0.0.1:{pub}")
    try:
        time.sleep(0.3)  # SUB joins late by design; give it a moment before events flow
        rng = np.random.default_rng(0)
        sources = [Source(s, f"tcp://127.0.0.1:{port}", n_inputs=N_IN, n_outputs=N_OUT, batch=7) for s in range(4)]
        full = np.arange(300)
        for src in sources[:3]:
            send(src, rng.permutation(full))  # out of order within each source
        send(sources[1], full[:20])  # 20 duplicates
        # sockets of different sources are not ordered with each other: let the duplicates land
        # before source 3 can complete events 0..19 (so that they meet their events in the window)
        d.wait_counter("builder_duplicates", 20)
        send(sources[3], rng.permutation(full[:200]))  # source 3 falls silent after event 199
        d.wait_counter("events_out", 300, timeout=60)  # 200 complete at once, 100 after the timeout
        send(sources[3], full[250:260])  # late: their events already left incomplete
        d.wait_counter("late_fragments", 10)
        for s in sources:
            s.close()
        status = d.stop()
    finally:
        d.kill()
    c = status["counters"]
    assert c["events_complete"] == 200 and c["events_incomplete"] == 100
    assert c["builder_duplicates"] == 20 and c["late_fragments"] == 10 and c["builder_timed_out"] == 100
    ev = read_sink(tmp_path / "out", "node-w0-*.h5", "events")
    assert sorted(ev["event"].tolist()) == list(range(300))
    complete = (ev["status"] & p.COMPLETE) != 0
    assert set(ev["event"][complete].tolist()) == set(range(200))
    for row in np.flatnonzero(~complete):
        assert ev["status"][row] & p.TIMED_OUT
        assert missing_sources(int(ev["missing"][row]), [0, 1, 2, 3]) == [3]
    # every source's data sits in its place in the built event
    for s in range(4):
        rows = complete
        np.testing.assert_array_equal(ev["inputs"][rows, s], inputs_for(ev["event"][rows], s))
        np.testing.assert_array_equal(ev["fpga"][rows, s], results_for(ev["event"][rows], s))
    late = read_sink(tmp_path / "out", "late-*.h5", "late")
    assert sorted(late["event"].tolist()) == list(range(250, 260)) and (late["source"] == 3).all()
    np.testing.assert_array_equal(late["inputs"], inputs_for(late["event"], 3))
    assert not list((tmp_path / "out").glob("*.tmp"))
    # a late file takes a chunk of its own size, not an events file's (~4 MB each, however few in it)
    (late_file,) = (tmp_path / "out").glob("late-*.h5")
    assert late_file.stat().st_size < 2 * sinks.LATE_CHUNK_BYTES
    # the silent source is named in the log, not only counted (a soak run's 20 s gap said nothing)
    lines = [x for x in d.log_lines() if x["event"] == "events-timed-out"]
    assert lines and all(x["level"] == "warning" and x["missing_sources"] == [3] for x in lines)
    assert lines[0]["count"] > 0
    # downstream consumers got the same events over PUB
    published = []
    while sub.poll(100):
        h, recs = p.decode(sub.recv())
        assert h.type == p.EVENTS and h.n_sources == 4
        published += recs["event"].tolist()
    sub.close(linger=0)
    assert sorted(published) == list(range(300))
    # structured logs: one JSON object per line, with the late fragments reported
    assert any(line["event"] == "late-fragments" for line in d.log_lines())


# Garbage: single-byte mutations of valid messages for "garbage" events B+i (i < 16), whose
# low two bytes are (i, 0); good events have low bytes (>= 0x10, >= 1), so no single-byte
# mutation can turn a garbage fragment into a good one.  The window (2**18) is wider than
# the largest accepted jump (2**17), so no accepted mutation can make good events late.
def good_events(base: int, n: int = 200) -> np.ndarray:
    j = np.arange(n)
    return base + 0x100 * (1 + j // 200) + 0x10 + j % 200


mutation = st.one_of(
    st.tuples(st.just("byte"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("junk"), st.integers(0, 300), st.integers(0, 255)),
)


def test_malformed_bytes_never_crash_and_good_events_all_arrive(tmp_path):
    port = free_port()
    cfg = basic_config(tmp_path, port, builder={"window": 1 << 18, "max_event_jump": 1 << 17, "timeout_s": 0.5})
    d = Daemon(cfg)
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.PUSH)
    raw.connect(f"tcp://127.0.0.1:{port}")
    sources = [Source(s, f"tcp://127.0.0.1:{port}", n_inputs=N_IN, n_outputs=N_OUT, batch=16) for s in range(4)]
    state = {"k": 0, "sent": 0, "good": []}

    @settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(mutation, min_size=1, max_size=40), st.lists(st.binary(max_size=200), max_size=5))
    def one_round(mutations, junk):
        state["k"] += 1
        base = state["k"] << 16
        templates = [
            p.encode_fragments(s, 0, p.make_fragments(base + np.arange(16), inputs_for(np.arange(16), s),
                                                      results_for(np.arange(16), s)))
            for s in range(4)
        ]  # fmt: skip
        garbage = list(junk)
        for i, (kind, pos, value) in enumerate(mutations):
            b = bytearray(templates[i % 4])
            if kind == "byte":
                b[pos % len(b)] = value
            elif kind == "cut":
                b = b[: pos % len(b)]
            else:
                b[pos % len(b) : pos % len(b)] = bytes([value]) * (1 + pos % 7)
            garbage.append(bytes(b))
        for g in garbage:
            raw.send(g)
        events = good_events(base)
        for src in sources:
            send(src, events)
        state["sent"] += len(garbage) + sum(-(-len(events) // 16) for _ in sources)
        state["good"].append(events)
        d.wait_counter("received_messages", state["sent"], timeout=60)
        assert d.proc.poll() is None, "the node died"

    try:
        one_round()
        raw.close(linger=1000)
        for s in sources:
            s.close()
        status = d.stop()
    finally:
        d.kill()
    assert status["counters"]["malformed_messages"] > 0
    assert all(reason for key in status["malformed"] for reason in key.split("/"))
    ev = read_sink(tmp_path / "out", "node-w0-*.h5", "events")
    complete = ev["event"][(ev["status"] & p.COMPLETE) != 0]
    good = np.concatenate(state["good"])
    missing = np.setdiff1d(good, complete)
    assert len(missing) == 0, f"good events lost or incomplete: {missing[:10]}"
    rows = np.isin(ev["event"], good)
    assert rows.sum() == len(good)  # each good event exactly once
    for s in range(4):
        np.testing.assert_array_equal(ev["inputs"][rows, s], inputs_for(ev["event"][rows], s))


SENDER = """
import sys, time, numpy as np
from sim.wire.source import Source
port, source = int(sys.argv[1]), int(sys.argv[2])
src = Source(source, f"tcp://127.0.0.1:{port}", n_inputs=8, n_outputs=2, batch=4)
e = 0
while True:
    ev = np.arange(e, e + 64)
    src.send(ev, np.ones((64, 8)), np.zeros((64, 2)))
    e += 64
    time.sleep(0.001)
"""


def test_sigterm_mid_stream_accounts_for_every_fragment(tmp_path):
    port = free_port()
    cfg = basic_config(tmp_path, port, builder={"timeout_s": 5.0})
    d = Daemon(cfg)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    senders = [subprocess.Popen([sys.executable, "-c", SENDER, str(port), str(s)], env=env) for s in range(3)]
    try:
        d.wait_counter("received_fragments", 3000, timeout=60)  # source 3 never sends: all events open
        status = d.stop()  # SIGTERM while the senders are still pushing
    finally:
        for s in senders:
            s.kill()
            s.wait()
        d.kill()
    c = status["counters"]
    ev = read_sink(tmp_path / "out", "node-w0-*.h5", "events")
    late = read_sink(tmp_path / "out", "late-*.h5", "late")
    set_aside = len(late["event"]) if late else 0  # late, and refused as jumps
    assert set_aside == c["late_fragments"] + c["builder_jumps"] == c["late_written"]
    assert c["received_fragments"] > 0
    assert c["received_fragments"] == arrived_fragments(ev, 4) + set_aside + c["builder_duplicates"]
    assert c["events_out"] == c["events_written"] == len(ev["event"])
    assert c["sink_built_in_arena"] > 0  # built where the files' chunks are written from (node.arena)
    assert (ev["status"] & (p.DRAINED | p.TIMED_OUT | p.EVICTED | p.COMPLETE)).all()
    assert not list((tmp_path / "out").glob("*.tmp"))
    # the senders were cut off: the line names each with the last message taken from it (messages
    # of 4 fragments numbered from 0, none missing: its fragments in the files / 4 - 1)
    (cut,) = [x for x in d.log_lines() if x["event"] == "senders-cut-off"]
    assert not status["sequence_gaps"] and cut["after_s"] == 1.0
    taken = {s: int((ev["inputs"][:, s] != 0).any(axis=1).sum()) for s in range(3)}  # the senders' inputs are ones
    if late:
        for s in range(3):
            taken[s] += int(np.sum(late["source"] == s))
    assert cut["last_received"] == [{"source": s, "last_sequence": taken[s] // 4 - 1} for s in range(3)]


def test_what_reached_the_node_before_a_sigterm_is_built_not_dropped(tmp_path):
    """A run's last messages, handed over by their sender before the stop, still in the
    node's socket buffers and ZeroMQ queue when SIGTERM comes: the inputs were closed with
    them queued, and up to all of them were lost, in no file and no counter (2 runs in 6).
    Now the inputs are drained until nothing comes, then closed."""
    port = free_port()
    d = Daemon(basic_config(tmp_path, port, sources=[0]))
    n_messages, batch = 900, 16
    ctx = zmq.Context()
    try:
        push = ctx.socket(zmq.PUSH)
        push.connect(f"tcp://127.0.0.1:{port}")
        for k in range(n_messages):
            ev = np.arange(k * batch, (k + 1) * batch)
            push.send(p.encode_fragments(0, k, p.make_fragments(ev, np.ones((batch, N_IN)), np.zeros((batch, N_OUT)))))
            if k == 0:  # connected (ZeroMQ's handshake needs the node's thread), then
                d.wait_counter("received_fragments", batch)
                d.proc.send_signal(signal.SIGSTOP)  # the node busy elsewhere while the run ends
        push.close(linger=30_000)
        ctx.term()  # returns once every message is handed to TCP (on its way to the node, or there)
        d.proc.send_signal(signal.SIGCONT)
        status = d.stop()  # at once
    finally:
        d.proc.send_signal(signal.SIGCONT)
        d.kill()
    c = status["counters"]
    ev = read_sink(tmp_path / "out", "node-w0-*.h5", "events")
    assert c["received_fragments"] == n_messages * batch == len(ev["event"]) == c["events_complete"]
    assert sorted(ev["event"].tolist()) == list(range(n_messages * batch))


def test_an_oversize_message_is_counted_and_the_good_ones_behind_it_arrive(tmp_path):
    """The socket's size limit was security.max_message_bytes itself: ZeroMQ dropped the
    sender's connection over one message too long, with the good ones behind it, and
    counted nothing (the oversize reason could not happen). Now a message up to 4 x the
    limit is taken, counted oversize against its source and let go. A refused message
    that is its source's next by number is not also counted missing (it was, in
    ``sequence_gaps``, by the message behind it). A message with unknown flag bits or a
    reserved field set on some fragments loses only those (to the late file, saying why):
    it was refused whole, its good fragments' events built without them."""
    port = free_port()
    d = Daemon(basic_config(tmp_path, port, sources=[0], security={"max_message_bytes": 4096}))
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")
    per = PER_4K
    try:
        push.send(fragments_message(0, per, 0))  # at the limit: taken
        push.send(fragments_message(1000, per + 1, 1))  # one fragment over: counted, let go
        push.send(fragments_message(2000, 50, 2))  # a good one behind it
        d.wait_counter("events_out", per + 50)
        bad_flags = bytearray(fragments_message(3000, 5, 3))
        bad_flags[p.HEADER_SIZE + 16] |= 0x80  # a flag bit the protocol does not have
        f = p.fragment_dtype(N_IN, N_OUT, 4)
        bad_flags[p.HEADER_SIZE + 3 * f.itemsize + f.fields["reserved"][1]] = 1  # fragment 3's reserved field
        push.send(bad_flags)
        push.send(fragments_message(4000, 5, 4))
        d.wait_counter("events_out", per + 58)
        status = d.stop()
    finally:
        push.close(linger=0)
        ctx.term()
        d.kill()
    assert status["malformed"] == {"0/oversize": 1, "0/bad-flags": 1}
    assert status["counters"]["events_complete"] == per + 58 and status["counters"]["refused_fragments"] == 2
    assert status["sequence_gaps"] == {} and status["counters"]["sequence_resets"] == 0
    ev = read_sink(tmp_path / "out", "node-w0-*.h5", "events")
    assert sorted(ev["event"].tolist()) == [*range(per), *range(2000, 2050), 3001, 3002, 3004, *range(4000, 4005)]
    late = read_sink(tmp_path / "out", "late-*.h5", "late")
    assert late["event"].tolist() == [3000, 3003] and (late["why"] == WHY_BAD_FLAGS).all()
    assert late["reserved"].tolist() == [0, 1]  # what 3003 was refused for
    (line,) = [x for x in d.log_lines() if x["event"] == "malformed" and x["reason"] == "bad-flags"]
    assert "fragment 0" in line["detail"] and "2 of its 5 fragments refused" in line["detail"]
    assert line["detail"].count("bad-flags") == 1  # "bad-flags: bad-flags: fragment 0..." before
    (line,) = [x for x in d.log_lines() if x["event"] == "malformed" and x["reason"] == "oversize"]
    assert line["source"] == "0" and line["bytes"] > 4096


def test_an_oversize_message_is_refused_in_its_place_among_the_drains_messages(tmp_path):
    """Refused as it came off the socket, an oversize message took its sequence number
    before the drain's earlier messages were checked: the next of them counted a gap. One
    drain, made sure of (the node's loop is not running: the messages wait on its socket)."""
    with node_not_running(tmp_path) as (node, push):
        for first, n, seq in [(0, 5, 0), (5, 5, 1), (100, PER_4K + 1, 2), (200, 5, 3), (300, PER_4K + 1, 4)]:
            push.send(fragments_message(first, n, seq))
        queued(node)
        node._drain(node.inputs)
        c = node.metrics.c
        assert c["received_messages"] == 3 and c["drains"] == 1 and c["malformed_messages"] == 2
        assert dict(node.metrics.seq_gaps) == {} and c["sequence_resets"] == 0
        assert node.sequences.last[0] == 4 and node.builder.counts.fragments == 15


def test_what_a_drain_received_is_built_when_its_socket_fails_mid_drain(tmp_path):
    """A socket error mid-drain (its context terminated under an embedding program) lost
    the messages the drain had already taken off the socket, and the oversize ones went
    uncounted. Now they are built and counted on the way out."""

    class FailsAtThird:  # the node's real socket, failing as a terminated context makes it fail
        def __init__(self, sock):
            self.sock, self.calls = sock, 0

        def recv_into(self, *args, **kw):
            self.calls += 1
            if self.calls == 3:
                raise zmq.ContextTerminated()
            return self.sock.recv_into(*args, **kw)

    with node_not_running(tmp_path) as (node, push):
        for first, n, seq in [(0, 5, 0), (100, PER_4K + 1, 1), (200, 5, 2)]:
            push.send(fragments_message(first, n, seq))
        queued(node)
        with pytest.raises(zmq.ContextTerminated):
            node._drain([FailsAtThird(node.inputs[0])])
        c = node.metrics.c
        assert c["received_messages"] == 1 and c["malformed_messages"] == 1 and node.builder.counts.fragments == 5


def test_unauthenticated_client_is_refused_under_curve(tmp_path):
    from sim.wire.security import CurveKeys, keygen

    keys = tmp_path / "keys"
    keygen(keys, "node")
    keygen(keys / "clients", "board")
    keygen(tmp_path / "intruder", "intruder")
    port = free_port()
    cfg = basic_config(
        tmp_path, port, sources=[0],
        security={"curve_secret_key": "keys/node.key_secret", "curve_clients": "keys/clients"},
    )  # fmt: skip
    d = Daemon(cfg)
    ep = f"tcp://127.0.0.1:{port}"
    try:
        board_keys = CurveKeys.from_files(keys / "clients/board.key_secret", keys / "node.key")
        intruder_keys = CurveKeys.from_files(tmp_path / "intruder/intruder.key_secret", keys / "node.key")
        good = Source(0, ep, n_inputs=N_IN, n_outputs=N_OUT, curve=board_keys)
        bad = Source(0, ep, n_inputs=N_IN, n_outputs=N_OUT, curve=intruder_keys)
        plain = zmq.Context.instance().socket(zmq.PUSH)
        plain.connect(ep)
        send(bad, np.arange(1000, 1100))
        plain.send(p.encode_fragments(0, 0, p.make_fragments([2000], inputs_for([0], 0), results_for([0], 0))))
        send(good, np.arange(100))
        d.wait_counter("events_out", 100)
        time.sleep(1.0)  # give the refused ones every chance to show up
        for s in (good, bad):
            s.close(linger_ms=0)
        plain.close(linger=0)
        status = d.stop()
    finally:
        d.kill()
    assert status["counters"]["received_fragments"] == 100
    ev = read_sink(tmp_path / "out", "node-w0-*.h5", "events")
    assert sorted(ev["event"].tolist()) == list(range(100))
    # the intruder (its key unknown) is counted and named on the node's side too, not only refused
    assert status["counters"]["curve_refused"] >= 1
    refused = [x for x in d.log_lines() if x["event"] == "curve-refused"]
    assert refused and refused[0]["level"] == "warning" and refused[0]["address"] == "127.0.0.1"


def test_under_curve_the_built_events_are_published_only_to_known_subscribers(tmp_path):
    """With CURVE on, the inputs were encrypted and authenticated but the PUB socket sent
    every built event in the clear to anyone who connected."""
    from sim.wire.security import CurveKeys, client_curve, keygen

    keys = tmp_path / "keys"
    keygen(keys, "node")
    keygen(keys / "clients", "board")
    keygen(keys / "clients", "analysis")
    keygen(tmp_path / "intruder", "intruder")
    port, pub_port = free_port(), free_port()
    cfg = basic_config(
        tmp_path, port, sources=[0],
        security={"curve_secret_key": "keys/node.key_secret", "curve_clients": "keys/clients"},
        sink={"publish": f"tcp://127.0.0.1:{pub_port}", "write_files": False},
    )  # fmt: skip
    d = Daemon(cfg)
    ctx = zmq.Context()
    subs = {}
    try:
        for name, secret in (("analysis", keys / "clients/analysis.key_secret"),
                             ("intruder", tmp_path / "intruder/intruder.key_secret"), ("plain", None)):  # fmt: skip
            sub = ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            if secret is not None:
                client_curve(sub, CurveKeys.from_files(secret, keys / "node.key"))
            sub.connect(f"tcp://127.0.0.1:{pub_port}")
            subs[name] = sub
        time.sleep(1.0)  # the subscriptions (and the refusals) settle
        src = Source(0, f"tcp://127.0.0.1:{port}", n_inputs=N_IN, n_outputs=N_OUT,
                     curve=CurveKeys.from_files(keys / "clients/board.key_secret", keys / "node.key"))  # fmt: skip
        send(src, np.arange(50))
        src.close()
        got = {name: [] for name in subs}
        deadline = time.monotonic() + 30
        while len(got["analysis"]) < 50 and time.monotonic() < deadline:
            for name, sub in subs.items():
                while sub.poll(10):
                    _, records = p.decode(sub.recv())
                    got[name] += records["event"].tolist()
        status = d.stop()
    finally:
        for sub in subs.values():
            sub.close(linger=0)
        ctx.term()
        d.kill()
    assert sorted(got["analysis"]) == list(range(50)) and got["intruder"] == [] and got["plain"] == []
    assert status["counters"]["curve_refused"] >= 1


def test_fast_sender_is_held_back_and_nothing_is_lost(tmp_path):
    port = free_port()
    cfg = write_config(
        tmp_path,
        {
            "node": {"sources": [0], "status_interval_s": 0.2},
            "fragment": {"n_inputs": 256, "n_outputs": 1, "raw_bytes": 4},
            "sink": {"directory": "out"},
        },
        [{"endpoint": f"tcp://127.0.0.1:{port}", "hwm": 10}],
    )
    d = Daemon(cfg)
    n = 30_000  # 30 MB of 1 KB fragments: far more than the socket buffers hold
    src = Source(0, f"tcp://127.0.0.1:{port}", n_inputs=256, n_outputs=1, batch=1, sndhwm=10)
    errors = []

    def push():
        try:
            for start in range(0, n, 500):
                ev = np.arange(start, start + 500)
                src.send(ev, np.ones((500, 256)), np.zeros((500, 1)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    os.kill(d.proc.pid, signal.SIGSTOP)  # the node stalls: the sender is infinitely faster
    try:
        t = threading.Thread(target=push, daemon=True)
        t.start()
        t.join(3.0)
        held = src.sent_messages
        assert t.is_alive() and held < n, f"sender was not held back ({held} of {n} sent)"
        os.kill(d.proc.pid, signal.SIGCONT)
        t.join(120)
        assert not t.is_alive() and not errors
        d.wait_counter("events_out", n, timeout=120)
        src.close()
        status = d.stop()
    finally:
        if d.proc.poll() is None:
            os.kill(d.proc.pid, signal.SIGCONT)
        d.kill()
    c = status["counters"]
    assert c["received_fragments"] == n and c["events_complete"] == n
    assert c["sink_chunks_in_place"] > 0  # 1,085-byte records: 4,096 to a whole-page chunk (node.arena)
    assert status["sequence_gaps"] == {}


def test_several_workers_share_one_status(tmp_path):
    base = free_ports(2)
    cfg = basic_config(tmp_path, base, node={"workers": 2})
    d = Daemon(cfg)
    try:
        endpoints = [f"tcp://127.0.0.1:{base}", f"tcp://127.0.0.1:{base + 1}"]
        sources = [Source(s, endpoints, n_inputs=N_IN, n_outputs=N_OUT) for s in range(4)]
        for src in sources:
            send(src, np.arange(1000))
        wait_for(lambda: (d.status().get("workers") == 2 and d.counter("events_complete") >= 1000), 60,
                 "both workers to report 1000 events")  # fmt: skip
        for s in sources:
            s.close()
        status = d.stop()
    finally:
        d.kill()
    assert status["counters"]["events_complete"] == 1000 and status["exit_codes"] == [0, 0]
    per_worker = [read_sink(tmp_path / "out", f"node-w{k}-*.h5", "events")["event"] for k in range(2)]
    assert all(len(w) > 0 for w in per_worker)
    assert sorted(np.concatenate(per_worker).tolist()) == list(range(1000))
    assert all((w % 2 == k).all() for k, w in enumerate(per_worker))  # routed by event number


def test_sparse_event_numbers_in_a_small_window_are_evicted_and_the_log_says_why(tmp_path):
    """Event numbers 1000 apart (a prescale keeping every 1000th) in a window of 8192
    numbers: a source one message behind has its events evicted, incomplete, which only
    a counter showed. Now a warning says that the window counts event numbers."""
    port = free_port()
    d = Daemon(basic_config(tmp_path, port, sources=[0, 1], builder={"window": 8192, "timeout_s": 5.0}))
    try:
        srcs = [Source(s, f"tcp://127.0.0.1:{port}", n_inputs=N_IN, n_outputs=N_OUT, batch=16) for s in (0, 1)]
        events = np.arange(64) * 1000
        send(srcs[0], events)  # four messages, each spanning 15,000 numbers
        time.sleep(0.5)
        send(srcs[1], events)
        for src in srcs:
            src.close()
        wait_for(lambda: d.counter("received_fragments") >= 128, 60, "128 fragments")
        status = d.stop()
    finally:
        d.kill()
    c = status["counters"]
    assert c["builder_evicted"] > 0 and c["events_complete"] < 64
    line = next(x for x in d.log_lines() if x["event"] == "events-evicted")
    assert line["level"] == "warning" and line["window"] == 8192 and "spacing" in line["hint"]


def _backlogs(port: int, n: int, late_by: float) -> list[Source]:
    """Four sources' backlogs of ``n`` events each, as senders that kept sending while their
    node was down hand them over when they reconnect (ZeroMQ retries every 100-200 ms, each
    on its own timer): sources 0-2 at once, source 3 ``late_by`` seconds after them."""
    srcs = []
    for s in range(4):
        if s == 3:
            time.sleep(late_by)
        srcs.append(Source(s, f"tcp://127.0.0.1:{port}", n_inputs=N_IN, n_outputs=N_OUT, batch=16))
        send(srcs[-1], np.arange(n))
    return srcs


def test_backlogs_of_senders_reconnecting_apart_after_a_restart_are_built_together(tmp_path):
    """A node restarted (SIGKILL, 0.5-3 s) while 4 senders pushed 3k events/s: each sender
    reconnects on its own timer, and the node's first drains took the whole backlog of the
    first one(s) back before the last had reconnected, thousands of events ahead: events
    evicted incomplete, the rest of their fragments late (restarts with events-evicted: 51
    of 138 in a soak; 3 of 14 kills at 3k events/s here, 1,216-2,592 events each). Those
    fragments were all queued for the node, within the window of one another; now the
    first drain waits for the senders still reconnecting (START_GRACE_S), and the backlogs
    are read in turn (the same 14 kills: none). Here source 3 reconnects 50 ms late."""
    port = free_port()
    n = 6000  # ~3 windows each
    d = Daemon(basic_config(tmp_path, port, builder={"window": 2048, "timeout_s": 5.0}))
    try:
        srcs = _backlogs(port, n, late_by=0.05)
        d.wait_counter("received_fragments", 4 * n, timeout=60)
        for src in srcs:
            src.close()
        status = d.stop()
    finally:
        d.kill()
    c = status["counters"]
    assert (c["events_complete"], c["builder_evicted"], c["late_fragments"]) == (n, 0, 0)
    assert not [x for x in d.log_lines() if x["event"] == "events-evicted"]


def test_evicted_events_are_told_with_their_numbers_and_the_sources_they_lacked(tmp_path):
    """A source whose backlog comes a window after the others' (a sender reconnecting late
    after a restart) has its events evicted, its fragments late: the policy. The line said
    only that the window moved (``window``, ``open_events``); now it names the events, and
    each source they lacked: the one that had not reached them (runs behind, its fragments
    come late: ``not_reached``) and one that had passed them without sending them (lost
    with a killed node: a restart's first events)."""
    port = free_port()
    n, window = 6000, 2048
    d = Daemon(basic_config(tmp_path, port, builder={"window": window, "timeout_s": 5.0}))
    lost = np.arange(100, 116)  # source 2's message of these went down with the node before
    try:
        srcs = [Source(s, f"tcp://127.0.0.1:{port}", n_inputs=N_IN, n_outputs=N_OUT, batch=16) for s in range(4)]
        for s in (0, 1, 2):
            send(srcs[s], np.setdiff1d(np.arange(n), lost) if s == 2 else np.arange(n))
        d.wait_counter("received_fragments", 3 * n - len(lost))
        send(srcs[3], np.arange(n))  # its backlog, a window late
        d.wait_counter("received_fragments", 4 * n - len(lost))
        for src in srcs:
            src.close()
        status = d.stop()
    finally:
        d.kill()
    c = status["counters"]
    evicted = n - window
    assert (c["events_complete"], c["builder_evicted"], c["late_fragments"]) == (window, evicted, evicted)
    ev = read_sink(tmp_path / "out", "node-w0-*.h5", "events")
    assert c["received_fragments"] == arrived_fragments(ev, 4) + c["late_fragments"]  # nothing lost
    lines = [x for x in d.log_lines() if x["event"] == "events-evicted"]
    assert sum(x["count"] for x in lines) == evicted and lines[0]["window"] == window
    assert (min(x["first_event"] for x in lines), max(x["last_event"] for x in lines)) == (0, evicted - 1)
    told = {}
    for x in lines:
        assert x["high"] == n - 1 and "not_reached" in x["hint"]
        for lack in x["lacking"]:
            t = told.setdefault(lack["source"], [0, 0])
            t[0], t[1] = t[0] + lack["events"], t[1] + lack["not_reached"]
            if lack["source"] == 3:  # nothing from it yet when its events left
                assert lack["highest"] is None and lack["behind"] is None
            else:
                assert (lack["highest"], lack["behind"]) == (n - 1, 0)
    assert told == {2: [len(lost), 0], 3: [evicted, evicted]}


def test_a_source_sending_to_the_wrong_worker_is_named(tmp_path):
    """With node.workers = 2, a source given only worker 0's endpoint had its odd events
    built there, split from the rest of them in worker 1, and nothing said so."""
    base = free_ports(2)
    d = Daemon(basic_config(tmp_path, base, sources=[0], node={"workers": 2, "status_interval_s": 0.2}))
    try:
        src = Source(0, f"tcp://127.0.0.1:{base}", n_inputs=N_IN, n_outputs=N_OUT)  # worker 0's only
        send(src, np.arange(10))
        src.close()
        wait_for(lambda: d.counter("events_complete") >= 10, 60, "10 events")
        status = d.stop()
    finally:
        d.kill()
    assert status["counters"]["builder_misrouted"] == 5 and status["counters"]["events_complete"] == 10
    assert sorted(read_sink(tmp_path / "out", "node-w0-*.h5", "events")["event"].tolist()) == list(range(10))
    (line,) = [x for x in d.log_lines() if x["event"] == "misrouted-fragments"]
    assert line["level"] == "warning" and line["source"] == 0 and line["worker"] == 0 and line["belongs_to"] == 1


def _worker_pids(d: Daemon) -> list[int]:
    return wait_for(lambda: next((x["pids"] for x in d.log_lines() if x["event"] == "supervisor-started"), None),
                    30, "the supervisor's workers")  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_worker_that_dies_stops_the_node_which_says_so(tmp_path):
    """One worker killed: the supervisor stops the other in order and exits 1, names the
    dead worker in an error line, and its last status is final and failed (it stayed
    "running": the dead worker never wrote a final status)."""
    base = free_ports(2)
    cfg = basic_config(tmp_path, base, sources=[0], node={"workers": 2, "status_interval_s": 0.2})
    d = Daemon(cfg)
    try:
        pids = _worker_pids(d)
        wait_for(lambda: d.status().get("workers") == 2, 30, "both workers' status")
        os.kill(pids[1], signal.SIGKILL)
        assert d.proc.wait(60) == 1
    finally:
        d.kill()
    status = d.status()
    assert status["final"] and status["failed"] and status["exit_codes"] == [0, -signal.SIGKILL]
    exited = [x for x in d.log_lines() if x["event"] == "worker-exited"]
    assert [(x["level"], x["worker"], x["exit_code"]) for x in exited] == [("error", 1, -signal.SIGKILL)]


def _kill_supervisor(d: Daemon, pids: list[int], orphans_within: float) -> None:
    """SIGKILL the supervisor and wait for its workers (``pids``) to stop by themselves."""
    d.proc.kill()
    d.proc.wait(10)
    wait_for(lambda: not any(_alive(pid) for pid in pids), orphans_within, "the orphaned workers to stop")


def _kill_workers(d: Daemon, pids: list[int]) -> None:
    """Whatever the test found, leave no worker or supervisor running."""
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    d.kill()


@pytest.mark.parametrize("when", ["running", "starting"])
def test_workers_stop_when_their_supervisor_is_killed(tmp_path, when):
    """The supervisor killed (SIGKILL): its workers held the ports and took data that no
    status reported, and a new node on the same configuration could not bind.  Now each
    worker stops in order once its supervisor is gone, and a new node starts; also when it
    died while they were still starting (they took their new parent for it: review).
    ``running``: with an hour's status interval, as a running worker looked for its
    supervisor only at its status interval, though the kernel tells it at once (SIGHUP):
    it held its ports and its files' locks that long, and a new node was refused."""
    base = free_ports(2)
    interval = 3600.0 if when == "running" else 0.2
    cfg = basic_config(tmp_path, base, sources=[0], node={"workers": 2, "status_interval_s": interval})
    d = Daemon(cfg)
    pids = []
    try:
        pids = _worker_pids(d)
        if when == "running":
            wait_for(lambda: d.status().get("workers") == 2, 30, "both workers' status")
        _kill_supervisor(d, pids, orphans_within=60 if when == "running" else 30)
    finally:
        _kill_workers(d, pids)
    gone = [x for x in d.log_lines() if x["event"] == "supervisor-gone"]
    assert len(gone) == 2 and all(x["level"] == "error" for x in gone), gone
    if when == "running":
        assert not any(x.get("starting") for x in gone), gone
    d = Daemon(cfg)  # the ports and the files free again
    assert d.stop()["exit_codes"] == [0, 0]


def _blocked_opening_a_fifo(pid: int) -> bool:
    """``pid`` waits in open() for the other end of a FIFO (Linux's wait_for_partner)."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return f.read() == "wait_for_partner"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("blocked_in", ["recovery", "status"])
def test_workers_blocked_starting_stop_when_their_supervisor_is_killed(tmp_path, blocked_in):
    """Workers whose start blocks (a file on a mount that hangs; here a FIFO, whose open()
    waits for a writer or reader that never comes) outlived their killed supervisor for
    ever: only the loop they never reached looked for it.  Now each stops within seconds.
    ``recovery``: before any input is bound (a killed writer's chunk log to read): it
    gives up its start, closing what it had opened, leaving no status file and no
    half-rebuilt file.  ``status``:
    its inputs bound, events sent to it, its status file not yet written: it stops in
    order as a running worker does, and every event sent is in its files."""
    base = free_ports(2)
    # recovery: with sockets open (to a board that is not there), which giving up the start closes
    offload = {"boards": [f"tcp://127.0.0.1:{free_port()}"]} if blocked_in == "recovery" else {}
    cfg = basic_config(tmp_path, base, sources=[0], node={"workers": 2, "status_interval_s": 0.2}, offload=offload)
    out = tmp_path / "out"
    out.mkdir()
    for k in range(2):
        if blocked_in == "recovery":
            (out / f"node-w{k}-20260101T000000-00000.h5.tmp").write_bytes(b"")
            os.mkfifo(out / f"node-w{k}-20260101T000000-00000.h5.tmp.chunks")
        else:
            os.mkfifo(tmp_path / f"node-status.json.w{k}.tmp")
    d = Daemon(cfg)
    pids, n = [], 200
    try:
        pids = _worker_pids(d)
        wait_for(lambda: all(_blocked_opening_a_fifo(pid) for pid in pids), 60, "both workers to block")
        if blocked_in == "status":
            ctx = zmq.Context()
            src = Source(0, [f"tcp://127.0.0.1:{base + k}" for k in range(2)], n_inputs=N_IN, n_outputs=N_OUT,
                         context=ctx)  # fmt: skip
            send(src, np.arange(n))
            src.close()
            ctx.term()  # every message handed to the workers' connections
        _kill_supervisor(d, pids, orphans_within=10)
    finally:
        _kill_workers(d, pids)
    gone = [x for x in d.log_lines() if x["event"] == "supervisor-gone"]
    assert len(gone) == 2 and all(x["level"] == "error" and x["starting"] for x in gone), gone
    step = {"recovery": "node/chunklog.py:", "status": "node/metrics.py:"}[blocked_in]  # where each was stuck
    assert all(x["during"].startswith(step) for x in gone), gone
    statuses = [read_status(tmp_path / f"node-status.json.w{k}") for k in range(2)]
    if blocked_in == "recovery":
        assert statuses == [None, None]  # it never ran
        assert sorted(f.name for f in out.iterdir()) == sorted(
            [f"node-w{k}-20260101T000000-00000.h5.tmp{suffix}" for k in range(2) for suffix in ("", ".chunks")]
            + [f".node-w{k}.lock" for k in range(2)]
        )  # left as they were: no .rebuilt, no probe file; only each worker's lock on its files added
        return
    assert all(s["final"] and not s["failed"] for s in statuses), statuses
    assert sum(s["counters"]["events_complete"] for s in statuses) == n
    assert sorted(read_sink(out, "node-w*-*.h5", "events")["event"].tolist()) == list(range(n))
    assert not list(tmp_path.glob("node-status.json.w*.tmp"))
    d = Daemon(cfg)  # the ports are free again
    assert d.stop()["exit_codes"] == [0, 0]


def test_a_worker_ignores_sighup_while_its_supervisor_lives(tmp_path):
    """A worker takes SIGHUP only as the news that its supervisor died (node.orphan): with
    the supervisor alive it runs on (before, SIGHUP killed it and with it the node)."""
    base = free_ports(2)
    d = Daemon(basic_config(tmp_path, base, sources=[0], node={"workers": 2, "status_interval_s": 0.2}))
    try:
        pids = _worker_pids(d)
        wait_for(lambda: d.status().get("workers") == 2, 30, "both workers' status")
        for pid in pids:
            os.kill(pid, signal.SIGHUP)
        time.sleep(0.5)
        assert all(_alive(pid) for pid in pids)
        assert d.stop()["exit_codes"] == [0, 0]
    finally:
        d.kill()
    assert not [x for x in d.log_lines() if x["event"] in ("supervisor-gone", "worker-exited")]


def _two_boards(tmp_path, before, while_stopped, n_events: int, **node) -> dict:
    """A node with a socket per board (boards 0 and 1): ``before`` is sent and received,
    then ``while_stopped`` queues up on both sockets while the node stands still (SIGSTOP);
    the final counters once ``n_events`` are complete.

    Every board sends in ``before``, so both connections are made before the stop: a
    handshake left for after it let one board's whole queue in, drained alone, before the
    other's connection was up (seen in CI: 0 events built directly)."""
    assert {k for k, _ in before} == {0, 1}, "each board must be connected before the stop"
    base = free_ports(2)
    cfg = write_config(
        tmp_path,
        {"node": {"sources": [0, 1], "status_interval_s": 0.2, **node}, "builder": {"timeout_s": 30.0},
         "fragment": {"n_inputs": N_IN, "n_outputs": N_OUT}, "sink": {"directory": "out"}},
        [{"endpoint": f"tcp://127.0.0.1:{base + k}"} for k in range(2)],
    )  # fmt: skip
    d = Daemon(cfg)
    sources = [Source(k, f"tcp://127.0.0.1:{base + k}", n_inputs=N_IN, n_outputs=N_OUT) for k in range(2)]
    try:
        for k, events in before:
            send(sources[k], events)
        d.wait_counter("received_fragments", sum(len(events) for _, events in before))
        os.kill(d.proc.pid, signal.SIGSTOP)
        try:
            for k, events in while_stopped:
                send(sources[k], events)
            time.sleep(0.5)
        finally:
            os.kill(d.proc.pid, signal.SIGCONT)
        d.wait_counter("events_complete", n_events)
        for src in sources:
            src.close()
        return d.stop()["counters"]
    finally:
        d.kill()


def test_sources_on_sockets_of_their_own_are_built_together(tmp_path):
    """One input per board: a drain takes messages from each ready socket in turn, so an
    event's fragments meet in one drain and are built straight from the receive buffer
    (each socket drained on its own, every event went through the ring)."""
    first, rest = np.arange(16), np.arange(16, 2000)
    # drains of at most 16 messages a socket: should board 0's queue reach the node before
    # board 1's (the I/O thread's timing), the lead check brings them back into step at once
    # (with 1024, one drain could take board 0's whole queue: 1 failure in ~10 loaded runs)
    c = _two_boards(tmp_path, [(0, first), (1, first)], [(0, rest), (1, rest)], 2000, drain_max=16)
    assert c["events_complete"] == 2000 and c["events_incomplete"] == 0
    assert c["builder_direct"] >= 1500, c["builder_direct"]  # all but the odd drain boundary
    assert c["sink_chunks_in_place"] == 0 and c["sink_built_in_arena"] > 0  # no whole chunk: 260-byte records
    ev = read_sink(tmp_path / "out", "node-w0-*.h5", "events")
    assert sorted(ev["event"].tolist()) == list(range(2000))
    np.testing.assert_array_equal(ev["inputs"][np.argsort(ev["event"])][:, 1], inputs_for(np.arange(2000), 1))


def test_a_board_that_fell_behind_is_read_back_into_step(tmp_path):
    """Board 0 is ~1000 events ahead when the node looks at its sockets again: read in turn,
    it would stay ahead and every event would wait in the ring for board 1's fragment; the
    lagging socket is read first until the two are in step."""
    before = [(0, np.arange(1000)), (1, np.arange(16))]
    c = _two_boards(tmp_path, before, [(0, np.arange(1000, 5000)), (1, np.arange(16, 5000))], 5000, drain_max=8)
    assert c["events_complete"] == 5000 and c["events_incomplete"] == 0 and c.get("late_fragments", 0) == 0
    # once board 1 caught up (its first 1000 events complete through the ring), the rest
    # of the events meet in their drains
    assert c["builder_direct"] >= 3000, c["builder_direct"]


def test_sub_input_from_a_publishing_source(tmp_path):
    port = free_port()
    cfg = write_config(
        tmp_path,
        {"node": {"sources": [5], "status_interval_s": 0.2}, "fragment": {"n_inputs": N_IN, "n_outputs": N_OUT},
         "sink": {"directory": "out"}},
        [{"endpoint": f"tcp://127.0.0.1:{port}", "type": "sub", "bind": False}],
    )  # fmt: skip
    src = Source(5, f"tcp://127.0.0.1:{port}", n_inputs=N_IN, n_outputs=N_OUT, socket_type=zmq.PUB, bind=True)
    d = Daemon(cfg)
    try:
        time.sleep(0.5)  # PUB/SUB: the subscription must reach the publisher first
        send(src, np.arange(50))
        d.wait_counter("events_complete", 50)
        send(src, np.arange(60, 70))  # a gap in events is fine; a gap in messages is counted
        src.sequence[0] += 3  # as if three messages were lost on the way
        send(src, np.arange(70, 80))
        d.wait_counter("events_complete", 70)
        src.close()
        status = d.stop()
    finally:
        d.kill()
    assert status["sequence_gaps"] == {"5": 3}


def test_a_sequence_number_beyond_int64_is_counted_not_fatal(tmp_path):
    """The header's sequence is a u64: a garbage one >= 2**63 (a flipped top bit) once
    crashed the node where a drain was decoded message by message."""
    port = free_port()
    d = Daemon(basic_config(tmp_path, port))
    raw = zmq.Context.instance().socket(zmq.PUSH)
    raw.connect(f"tcp://127.0.0.1:{port}")
    src = [Source(s, f"tcp://127.0.0.1:{port}", n_inputs=N_IN, n_outputs=N_OUT) for s in range(4)]
    try:
        for k, (seq, junk) in enumerate(((2**64 - 1, []), (2**63, [b"junk"]), (2**63 + 7, [b"x" * 100, b"y"]))):
            ev = np.array([100 + k])  # within the window of events 0..19 sent next
            msg = p.encode_fragments(0, seq, p.make_fragments(ev, inputs_for(ev, 0), results_for(ev, 0)))
            for j in junk:  # other lengths in the same drain: decoded one by one
                raw.send(j)
            raw.send(msg)
        for s in src:
            send(s, np.arange(20))
        d.wait_counter("events_complete", 20)
        assert d.proc.poll() is None, "the node died"
        for s in src:
            s.close()
        raw.close(linger=1000)
        status = d.stop()
    finally:
        d.kill()
    assert status["counters"]["malformed_messages"] == 3 and status["counters"]["events_complete"] == 20


def test_a_corrupt_first_event_number_does_not_stop_the_building(tmp_path):
    """The first fragment of a run carried a corrupt event number (a bit flip, 2^40): every
    good fragment after it was late, for good. The builder lets go of that anchor once
    fragments far from the window keep coming from two sources for a build timeout with
    none in it, and builds again."""
    port = free_port()
    d = Daemon(basic_config(tmp_path, port, sources=[0, 1], builder={"timeout_s": 0.2}))
    try:
        srcs = [Source(s, f"tcp://127.0.0.1:{port}", n_inputs=N_IN, n_outputs=N_OUT) for s in (0, 1)]
        send(srcs[0], [1 << 40])
        d.wait_counter("received_fragments", 1)  # it alone anchors the numbering
        for start in range(0, 2000, 50):  # 1 s of events, paced
            for s in srcs:
                send(s, np.arange(start, start + 50))
            time.sleep(0.025)
        d.wait_counter("events_complete", 1000, timeout=60)
        for s in srcs:
            s.close()
        status = d.stop()
    finally:
        d.kill()
    c = status["counters"]
    assert c["builder_reanchors"] == 1
    assert any(x["event"] == "builder-reanchored" for x in d.log_lines())
    ev = read_sink(tmp_path / "out", "node-w0-*.h5", "events")
    late = read_sink(tmp_path / "out", "late-*.h5", "late")
    complete = ev["event"][(ev["status"] & p.COMPLETE) != 0]
    late_events = set(late["event"][late["why"] == WHY_LATE].tolist()) if late else set()
    assert sorted(complete.tolist()) == sorted(set(range(2000)) - late_events)  # the rest built whole
    assert len(late_events) < 1000  # late: what came in the build timeout before the let-go
    n_set_aside = len(late["event"]) if late else 0  # late, and refused as jumps
    assert n_set_aside == c["late_fragments"] + c["builder_jumps"]
    assert c["received_fragments"] == 4001 == arrived_fragments(ev, 2) + n_set_aside


def test_an_event_number_jump_is_refused_and_named_with_its_source(tmp_path):
    port = free_port()
    d = Daemon(basic_config(tmp_path, port, sources=[4, 5]))
    try:
        srcs = [Source(s, f"tcp://127.0.0.1:{port}", n_inputs=N_IN, n_outputs=N_OUT) for s in (4, 5)]
        for s in srcs:
            send(s, np.arange(100))
        d.wait_counter("events_complete", 100)
        send(srcs[1], [1 << 40])  # a corrupt event number, far beyond builder.max_event_jump
        for s in srcs:
            send(s, np.arange(100, 200))
            s.close()
        d.wait_counter("events_complete", 200)
        status = d.stop()
    finally:
        d.kill()
    assert status["counters"]["builder_jumps"] == 1 and status["counters"]["events_incomplete"] == 0
    (line,) = [x for x in d.log_lines() if x["event"] == "event-number-jump"]
    assert line["source"] == 5 and line["event_number"] == 1 << 40 and line["level"] == "warning"
    late = read_sink(tmp_path / "out", "late-*.h5", "late")  # refused, not lost: in the late file, saying why
    assert (late["source"].tolist(), late["event"].tolist(), late["why"].tolist()) == ([5], [1 << 40], [WHY_JUMP])
    assert status["counters"]["late_fragments"] == 0 and status["counters"]["late_written"] == 1


def test_one_corrupt_event_number_within_the_jump_limit_does_not_flush_the_window(tmp_path):
    """A bit flip (+2**15) in one fragment's event number: within builder.max_event_jump
    (2**24) but four windows (8192) beyond the highest number.  Obeyed, it moved the window
    past every open event (1,000 evicted) and every good fragment after it was late until
    the numbering caught up (3,000 late, 2,000 events built of 4,000).  Now it is held,
    never confirmed by a second fragment near it, and let go as a jump at the timeout."""
    port = free_port()
    d = Daemon(basic_config(tmp_path, port, sources=[0, 1], builder={"timeout_s": 0.5}))
    try:
        srcs = [Source(s, f"tcp://127.0.0.1:{port}", n_inputs=N_IN, n_outputs=N_OUT) for s in (0, 1)]
        send(srcs[0], np.arange(0, 3000))
        send(srcs[1], np.arange(0, 2000))
        d.wait_counter("events_complete", 2000)
        send(srcs[1], [1500 + (1 << 15)])  # the corrupt number, alone in its drain
        d.wait_counter("received_fragments", 5001)
        send(srcs[1], np.arange(2000, 3000))
        for s in srcs:
            send(s, np.arange(3000, 4000))
            s.close()
        d.wait_counter("events_complete", 4000)
        d.wait_counter("builder_jumps", 1)
        status = d.stop()
    finally:
        d.kill()
    c = status["counters"]
    assert (c["events_complete"], c["events_incomplete"], c["late_fragments"], c["builder_jumps"]) == (4000, 0, 0, 1)
    (line,) = [x for x in d.log_lines() if x["event"] == "event-number-jump"]
    assert (line["source"], line["event_number"]) == (1, 1500 + (1 << 15)) and "never confirmed" in line["why"]


def test_drains_are_coalesced_to_one_per_interval(tmp_path):
    """Messages arriving faster than ``node.coalesce_ms`` share a drain: a drain starts at
    most once per interval, so a moderate rate pays a drain's fixed cost once per interval,
    not once per message."""
    port = free_port()
    d = Daemon(basic_config(tmp_path, port, sources=[0], node={"coalesce_ms": 50.0}))
    src = Source(0, f"tcp://127.0.0.1:{port}", n_inputs=N_IN, n_outputs=N_OUT)
    try:
        t0 = time.monotonic()
        for k in range(100):  # one message a millisecond for ~0.1 s (or longer on a busy machine)
            send(src, np.arange(k, k + 1))
            time.sleep(0.001)
        d.wait_counter("events_complete", 100)
        spent = time.monotonic() - t0
        src.close()
        c = d.stop()["counters"]
    finally:
        d.kill()
    assert c["received_messages"] == 100
    # each drain but the first starts >= 50 ms after the one before; messages sent 1 ms apart
    # would otherwise each have a drain of their own (~100)
    assert c["drains"] <= spent / 0.050 + 2, (c["drains"], spent)
    assert sorted(read_sink(tmp_path / "out", "node-w0-*.h5", "events")["event"].tolist()) == list(range(100))
