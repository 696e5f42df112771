"""End to end, real processes on loopback: board stand-ins (``python -m sim.board``)
running a real firmware manifest stream into the node daemon; every generated event is
accounted for, every injected fault found where it should be, a dead board and a
restarted node lose nothing, and offload survives a dead board."""

from __future__ import annotations

import time

import numpy as np
import pytest
from e2e_helpers import BoardProc, by_event, missing_bit, random_raw_inputs, shared_manifest, wait_started
from node_helpers import Daemon, free_port, read_sink, wait_for, write_config

import sim
from node.fallback import in_validation_sample
from sim.board.readout import Readout
from sim.wire import protocol as p
from sim.wire.source import Source


@pytest.fixture(scope="session")
def manifest(tmp_path_factory):
    return shared_manifest(tmp_path_factory, "tiny_tau")


def node_config(tmp, port, manifest, sources, *, timeout_s=1.0, validate_every=10, **extra):
    sections = {
        "node": {"sources": list(sources), "status_interval_s": 0.2},
        "builder": {"timeout_s": timeout_s, "window": 65536},
        "fallback": {"manifest": str(manifest), "validate_every": validate_every},
        "sink": {"directory": "out"},
    }
    for k, v in extra.items():
        sections.setdefault(k, {}).update(v)
    return write_config(tmp, sections, [{"endpoint": f"tcp://127.0.0.1:{port}"}])


def test_every_event_accounted_and_every_fault_found(tmp_path, manifest):
    """Four boards, each with its own fault; the node's output checked event by event."""
    n, port, every = 12_000, free_port(), 10
    cfg = node_config(tmp_path, port, manifest, [1, 2, 3, 4], validate_every=every, timeout_s=3.0)
    cfg.write_text(cfg.read_text() + "hwm = 100\n")  # short queues: boards stay in step (back pressure)
    node = Daemon(cfg)
    ep = f"tcp://127.0.0.1:{port}"
    start = repr(time.time() + 4)  # one trigger for all boards, however long each takes to start
    common = ["--node", ep, "--events", str(n), "--rate", "6000", "--pool", "512", "--start-at", start,
              "--queue", "50", "--sndhwm", "50"]  # fmt: skip
    faults = {
        1: ["--drop", "0.01"],
        2: ["--delay", "0.005", "--delay-ms", "6000"],  # longer than the 3 s build timeout: late
        3: ["--duplicate", "0.01"],
        4: ["--bitflip", "0.02", "--error", "0.01"],
    }
    try:
        boards = [BoardProc(tmp_path, manifest, s, *common, "--fault-seed", str(s), *f) for s, f in faults.items()]
        wait_started(boards)
        reports = [b.wait() for b in boards]
        node.wait_counter("events_out", n, timeout=60)
    finally:
        for b in boards:
            b.kill()
        status = node.stop()
    ev = read_sink(tmp_path / "out", "node-w0*.h5", "events")
    events = ev["event"].astype(np.int64)
    assert len(np.unique(events)) == len(events), "an event was built twice"
    assert sorted(events.tolist()) == list(range(n)), "generated events missing from the output"
    complete = (ev["status"] & p.COMPLETE) != 0
    assert complete.sum() + (~complete).sum() == n
    assert all(r["counters"]["generated"] == n for r in reports)
    row = by_event(ev)
    f = {b.source: b.faults() for b in boards}

    # drop: the event left incomplete with exactly that source missing
    dropped = np.array([row[int(e)] for e in f[1]["drop"]])
    assert len(dropped) > 50 and missing_bit(ev, 0)[dropped].all()
    # delay beyond the timeout: incomplete, and the fragment went to the late sink (or,
    # if the node was that far behind, it still came within the timeout: complete)
    delayed = np.array([row[int(e)] for e in f[2]["delay"]])
    late = read_sink(tmp_path / "out", "late-*.h5", "late")
    late_keys = set(zip(late["event"].tolist(), late["source"].tolist(), strict=True))
    went_late = missing_bit(ev, 1)[delayed] & np.array([(int(e), 2) in late_keys for e in f[2]["delay"]])
    assert len(delayed) > 20 and (went_late | complete[delayed]).all() and went_late.mean() > 0.5
    # duplicates: each copy either dropped by the builder or (event already gone) late
    late_dups = sum((int(e), 3) in late_keys for e in f[3]["duplicate"])
    assert status["counters"]["builder_duplicates"] + late_dups == len(f[3]["duplicate"]) > 50
    # every other incomplete event (a busy machine can hold a board back past the timeout)
    # has each missing fragment in the late sink: late, never lost
    explained = set(f[1]["drop"].tolist()) | set(f[2]["delay"].tolist())
    for r in np.flatnonzero(~complete):
        for i, s in enumerate((1, 2, 3, 4)):
            if missing_bit(ev, i)[r] and not (s == 1 and int(events[r]) in explained):
                assert (int(events[r]), s) in late_keys or (s == 2 and int(events[r]) in explained), (events[r], s)
    arrived4 = ~missing_bit(ev, 3)

    # silent bit flips: every one in the validation sample is caught as a mismatch
    flips = f[4]["bitflip"].astype(np.int64)
    covered = np.array([e for e in flips if in_validation_sample(e, every) and arrived4[row[int(e)]]], np.int64)
    assert len(covered) >= 5
    for e in covered:
        r = row[int(e)]
        assert ev["status"][r] & p.MISMATCH and ev["status"][r] & p.VALIDATED, e
    assert status["counters"]["fallback_mismatches"] == len(covered)
    # flagged errors: all to the fallback, whose result is the firmware's true answer
    errors = np.array([row[int(e)] for e in f[4]["error"] if arrived4[row[int(e)]]])
    assert len(errors) > 50
    assert (ev["status"][errors] & p.FALLBACK != 0).all() and (ev["cpu_valid"][errors, 3] == 1).all()
    emu = sim.load(manifest)
    readout = Readout(emu, source_id=4, seed=0, pool=512)
    truth_in, truth_out = readout.block(ev["event"][errors].astype(np.uint64))
    n_out = int(np.prod(emu.output_shape))
    assert np.array_equal(ev["inputs"][errors, 3].astype(np.int64), truth_in)
    assert np.array_equal(ev["cpu"][errors, 3, :n_out].astype(np.int64), truth_out)
    assert (ev["fpga"][errors, 3, :n_out] != truth_out).any(axis=1).all()  # the board's answer was corrupt
    # and nothing that was not faulty fell back or mismatched
    fell_back = set(events[(ev["status"] & p.FALLBACK) != 0].tolist())
    assert fell_back == set(events[errors].tolist())


def test_board_killed_mid_run(tmp_path, manifest):
    """Its events come out incomplete with it missing; the node keeps running."""
    n, port = 24_000, free_port()
    node = Daemon(node_config(tmp_path, port, manifest, [1, 2, 3], timeout_s=2.0))
    start = repr(time.time() + 4)
    common = ["--node", f"tcp://127.0.0.1:{port}", "--events", str(n), "--rate", "4000", "--pool", "256",
              "--start-at", start]  # fmt: skip
    boards = [BoardProc(tmp_path, manifest, s, *common) for s in (1, 2, 3)]
    try:
        wait_started(boards)
        node.wait_counter("events_out", 2000, timeout=60)
        boards[1].kill()
        for b in (boards[0], boards[2]):
            b.wait()
        node.wait_counter("events_out", n, timeout=60)
        assert node.proc.poll() is None, "the node died with the board"
    finally:
        for b in boards:
            b.kill()
        node.stop()
    ev = read_sink(tmp_path / "out", "node-w0*.h5", "events")
    events = ev["event"].astype(np.int64)
    assert sorted(events.tolist()) == list(range(n))
    gone = missing_bit(ev, 1)
    assert not missing_bit(ev, 0).any() and not missing_bit(ev, 2).any()
    first_gone = int(events[gone].min())
    assert 2000 <= first_gone < n - 4000
    assert (gone == (events >= first_gone)).all(), "after the kill every event misses the dead board, before none"
    assert ((ev["status"][gone] & p.COMPLETE) == 0).all() and (ev["status"][gone] & p.TIMED_OUT != 0).all()


def test_node_restarted_mid_run_loses_nothing(tmp_path, manifest):
    """Boards keep pushing while the node is stopped (SIGTERM) and started again; they
    keep every fragment until the node's built-event publisher acknowledges it and send
    the unacknowledged ones again when their socket reconnects."""
    n, port, pub = 30_000, free_port(), free_port()
    cfg = node_config(tmp_path, port, manifest, [1, 2], timeout_s=1.0,
                      sink={"publish": f"tcp://127.0.0.1:{pub}"})  # fmt: skip
    node = Daemon(cfg)
    boards = []
    try:
        for i, s in enumerate((1, 2)):
            boards.append(BoardProc(tmp_path, manifest, s, "--node", f"tcp://127.0.0.1:{port}", "--events", str(n),
                                    "--rate", "4000", "--pool", "256", "--queue", "20000", "--ack", f"tcp://127.0.0.1:{pub}",
                                    "--ack-index", str(i)))  # fmt: skip
        wait_started(boards)
        node.wait_counter("events_out", 8000, timeout=60)
        first = node.stop()
        for f in (tmp_path / "out").glob("*.h5"):
            f.rename(f.with_name("first-" + f.name))
        wait_for(lambda: boards[0].counter("generated") > first["counters"]["events_out"] + 4000, 60, "boards pushing")
        node = Daemon(cfg)
        reports = [b.wait(timeout=120) for b in boards]
        node.wait_counter("events_out", 1, timeout=30)
    finally:
        for b in boards:
            b.kill()
        second = node.stop()
    parts = [read_sink(tmp_path / "out", pat, "events") for pat in ("first-node-w0*.h5", "node-w0*.h5")]
    ev = {k: np.concatenate([q[k] for q in parts if q]) for k in parts[0]}
    late = [read_sink(tmp_path / "out", pat, "late") for pat in ("first-late-*.h5", "late-*.h5")]
    late = [q for q in late if q]
    # every fragment of every generated event reached an event record or, when it came
    # after its event had left, the late sink (at least once; nothing silently dropped)
    n_late = 0
    for i in range(2):
        in_events = ev["event"][~missing_bit(ev, i)].astype(np.int64)
        in_late = [q["event"][q["source"] == i + 1].astype(np.int64) for q in late]
        n_late += len(np.setdiff1d(np.concatenate([np.zeros(0, np.int64), *in_late]), in_events))
        have = np.unique(np.concatenate([in_events, *in_late]))
        assert np.array_equal(have, np.arange(n)), f"source {i + 1}: {n - len(have)} fragments lost"
    assert all(r["counters"]["reconnects"] >= 1 for r in reports)
    assert all(r["counters"]["replay_overwritten"] == 0 for r in reports)
    twice = len(ev["event"]) - len(np.unique(ev["event"]))
    print(
        f"restart: {sum(r['counters']['replayed_fragments'] for r in reports)} fragments replayed, "
        f"{twice} events built by both node instances, {n_late} fragments only in the late sink, "
        f"{second['counters']['builder_duplicates']} copies dropped, "
        f"{sum(r['counters']['unacked'] for r in reports)} never acknowledged (acks published before a board's "
        "subscription reconnected)"
    )


def test_offload_with_one_board_dead(tmp_path, manifest):
    """The node offloads to two boards; one is killed: its batches time out, the CPU
    fallback takes over, and every event still gets the firmware's result."""
    port, n = free_port(), 3000
    eps = [f"tcp://127.0.0.1:{free_port()}" for _ in range(2)]
    node = None
    boards = [BoardProc(tmp_path, manifest, 10 + k, "--offload", ep) for k, ep in enumerate(eps)]
    try:
        wait_started(boards)
        node = Daemon(node_config(tmp_path, port, manifest, [0, 1], validate_every=0, offload={
            "boards": eps, "batch": 32, "max_in_flight": 2, "timeout_ms": 300.0, "retry_s": 60.0}))  # fmt: skip
        emu = sim.load(manifest)
        x = random_raw_inputs(emu, n, 3)
        srcs = [Source(s, f"tcp://127.0.0.1:{port}", n_inputs=x.shape[1], n_outputs=1, manifest_id=emu.id)
                for s in (0, 1)]  # fmt: skip
        half = n // 2

        def send(lo, hi):  # fragments without an FPGA result: the node offloads them
            for s in srcs:
                s.send(np.arange(lo, hi), x[lo:hi], np.zeros((hi - lo, 1)), np.zeros(hi - lo, np.uint32))

        send(0, half)
        node.wait_counter("events_out", half, timeout=60)
        boards[1].kill()
        send(half, n)
        node.wait_counter("events_out", n, timeout=60)
        for s in srcs:
            s.close()
    finally:
        for b in boards:
            b.kill()
        status = node.stop() if node is not None else None
    c = status["counters"]
    assert c["offload_batches_answered"] > 0 and c["offload_timeouts"] >= 1
    ev = read_sink(tmp_path / "out", "node-w0*.h5", "events")
    assert sorted(ev["event"].tolist()) == list(range(n))
    want = np.asarray(emu.predict_raw(x).raw).reshape(n, -1)[ev["event"].astype(np.int64)]
    board_ok = (ev["flags"] & p.RESULT_VALID) != 0
    cpu_ok = ev["cpu_valid"] == 1
    assert (board_ok | cpu_ok).all(), "an event without a result"
    result = np.where(board_ok[..., None], ev["fpga"], ev["cpu"])
    assert np.array_equal(result[:, 0], want) and np.array_equal(result[:, 1], want)
    assert ((ev["status"] & p.FALLBACK) != 0).any() and ((ev["status"] & p.OFFLOADED) != 0).any()


def test_an_offload_board_given_inputs_its_firmware_cannot_hold_declines_them_and_lives_on(tmp_path, manifest):
    """A fragment whose inputs the firmware's input type cannot hold (corrupt data) killed
    the board stand-in (the BDT emulator refuses them; only protocol errors were caught):
    every later batch timed out and went to the CPU. Now the board answers such a fragment
    ERROR without a result, the node's CPU takes it (and flags it BAD_INPUTS), and the
    board answers everything else, bit-exact."""
    port, n = free_port(), 600
    ep = f"tcp://127.0.0.1:{free_port()}"
    node = None
    board = BoardProc(tmp_path, manifest, 10, "--offload", ep)
    try:
        wait_started([board])
        node = Daemon(node_config(tmp_path, port, manifest, [0], validate_every=100, offload={
            "boards": [ep], "batch": 16, "max_in_flight": 2, "timeout_ms": 2000.0, "retry_s": 60.0}))  # fmt: skip
        emu = sim.load(manifest)
        x = random_raw_inputs(emu, n, 5)
        bad = np.arange(39, n, 97)  # 233 among them: in the validation sample, CPU and board both get it
        x[bad, 0] = int(emu.input_type.max_raw) + 1
        src = Source(0, f"tcp://127.0.0.1:{port}", n_inputs=x.shape[1], n_outputs=1, manifest_id=emu.id)
        for lo in range(0, n, 100):  # in several messages: later batches after the first bad one
            src.send(np.arange(lo, lo + 100), x[lo : lo + 100], np.zeros((100, 1)), np.zeros(100, np.uint32))
        node.wait_counter("events_out", n, timeout=60)
        src.close()
        assert board.proc.poll() is None, "the board died"
    finally:
        board.kill()
        status = node.stop() if node is not None else None
    c = status["counters"]
    assert c["offload_declined"] == len(bad) and c["offload_timeouts"] == 0 and c["offload_bad_replies"] == 0
    assert c["offload_batches_answered"] == c["offload_batches_sent"] and c["fallback_bad_inputs"] == len(bad)
    ev = read_sink(tmp_path / "out", "node-w0*.h5", "events")
    assert sorted(ev["event"].tolist()) == list(range(n))
    got = np.zeros(n, bool)
    got[ev["event"].astype(np.int64)] = (ev["flags"][:, 0] & p.RESULT_VALID) != 0
    assert np.flatnonzero(~got).tolist() == bad.tolist()
    flagged = ev["event"][(ev["status"] & p.BAD_INPUTS) != 0].astype(np.int64)
    sampled = in_validation_sample(ev["event"], 100) & ((ev["status"] & p.BAD_INPUTS) == 0)
    assert sorted(flagged.tolist()) == bad.tolist() and (ev["cpu_valid"][:, 0] == sampled).all()
    assert in_validation_sample(233, 100) and c["fallback_cpu_fragments"] == 5  # the good sampled ones, once each
    good = np.setdiff1d(np.arange(n), bad)
    want = np.asarray(emu.predict_raw(x[good]).raw).reshape(len(good), -1)
    order = np.argsort(ev["event"])
    assert np.array_equal(ev["fpga"][order][good, 0], want)


def test_offload_over_curve_reaches_only_a_board_that_knows_the_node(tmp_path, manifest):
    """With CURVE the offload requests (the events' inputs) went to the boards in the clear.
    Now the node is each board's CURVE client (``offload.board_keys``); a board answers
    only nodes whose key it holds (``--curve-clients``): the one that does not know this
    node refuses it (the node's socket to it takes nothing: that board is left alone and the
    other one, or the CPU, does its work), and every result is bit-exact as ever."""
    import shutil

    from sim.wire.security import CurveKeys, keygen

    keys = tmp_path / "keys"
    keygen(keys, "node")
    keygen(keys / "clients", "source")
    for board in ("a", "b"):
        keygen(keys / "boards", board)
        (keys / f"nodes-{board}").mkdir()
    shutil.copy(keys / "node.key", keys / "nodes-a/node.key")  # board a answers this node
    keygen(keys / "nodes-b", "another-node")  # board b answers another node only
    port, n = free_port(), 1000
    eps = [f"tcp://127.0.0.1:{free_port()}" for _ in range(2)]
    boards = [BoardProc(tmp_path, manifest, 10 + k, "--offload", ep, "--curve-secret",
                        str(keys / f"boards/{b}.key_secret"), "--curve-clients", str(keys / f"nodes-{b}"))
              for k, (b, ep) in enumerate(zip("ab", eps, strict=True))]  # fmt: skip
    node = None
    try:
        wait_started(boards)
        node = Daemon(node_config(
            tmp_path, port, manifest, [0], validate_every=0,
            offload={"boards": eps, "batch": 32, "max_in_flight": 2, "timeout_ms": 300.0, "retry_s": 60.0,
                     "board_keys": [str(keys / "boards/a.key"), str(keys / "boards/b.key")]},
            security={"curve_secret_key": str(keys / "node.key_secret"), "curve_clients": str(keys / "clients")},
        ))  # fmt: skip
        emu = sim.load(manifest)
        x = random_raw_inputs(emu, n, 5)
        src = Source(0, f"tcp://127.0.0.1:{port}", n_inputs=x.shape[1], n_outputs=1, manifest_id=emu.id,
                     curve=CurveKeys.from_files(keys / "clients/source.key_secret", keys / "node.key"))  # fmt: skip
        for lo in range(0, n, 100):  # fragments without an FPGA result: the node offloads them
            src.send(np.arange(lo, lo + 100), x[lo : lo + 100], np.zeros((100, 1)), np.zeros(100, np.uint32))
        node.wait_counter("events_out", n, timeout=60)
        src.close()
    finally:
        for b in boards:
            b.terminate()
        status = node.stop() if node is not None else None
    c = status["counters"]
    assert c["offload_batches_answered"] > 0 and c["offload_refused"] + c["offload_timeouts"] >= 1
    assert any(x["event"] in ("offload-refused", "offload-timeout") and x["board"] == eps[1] for x in node.log_lines())
    a, b = (board.status()["counters"] for board in boards)
    assert a["offload_answered"] > 0 and b["offload_requests"] == 0 and b["curve_refused"] >= 1
    ev = read_sink(tmp_path / "out", "node-w0*.h5", "events")
    assert sorted(ev["event"].tolist()) == list(range(n))
    want = np.asarray(emu.predict_raw(x).raw).reshape(n, -1)[ev["event"].astype(np.int64)]
    result = np.where(((ev["flags"] & p.RESULT_VALID) != 0)[..., None], ev["fpga"], ev["cpu"])
    assert np.array_equal(result[:, 0], want)


def test_two_nodes_get_events_routed_by_number(tmp_path, manifest):
    """Two boards, two nodes: event e goes to node e mod 2 from every board, so each
    node builds complete events, and together they build every event once."""
    n = 4000
    dirs = [tmp_path / "a", tmp_path / "b"]
    ports = [free_port(), free_port()]
    nodes = []
    for d, port in zip(dirs, ports, strict=True):
        d.mkdir()
        nodes.append(Daemon(node_config(d, port, manifest, [1, 2], timeout_s=3.0)))
    eps = [a for port in ports for a in ("--node", f"tcp://127.0.0.1:{port}")]
    start = repr(time.time() + 3)
    boards = [BoardProc(tmp_path, manifest, s, *eps, "--events", str(n), "--rate", "4000", "--start-at", start)
              for s in (1, 2)]  # fmt: skip
    try:
        for b in boards:
            b.wait()
        for node in nodes:
            node.wait_counter("events_out", n // 2, timeout=60)
    finally:
        for b in boards:
            b.kill()
        status = [node.stop() for node in nodes]
    built = []
    for k, d in enumerate(dirs):
        ev = read_sink(d / "out", "node-w0*.h5", "events")
        assert (ev["event"] % 2 == k).all(), f"node {k} got events of the other node"
        assert (ev["status"] & p.COMPLETE).all()
        built.append(ev["event"])
    assert sorted(np.concatenate(built).tolist()) == list(range(n))
    assert all(s["counters"].get("late_fragments", 0) == 0 for s in status)


def test_offload_answered_too_slowly_falls_back(tmp_path, manifest):
    """A board answering later than the node's offload timeout: its answers are stale,
    the CPU computed every result, and they are the firmware's."""
    port, ep, n = free_port(), f"tcp://127.0.0.1:{free_port()}", 200
    board = BoardProc(tmp_path, manifest, 10, "--offload", ep, "--offload-delay-ms", "800")
    node = None
    try:
        wait_started([board])
        node = Daemon(node_config(tmp_path, port, manifest, [0], validate_every=0, offload={
            "boards": [ep], "batch": 50, "max_in_flight": 4, "timeout_ms": 200.0, "retry_s": 0.1}))  # fmt: skip
        emu = sim.load(manifest)
        x = random_raw_inputs(emu, n, 4)
        with Source(0, f"tcp://127.0.0.1:{port}", n_inputs=x.shape[1], n_outputs=1, manifest_id=emu.id) as src:
            src.send(np.arange(n), x, np.zeros((n, 1)), np.zeros(n, np.uint32))
        node.wait_counter("events_out", n, timeout=60)
        wait_for(lambda: board.counter("offload_answered") >= 1, 30, "the slow board to answer (too late)")
    finally:
        board.terminate()
        status = node.stop() if node is not None else None
    c = status["counters"]
    assert c["offload_timeouts"] >= 1 and c.get("offload_batches_answered", 0) == 0
    ev = read_sink(tmp_path / "out", "node-w0*.h5", "events")
    assert sorted(ev["event"].tolist()) == list(range(n))
    assert (ev["cpu_valid"][:, 0] == 1).all()
    want = np.asarray(emu.predict_raw(x).raw).reshape(n, -1)[ev["event"].astype(np.int64)]
    assert np.array_equal(ev["cpu"][:, 0], want)


def test_one_node_fed_by_boards_of_different_firmware(tmp_path, tmp_path_factory, manifest):
    """Two firmwares (6 and 4 inputs, different precisions) behind one node: boards pad
    to the node's layout, and the fallback runs each source's own firmware."""
    other = shared_manifest(tmp_path_factory, "other_tau", n_features=4, precision="ap_fixed<12,4>")
    emus = [sim.load(manifest), sim.load(other)]
    n, port, every = 3000, free_port(), 10
    cfg = node_config(tmp_path, port, manifest, [1, 2], validate_every=every, timeout_s=3.0)
    text = cfg.read_text().replace(f'manifest = "{manifest}"', f'source_manifests = ["{manifest}", "{other}"]')
    cfg.write_text(text)
    node = Daemon(cfg)
    start = repr(time.time() + 3)
    common = ["--node", f"tcp://127.0.0.1:{port}", "--events", str(n), "--rate", "3000", "--start-at", start,
              "--layout", "6,1,4", "--pool", "256", "--error", "0.02"]  # fmt: skip
    boards = [BoardProc(tmp_path, m, s, *common, "--fault-seed", str(s)) for s, m in ((1, manifest), (2, other))]
    try:
        for b in boards:
            b.wait()
        node.wait_counter("events_out", n, timeout=60)
    finally:
        for b in boards:
            b.kill()
        status = node.stop()
    ev = read_sink(tmp_path / "out", "node-w0*.h5", "events")
    assert sorted(ev["event"].tolist()) == list(range(n)) and (ev["status"] & p.COMPLETE).all()
    c = status["counters"]
    assert c.get("malformed_messages", 0) == 0 and c.get("fallback_mismatches", 0) == 0
    for i, (b, emu) in enumerate(zip(boards, emus, strict=True)):
        errors = np.isin(ev["event"], b.faults()["error"])
        cpu = ev["cpu_valid"][:, i] == 1
        sampled = in_validation_sample(ev["event"], every)
        assert errors.sum() > 20 and cpu[errors].all() and (cpu == (errors | sampled)).all()
        n_in = int(np.prod(emu.input_shape))
        assert (ev["inputs"][:, i, n_in:] == 0).all()  # the padding
        want = np.asarray(emu.predict_raw(ev["inputs"][cpu, i, :n_in].astype(np.int64)).raw).reshape(-1, 1)
        assert np.array_equal(ev["cpu"][cpu, i, :1], want)
