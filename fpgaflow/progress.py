"""A dependency-free progress line for long loops (stderr, rate and ETA)."""

from __future__ import annotations

import sys
import time

LOG_INTERVAL_S = 10.0  # between lines when stderr is a log, not a terminal


class Progress:
    """Prints ``label: done/total (rate/s, ETA)`` at most every ``interval`` seconds;
    silent for totals below ``min_total`` so small runs stay quiet.  On a terminal one
    line rewritten in place; into a log or a CI job's output (no terminal) whole lines,
    at most every ``LOG_INTERVAL_S``: carriage returns there left every count on one line."""

    def __init__(self, total: int, label: str, unit: str = "samples", interval: float = 0.5, min_total: int = 50_000):
        self.terminal = sys.stderr.isatty()
        self.total, self.label, self.unit = total, label, unit
        self.interval = interval if self.terminal else max(interval, LOG_INTERVAL_S)
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
            end = "\n" if self.done >= self.total or not self.terminal else ""
            back = "\r" if self.terminal else ""
            print(
                f"{back}{self.label}: {self.done}/{self.total} {self.unit} ({rate:,.0f}/s, ETA {eta:.0f} s)",
                end=end,
                file=sys.stderr,
                flush=True,
            )
