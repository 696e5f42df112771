"""Per-source message sequence numbers: gaps (messages lost on the way, even on PUB) and
resets (a source restarted, or replayed), checked over a whole drain at once.

A jump forward of more than ``MAX_GAP`` messages is counted as a reset, not as that many
messages missing: one corrupt sequence field (a bit flip in its top bits) would otherwise
add up to 2**63 to the gaps, and no real loss comes near it (2**32 messages are more
than an hour at a million messages a second).

Each message is compared with the previous message of its source: the one before it in
the drain, or the last one of an earlier drain.  A drain of a few dozen messages (a node
well below its maximum rate) is checked in a plain loop, ~0.3 us a message, where the
NumPy form costs ~70 us whatever the size; a large drain is checked with the NumPy form.
"""

from __future__ import annotations

import numpy as np

SMALL_DRAIN = 64  # messages: below this the loop is faster than the array operations
MAX_GAP = 1 << 32  # messages: a longer jump forward is a renumbering (reset), not a loss


class Sequences:
    def __init__(self) -> None:
        self.last = np.zeros(65536, np.uint64)  # last sequence number per source id (any u64)
        self.seen = np.zeros(65536, bool)  # a source's first message ever has nothing to follow

    def check(self, sources: np.ndarray, seqs: np.ndarray) -> tuple[dict[int, int], int]:
        """Messages missing per source id, and how many messages went backwards or jumped
        forward by more than ``MAX_GAP`` (resets)."""
        sources = np.asarray(sources).astype(np.intp)
        seqs = np.asarray(seqs).astype(np.uint64)  # u64 on the wire: differences taken modulo 2**64
        if len(sources) <= SMALL_DRAIN:
            return self._loop(sources.tolist(), seqs.tolist())
        return self._arrays(sources, seqs)

    def took_turn(self, source: int, seq: int) -> None:
        """A refused message's number: taken as seen if it is its source's next one (a
        corrupt number, anything else, is left alone: it would count a reset, and its
        successor another)."""
        if self.seen[source] and seq == (int(self.last[source]) + 1) % 2**64:
            self.last[source] = seq

    def _loop(self, sources: list[int], seqs: list[int]) -> tuple[dict[int, int], int]:
        last, seen = self.last, self.seen
        gaps: dict[int, int] = {}
        resets = 0
        for s, q in zip(sources, seqs, strict=True):
            p = int(last[s])
            if seen[s]:  # a source's first message ever has nothing to follow
                d = (q - p + 2**63) % 2**64 - 2**63  # a signed step modulo 2**64, as the array form's
                if 1 < d <= MAX_GAP:
                    gaps[s] = gaps.get(s, 0) + d - 1
                elif d <= 0 or d > MAX_GAP:
                    resets += 1
            last[s] = q
            seen[s] = True
        return gaps, resets

    def _arrays(self, sources: np.ndarray, seqs: np.ndarray) -> tuple[dict[int, int], int]:
        order = np.argsort(sources, kind="stable")  # each source's messages together, in drain order
        sources, seqs = sources[order], seqs[order]
        first = np.ones(len(sources), bool)
        first[1:] = sources[1:] != sources[:-1]
        prev = np.empty_like(seqs)
        prev[1:] = seqs[:-1]
        prev[first] = self.last[sources[first]]
        known = np.ones(len(sources), bool)
        known[first] = self.seen[sources[first]]
        d = (seqs - prev).view(np.int64)  # modulo 2**64, as a signed step
        gap = known & (d > 1) & (d <= MAX_GAP)
        gaps: dict[int, int] = {}
        if gap.any():  # rare: summed as Python integers (exact for any 64-bit numbers)
            for s, n in zip(sources[gap].tolist(), (d[gap] - 1).tolist(), strict=True):
                gaps[s] = gaps.get(s, 0) + n
        resets = int((known & ((d <= 0) | (d > MAX_GAP))).sum())
        last = np.ones(len(sources), bool)
        last[:-1] = sources[1:] != sources[:-1]
        self.last[sources[last]] = seqs[last]
        self.seen[sources[last]] = True
        return gaps, resets
