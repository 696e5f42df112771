"""Per-source message sequence numbers: gaps (messages lost on the way, even on PUB) and
resets (a source restarted, or replayed), checked over a whole drain at once.

Each message is compared with the previous message of its source: the one before it in
the drain, or the last one of an earlier drain.  A drain of a few dozen messages (a node
well below its maximum rate) is checked in a plain loop, ~0.3 us a message, where the
NumPy form costs ~70 us whatever the size; a large drain is checked with the NumPy form.
"""

from __future__ import annotations

import numpy as np

SMALL_DRAIN = 64  # messages: below this the loop is faster than the array operations


class Sequences:
    def __init__(self) -> None:
        self.last = np.full(65536, -1, np.int64)  # last sequence number per source id; -1: none yet

    def check(self, sources: np.ndarray, seqs: np.ndarray) -> tuple[dict[int, int], int]:
        """Messages missing per source id, and how many messages went backwards (resets)."""
        if len(sources) <= SMALL_DRAIN:
            return self._loop(sources.tolist(), seqs.tolist())
        return self._arrays(sources.astype(np.intp), seqs.astype(np.int64))

    def _loop(self, sources: list[int], seqs: list[int]) -> tuple[dict[int, int], int]:
        last = self.last
        gaps: dict[int, int] = {}
        resets = 0
        for s, q in zip(sources, seqs, strict=True):
            p = int(last[s])
            if p >= 0:  # a source's first message ever has nothing to follow
                if q - p > 1:
                    gaps[s] = gaps.get(s, 0) + q - p - 1
                elif q <= p:
                    resets += 1
            last[s] = q
        return gaps, resets

    def _arrays(self, sources: np.ndarray, seqs: np.ndarray) -> tuple[dict[int, int], int]:
        order = np.argsort(sources, kind="stable")  # each source's messages together, in drain order
        sources, seqs = sources[order], seqs[order]
        first = np.ones(len(sources), bool)
        first[1:] = sources[1:] != sources[:-1]
        prev = np.empty_like(seqs)
        prev[1:] = seqs[:-1]
        prev[first] = self.last[sources[first]]
        d = seqs - prev
        known = prev >= 0
        gap = known & (d > 1)
        gaps: dict[int, int] = {}
        if gap.any():
            missing = np.bincount(sources[gap], weights=d[gap] - 1)
            gaps = {int(s): int(missing[s]) for s in np.flatnonzero(missing)}
        resets = int((known & (d <= 0)).sum())
        last = np.ones(len(sources), bool)
        last[:-1] = sources[1:] != sources[:-1]
        self.last[sources[last]] = seqs[last]
        return gaps, resets
