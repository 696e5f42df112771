"""The chunk arena (node.arena): events built where the files' chunks are written from.

What must hold: the file gets exactly the records handed to the sink, in the order handed
over, whether a block arrived where it was built or not (held back, overtaken, split
across files); memory still reserved (not yet written) is never handed out again; a
chunk built whole in place is written from there without a copy."""

from __future__ import annotations

import numpy as np
import pytest

from node import arena as arena_mod
from node import hdf5file, sinks
from node.arena import PAGE, ChunkArena, chunk_rows
from node.builder import Builder
from node.daemon import _SinkMemory
from node.fallback import Fallback
from node.sinks import RotatingFiles, read_events
from sim.wire import protocol

RECORD = np.dtype([("event", "<u8"), ("data", "<u1", (1016,))])  # 1 KB: 16 records to a 16 KB chunk


def test_chunk_rows_are_whole_pages_where_that_is_near_the_chunk_size():
    assert chunk_rows(4092, 4 << 20) == (1024, True)  # 4 x 1023: 1,024 records are 1,023 pages
    rows, whole = chunk_rows(1000, 4 << 20)
    assert whole and rows * 1000 % PAGE == 0 and 2 << 20 <= rows * 1000 <= 8 << 20
    assert chunk_rows(4093, 4 << 20) == ((4 << 20) // 4093, False)  # odd: 4,096 records (16 MB) would be needed


@pytest.fixture(params=[True, False], ids=["mirrored", "one-mapping"])
def mirrored(request, monkeypatch) -> bool:
    """Both kinds of arena: mapped twice back to back (Linux), or once (no memfd_create:
    a block that would run past the end is built elsewhere)."""
    if not request.param:
        monkeypatch.setattr(arena_mod._Mirrored, "make", classmethod(lambda cls, nbytes: None))
    elif ChunkArena(RECORD, 16, 1).mirrored is False:
        pytest.skip("no memfd_create here")
    return request.param


def test_reservations_never_overlap_and_memory_is_reused_only_once_written(mirrored):
    arena = ChunkArena(RECORD, 16, 3)
    a = arena.reserve(0, 10)
    assert a is not None and a.ctypes.data == arena.records[0:].ctypes.data
    assert arena.reserve(5, 4) is None, "rows already reserved"
    b = arena.reserve(10, 30)  # up to row 40 of 48
    assert b is not None and b.ctypes.data == arena.records[10:].ctypes.data
    assert arena.reserve(40, 16) is None, "rows 48.. are slot 0 again, still held by a"
    arena.written_out(a)
    assert arena.reserve(40, 16) is None, "slot 0 also holds b's rows 10..15"
    arena.written_out(b[:6])
    c = arena.reserve(40, 16)  # across the end
    if mirrored:
        assert c is not None and c.ctypes.data == arena.records[40:].ctypes.data
    else:
        assert c is None and arena.reserve(48, 16) is not None


def test_a_reservation_never_spans_more_chunks_than_the_arena_has():
    """Its first and last chunk would share a slot, and the next reservation in the last
    would be handed the first's memory while its records wait to be written (audit)."""
    arena = ChunkArena(RECORD, 16, 3)
    assert arena.reserve(8, 48) is None, "rows 8..55: chunks 0..3 in 3 slots"
    big = arena.reserve(8, 40)  # rows 8..47: chunks 0..2
    assert big is not None
    arena.give_back(big[30:])  # the scratch tail, as the builder gives it back
    assert arena.reserve(48, 8) is None, "slot 0 still holds rows 8..15"


def test_a_block_past_the_arenas_end_goes_on_at_its_start():
    arena = ChunkArena(RECORD, 16, 3)
    if not arena.mirrored:
        pytest.skip("no memfd_create here: blocks across the end are built elsewhere (tested below)")
    arena.reserve(0, 40)
    arena.written_out(arena.records[:40])
    block = arena.reserve(40, 16)
    block["event"] = np.arange(16)
    np.testing.assert_array_equal(arena.records["event"][40:], np.arange(8))
    np.testing.assert_array_equal(arena.records["event"][:8], np.arange(8, 16))


def test_give_back_takes_only_the_last_reservations_tail():
    arena = ChunkArena(RECORD, 16, 3)
    a = arena.reserve(0, 20)
    with pytest.raises(ValueError):
        arena.give_back(a[:5])
    arena.give_back(a[12:])
    assert arena.reserve(12, 4) is not None


def test_whole_chunk_only_for_a_whole_chunk_in_order():
    arena = ChunkArena(RECORD, 16, 3)
    a = arena.reserve(0, 20)
    assert arena.whole_chunk([a[:16]]) is not None
    assert arena.whole_chunk([a[:8], a[8:16]]) is not None
    assert arena.whole_chunk([a[8:16], a[:8]]) is None
    assert arena.whole_chunk([a[:15]]) is None
    assert arena.whole_chunk([a[4:20]]) is None
    assert arena.whole_chunk([np.zeros(16, RECORD)]) is None


@pytest.fixture
def small_chunks(monkeypatch, mirrored):
    """16-record chunks, an arena of 3: every case comes round within a few blocks."""
    monkeypatch.setattr(hdf5file, "CHUNK_BYTES", 16 * RECORD.itemsize)
    monkeypatch.setattr(sinks, "ARENA_SLOTS", 3)


def _block(start: int, n: int, into: np.ndarray | None = None) -> np.ndarray:
    rec = np.empty(n, RECORD) if into is None else into
    rec["event"] = np.arange(start, start + n)
    rec["data"] = (np.arange(start, start + n) % 251)[:, None]
    return rec


def _read(sink: RotatingFiles) -> np.ndarray:
    return np.concatenate([read_events(f)["event"] for f in sink.files])


def test_blocks_built_in_place_are_written_from_there(tmp_path, small_chunks):
    sink = RotatingFiles(tmp_path, "ev", flush_bytes=1, fsync=False)
    assert sink.use_arena(RECORD)
    start = 0
    for n in [5, 11, 16, 7, 30, 3, 40, 20]:  # blocks across chunks, slots and the arena's end
        if sink.writer is not None:
            sink.writer.io.todo.join()  # the chunks queued are written (the node waits while the writer is busy)
        block = sink.reserve(0, n)
        crosses = start % 48 + n > 48
        assert (block is not None) == (sink.arena.mirrored or not crosses)
        sink.write(_block(start, n, block))
        start += n
    sink.close()
    assert sink.error is None
    got = read_events(sink.files[0])
    np.testing.assert_array_equal(got["event"], np.arange(start))
    np.testing.assert_array_equal(got["data"][:, 7], np.arange(start) % 251)
    if sink.arena.mirrored:
        assert sink.arena.chunks_in_place == start // 16
    else:  # the chunks with records of a block built elsewhere are gathered
        assert 0 < sink.arena.chunks_in_place < start // 16 and sink.arena.chunks_gathered > 0


def test_a_block_longer_than_the_arena_is_not_built_across_itself(tmp_path, small_chunks):
    """Records built elsewhere first, then a block of a whole arena's length and one after
    it: the second must not be built over the first's head before that is written."""
    sink = RotatingFiles(tmp_path, "ev", flush_bytes=1, fsync=False)
    sink.use_arena(RECORD)
    sink.write(_block(0, 8))
    big = _block(8, 48, sink.reserve(0, 48))
    small = _block(56, 4, sink.reserve(48, 4))
    sink.write(big)
    sink.write(small)
    sink.close()
    np.testing.assert_array_equal(_read(sink), np.arange(60))


def test_a_block_held_back_while_later_ones_overtake_it_is_written_whole(tmp_path, small_chunks):
    """The fallback holds a block for its CPU results while later ones leave: the held one
    lies where the overtakers go, and theirs where it goes; every record must still reach
    the file as handed over, and the held block's memory must not be handed out again."""
    sink = RotatingFiles(tmp_path, "ev", flush_bytes=1, fsync=False)
    sink.use_arena(RECORD)
    held = _block(0, 12, sink.reserve(0, 12))
    order = []
    start, ahead = 12, 12
    for _ in range(12):  # several times round the arena (48 records)
        block = sink.reserve(ahead, 10)
        if block is None:  # its memory is in use: built elsewhere, as the builder does
            block = np.empty(10, RECORD)
        _block(start, 10, block)
        sink.write(block)
        order.append(np.arange(start, start + 10))
        start += 10
        ahead = 12  # still held
    sink.write(held)  # released at last
    sink.close()
    want = np.concatenate(order + [np.arange(12)])
    got = read_events(sink.files[0])
    np.testing.assert_array_equal(got["event"], want)
    np.testing.assert_array_equal(got["data"][:, 0], want % 251)
    assert sink.arena.chunks_gathered > 0


@pytest.mark.parametrize("max_records", [25, 40])
def test_blocks_across_a_rotation_reach_both_files_whole(tmp_path, small_chunks, max_records):
    sink = RotatingFiles(tmp_path, "ev", max_records=max_records, flush_bytes=1, fsync=False)
    sink.use_arena(RECORD)
    start = 0
    for n in [9, 14, 6, 21, 17, 8, 30, 5]:
        block = sink.reserve(0, n)
        sink.write(_block(start, n, block))
        start += n
    sink.close()
    assert sink.error is None and len(sink.files) == -(-start // max_records)
    np.testing.assert_array_equal(_read(sink), np.arange(start))


def test_a_builder_builds_in_the_arena_and_the_file_is_the_events(tmp_path):
    """The builder with the node's adapter (``_SinkMemory``): both its paths (straight
    from the receive buffer, and through the ring), at the real 4 MB chunks."""
    n_sources, n_inputs = 4, 248
    builder = Builder(n_sources, n_inputs, 2, 4, window=4096)
    fallback = Fallback(None)
    sink = RotatingFiles(tmp_path, "ev", fsync=False)
    assert sink.use_arena(builder.event_dtype)
    builder.memory = _SinkMemory(sink, builder, fallback)
    n = 30_000  # 3 times round the 12,288-event arena
    rng = np.random.default_rng(7)
    for start in range(0, n, 1500):
        events = np.arange(start, start + 1500)
        frags = [protocol.make_fragments(events, np.full((1500, n_inputs), s), np.zeros((1500, 2))) for s in range(4)]
        late = int(rng.integers(4))  # its fragments of half the events come a drain later
        first = [(k, f[:750]) for k, f in enumerate(frags)] + [(k, f[750:]) for k, f in enumerate(frags) if k != late]
        for drain in (first, [(late, frags[late][750:])]):
            sources = np.concatenate([np.full(len(f), k, np.intp) for k, f in drain])
            builder.add(sources, np.concatenate([f for _, f in drain]))
            for block in builder.take():
                fallback.submit(block)
            for block in fallback.step():
                sink.write(block)
    builder.drain()
    for block in builder.take():
        fallback.submit(block)
    for block in fallback.step(force=True):
        sink.write(block)
    sink.close()
    got = read_events(sink.files[0])
    np.testing.assert_array_equal(np.sort(got["event"]), np.arange(n))
    assert (got["status"] == protocol.COMPLETE).all()
    np.testing.assert_array_equal(got["inputs"][:, :, 100], np.tile(np.arange(4), (n, 1)))
    assert sink.arena.served > n // 2 and sink.arena.chunks_in_place > 0
