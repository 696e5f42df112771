"""NaN and infinity in features: counted per column and handled by the configured
policy, never silently passed to training (they would poison every weight)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fpgaflow.data.config import DataError


@dataclass
class NonFiniteReport:
    """Counts per feature column, accumulated over chunks."""

    nan: dict[str, int] = field(default_factory=dict)
    inf: dict[str, int] = field(default_factory=dict)
    rows_dropped: int = 0
    values_replaced: int = 0

    @property
    def total(self) -> int:
        return sum(self.nan.values()) + sum(self.inf.values())

    def count(self, x: np.ndarray, names: list[str]) -> None:
        nan = np.isnan(x).sum(axis=0)
        inf = np.isinf(x).sum(axis=0)
        for i in np.flatnonzero(nan):
            self.nan[names[i]] = self.nan.get(names[i], 0) + int(nan[i])
        for i in np.flatnonzero(inf):
            self.inf[names[i]] = self.inf.get(names[i], 0) + int(inf[i])

    def describe(self) -> str:
        parts = []
        for col in sorted(set(self.nan) | set(self.inf)):
            bits = [f"{n} {what}" for n, what in ((self.nan.get(col, 0), "NaN"), (self.inf.get(col, 0), "inf")) if n]
            parts.append(f"{col}: {', '.join(bits)}")
        return "; ".join(parts)


def handle_non_finite(
    x: np.ndarray, labels: np.ndarray | None, policy: str | float, report: NonFiniteReport
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply ``policy`` to one chunk: ``error`` only counts (the caller raises after
    the whole read, so the message has all counts), ``drop`` removes the rows,
    ``zero`` or a number replaces the values."""
    bad = ~np.isfinite(x)
    if not bad.any():
        return x, labels
    if policy == "error":
        return x, labels
    if policy == "drop":
        keep = ~bad.any(axis=1)
        report.rows_dropped += int((~keep).sum())
        return x[keep], (labels[keep] if labels is not None else None)
    fill = 0.0 if policy == "zero" else float(policy)
    report.values_replaced += int(bad.sum())
    x = x.copy()
    x[bad] = fill
    return x, labels


def raise_if_error(policy: str | float, report: NonFiniteReport, where: str) -> None:
    if policy == "error" and report.total:
        raise DataError(
            f"{where}: {report.total} NaN/inf feature values ({report.describe()}); set Data.NonFinite "
            "to drop (remove those entries), zero, or a number to put in their place"
        )
