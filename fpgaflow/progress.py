"""A dependency-free progress line for long loops (stderr, rate and ETA)."""

from __future__ import annotations

import sys
import time


class Progress:
    """Prints ``label: done/total (rate/s, ETA)`` at most every ``interval`` seconds;
    silent for totals below ``min_total`` so small runs stay quiet."""

    def __init__(self, total: int, label: str, unit: str = "samples", interval: float = 0.5, min_total: int = 50_000):
        self.total, self.label, self.unit, self.interval = total, label, unit, interval
        self.enabled = total >= min_total
        self.done = 0
        self.start = self.last = time.monotonic()

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self.last >= self.interval or self.done >= self.total):
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / rate if rate else float("inf")
            end = "\n" if self.done >= self.total else ""
            print(
                f"\r{self.label}: {self.done}/{self.total} {self.unit} ({rate:,.0f}/s, ETA {eta:.0f} s)",
                end=end,
                file=sys.stderr,
                flush=True,
            )
