"""Rotating sink files: exact splits, whole chunks and a padded last one, atomic renames."""

from __future__ import annotations

import numpy as np
import pytest

from node import protocol as p
from node.sinks import RotatingFiles, read_events


@pytest.mark.parametrize("fmt", ["hdf5", "root"])
def test_records_split_across_files_exactly_and_read_back(tmp_path, fmt):
    sink = RotatingFiles(tmp_path, "ev", fmt=fmt, max_records=300, flush_bytes=1 << 16)
    dtype = p.event_dtype(2, 300, 2, 4)
    sent = []
    for k in range(17):  # odd sizes: chunks, files and drains never line up
        ev = np.zeros(37 + k, dtype)
        ev["event"] = np.arange(len(ev)) + 1000 * k
        ev["inputs"] = np.arange(300) * (k + 1)
        ev["status"] = p.COMPLETE
        sink.write(ev)
        sent.append(ev)
        if k == 10:
            assert list(tmp_path.glob("*.tmp")), "the open file has its temporary name"
    sink.close()
    files = sorted(tmp_path.glob("ev-*"))
    assert not list(tmp_path.glob("*.tmp")) and sink.written == sink.accepted == 765
    got = [read_events(f) for f in files]
    assert [len(g["event"]) for g in got] == [300, 300, 165]
    want = np.concatenate(sent)
    for field in ("event", "inputs", "status", "missing"):
        np.testing.assert_array_equal(np.concatenate([g[field] for g in got]), want[field])


def test_blocks_larger_than_a_chunk_are_written_in_place_and_read_back_in_order(tmp_path):
    """Big blocks go to the file a whole chunk at a time straight from the built events;
    the unaligned heads and tails around them must still land in order, across files."""
    sink = RotatingFiles(tmp_path, "ev", max_records=1000, flush_bytes=1 << 16)
    dtype = p.event_dtype(4, 248, 2, 4)
    per_chunk = (1 << 20) // dtype.itemsize
    sizes = [10, 3 * per_chunk + 17, 1, per_chunk, 5 * per_chunk - 3]  # unaligned, aligned, across a file
    sent, start = [], 0
    for n in sizes:
        ev = np.zeros(n, dtype)
        ev["event"] = np.arange(start, start + n)
        ev["inputs"] = (np.arange(start, start + n) % 1000)[:, None, None]
        ev["status"] = p.COMPLETE
        sink.write(ev)
        sent.append(ev)
        start += n
    sink.close()
    files = sorted(tmp_path.glob("ev-*.h5"))
    got = [read_events(f) for f in files]
    assert start > 2000 and [len(g["event"]) for g in got] == [1000, 1000, start - 2000]
    want = np.concatenate(sent)
    for field in ("event", "inputs", "status"):
        np.testing.assert_array_equal(np.concatenate([g[field] for g in got]), want[field])


def test_publisher_splits_a_large_block_into_messages_a_subscriber_with_the_same_limit_accepts():
    import time

    import zmq

    from node.sinks import Publisher

    ctx = zmq.Context()
    try:
        dtype = p.event_dtype(2, 300, 2, 4)
        limit = p.HEADER_SIZE + 3 * dtype.itemsize + 5  # room for 3 events per message
        pub = Publisher("inproc://events", ctx, node_id=4, max_message_bytes=limit)
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect("inproc://events")
        time.sleep(0.2)  # the subscription reaches the publisher
        ev = p.records_with_room(8, dtype)
        ev[...] = np.zeros(1, dtype)
        ev["event"] = np.arange(8) + 100
        pub.publish(ev)
        pub.publish(ev[:2])
        got = []
        while sub.poll(1000):
            h, recs = p.decode(sub.recv(), p.Limits(max_message_bytes=limit))
            got.append((h.sequence, recs["event"].tolist()))
        assert got == [(0, [100, 101, 102]), (1, [103, 104, 105]), (2, [106, 107]), (3, [100, 101])]
        pub.close()
        sub.close(linger=0)
    finally:
        ctx.term()
