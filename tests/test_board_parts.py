"""The board stand-in's parts without processes: bit flips, the fault plan, the readout,
the replay ring, the offload answer, and clear errors for bad settings."""

from __future__ import annotations

import argparse
import io
import json
import time

import numpy as np
import pytest
from e2e_helpers import shared_manifest
from node_helpers import free_port

import sim
from sim.board.cli import add_arguments, config_from_args
from sim.board.faults import Faults, Injector, flip_bit
from sim.board.readout import Readout
from sim.board.replay import ReplayRing
from sim.board.runtime import Board, BoardConfig, main
from sim.fixed import FixedType
from sim.wire import protocol as p


@pytest.fixture(scope="session")
def manifest(tmp_path_factory):
    return shared_manifest(tmp_path_factory, "tiny_tau")


@pytest.mark.parametrize("text", ["ap_fixed<18,8>", "ap_ufixed<8,3>", "ap_fixed<5,1>", "ap_int<12>"])
def test_flip_bit_changes_exactly_one_bit_and_stays_in_range(text):
    t = FixedType.parse(text)
    rng = np.random.default_rng(1)
    raw = rng.integers(t.min_raw, t.max_raw + 1, 5000)
    bit = rng.integers(0, t.width, 5000)
    out = flip_bit(raw, bit, t)
    assert (out >= t.min_raw).all() and (out <= t.max_raw).all()
    mask = (1 << t.width) - 1
    diff = (out & mask) ^ (raw & mask)
    assert (diff == (1 << bit)).all()


def test_fault_plan_fractions_are_exclusive_and_roughly_right():
    inj = Injector(
        Faults(drop=0.1, delay=0.05, bitflip=0.2, error=0.1, duplicate=0.3, seed=3), 7, FixedType.parse("ap_fixed<8,3>")
    )
    events = np.arange(100_000, dtype=np.uint64)
    plan = inj.plan(events)
    kinds = np.stack([plan.drop, plan.delay, plan.bitflip, plan.error])
    assert (kinds.sum(axis=0) <= 1).all()
    for got, want in zip(kinds.mean(axis=1), (0.1, 0.05, 0.2, 0.1), strict=True):
        assert abs(got - want) < 0.01
    assert not (plan.duplicate & plan.drop).any() and abs(plan.duplicate.mean() - 0.3 * 0.9) < 0.01
    # the same events get the same faults however the stream is cut into blocks (runs were not
    # reproducible: blocks follow the timing); another board or seed gets others
    again = [inj.plan(part) for part in np.array_split(events, [7, 1000, 1001, 50_000])]
    for kind in ("drop", "delay", "duplicate", "bitflip", "error"):
        assert np.array_equal(np.concatenate([getattr(a, kind) for a in again]), getattr(plan, kind)), kind
    other = Injector(Faults(drop=0.1, seed=3), 8, FixedType.parse("ap_fixed<8,3>")).plan(events)
    assert 0.05 < (other.drop != plan.drop).mean() < 0.3
    result = np.zeros((6, 3), np.int64)
    inj.corrupt(result, np.arange(6), events[:6])
    same = np.zeros((6, 3), np.int64)
    for k in range(6):
        inj.corrupt(same[k : k + 1], np.array([0]), events[k : k + 1])
    assert np.array_equal(result, same) and (np.count_nonzero(result, axis=1) == 1).all()


@pytest.mark.parametrize(
    "kwargs, word",
    [({"drop": 1.5}, "drop"), ({"drop": 0.6, "error": 0.6}, "exceed"), ({"delay_ms": -1}, "delay_ms"),
     ({"stop_after": -2}, "stop_after")],
)  # fmt: skip
def test_bad_fault_settings_are_named(kwargs, word):
    with pytest.raises(ValueError, match=word):
        Faults(**kwargs)


def test_readout_is_deterministic_per_event_and_source(manifest):
    emu = sim.load(manifest)
    a = Readout(emu, source_id=2, seed=5, pool=300)
    b = Readout(emu, source_id=2, seed=5, pool=300, cache=False)
    other = Readout(emu, source_id=3, seed=5, pool=300)
    events = np.arange(1000, 3000, dtype=np.uint64)
    xa, ya = a.block(events)
    xb, yb = b.block(events[::-1])
    assert np.array_equal(xa, xb[::-1]) and np.array_equal(ya, yb[::-1])  # cached == computed per event
    assert np.array_equal(ya, np.asarray(emu.predict_raw(xa).raw).reshape(len(xa), -1))
    assert not np.array_equal(xa, other.inputs(events))
    assert len(np.unique(a.sample_index(events))) > 250  # consecutive events spread over the pool


def test_readout_from_a_file(tmp_path, manifest):
    emu = sim.load(manifest)
    x = np.random.default_rng(0).normal(size=(10, 6))
    np.save(tmp_path / "x.npy", x)
    r = Readout(emu, input_file=tmp_path / "x.npy")
    assert np.array_equal(r.inputs(np.array([3, 13], np.uint64)), emu.input_type.to_raw(x[[3, 3]]))
    np.save(tmp_path / "bad.npy", x[:, :4])
    with pytest.raises(ValueError, match=r"shape \(10, 4\), but the firmware takes \(6,\) per sample"):
        Readout(emu, input_file=tmp_path / "bad.npy")


def test_readout_casts_out_of_range_features_as_the_firmware_does(tmp_path, manifest):
    """The board's inputs and results for a file's rows are those of ``emulate`` (which
    verify holds bit-exact against the firmware's C++): it clipped values beyond the input
    type's range, where the AP_WRAP port wraps them.  (inf, which it sent as the maximum
    and the port wraps to 0, is refused as NaN is: see below.)"""
    emu = sim.load(manifest)
    t = emu.input_type
    assert t.overflow == "AP_WRAP"  # where clipping and the port's cast differ
    x = np.random.default_rng(1).uniform(t.min_value, t.max_value, size=(6, 6))
    x[1, 0], x[3, 2], x[4, 3], x[5, 4] = 3 * t.max_value, -3 * t.max_value, 5 * t.min_value, t.max_value + 1
    np.save(tmp_path / "x.npy", x)
    inputs, results = Readout(emu, input_file=tmp_path / "x.npy").block(np.arange(6, dtype=np.uint64))
    want = emu.predict(x)
    assert np.array_equal(inputs, t.to_raw(x)) and np.array_equal(results, want.raw.reshape(6, -1))


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("x.npz", b"PK\x03\x04junk", "not a .npz archive (not a zip file"),  # was zipfile.BadZipFile
        ("x.npy", b"garbage\n", "not a .npy array"),  # was 'Cannot load file containing pickled data'
        ("x.npy", _npy(np.array([{"a": 1}], dtype=object)), "holds Python objects (dtype object)"),
        ("x.npy", _npy(np.zeros((5, 6)))[:-8], "truncated: its header promises shape (5, 6)"),  # cut short
        ("x.npy", _npy(np.array(["a", "b"])), "its values are <U1, not numbers"),  # was a bare float() error
        ("x.npy", _npy(np.zeros((0, 6))), "no rows"),  # was 'shape (0, 6), but the firmware takes 6 inputs'
        ("x.npy", _npy(np.zeros((5, 3))), "shape (5, 3), but the firmware takes (6,) per sample"),
        # was reshaped to (5, 6) (the values in other places), as emulate did
        ("x.npy", _npy(np.zeros((5, 2, 3))), "shape (5, 2, 3), but the firmware takes (6,) per sample"),
        ("x.npy", _npy(np.where(np.arange(30).reshape(5, 6) == 20, np.nan, 1.0)),
         "NaN in 1 of 5 rows (row 3 first, feature 2), which the firmware's input type ap_fixed<16,6> cannot"),
        # inf was cast as the port does: 0 in this AP_WRAP type, the input of a training mean
        ("x.npy", _npy(np.where(np.arange(30).reshape(5, 6) % 13 == 12, -np.inf, 1.0)),
         "inf in 2 of 5 rows (row 2 first, feature 0), which the firmware's input type ap_fixed<16,6> cannot"),
    ],
)  # fmt: skip
def test_a_bad_input_file_is_one_line_naming_it(tmp_path, manifest, capsys, name, content, message):
    """Through ``python -m sim.board`` (``main``): the readout is made before the board
    streams, so its errors are a line naming the file, not a traceback from ``stream``.
    NaN (the sample's row 3) was sent as zeros; ``fpgaflow emulate`` refuses it."""
    path = tmp_path / name
    path.write_bytes(content)
    cfg = BoardConfig(manifest=str(manifest), nodes=["tcp://127.0.0.1:1"], events=1, input_file=str(path))
    assert main(cfg) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"board 0: error: {path}: ") and message in line, line


@pytest.mark.parametrize(
    "name, dataset, message",
    [
        # a .npy holds one array named after its file: another --dataset was ignored, which
        # `fpgaflow emulate` and `verify` refuse (fpgaflow.arrays.read_array)
        ("x.npy", "y", "holds one array, 'x' (a .npy is named after its file), not 'y'"),
        ("x.npz", "y", "no array named 'y'; it holds x"),  # was 'name the array with --dataset'
    ],
)
def test_a_dataset_the_input_does_not_hold_is_refused(tmp_path, manifest, capsys, name, dataset, message):
    path = tmp_path / name
    x = np.zeros((5, 6))
    np.save(path, x) if name.endswith(".npy") else np.savez(path, x=x)
    cfg = BoardConfig(manifest=str(manifest), nodes=["tcp://127.0.0.1:1"], events=1, input_file=str(path),
                      dataset=dataset)  # fmt: skip
    assert main(cfg) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"board 0: error: {path}: ") and message in line, line


def test_an_upper_case_suffix_reads_as_its_format(tmp_path, manifest):
    """``X.NPY`` was refused as 'board input must be .npy or .npz', which emulate reads."""
    x = np.random.default_rng(2).uniform(-4, 4, size=(3, 6))
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "x.npy").rename(tmp_path / "X.NPY")
    emu = sim.load(manifest)
    inputs, _ = Readout(emu, input_file=tmp_path / "X.NPY").block(np.arange(3, dtype=np.uint64))
    assert np.array_equal(inputs, emu.input_type.to_raw(x))


def test_a_node_that_never_took_the_connection_costs_the_wait_once(tmp_path):
    """docs/demo.md: the board waits up to 5 s for a node to take the connection.  After
    that wait its socket still lingered as long again with the messages no node would
    take, so the context's end held the board another 5 s (10.4 s for 10 events)."""
    import zmq

    from sim.board.sender import Sender

    ctx = zmq.Context()
    sender = Sender(0, [f"tcp://127.0.0.1:{free_port()}"], n_inputs=2, n_outputs=1, raw_bytes=4,
                    manifest_id="0" * 16, context=ctx)  # fmt: skip
    sender.send(p.make_fragments(np.arange(4), np.zeros((4, 2)), np.zeros((4, 1))))
    t0 = time.monotonic()
    sender.close(linger_ms=1000)
    ctx.term()
    assert [why for _, why in sender.undelivered] == ["no node took the connection (none listening there?)"]
    assert time.monotonic() - t0 < 1.8


def test_replay_ring_keeps_unacknowledged_fragments_in_event_order():
    ring = ReplayRing(p.fragment_dtype(2, 1, 4), capacity=64)
    frags = p.make_fragments(np.arange(40), np.zeros((40, 2)), np.zeros((40, 1)))
    ring.sent(frags[::-1])
    ring.ack(np.arange(0, 40, 2))
    left = ring.unacked()
    assert left["event"].tolist() == list(range(1, 40, 2)) and ring.acked == 20
    assert ring.unacked(route=1, n_routes=2)["event"].tolist() == list(range(1, 40, 2))
    assert len(ring.unacked(route=0, n_routes=2)) == 0
    ring.sent(p.make_fragments(np.arange(64, 80), np.zeros((16, 2)), np.zeros((16, 1))))  # slots of 0..15
    assert ring.overwritten == 8  # the odd events 1..15 were still unacknowledged


def test_offload_answer_is_the_firmware_result(manifest):
    emu = sim.load(manifest)
    board = Board(BoardConfig(manifest=str(manifest), source_id=9, offload=f"tcp://127.0.0.1:{free_port()}"))
    x = emu.input_type.to_raw(np.random.default_rng(2).normal(size=(50, 6)))
    frags = np.zeros(50, p.fragment_dtype(6, 0, 4))
    frags["event"] = np.arange(100, 150)
    frags["inputs"] = x
    req = p.encode(p.OFFLOAD_REQUEST, 0, 77, frags, n_inputs=6, n_outputs=0, raw_bytes=4)
    h, reply = p.decode(board.answer(req))
    assert h.type == p.OFFLOAD_REPLY and h.sequence == 77 and h.source == 9
    assert reply["event"].tolist() == list(range(100, 150)) and (reply["flags"] == p.RESULT_VALID).all()
    assert np.array_equal(reply["result"], np.asarray(emu.predict_raw(x).raw).reshape(50, -1))
    with pytest.raises(p.ProtocolError):
        board.answer(p.encode(p.FRAGMENTS, 0, 1, frags, n_inputs=6, n_outputs=0, raw_bytes=4))
    board.context.destroy(linger=0)


def test_layout_padding_too_small_is_refused(manifest):
    with pytest.raises(ValueError, match="cannot hold"):
        Board(BoardConfig(manifest=str(manifest), layout=(4, 1, 4), nodes=["tcp://127.0.0.1:1"]))


@pytest.mark.parametrize(
    "argv, word",
    [(["--node", "tcp://127.0.0.1:1", "--source", "70000"], "source"), ([], "--node"),
     (["--node", "x", "--layout", "3,2"], "layout"), (["--node", "x", "--rate", "-1"], "rate")],
)  # fmt: skip
def test_command_line_errors_name_the_option(argv, word):
    ap = argparse.ArgumentParser()
    add_arguments(ap)
    with pytest.raises(ValueError, match=word):
        config_from_args(ap.parse_args(argv), "m")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--node", "nonsense"], "--node 'nonsense' is not a ZeroMQ endpoint"),  # a ZMQError traceback at connect
        (["--node", "tcp://127.0.0.1:99999"], "--node 'tcp://127.0.0.1:99999': the port must be in 1..65535"),
        (["--node", "tcp://127.0.0.1:0"], "the port must be in 1..65535"),
        (["--node", "tcp://127.0.0.1:*"], "a port to connect to is a number"),
        (["--node", "tcp://127.0.0.1:1", "--ack", "udp://x:1"], "--ack 'udp://x:1' is not a ZeroMQ endpoint"),
        (["--offload", "tcp://127.0.0.1:70000"], "--offload 'tcp://127.0.0.1:70000': the port must be in"),
    ],
)
def test_endpoints_the_node_would_refuse_are_refused_naming_the_option(argv, message):
    """ZeroMQ refused 'nonsense' with a traceback from deep in the sender, and quietly took
    port 99999 as 34463 (the node's configuration refuses it, so the two never met)."""
    ap = argparse.ArgumentParser()
    add_arguments(ap)
    with pytest.raises(ValueError) as info:
        config_from_args(ap.parse_args(argv), "m")
    assert message in str(info.value)


@pytest.mark.parametrize(
    "argv, option",
    [
        (["--events", "10"], "--events"),  # it served requests until SIGTERM
        (["--node", "tcp://127.0.0.1:5555"], "--node"),  # it streamed nothing there
        (["--ack", "tcp://127.0.0.1:5560"], "--ack"),
        (["--start-at", "0"], "--start-at"),
    ],
)
def test_streaming_options_with_offload_are_refused_not_ignored(argv, option):
    ap = argparse.ArgumentParser()
    add_arguments(ap)
    with pytest.raises(ValueError) as info:
        config_from_args(ap.parse_args(["--offload", "tcp://127.0.0.1:5570", *argv]), "m")
    assert str(info.value) == (
        f"{option} is for a streaming board; with --offload the board answers the node's requests until SIGTERM"
    )


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:5555", "tcp://[::1]:5555", "ipc:///tmp/n0", "tcp://h:65535"])
def test_endpoints_the_node_takes_are_taken(endpoint):
    ap = argparse.ArgumentParser()
    add_arguments(ap)
    assert config_from_args(ap.parse_args(["--node", endpoint, "--ack", endpoint]), "m").nodes == [endpoint]
    assert config_from_args(ap.parse_args(["--offload", "tcp://127.0.0.1:*"]), "m").offload == "tcp://127.0.0.1:*"


def test_stop_after_n_events_is_a_counted_fault(tmp_path, manifest):
    """The board dies after N events: it says so in its status, and its fault log holds
    every event it generated (nothing after N)."""
    status = tmp_path / "board.json"
    cfg = BoardConfig(manifest=str(manifest), source_id=5, nodes=[f"tcp://127.0.0.1:{free_port()}"], events=1000,
                      status_file=str(status), faults=Faults(stop_after=300, bitflip=0.1, seed=1))  # fmt: skip
    final = Board(cfg).stream()
    assert final["state"] == "stopped-by-fault" and final["counters"]["generated"] == 300
    assert final["counters"]["faults"]["stopped"] == 1
    assert json.loads(status.read_text())["state"] == "stopped-by-fault"
    with np.load(tmp_path / "board.json.faults.npz") as f:
        flips = f["bitflip"]
    assert 10 < len(flips) < 60 and flips.max() < 300


def test_the_fault_log_keeps_every_event_and_counts_as_it_goes():
    from sim.board.faults import FaultLog

    log = FaultLog()
    for k in range(1000):  # a long run: one block with a fault after another
        log.add("drop", np.array([2 * k, 2 * k + 1]))
    log.add("error", np.array([7]))
    assert log.counts()["drop"] == 2000 and log.counts()["error"] == 1 and log.counts()["delay"] == 0
    assert np.array_equal(log.arrays()["drop"], np.arange(2000)) and len(log.events["drop"]) < 256 + 3


def test_an_offload_address_in_use_and_a_status_folder_missing_are_one_line_before_the_board_starts(
    tmp_path, manifest, capsys
):
    """A second board on a bound --offload port was a ZMQError traceback ('Address already
    in use') from serve_offload; a --status in a missing folder a FileNotFoundError naming
    its .tmp once the board streamed.  Both are refused when the board is made."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    first = Board(BoardConfig(manifest=str(manifest), source_id=1, offload=endpoint))
    try:
        message = f"--offload {endpoint}: cannot bind (Address already in use)"
        with pytest.raises(ValueError) as refused:  # by Board(), so main() says it in one line
            Board(BoardConfig(manifest=str(manifest), source_id=2, offload=endpoint))
        assert str(refused.value) == message
        assert main(BoardConfig(manifest=str(manifest), source_id=2, offload=endpoint)) == 2
        assert capsys.readouterr().err.splitlines() == [f"board 2: error: {message}"]
    finally:
        first.context.destroy(linger=0)
    status = tmp_path / "nodir" / "s.json"
    message = f"--status {status}: the folder {status.parent} does not exist"
    with pytest.raises(ValueError) as refused:
        Board(BoardConfig(manifest=str(manifest), offload=f"tcp://127.0.0.1:{free_port()}", status_file=str(status)))
    assert str(refused.value) == message
    cfg = BoardConfig(manifest=str(manifest), nodes=["tcp://127.0.0.1:1"], events=10, status_file=str(status))
    assert main(cfg) == 2
    assert capsys.readouterr().err.splitlines() == [f"board 0: error: {message}"]
