"""Event building rules on the builder itself (the daemon tests run the same code over
real sockets): completeness, order, duplicates, timeout, late fragments, the window."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import builder as builder_mod
from node.builder import U64_MAX, Builder, missing_sources
from sim.wire import protocol as p


def frags(events, source, n_in=3, n_out=1, t0=0):
    """Fragments of ``events`` from ``source``, stamped as a board would (never 0: a copy
    resent is told from new data by its stamp; ``t0``: a later run's clock)."""
    events = np.asarray(events)
    x = (events[:, None] * 10 + source) + np.zeros((1, n_in), int)
    stamps = events.astype(np.uint64) * np.uint64(100) + np.uint64(source + 1 + t0)
    return np.full(len(events), source), p.make_fragments(events, x, events[:, None] + 1000 * source, None, stamps)


def built(b: Builder) -> np.ndarray:
    out = b.take()
    return np.concatenate(out) if out else np.zeros(0, b.event_dtype)


def set_aside(b: Builder) -> tuple[int, int]:
    """Fragments handed to the late files since the last call: (late, refused as jumps)."""
    taken = b.take_late()
    late = sum(len(x.fragments) for x in taken if x.why == builder_mod.WHY_LATE)
    return late, sum(len(x.fragments) for x in taken) - late


def test_complete_events_carry_every_source_data():
    b = Builder(3, 3, 1, 4)
    for s in range(3):
        b.add(*frags(range(10), s))
    ev = built(b)
    assert sorted(ev["event"]) == list(range(10))
    assert (ev["status"] == p.COMPLETE).all() and (ev["missing"] == 0).all()
    e7 = ev[ev["event"] == 7][0]
    assert e7["inputs"][:, 0].tolist() == [70, 71, 72] and e7["fpga"][:, 0].tolist() == [7, 1007, 2007]


def test_fragments_of_another_workers_events_are_counted_and_built_all_the_same():
    b = Builder(2, 3, 1, 4, stride=3, worker=1)
    for s in range(2):
        b.add(*frags([1, 4, 7, 9, 10], s))  # 9: worker 0's
    ev = built(b)
    assert sorted(ev["event"]) == [1, 4, 7, 9, 10] and (ev["status"] == p.COMPLETE).all()
    assert b.counts.misrouted == 2 and b.last_misrouted == (1, 9)
    assert Builder(2, 3, 1, 4).counts.misrouted == 0
    # once each, also where a drain is placed in pieces (wider than the window) or a held
    # leap goes in with the drain that confirms it (counted twice: review)
    b = Builder(1, 3, 1, 4, window=16, stride=2, worker=0)
    ev = np.arange(0, 200, 2)
    ev[::10] += 1
    b.add(*frags(ev, 0))
    assert b.counts.misrouted == 10
    b = Builder(1, 3, 1, 4, window=16, stride=2, worker=0)
    for drain in ([0, 2, 4], [101], [104, 106]):
        b.add(*frags(drain, 0))
    assert b.counts.misrouted == 1


def test_out_of_order_and_interleaved_sources_in_one_drain():
    b = Builder(4, 3, 1, 4)
    rng = np.random.default_rng(1)
    parts = [frags(range(200), s) for s in range(4)]
    src = np.concatenate([x[0] for x in parts])
    fr = np.concatenate([x[1] for x in parts])
    order = rng.permutation(len(fr))
    for chunk in np.array_split(order, 7):
        b.add(src[chunk], fr[chunk])
    ev = built(b)
    assert sorted(ev["event"]) == list(range(200)) and (ev["status"] == p.COMPLETE).all()
    assert b.counts.fragments == 800 and b.n_open == 0


def test_duplicates_are_counted_and_the_first_copy_kept():
    b = Builder(2, 3, 1, 4)
    s0, f0 = frags([1, 2], 0)
    dup = f0.copy()
    dup["inputs"] = -1
    b.add(np.array([0, 0, 0]), np.concatenate([f0[:1], dup[:1], f0[1:]]))  # duplicate inside one drain
    b.add(s0[:1], dup[:1])  # and in a later drain
    b.add(*frags([1, 2], 1))
    ev = built(b)
    assert b.counts.duplicates == 2 and len(ev) == 2
    assert (ev["inputs"][:, 0] >= 0).all()


def test_a_copy_of_a_fragment_its_event_left_with_is_a_duplicate_not_late():
    """A board resending its last messages after a reconnect: copies of fragments whose
    events already left, with them. They went to the late files, as if the events had
    lacked them; they are duplicates. A fragment the event left without is late."""
    b = Builder(2, 3, 1, 4, timeout_s=0.1)
    b.add(*frags([1, 2], 0), now_ns=0)
    b.add(*frags([1], 1), now_ns=0)  # event 1 leaves complete
    b.expire(now_ns=10**9)  # event 2 times out without source 1
    assert len(built(b)) == 2
    b.add(*frags([1, 2], 0))  # the resend: both events left with these
    b.add(*frags([1, 2], 1))  # 1 left with it; 2 left without it: late
    assert b.counts.duplicates == 3 and b.counts.late == 1
    (late,) = b.take_late()
    assert late.fragments["event"].tolist() == [2] and late.source_index.tolist() == [1]


@pytest.mark.parametrize("stamp", ["another", "none"])
def test_new_data_with_the_number_of_a_fragment_its_event_left_with_is_late(stamp):
    """The same number and source as a fragment an event left with, but another board
    timestamp (a new run meeting the old one's last events in the ring, a board
    renumbering) or none (0: no telling): new data, late, in the late files; it was taken
    for a resent copy and dropped (review)."""
    b = Builder(2, 3, 1, 4, timeout_s=0.1)
    for s in (0, 1):
        b.add(*frags([1], s), now_ns=0)
    assert len(built(b)) == 1
    src, f = frags([1], 0)
    f["timestamp_ns"] = f["timestamp_ns"] + 5 if stamp == "another" else 0
    b.add(src, f)
    assert b.counts.duplicates == 0 and b.counts.late == 1 and len(b.take_late()) == 1


def test_silent_source_times_out_with_its_id_missing():
    b = Builder(3, 3, 1, 4, timeout_s=1.0)
    b.add(*frags([5], 0), now_ns=0)
    b.add(*frags([5], 2), now_ns=0)
    b.expire(now_ns=500_000_000)
    assert not b.take()
    b.expire(now_ns=1_500_000_000)
    (ev,) = b.take()
    assert ev["status"][0] == p.TIMED_OUT
    assert missing_sources(int(ev["missing"][0]), [10, 11, 12]) == [11]


def test_late_fragments_go_to_the_late_list_not_into_events():
    b = Builder(2, 3, 1, 4, timeout_s=0.1)
    b.add(*frags([1], 0), now_ns=0)
    b.expire(now_ns=10**9)
    b.take()
    b.add(*frags([1], 1))  # its event already left
    assert b.counts.late == 1 and not b.take()
    (late,) = b.take_late()
    assert late.fragments["event"].tolist() == [1] and late.source_index.tolist() == [1]


def test_window_bound_evicts_oldest_events_incomplete_and_nothing_is_dropped():
    b = Builder(2, 3, 1, 4, window=16)
    b.add(*frags(range(16), 0))
    assert b.n_open == 16
    b.add(*frags([20], 0))  # the window moves to 5..20: events 0..4 leave
    ev = built(b)
    assert sorted(ev["event"]) == [0, 1, 2, 3, 4] and (ev["status"] == p.EVICTED).all()
    assert b.n_open == 12
    b.add(*frags([2, 6], 1))  # 2 is older than the window: late; 6 completes
    assert b.counts.late == 1 and built(b)["event"].tolist() == [6]


def test_waiting_fragments_reuse_the_rows_events_left_not_a_row_per_slot():
    """The open events' fragments wait in rows handed back when events leave, so the
    memory written follows the events in flight (a lagging source: ~100), not the window
    (65,536 slots): a row per slot would write a new row for every event, always cold."""
    b = Builder(2, 3, 1, 4, window=1 << 16, direct=False)
    lag, n = 100, 20_000
    for start in range(0, n + lag, 16):
        lead = np.arange(start, min(start + 16, n))
        late = np.arange(max(0, start - lag), max(0, min(start + 16 - lag, n)))
        for s, ev in ((0, lead), (1, late)):
            if len(ev):
                b.add(*frags(ev + 1, s))  # event numbers from 1: every row written is nonzero
    out = built(b)
    assert len(out) == n and (out["status"] == p.COMPLETE).all()
    assert np.array_equal(np.sort(out["event"]), np.arange(1, n + 1))
    assert np.array_equal(out["inputs"][:, 1, 0], out["event"].astype(np.int64) * 10 + 1)
    written = np.count_nonzero(b.store["inputs"].reshape(len(b.store), -1).any(axis=1))
    assert lag <= written <= 2 * (lag + 16), written


@pytest.mark.parametrize("direct", [True, False])
def test_events_leave_in_event_order_across_the_rings_wrap(direct):
    """Slots are event numbers mod the ring's size: events 60..67 of a 64-slot ring sit in
    slots 60..63 and 0..3, and leave as 60..67 whichever way they leave."""
    b = Builder(2, 3, 1, 4, window=64, timeout_s=1.0, direct=direct)
    b.add(*frags(range(60, 68), 0), now_ns=0)
    b.add(*frags(range(60, 68), 1), now_ns=0)  # complete in one drain
    assert built(b)["event"].tolist() == list(range(60, 68))
    b.add(*frags(range(120, 132), 0), now_ns=0)  # open in slots 56..63, 0..3
    b.expire(now_ns=2 * 10**9)  # timed out
    assert built(b)["event"].tolist() == list(range(120, 132))
    b.add(*frags(range(184, 196), 0), now_ns=3 * 10**9)
    b.drain()  # drained at shutdown
    assert built(b)["event"].tolist() == list(range(184, 196))
    b.add(*frags(range(250, 262), 0), now_ns=3 * 10**9)
    b.add(*frags([262 + 64 + 4, 262 + 64 + 5], 0), now_ns=3 * 10**9)  # moves the window past them all: evicted
    assert built(b)["event"].tolist() == list(range(250, 262))


MS = 1_000_000  # ns


def _stream(b: Builder, events: np.ndarray, per_drain: int = 16, t0: int = 0, extra=None, extra_at: int = 0) -> None:
    """Two sources sending ``events`` in step, a drain of ``per_drain`` events every ms
    (from ``t0`` ms); ``extra`` (source indices, fragments) rides in drain ``extra_at``."""
    for k, start in enumerate(range(0, len(events), per_drain)):
        ev = events[start : start + per_drain]
        parts = [frags(ev, 0), frags(ev, 1)] + ([extra] if extra is not None and k == extra_at else [])
        b.add(np.concatenate([x[0] for x in parts]), np.concatenate([x[1] for x in parts]), now_ns=(t0 + k) * MS)


@pytest.mark.parametrize("anchor", [1 << 40, 0], ids=["far-above", "far-below"])
def test_a_corrupt_first_event_number_is_outlived_not_obeyed(anchor):
    """The first fragment anchors the numbering: one with a corrupt number made every good
    fragment after it late (anchored far above) or a jump (far below) for good. After
    ``stuck_fragments`` far ones in a row from two sources, with none in the window for a
    build timeout, the builder lets go of the anchor, and the stream builds again; what
    came before is late or a counted jump, never dropped unsaid."""
    b = Builder(2, 3, 1, 4, window=64, timeout_s=0.005, stuck_fragments=64)
    b.add(*frags([anchor], 0), now_ns=0)
    good = np.arange(1_000_000_000, 1_000_000_400)
    _stream(b, good, t0=1)  # a drain of 32 fragments a ms: 64 far ones by 2 ms, the timeout at 5
    out = built(b)
    complete = out[out["status"] == p.COMPLETE]
    assert b.counts.reanchors == 1
    late_or_jump = b.counts.late + b.counts.jumps
    # 4 drains of 32 far ones (1-4 ms); the fifth (5 ms) let go and was built, anchoring anew
    assert late_or_jump == 4 * 32 and len(complete) == 400 - 4 * 16
    assert np.array_equal(np.sort(complete["event"]), good[64:])
    assert b.counts.fragments + late_or_jump == 1 + 2 * 400  # every fragment accounted for
    assert set_aside(b) == (b.counts.late, b.counts.jumps)  # ... and the refused ones in the late files too


def test_jumps_in_a_drain_that_lets_go_are_set_aside_once():
    """Refused fragments go to the late files with the late ones (a corrupt number's
    payload is still the board's data).  A drain that lets go is placed again from the
    start: its jumps, counted and set aside in the first pass, were set aside twice."""
    b = Builder(2, 3, 1, 4, window=64, timeout_s=0.005, stuck_fragments=64, max_event_jump=1 << 20)
    b.add(*frags([1 << 40], 0), now_ns=0)  # a corrupt anchor: the stream below is far, late
    wild = frags([1 << 62], 1)  # one absurd number in every drain: beyond max_event_jump of any anchor
    _stream(b, np.arange(1000, 1400), t0=1, extra=wild, extra_at=4)
    for k in range(5, 8):
        src, f = frags(np.arange(2000 + 16 * k, 2016 + 16 * k), 0)
        b.add(np.r_[src, wild[0]], np.concatenate([f, wild[1]]), now_ns=(1 + 25 + k) * 1_000_000)
    assert b.counts.reanchors == 1
    late, jumps = set_aside(b)
    assert (late, jumps) == (b.counts.late, b.counts.jumps) and jumps >= 1


def test_a_straggler_in_the_drain_that_lets_go_does_not_anchor_it():
    """A new run counting from zero after a long one, and in its first drains a straggler
    of the old run (its event already built): anchored on the lowest number, that drain
    let go again and again (a RecursionError). Now once per drain, near its median."""
    b = Builder(2, 3, 1, 4, window=64, timeout_s=0.005, stuck_fragments=64)
    _stream(b, np.arange(100_000, 102_000))  # the old run, well past 16 windows
    built(b)
    late_before = b.counts.late
    straggler = frags([101_990], 1)  # its event already left complete: late wherever it comes
    # far ones: 32 at 200 ms, 64 at 201 ms: that drain (the straggler in it) lets go and anchors anew
    _stream(b, np.arange(0, 400), t0=200, extra=straggler, extra_at=1)
    out = built(b)
    complete = out[out["status"] == p.COMPLETE]
    assert b.counts.reanchors == 1
    assert np.array_equal(np.sort(complete["event"]), np.arange(16, 400))  # the drain that let go, built
    assert b.counts.late - late_before == 32 + 1  # the drain before it, and the straggler
    (late,) = b.take_late()[-1:]
    assert late.fragments["event"].tolist() == [101_990]


def test_a_backlog_far_behind_is_late_while_the_others_send_into_the_window():
    """Two sources lagged far behind (a link outage) and send their backlog while two others
    go on: late, not a new numbering, as long as something still comes into the window."""
    b = Builder(4, 3, 1, 4, window=64, timeout_s=0.005, stuck_fragments=16)
    for k, start in enumerate(range(100_000, 101_600, 16)):
        ev = np.arange(start, start + 16)
        parts = [frags(ev, 0), frags(ev, 1)]  # the sources still in step
        if k % 2:
            parts += [frags(ev - 5000, 2), frags(ev - 5000, 3)]  # the backlog, every other drain
        b.add(np.concatenate([x[0] for x in parts]), np.concatenate([x[1] for x in parts]), now_ns=k * MS)
    assert b.counts.reanchors == 0


def _in_step(b: Builder, sources, events, t_ms: int, per_drain: int = 16, flip: int | None = None, t0: int = 0) -> int:
    """``sources`` sending ``events`` in step, a drain of ``per_drain`` events a ms from
    ``t_ms``, the builder's timeout run after each; returns the ms after the last drain.
    ``flip``: the first source's fragment at that place has bit 16 of its number flipped.
    ``t0``: the stamps' clock (see ``frags``)."""
    for start in range(0, len(events), per_drain):
        ev = events[start : start + per_drain]
        parts = [frags(ev, s, t0=t0) for s in sources]
        if flip is not None and start <= flip < start + per_drain:
            parts[0][1]["event"][flip - start] ^= np.uint64(1 << 16)
        b.add(np.concatenate([x[0] for x in parts]), np.concatenate([x[1] for x in parts]), now_ns=t_ms * MS)
        b.expire(t_ms * MS)
        t_ms += 1
    return t_ms


def test_a_backlog_far_behind_stays_late_after_the_others_stop():
    """Two sources fell behind (a link outage), the two others ran on and stopped (the end
    of their run) for longer than the build timeout, and then the backlog came: taken for a
    new numbering, its events were built a second time (each copy incomplete). It goes on
    from its sources' own numbers, through numbers the window went through: late."""
    b = Builder(4, 3, 1, 4, window=64, timeout_s=0.005, stuck_fragments=16)
    t = _in_step(b, range(4), np.arange(100_000, 100_160), 0)  # all four, then 2 and 3 fall silent
    t = _in_step(b, (0, 1), np.arange(100_160, 102_000), t)  # 0 and 1 run on, 28 windows, and stop
    b.expire((t + 1000) * MS)
    first = built(b)
    assert len(first) == 2000 and b.counts.complete == 160
    late_before = b.counts.late
    t = _in_step(b, (2, 3), np.arange(100_160, 101_600), t + 1000)  # the backlog of 2 and 3
    b.expire((t + 1000) * MS)
    b.drain()
    assert b.counts.reanchors == 0 and b.counts.late - late_before == 2 * 1440 and len(built(b)) == 0
    # a new run from zero: each source goes back below its own numbers: let go at its first
    # drain (the far run and the silence in the window are long), and built whole
    _in_step(b, range(4), np.arange(0, 400), t + 1000)
    b.expire((t + 3000) * MS)
    out = built(b)
    assert b.counts.reanchors == 1
    assert np.array_equal(np.sort(out["event"][out["status"] == p.COMPLETE]), np.arange(400))


@pytest.mark.parametrize("sources", [(0, 1), (2, 3)], ids=["went-back", "never-placed"])
def test_a_new_run_from_sources_the_old_one_lost_is_a_new_numbering(sources):
    """The old run ended with 0 and 1 alone (2 and 3 stopped early, or never sent); the new
    one's first fragments come from 2 and 3: below their own numbers, or from sources with
    none to go on from, they are a new numbering, not a backlog."""
    b = Builder(4, 3, 1, 4, window=64, timeout_s=0.005, stuck_fragments=16)
    t = _in_step(b, sources, np.arange(100_000, 100_160), 0) if sources == (0, 1) else 0
    t = _in_step(b, (0, 1) if sources == (2, 3) else (2, 3), np.arange(100_160, 102_000), t)
    b.expire((t + 1000) * MS)
    built(b)
    _in_step(b, sources, np.arange(0, 400), t + 1000)
    b.expire((t + 3000) * MS)
    out = built(b)
    assert b.counts.reanchors == 1 and np.array_equal(np.sort(out["event"]), np.arange(400))


@pytest.mark.parametrize("bases", [[50_000], [50_000, 90_000]], ids=["one-leap", "two-leaps"])
def test_numbers_the_window_leapt_over_are_a_new_numbering_not_a_backlog(bases):
    """A message whose fragments all carry one wrong base confirm each other and move the
    window far ahead (a corrupt leap), and their board falls silent; the other sources go
    on from their own numbers, but through numbers the window leapt over, never in it: the
    builder lets go, and builds.  (Two such leaps: the numbers between the two were taken
    for a backlog, for as long as the stream took to reach the second: review.)"""
    b = Builder(3, 3, 1, 4, window=64, timeout_s=0.005, stuck_fragments=64)
    t = _in_step(b, (0, 1, 2), np.arange(100_000, 100_320), 0)
    for k, base in enumerate(bases):  # the corrupt messages
        b.add(*frags(np.arange(100_320, 100_336) + 16 * k + base, 2), now_ns=t * MS)
    t = _in_step(b, (0, 1), np.arange(100_320, 101_000), t + 1)
    assert b.counts.reanchors == 1
    b.drain()
    out = built(b)
    good = out["event"][(out["event"] < 150_000) & (out["missing"] == 1 << 2)]  # all but the silent one
    assert len(good) >= 600 and good.max() == 100_999


def test_a_new_run_soon_after_the_old_one_from_sources_that_died_early_in_it():
    """The old run numbered from 0; 2 and 3 died at event 160, 0 and 1 ran on and stopped;
    a new run from 0 comes within the build timeout, first from 2 and 3. Judged only once
    the far fragments had come for a timeout, its numbers had passed 160 by then and it
    looked like 2 and 3 going on: late until it reached the old window (review). Its first
    fragments went back more than a window below their sources' numbers, and that counts."""
    b = Builder(4, 3, 1, 4, window=64, timeout_s=0.020, stuck_fragments=16)
    t = _in_step(b, range(4), np.arange(0, 160), 0)
    t = _in_step(b, (0, 1), np.arange(160, 2000), t)
    built(b)
    t = _in_step(b, (2, 3), np.arange(0, 1200), t + 5)
    b.expire((t + 1000) * MS)
    b.drain()
    out = built(b)
    assert b.counts.reanchors == 1 and len(out[out["event"] < 1200]) >= 1200 - 20 * 16  # a timeout's worth late


def test_a_straggler_in_the_window_does_not_wipe_out_what_told_a_new_run():
    """As above, with the build timeout longer than the new run's first window of numbers:
    100 ms in, source 1 sends its last message of the old run again (its events still wait
    for 2 and 3, so it lands in the window) and ends the far run. Counted from the far
    run's start, what 2 and 3 had told was forgotten, and by then their numbers looked like
    their backlog: the new run stayed late (review). It is kept per source now."""
    b = Builder(4, 3, 1, 4, window=64, timeout_s=0.200, stuck_fragments=16)
    t = _in_step(b, range(4), np.arange(0, 640), 0)
    t = _in_step(b, (0, 1), np.arange(640, 20000), t)
    built(b)
    t = _in_step(b, (2, 3), np.arange(0, 1600), t + 5)  # the new run from 2 and 3: 100 ms
    b.add(*frags(np.arange(19984, 20000), 1), now_ns=t * MS)  # the resend
    t = _in_step(b, (2, 3), np.arange(1600, 16000), t + 1)  # 900 ms more
    b.expire((t + 1000) * MS)
    b.drain()
    out = built(b)
    assert b.counts.reanchors == 1 and b.counts.duplicates == 16
    new = out["event"][(out["event"] < 16000) & (out["missing"] == 0b0011)]
    assert len(new) >= 16000 - 300 * 16  # a build timeout (200 ms) of it late, and the resend's time


@pytest.mark.parametrize("kind", ["resent", "bit-flip"])
def test_a_backlog_that_resends_or_carries_a_corrupt_number_is_still_a_backlog(kind):
    """What a backlog may carry besides: the last message before the outage sent again
    (numbers just below its sources' highest), or one fragment with a corrupt number. One
    such fragment made the whole drain a new numbering, built a second time (review)."""
    b = Builder(4, 3, 1, 4, window=64, timeout_s=0.005, stuck_fragments=16)
    t = _in_step(b, range(4), np.arange(100_000, 100_160), 0)
    t = _in_step(b, (0, 1), np.arange(100_160, 102_000), t)
    b.expire((t + 1000) * MS)
    first = built(b)
    if kind == "resent":
        t = _in_step(b, (2, 3), np.arange(100_144, 101_600), t + 1000, per_drain=256)
    else:
        t = _in_step(b, (2, 3), np.arange(100_160, 101_600), t + 1000, flip=645)
    b.expire((t + 1000) * MS)
    b.drain()
    again = built(b)
    assert b.counts.reanchors == 0 and not len(np.intersect1d(again["event"], first["event"]))


def test_a_dead_boards_old_evidence_does_not_make_a_later_backlog_a_new_run():
    """Board 3 sent one message of corrupt numbers and died; long after, 0 and 1 fell behind
    while 2 ran on, then 2 stopped and 0 and 1 sent their backlog. Board 3's counts (kept
    until it places again, which it never does) made the backlog a new run, built twice
    (review): only the sources of the far run at hand count."""
    b = Builder(4, 3, 1, 4, window=64, timeout_s=0.05, stuck_fragments=16)
    t = _in_step(b, range(4), np.arange(0, 640), 0)
    b.add(*frags(np.arange(640, 656) + (1 << 30), 3), now_ns=t * MS)  # beyond max_event_jump
    t = _in_step(b, (2,), np.arange(640, 8000), t + 1)
    first = built(b)
    t = _in_step(b, (0, 1), np.arange(640, 8000), t + 5)
    b.expire((t + 1000) * MS)
    b.drain()
    assert b.counts.reanchors == 0 and not len(np.intersect1d(built(b)["event"], first["event"]))


@pytest.mark.parametrize("extra", ["corrupt", "held-copy"])
def test_the_drain_that_lets_go_is_placed_as_a_first_drain_would_be(extra):
    """The drain that let go of the numbering went in again without the leap check: a
    corrupt number in it was placed and moved the new window there (16 of a new run's
    2,000 events built); a resent copy of a fragment held before was counted as a
    duplicate and then placed (12,003 fragments accounted for 12,002 fed). Review."""
    b = Builder(2, 3, 1, 4, window=64, timeout_s=0.2, stuck_fragments=16)
    n_in = 2 * 4000
    t = _in_step(b, (0, 1), np.arange(0, 4000), 0) + 150
    if extra == "held-copy":
        b.add(*frags([9000], 0), now_ns=t * MS)  # a lone corrupt number: held
        n_in += 1
    for k in range(0, 64, 16):  # a new run from 0: far below; the fourth drain lets go
        parts = [frags(np.arange(k, k + 16), s) for s in (0, 1)]
        if k == 48:
            parts.append(frags([3048] if extra == "corrupt" else [9000], 0))
        src, fr = np.concatenate([x[0] for x in parts]), np.concatenate([x[1] for x in parts])
        n_in += len(fr)
        b.add(src, fr, now_ns=t * MS)
        b.expire(t * MS)
        t += 20
    assert b.counts.reanchors == 1 and b.high == 63
    t = _in_step(b, (0, 1), np.arange(64, 2000), t)
    n_in += 2 * (2000 - 64)
    b.expire((t + 1000) * MS)
    b.drain()
    out = built(b)
    assert ((out["event"] < 2000) & (out["missing"] == 0)).sum() >= 2000 - 48  # the three drains before, late
    c = b.counts
    assert c.fragments + c.late + c.duplicates + c.jumps == n_in


@pytest.mark.parametrize("clock", ["later", "restarted"])
def test_a_new_run_of_sparse_numbers_meets_the_old_runs_events_in_the_ring_and_is_built(clock):
    """Numbers 1,000 apart (a prescale) in a 65,536 window: a slot comes round only every
    lcm(1000, 65536) numbers, so after the let-go the new run's numbers found the old
    run's events of the same numbers still in the ring, left: all of it late (review).
    Going back more than a window below their sources' numbers in the old run, they are
    new events, even where a board's clock restarted with the run and stamps them alike
    (review: dropped as copies)."""
    b = Builder(2, 3, 1, 4, window=1 << 16, timeout_s=0.02, stuck_fragments=16)
    t = _in_step(b, (0, 1), np.arange(0, 3_000_000, 1000), 0, per_drain=4)
    assert len(built(b)) == 3000
    t0 = 10**12 if clock == "later" else 0
    t = _in_step(b, (0, 1), np.arange(0, 2_000_000, 1000), t + 50, per_drain=4, t0=t0)
    b.expire((t + 1000) * MS)
    b.drain()
    out = built(b)
    before = b.counts.late if clock == "later" else b.counts.duplicates  # (the same stamps: taken for copies)
    assert b.counts.reanchors == 1 and before == 8  # the drain before the let-go
    assert len(out) == 1996 and (out["missing"] == 0).all()


def _corrupt_leap_then_let_go(b: Builder, lagging: bool = False) -> tuple[int, np.ndarray]:
    """Events 0..999 from sources 0 and 1, one a ms (``lagging``: source 1's last ten not
    yet sent), a message of corrupt numbers (+2^20) from source 0 that confirms itself and
    leaps the window, then the real stream until the builder lets go of the numbering.
    Returns the ms reached and the events built before the let-go."""
    for e in range(1000):
        sources = (0,) if lagging and e >= 990 else (0, 1)
        b.add(*(np.concatenate(x) for x in zip(*(frags([e], s) for s in sources), strict=True)), now_ns=e * MS)
    t = 1000
    src, corrupt = frags(np.arange(1000, 1016), 0)
    corrupt["event"] += np.uint64(1 << 20)
    b.add(src, corrupt, now_ns=t * MS)  # confirms itself: the window leaps
    first = built(b)
    e = 1000
    while b.counts.reanchors == 0:
        t, e = t + 1, e + 1
        b.add(*(np.concatenate(x) for x in zip(frags([e - 1], 0), frags([e - 1], 1), strict=True)), now_ns=t * MS)
        b.expire(t * MS)
    return t, first


@pytest.mark.parametrize("resender", [1, 0], ids=["other-board", "corrupt-board"])
def test_a_resend_after_a_let_go_that_followed_a_corrupt_leap_is_not_built_twice(resender):
    """A corrupt message leapt the window; the real stream let go of it a build timeout
    later, within a window of where it was, and a board resent its last fragments from
    before the leap. The let-go had forgotten every event that left, so the copies were
    built again, incomplete (review). A copy is a duplicate; only other data meeting the
    old numbering's events is a new event."""
    b = Builder(2, 3, 1, 4, window=64, timeout_s=0.02, stuck_fragments=16)
    t, first = _corrupt_leap_then_let_go(b)
    assert b.low <= 990
    b.add(*frags(np.arange(990, 1000), resender), now_ns=t * MS)  # the resend
    b.expire((t + 1000) * MS)
    b.drain()
    assert not len(np.intersect1d(built(b)["event"], first["event"])) and b.counts.duplicates == 10


def test_what_events_lacked_before_a_corrupt_leap_is_late_after_the_let_go():
    """As above, but source 1 lagged: events 990..999 left without it at the leap. After the
    let-go it delivers them: the old numbering's events, but not going back below its own
    numbers there; built as new events, a second time each (review). Late."""
    b = Builder(2, 3, 1, 4, window=64, timeout_s=0.02, stuck_fragments=16)
    t, first = _corrupt_leap_then_let_go(b, lagging=True)
    late_before = b.counts.late
    b.add(*frags(np.arange(990, 1000), 1), now_ns=t * MS)
    b.expire((t + 1000) * MS)
    b.drain()
    assert not len(np.intersect1d(built(b)["event"], first["event"])) and b.counts.late - late_before == 10


@pytest.mark.parametrize("runs", [(3_000_000, 3_200_000), (3_000_000, 1_300_000, 3_000_000)],
                         ids=["up-to-the-old-run", "two-let-goes"])  # fmt: skip
def test_sparse_new_runs_meeting_older_runs_events_are_built(runs):
    """Judged by the old run's highest numbers, a new run that came up to them, or a third
    run meeting the first's events (the second's tops kept), went late (review). A new run
    goes on from its sources' own numbers in the new numbering."""
    b = Builder(2, 3, 1, 4, window=1 << 16, timeout_s=0.02, stuck_fragments=16)
    t = 0
    for k, end in enumerate(runs):
        t = _in_step(b, (0, 1), np.arange(0, end, 1000), t + 50, per_drain=4, t0=k * 10**12)
        b.expire((t + 1000) * MS)
        assert ((built(b)["missing"] == 0).sum()) == end // 1000 - (4 if k else 0)  # (the drain before a let-go)


def test_a_board_absent_from_the_old_run_builds_in_the_new_one():
    """A board that sent nothing in the old run has no numbers there: its part of a sparse
    new run meeting the old run's events went late (review)."""
    b = Builder(3, 3, 1, 4, window=1 << 16, timeout_s=0.02, stuck_fragments=16)
    t = _in_step(b, (0, 1), np.arange(0, 3_000_000, 1000), 0, per_drain=4)
    built(b)
    t = _in_step(b, (0, 1, 2), np.arange(0, 2_000_000, 1000), t + 50, per_drain=4, t0=10**12)
    b.expire((t + 1000) * MS)
    b.drain()
    assert (built(b)["missing"] == 0).sum() >= 2000 - 4


def test_a_late_storm_near_the_window_is_late_not_a_new_numbering():
    """Events that timed out, then their fragments: late, near the window, however many."""
    b = Builder(2, 3, 1, 4, window=64, timeout_s=1.0, stuck_fragments=16)
    b.add(*frags(range(200, 264), 0), now_ns=0)
    b.expire(now_ns=2 * 10**9)  # 64 events out, incomplete
    assert len(built(b)) == 64
    for start in range(200, 264, 8):
        b.add(*frags(range(start, start + 8), 1), now_ns=2 * 10**9)  # source 1, all late
    b.add(*frags(range(200, 208), 0), now_ns=2 * 10**9)  # and source 0 again: copies, duplicates
    assert b.counts.late == 64 and b.counts.duplicates == 8 and b.counts.reanchors == 0 and not b.take()


def test_a_backlog_wider_than_the_window_is_built_not_late():
    """Boards that sent while the node was away (or busy) leave it a drain of thousands of
    events per source, in order: the window moved to the drain's last event at once, and
    everything below it (all but the last window: 57,344 of 65,536 events at the defaults)
    was late. Now such a drain is placed a window at a time, oldest first: the first drain
    of a run too."""
    b = Builder(4, 3, 1, 4, window=64)

    def backlog(events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parts = [frags(events[k : k + 16], s) for k in range(0, len(events), 16) for s in range(4)]
        return np.concatenate([x[0] for x in parts]), np.concatenate([x[1] for x in parts])

    for start in (5000, 6000):  # the run's first drain, then a backlog after a stall
        b.add(*backlog(np.arange(start, start + 1000)))
        out = built(b)
        assert out["event"].tolist() == list(range(start, start + 1000))  # in order, every one
        assert (out["status"] == p.COMPLETE).all() and b.counts.late == 0 and b.n_open == 0
    # a source a few events behind the others across the drain: still built whole
    ev = np.arange(7000, 8000)
    src, fr = backlog(ev)
    lag = (src == 3) & (fr["event"] >= 7990)  # source 3's last 10 come in the next drain
    b.add(src[~lag], fr[~lag])
    b.add(src[lag], fr[lag])
    out = built(b)
    assert sorted(out["event"].tolist()) == ev.tolist() and (out["status"] == p.COMPLETE).all()
    assert b.counts.late == 0 and b.counts.evicted == 0


@pytest.mark.parametrize("workers", [3, 4, 8])
def test_a_workers_first_drain_of_a_backlog_is_built_from_its_start(workers):
    """With ``node.workers = N`` a worker sees every Nth event number, so a backlog of n
    fragments from one source spans n x N numbers: anchored at most n below the median
    (as for consecutive numbers), its first part was late (2,980 of 16,000 events with 4
    workers, seen with real processes)."""
    b = Builder(1, 3, 1, 4, window=1024, stride=workers)
    ev = np.arange(4000) * workers + 1  # worker 1's numbers
    b.add(*frags(ev, 0))
    out = built(b)
    assert b.counts.late == 0 and out["event"].tolist() == ev.tolist()


def test_the_timeouts_queue_holds_the_open_events_not_rate_x_timeout():
    """Each drain's claim stayed queued for the whole timeout, its events long gone: with
    ``timeout_s = 600`` at 100k events/s, ~1 GB.  Compacted, it stays within a few windows,
    and an event still open keeps its own claim time (it times out neither early nor late)."""
    b = Builder(2, 3, 1, 4, window=1024, timeout_s=600.0)
    t0 = 10**12
    for start in range(0, 50_000, 16):
        ev = np.arange(start, start + 16)
        b.add(*frags(ev, 0), now_ns=t0 + start)
        b.add(*frags(ev[ev != 49_000], 1), now_ns=t0 + start)  # 49,000 waits for source 1
        b.expire(t0 + start)
        assert sum(len(slots) for _, slots, _ in b.claims) <= 4 * b.capacity
    assert b.counts.complete == 50_000 - 1 and b.n_open == 1
    claimed = t0 + 49_000 // 16 * 16  # the drain that brought its first fragment
    b.expire(claimed + 600 * 10**9 - 1)
    assert b.counts.timed_out == 0
    b.expire(claimed + 600 * 10**9 + 1)
    out = built(b)
    assert b.counts.timed_out == 1 and out["event"][-1] == 49_000 and out["missing"][-1] == 0b10


def test_the_claim_that_makes_the_queue_compact_still_times_out():
    """The compaction ran before the new claim's events were marked open, so it dropped that
    claim: its events never timed out (review)."""
    b = Builder(2, 3, 1, 4, window=16, timeout_s=1.0)
    e = 0
    while b._queued < 4 * b.capacity:
        b.add(*frags([e], 0), now_ns=0)
        b.add(*frags([e], 1), now_ns=0)
        e += 1
    built(b)
    b.add(*frags([e], 0), now_ns=0)  # this claim makes the queue compact
    b.expire(now_ns=2 * 10**9)
    out = built(b)
    assert out["event"].tolist() == [e] and out["status"][0] == p.TIMED_OUT and b.n_open == 0


def test_a_leap_its_own_drain_leads_up_to_is_not_held():
    """One fragment beyond the window's reach, but with the rest of its drain right below it
    (a backlog that overshoots by one): held as a lone leap, it was never confirmed, since
    later drains were within reach, and became a jump (review)."""
    b = Builder(2, 3, 1, 4, window=16, timeout_s=1.0)
    for s in (0, 1):
        b.add(*frags(range(0, 4), s), now_ns=0)  # high 3: reach 19
    b.add(*frags(range(4, 21), 0), now_ns=1)  # 20 is beyond reach, 5..19 lead up to it
    assert b.held is None
    for s in (1, 0):
        b.add(*frags(range(4, 25) if s else range(21, 25), s), now_ns=2)
    b.expire(now_ns=5 * 10**9)
    b.drain()
    assert b.counts.jumps == 0 and sorted(built(b)["event"].tolist()) == list(range(25))


def test_a_held_corrupt_number_the_stream_comes_up_to_is_let_go_not_placed():
    """A bit flip a few windows ahead that the stream reaches before the timeout: placed
    once the window came within reach of it, it moved the window a whole window ahead
    (open events evicted, the lagging source's fragments late), and took the real event's
    slot (its genuine fragment a duplicate, the event built with the corrupt data).  Held
    fragments are placed only when a leap near them confirms them: this one is a jump."""
    b = Builder(2, 3, 1, 4, window=16, timeout_s=1.0)
    for s in (0, 1):
        b.add(*frags(range(0, 4), s), now_ns=0)
    corrupt = frags([40], 1)
    corrupt[1]["inputs"] = -7  # source 1's fragment of some earlier event, its number flipped to 40
    b.add(*corrupt, now_ns=1)
    assert b.held is not None
    for lo in range(4, 44, 4):  # the stream comes up to 40 a few events at a time, source 1 behind
        b.add(*frags(range(lo, lo + 4), 0), now_ns=2)
        b.add(*frags(range(max(4, lo - 2), lo + 2), 1), now_ns=2)
    b.add(*frags(range(42, 44), 1), now_ns=2)
    b.expire(now_ns=5 * 10**9)
    b.drain()
    out = built(b)
    c = b.counts
    assert (c.jumps, c.evicted, c.late, c.duplicates) == (1, 0, 0, 0)
    (held,) = b.take_late()  # refused, in the late files: the corrupt fragment as it came
    assert held.why == builder_mod.WHY_LONE_LEAP and held.fragments["inputs"][0, 0] == -7
    row = out[out["event"] == 40]
    assert row["status"].tolist() == [p.COMPLETE] and row["inputs"][0, 1, 0] == 401  # the genuine one


@pytest.mark.parametrize("direct", [True, None, False])
def test_a_block_built_straight_from_the_drain_is_in_event_order(direct):
    """Built straight into the records, a block held first the events that had waited in the
    ring, then the others: [5, 3, 4] (review); the docs promise event order within a block."""
    three = p.HEADER_SIZE + 3 * p.event_dtype(2, 1, 1, 4).itemsize  # blocks of 3 events
    b = Builder(2, 1, 1, 4, window=64, direct=direct, max_block_bytes=three)
    b.add(*frags([5, 9], 0, n_in=1), now_ns=0)  # 5 and 9 wait in the ring for source 1
    parts = [frags([3, 4, 5, 6, 7, 9], 1, n_in=1), frags([3, 4, 6, 7], 0, n_in=1)]
    b.add(np.concatenate([x[0] for x in parts]), np.concatenate([x[1] for x in parts]), now_ns=0)
    blocks = b.take()
    assert [x["event"].tolist() for x in blocks] == [[3, 4, 5], [6, 7, 9]]
    for x in blocks:  # and each event with its own data
        assert (x["inputs"][:, 0, 0] == x["event"] * 10).all() and (x["inputs"][:, 1, 0] == x["event"] * 10 + 1).all()


def test_a_lone_leap_and_its_copy_in_one_drain_do_not_confirm_each_other():
    """A corrupt fragment and its resend coalesced into one drain were two fragments beyond
    the window, so not alone: the window leapt (review). One is held, the copy a duplicate."""
    b = Builder(2, 3, 1, 4, window=64, timeout_s=0.2)
    _in_step(b, (0, 1), np.arange(0, 1000), 0)
    parts = [frags(range(1000, 1008), 0), frags([5000], 0), frags([5000], 0), frags(range(1000, 1008), 1)]
    b.add(np.concatenate([x[0] for x in parts]), np.concatenate([x[1] for x in parts]), now_ns=10**9)
    assert b.high == 1007 and b.held is not None and b.counts.duplicates == 1 and b.counts.evicted == 0


def test_a_resent_copy_of_a_held_fragment_does_not_confirm_it():
    """A board that sends a message twice (or a replay) sent the corrupt fragment twice: the
    second copy confirmed the first, and the window moved (review). It is a duplicate: the
    first copy stays held (before, it was let go as a jump and the copy held in its place,
    so a copy with other content won)."""
    b = Builder(2, 3, 1, 4, window=16, timeout_s=1.0)
    for s in (0, 1):
        b.add(*frags(range(0, 4), s), now_ns=0)
    b.add(*frags([1000], 1), now_ns=1)  # a corrupt number, held
    again = frags([1000], 1)
    again[1]["inputs"] = -7
    b.add(*again, now_ns=2)  # the same fragment again (other content): its own copy
    assert b.held is not None and (b.held[1]["inputs"] >= 0).all() and b.counts.duplicates == 1
    for s in (0, 1):
        b.add(*frags(range(4, 8), s), now_ns=3)
    b.expire(now_ns=5 * 10**9)
    b.drain()
    out = built(b)
    assert b.counts.evicted == 0 and b.counts.late == 0 and sorted(out["event"].tolist()) == list(range(8))
    assert b.counts.jumps == 1 and b.counts.duplicates == 1  # the held one, never confirmed; its copy


def test_a_fragment_held_in_the_drain_that_re_anchors_is_counted_once():
    """The drain that made the builder let go of its numbering re-entered whole, the held
    fragment with it, while it stayed held: built and counted as a jump too (review)."""
    b = Builder(2, 3, 1, 4, window=64, timeout_s=0.005, stuck_fragments=96)
    n_in = 0
    for k, start in enumerate(range(100_000, 102_000, 16)):
        for s in (0, 1):
            b.add(*frags(np.arange(start, start + 16), s), now_ns=k * MS)
            n_in += 16
    built(b)
    for k in range(3):
        parts = [frags(np.arange(16 * k, 16 * k + 16), s) for s in (0, 1)]
        if k == 2:
            parts.append(frags([102_500], 0))  # one corrupt number, a few windows ahead
        src, fr = np.concatenate([x[0] for x in parts]), np.concatenate([x[1] for x in parts])
        n_in += len(fr)
        b.add(src, fr, now_ns=(200 + 10 * k) * MS)
    assert b.counts.reanchors == 1
    b.expire(now_ns=10**12)
    b.drain()
    built(b)
    c = b.counts
    assert c.fragments + c.late + c.duplicates + c.jumps == n_in


def test_an_absurd_event_number_does_not_flush_the_window():
    b = Builder(2, 3, 1, 4, window=64, max_event_jump=1000)
    b.add(*frags([1, 2], 0))
    b.add(*frags([1 << 60], 1))
    assert b.counts.jumps == 1 and b.n_open == 2
    (jump,) = b.take_late()
    assert jump.why == builder_mod.WHY_JUMP and jump.fragments["event"].tolist() == [1 << 60]
    b.add(*frags([1, 2], 1))
    assert len(built(b)) == 2


def test_drain_lets_open_events_go():
    b = Builder(2, 3, 1, 4)
    b.add(*frags([1, 2, 3], 0))
    b.drain()
    ev = built(b)
    assert len(ev) == 3 and (ev["status"] == p.DRAINED).all() and (ev["missing"] == 2).all()


def test_a_drain_of_messages_as_a_2d_view_builds_the_same_events():
    b = Builder(2, 3, 1, 4, window=16)
    f0, f1 = frags(range(8), 0)[1], frags(range(8), 1)[1]
    two_d = np.stack([f0[:4], f1[:4], f0[4:], f1[4:]])  # 4 messages x 4 fragments
    src = np.repeat([0, 1, 0, 1], 4)
    b.add(src, two_d)
    ev = built(b)
    assert sorted(ev["event"]) == list(range(8)) and (ev["status"] == p.COMPLETE).all()
    e5 = ev[ev["event"] == 5][0]
    assert e5["inputs"][:, 0].tolist() == [50, 51]
    b.add(src[:8], two_d[:2])  # copies of fragments their events left with: the rare path on a 2-d drain
    assert b.counts.duplicates == 8 and b.counts.late == 0
    b.add(*frags(range(100, 108), 0))  # the window moves on past 8..11, never seen: late
    never = np.stack([frags(range(8, 12), 0)[1], frags(range(8, 12), 1)[1]])
    b.add(np.repeat([0, 1], 4), never)
    assert b.counts.late == 8 and sorted(b.take_late()[0].fragments["event"].tolist()) == sorted([8, 9, 10, 11] * 2)


@given(
    st.permutations([0] * 6 + [1] * 6 + [2] * 6),  # the order the boards' messages arrive in
    st.lists(st.integers(1, 7), min_size=18, max_size=18),  # messages per drain
    st.sampled_from([True, None, False]),
)
@settings(max_examples=200, deadline=None)
def test_boards_that_run_ahead_build_the_same_events_from_2d_drains(order, sizes, direct):
    """Three boards, 4 fragments a message, each board's messages in event order but the
    boards ahead of one another by any amount: a drain's messages of events still open
    (a board ahead) wait in the ring; completed ones are built straight into their
    records or through the ring.  Every event leaves complete with every source's data."""
    per, n = 4, 24
    sent = {s: 0 for s in range(3)}
    messages = []
    for s in order:
        events = np.arange(sent[s], sent[s] + per)
        sent[s] += per
        messages.append((s, frags(events, s)[1]))
    b = Builder(3, 3, 1, 4, window=64, direct=direct)
    taken = 0
    for size in sizes:
        part = messages[taken : taken + size]
        taken += size
        if not part:
            break
        view = np.zeros((len(part), per + 1), part[0][1].dtype)  # strided, as in the receive buffer
        for k, (_, f) in enumerate(part):
            view[k, :per] = f
        with poisoned_fresh_records():
            b.add(np.repeat([s for s, _ in part], per), view[:, :per])
    if taken < len(messages):
        rest = messages[taken:]
        b.add(np.repeat([s for s, _ in rest], per), np.stack([f for _, f in rest]))
    ev = built(b)
    assert sorted(ev["event"].tolist()) == list(range(n)) and (ev["status"] == p.COMPLETE).all()
    ev = ev[np.argsort(ev["event"])]
    want = np.arange(n)[:, None] * 10 + np.arange(3)[None, :]
    np.testing.assert_array_equal(ev["inputs"][:, :, 0], want)
    np.testing.assert_array_equal(ev["fpga"][:, :, 0], np.arange(n)[:, None] + 1000 * np.arange(3)[None, :])
    assert not ev["missing"].any() and b.n_open == 0 and b.counts.duplicates == b.counts.late == 0


def test_events_leave_in_blocks_one_message_can_carry_and_none_is_lost():
    dtype = p.event_dtype(2, 3, 1, 4)
    b = Builder(2, 3, 1, 4, window=1024, max_block_bytes=p.HEADER_SIZE + 7 * dtype.itemsize)
    b.add(*frags(range(50), 0))
    b.add(*frags(range(50), 1))  # all 50 complete in one drain
    blocks = b.take()
    assert [len(x) for x in blocks] == [7] * 7 + [1]
    assert sorted(np.concatenate(blocks)["event"]) == list(range(50))
    assert all(p.encode_buffer(p.EVENTS, 0, 0, x, n_inputs=3, n_outputs=1, raw_bytes=4, n_sources=2).nbytes
               <= p.HEADER_SIZE + 7 * dtype.itemsize for x in blocks)  # fmt: skip


def test_an_event_completed_from_two_drains_keeps_the_first_drains_data():
    for direct in (True, False):  # straight into the records, and through the ring
        b = Builder(3, 3, 1, 4, direct=direct)
        s0, f0 = frags([5, 6], 0)
        s12, f12 = frags([5, 5, 6], 1)
        s12[1], f12[1] = 2, frags([5], 2)[1][0]
        with poisoned_fresh_records():
            b.add(s0, f0)
            b.add(s12, f12)  # 5 completes; 6 is still open, its source 1 goes into the ring
            b.add(*frags([6], 2))
        out = built(b)
        assert b.counts.direct == (2 if direct else 0)
        assert out["event"].tolist() == [5, 6] and (out["status"] == p.COMPLETE).all()
        assert out["inputs"][:, :, 0].tolist() == [[50, 51, 52], [60, 61, 62]]
        assert out["fpga"][:, :, 0].tolist() == [[5, 1005, 2005], [6, 1006, 2006]]
        assert (out["flags"] == p.RESULT_VALID).all() and not out["cpu"].any() and not out["reserved"].any()


def test_a_drain_built_straight_into_records_leaves_in_blocks_published_without_a_copy():
    dtype = p.event_dtype(2, 3, 1, 4)
    b = Builder(2, 3, 1, 4, window=1024, max_block_bytes=p.HEADER_SIZE + 7 * dtype.itemsize, direct=True)
    s0, f0 = frags(range(20), 0)
    s1, f1 = frags(range(20), 1)
    b.add(np.concatenate([s0, s1]), np.concatenate([f0, f1]))
    blocks = b.take()
    assert [len(x) for x in blocks] == [7, 7, 6]
    assert np.concatenate(blocks)["event"].tolist() == list(range(20))
    before = [x.tobytes() for x in blocks]
    for x in blocks:
        buf = p.encode_buffer(p.EVENTS, 0, 0, x, n_inputs=3, n_outputs=1, raw_bytes=4, n_sources=2)
        assert np.shares_memory(buf, x) and buf.nbytes == p.HEADER_SIZE + x.nbytes
    assert [x.tobytes() for x in blocks] == before  # each header went in front of its block, over no event


def test_records_smaller_than_a_message_header_still_leave_with_room_for_one():
    b = Builder(1, 1, 0, 1, direct=True, max_block_bytes=p.HEADER_SIZE + 3 * 46)
    assert b.event_dtype.itemsize == 46 < p.HEADER_SIZE
    with poisoned_fresh_records():
        b.add(np.zeros(5, int), p.make_fragments(np.arange(5), np.arange(5)[:, None] + 10, raw_bytes=1))
    blocks = b.take()
    before = [x.tobytes() for x in blocks]
    for x in blocks:
        buf = p.encode_buffer(p.EVENTS, 0, 0, x, n_inputs=1, n_outputs=0, raw_bytes=1, n_sources=1)
        assert np.shares_memory(buf, x)
    assert [x.tobytes() for x in blocks] == before
    assert [x["inputs"][:, 0, 0].tolist() for x in blocks] == [[10, 11, 12], [13, 14]]


class Reference:
    """The documented policy, one fragment at a time in plain Python (drain by drain, as
    the builder sees them): what the vectorised ring must agree with."""

    def __init__(self, n_sources: int, capacity: int, timeout_ns: int):
        self.n, self.cap, self.timeout = n_sources, capacity, timeout_ns
        self.open: dict[int, dict] = {}  # event -> {"sources": {s: value}, "opened": ns}
        self.left: dict[int, set[int]] = {}  # event -> the sources it left with
        self.claimed: dict[int, int] = {}  # ring slot -> the latest event opened in it
        self.high: int | None = None
        self.out: list[tuple[int, int, int, tuple]] = []
        self.late = self.duplicates = self.jumps = 0
        self.held: tuple[tuple[int, int], int] | None = None  # a lone fragment beyond reach, and when

    def _leave(self, event: int, status: int) -> None:
        e = self.open.pop(event)
        missing = sum(1 << s for s in range(self.n) if s not in e["sources"])
        data = tuple(e["sources"].get(s, (0, 0, 0)) for s in range(self.n))
        first = min((_stamp(event, s) for s in e["sources"]), default=int(U64_MAX))
        self.out.append((event, status, missing, data, first))
        self.left[event] = set(e["sources"])

    def add(self, drain: list[tuple[int, int]], now_ns: int) -> None:
        events = [ev for ev, _ in drain]
        if self.high is None:  # the lowest number not more than the drain's size below its median
            median = sorted(events)[len(events) // 2]
            self.high = min(ev for ev in events if ev >= median - len(events))
        leaps = [i for i, (ev, _) in enumerate(drain) if ev > self.high + self.cap]  # beyond the window's reach
        if leaps and self.held is not None:
            held = self.held[0]
            copies = [i for i in leaps if drain[i] == held]  # resent: duplicates, and it stays held
            if copies:
                self.duplicates += len(copies)
                drain = [d for i, d in enumerate(drain) if i not in copies]
                if not drain:
                    return
                leaps = [i for i, (ev, _) in enumerate(drain) if ev > self.high + self.cap]
        if leaps and self.held is not None:
            held, self.held = self.held[0], None
            if any(abs(drain[i][0] - held[0]) < self.cap for i in leaps):  # confirmed
                return self._in_pieces([held, *drain], now_ns)
            self.jumps += 1  # another leap, far from it: it was a corrupt number
        if len(leaps) > 1 and all(drain[i] == drain[leaps[0]] for i in leaps):  # one and its copies
            self.duplicates += len(leaps) - 1
            drain = [d for i, d in enumerate(drain) if i not in leaps[1:]]
            leaps = leaps[:1]
        if len(leaps) == 1:
            e = drain[leaps[0]][0]
            if not any(abs(ev - e) < self.cap for j, (ev, _) in enumerate(drain) if j != leaps[0]):
                self.held = (drain[leaps[0]], now_ns)  # alone: held until confirmed (or the timeout)
                drain = [d for i, d in enumerate(drain) if i != leaps[0]]
                if not drain:
                    return
        self._in_pieces(drain, now_ns)

    def _in_pieces(self, drain: list[tuple[int, int]], now_ns: int) -> None:
        events = [ev for ev, _ in drain]
        low = max(0, self.high - self.cap + 1)
        first = min((ev for ev in events if ev >= low), default=None)
        if first is not None and max(events) - first >= self.cap:  # wider than the window: in pieces
            piece = [0 if ev < first else (ev - first) // self.cap for ev in events]
            for k in sorted(set(piece)):
                self._place([d for d, q in zip(drain, piece, strict=True) if q == k], now_ns)
        else:
            self._place(drain, now_ns)

    def _place(self, drain: list[tuple[int, int]], now_ns: int) -> None:
        self.high = max(self.high, max(ev for ev, _ in drain))
        low = max(0, self.high - self.cap + 1)
        for ev in sorted(e for e in self.open if e < low):
            self._leave(ev, p.EVICTED)
        seen, claimed = set(), dict(self.claimed)  # (the ring as the drain found it)
        for ev, s in drain:
            if ev < low or ev in self.left:
                # a copy of a fragment its event left with, while the ring still holds that event
                again = s in self.left.get(ev, ()) and claimed.get(ev % self.cap) == ev
                self.duplicates += again
                self.late += not again
                continue
            if ev not in self.open:
                self.claimed[ev % self.cap] = ev
            e = self.open.setdefault(ev, {"sources": {}, "opened": now_ns})
            if s in e["sources"] or (ev, s) in seen:
                self.duplicates += 1
                continue
            seen.add((ev, s))
            e["sources"][s] = _payload(ev, s)
        for ev in sorted(e for e in self.open if len(self.open[e]["sources"]) == self.n):
            self._leave(ev, p.COMPLETE)

    def expire(self, now_ns: int) -> None:
        if self.held is not None and self.held[1] < now_ns - self.timeout:
            self.held, self.jumps = None, self.jumps + 1
        for ev in sorted(e for e in self.open if self.open[e]["opened"] < now_ns - self.timeout):
            self._leave(ev, p.TIMED_OUT)


@contextmanager
def poisoned_fresh_records() -> Iterator[None]:
    """Fresh record arrays full of 0xA5 bytes, not whatever ``np.empty`` happens to give:
    a field the builder forgets to set then shows."""

    def poisoned(n: int, dtype: np.dtype) -> np.ndarray:
        return np.full(n * dtype.itemsize, 0xA5, np.uint8).view(dtype)

    saved, builder_mod._uninitialised = builder_mod._uninitialised, poisoned
    try:
        yield
    finally:
        builder_mod._uninitialised = saved


def _payload(event: int, source: int) -> tuple[int, int, int]:
    """What source ``source`` sends for ``event``: input, FPGA result, flags."""
    return event * 10 + source, event * 7 + source + 1, 1 + (event + source) % 3


def _stamp(event: int, source: int) -> int:
    return 1 + 1000 * event + 17 * ((source + event) % 3)  # (never 0: "no timestamp")


@given(
    st.lists(
        st.tuples(
            st.lists(st.tuples(st.integers(0, 60), st.integers(0, 2)), min_size=1, max_size=20),
            st.integers(0, 400),  # ms before the drain
        ),
        min_size=1,
        max_size=25,
    ),
    st.sampled_from([True, None, False]),  # always straight into the records, drain by drain, never
    st.sampled_from([1, 3, 100]),  # events per block
    st.sampled_from([60, 9]),  # event numbers mod this + 1: a window that moves on, or one that mostly fills
    st.sampled_from([1, 2, 3]),  # fragments per message: a drain of alike messages is a 2-d view
)
@settings(max_examples=400, deadline=None)
def test_the_ring_agrees_with_a_plain_reference_on_random_streams(drains, direct, block, span, per_message):
    """Out of order, duplicated, late and gapped fragments, a window of 8 that wraps many
    times and a timeout that fires between drains: the same events leave, with the same
    status, missing sources, data and first timestamp, and the same counts, whichever way
    a drain's completed events are built, however they are cut into blocks, and whether
    the drain is a flat array or a strided 2-d view of messages."""
    dtype = p.event_dtype(3, 1, 1, 4)
    b = Builder(3, 1, 1, 4, window=8, timeout_s=1.0, direct=direct,
                max_block_bytes=p.HEADER_SIZE + block * dtype.itemsize)  # fmt: skip
    ref = Reference(3, b.capacity, b.timeout_ns)
    now = 0
    for drain, wait_ms in drains:
        drain = [(ev % (span + 1), s) for ev, s in drain]
        now += wait_ms * 1_000_000
        b.expire(now)
        ref.expire(now)
        events = np.array([ev for ev, _ in drain])
        source = np.array([s for _, s in drain])
        x, fpga, flags = np.array([_payload(ev, s) for ev, s in drain]).T
        stamps = np.array([_stamp(ev, s) for ev, s in drain])
        batch = p.make_fragments(events, x[:, None], fpga[:, None], flags, stamps)
        if per_message > 1 and len(batch) % per_message == 0:  # as decode_same_length gives it
            rows = np.zeros((len(batch) // per_message, per_message + 1), batch.dtype)  # a gap: headers
            rows[:, :per_message] = batch.reshape(-1, per_message)
            batch = rows[:, :per_message]
        with poisoned_fresh_records():
            b.add(source, batch, now)
        ref.add(drain, now)
    b.drain()
    if ref.held is not None:
        ref.held, ref.jumps = None, ref.jumps + 1
    for ev in sorted(ref.open):
        ref._leave(ev, p.DRAINED)
    blocks = b.take()
    assert all(0 < len(x) <= block for x in blocks)
    got = np.concatenate(blocks) if blocks else np.zeros(0, dtype)

    def row(e: np.void) -> tuple:
        data = zip(e["inputs"][:, 0].tolist(), e["fpga"][:, 0].tolist(), e["flags"].tolist(), strict=True)
        return int(e["event"]), int(e["status"]), int(e["missing"]), tuple(data), int(e["first_ns"])

    got_rows = sorted(row(e) for e in got)
    assert got_rows == sorted(ref.out)
    assert not got["cpu"].any() and not got["cpu_valid"].any() and not got["reserved"].any()
    assert (b.counts.late, b.counts.duplicates, b.counts.jumps) == (ref.late, ref.duplicates, ref.jumps)
    assert set_aside(b) == (ref.late, ref.jumps)
    assert b.n_open == 0
