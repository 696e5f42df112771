"""Sequence numbers per source: the loop (small drains) and the array form (large drains)
find the same gaps and resets, drain after drain, whatever 64-bit numbers the header holds."""

from __future__ import annotations

from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from node import sequences
from node.sequences import Sequences


def test_gaps_and_resets_by_example():
    s = Sequences()
    assert s.check(np.array([5, 5, 7]), np.array([0, 1, 0])) == ({}, 0)
    # source 5 skips 2, 3, 4 (three lost); source 7 goes back to 0 (a reset)
    assert s.check(np.array([5, 7, 5]), np.array([5, 0, 6])) == ({5: 3}, 1)
    assert s.last[5] == 6 and s.last[7] == 0 and s.seen[5] and not s.seen[6]


def test_a_refused_message_next_in_turn_takes_its_number_and_no_other_does():
    """A refused message (bad flags, oversize, ...) was counted missing by its successor
    too. Its number is now taken when it is its source's next one; a corrupt number is
    left alone (taking it would count a reset, and its successor another)."""
    s = Sequences()
    s.took_turn(5, 0)  # nothing seen from source 5 yet: nothing to follow
    assert not s.seen[5]
    assert s.check(np.array([5]), np.array([0])) == ({}, 0)
    s.took_turn(5, 1)  # refused, in turn
    assert s.check(np.array([5]), np.array([2])) == ({}, 0)
    s.took_turn(5, 1 << 40)  # refused, its number corrupt: not taken
    assert s.check(np.array([5]), np.array([4])) == ({5: 1}, 0)  # 3 was that one: counted missing
    s.took_turn(5, 2**64 - 1)
    assert s.last[5] == 4


def test_a_corrupt_sequence_is_a_reset_not_a_loss_of_2_to_the_62():
    """One message with bit 62 of its sequence flipped, then the numbering goes on: two
    resets (there and back), no messages missing, in both forms."""
    seqs = [0, 1, 2, 3 | 1 << 62, 4, 5]
    for form in ("loop", "arrays"):
        s = Sequences()
        with mock.patch.object(sequences, "SMALL_DRAIN", 64 if form == "loop" else 0):
            assert s.check(np.zeros(6, np.uint16), np.array(seqs, np.uint64)) == ({}, 2), form
            # a real loss just below the bound is still a loss
            assert s.check(np.zeros(1, np.uint16), np.array([5 + sequences.MAX_GAP], np.uint64)) == (
                {0: sequences.MAX_GAP - 1}, 0), form  # fmt: skip


def test_sequences_in_the_upper_half_of_u64_are_followed_too():
    """A source whose numbering starts at or above 2**63 (a board seeding its counter, or one
    running on past it): its gaps and resets count as any other's, in both forms (stored
    as int64 with -1 for "none yet", such numbers were never compared)."""
    for start in (0, 2**63, 2**64 - 3):
        for form in ("loop", "arrays"):
            s = Sequences()
            with mock.patch.object(sequences, "SMALL_DRAIN", 64 if form == "loop" else 0):
                first = np.array([start, (start + 1) % 2**64], np.uint64)
                assert s.check(np.zeros(2, np.uint16), first) == ({}, 0), (start, form)
                after_gap = np.array([(start + 7) % 2**64], np.uint64)  # 5 messages lost (across 2**64 too)
                assert s.check(np.zeros(1, np.uint16), after_gap) == ({0: 5}, 0), (start, form)
                back = np.array([start], np.uint64)
                assert s.check(np.zeros(1, np.uint16), back) == ({}, 1), (start, form)


SEQUENCE = st.one_of(st.integers(0, 12), st.integers(2**63 - 3, 2**63 + 3), st.integers(2**64 - 4, 2**64 - 1))


@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 3), SEQUENCE), min_size=1, max_size=40),
        min_size=1,
        max_size=12,
    )
)
@settings(max_examples=200, deadline=None)
def test_loop_and_arrays_agree(drains):
    """Garbage headers included: a sequence field of any u64 value never raises."""
    loop, arrays = Sequences(), Sequences()
    for drain in drains:
        sources = np.array([s for s, _ in drain], np.uint16)
        seqs = np.array([q for _, q in drain], np.uint64)  # as the header holds them
        with mock.patch.object(sequences, "SMALL_DRAIN", 10**9):
            by_loop = loop.check(sources, seqs)
        with mock.patch.object(sequences, "SMALL_DRAIN", -1):
            by_arrays = arrays.check(sources, seqs)
        assert by_loop == by_arrays
    assert (loop.last == arrays.last).all() and (loop.seen == arrays.seen).all()
