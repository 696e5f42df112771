"""Fault injection for the board stand-in: what a real board next to the detector can
do wrong, chosen per fragment from its event number, source and seed (a hash, not a
generator drawn block by block: blocks follow the timing, so the same settings hit other
events from run to run), so a run is reproducible; every injected fault is counted and
logged by event number so the demo and the tests can check that the node detected (or
at least accounted for) each one."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from sim.fixed import FixedType

# per-fragment faults, in the order they are decided
KINDS = ("drop", "delay", "duplicate", "bitflip", "error")


@dataclass
class Faults:
    """Fractions are per fragment (0..1); they exclude one another except ``duplicate``."""

    drop: float = 0.0  # never sent: the node builds the event incomplete (missing source)
    delay: float = 0.0  # held back ``delay_ms`` before sending
    delay_ms: float = 50.0
    duplicate: float = 0.0  # sent twice: the node counts and drops the copy
    bitflip: float = 0.0  # one result bit flipped, flags untouched (a radiation upset)
    error: float = 0.0  # result corrupted and the ERROR flag set: the node must fall back
    stop_after: int | None = None  # the board dies after this many events
    offload_delay_ms: float = 0.0  # offload: answer each request this late
    offload_silent_after: int | None = None  # offload: stop answering after this many requests
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop", "delay", "duplicate", "bitflip", "error"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"fault fraction {name} = {v} is not between 0 and 1")
        if self.drop + self.delay + self.bitflip + self.error > 1.0:
            raise ValueError("fault fractions drop + delay + bitflip + error exceed 1")
        for name in ("delay_ms", "offload_delay_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in ("stop_after", "offload_silent_after"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"{name} must not be negative")

    @property
    def any(self) -> bool:
        return any(getattr(self, k) for k in KINDS)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class FaultPlan:
    """The faults chosen for one block of fragments (boolean masks over the block)."""

    drop: np.ndarray
    delay: np.ndarray
    duplicate: np.ndarray
    bitflip: np.ndarray
    error: np.ndarray


@dataclass
class FaultLog:
    """Event numbers of every injected fault, by kind (kept for the report)."""

    events: dict[str, list[np.ndarray]] = field(default_factory=lambda: {k: [] for k in KINDS})
    n: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    merged: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))  # leading arrays already merged

    def add(self, kind: str, events: np.ndarray) -> None:
        if len(events):
            parts = self.events[kind]
            parts.append(np.asarray(events, np.uint64).copy())
            self.n[kind] += len(events)
            m = self.merged[kind]
            if len(parts) - m >= 256:  # 256 blocks' as one array: ~8 bytes a fault, each copied once
                parts[m:] = [np.concatenate(parts[m:])]
                self.merged[kind] = m + 1

    def counts(self) -> dict[str, int]:
        """Faults so far by kind (kept as it goes: a status write twice a second summed the whole log)."""
        return dict(self.n)

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: (np.concatenate(v) if v else np.zeros(0, np.uint64)) for k, v in self.events.items()}


def uniform(events: np.ndarray, key: int, draw: int) -> np.ndarray:
    """A uniform number in [0, 1) per event number: draw ``draw`` of the stream ``key``
    (splitmix64 of the three; the same event always gets the same number)."""
    x = np.asarray(events, np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    x = x + np.uint64((key * 0xD1B54A32D192ED03 + draw * 0x8CB92BA72F3D8DD7) % 2**64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class Injector:
    def __init__(self, faults: Faults, source_id: int, output_type: FixedType):
        self.faults = faults
        self.key = (faults.seed * 0x10001 + source_id) * 0xFA % 2**64  # this board's streams
        self.output_type = output_type
        self.log = FaultLog()

    def plan(self, events: np.ndarray) -> FaultPlan:
        """Which of these events' fragments get which fault."""
        f = self.faults
        u = uniform(events, self.key, 0)
        edges = np.cumsum([f.drop, f.delay, f.bitflip, f.error])
        drop = u < edges[0]
        delay = (u >= edges[0]) & (u < edges[1])
        bitflip = (u >= edges[1]) & (u < edges[2])
        error = (u >= edges[2]) & (u < edges[3])
        duplicate = (uniform(events, self.key, 1) < f.duplicate) & ~drop if f.duplicate else np.zeros(len(u), bool)
        return FaultPlan(drop, delay, duplicate, bitflip, error)

    def corrupt(self, result: np.ndarray, rows: np.ndarray, events: np.ndarray) -> None:
        """Flip one random bit of one random output of each row (in place, within the
        output type's width, so the value stays a valid raw integer of that type); which
        one follows from the row's event number."""
        if not len(rows):
            return
        n_out = result.shape[1]
        col = (uniform(events, self.key, 2) * n_out).astype(np.intp)
        bit = (uniform(events, self.key, 3) * self.output_type.width).astype(np.int64)
        result[rows, col] = flip_bit(result[rows, col].astype(np.int64), bit, self.output_type)


def flip_bit(raw: np.ndarray, bit: np.ndarray, t: FixedType) -> np.ndarray:
    """``raw`` with ``bit`` flipped, read back as a raw integer of type ``t``."""
    w = t.width
    mask = np.int64((1 << w) - 1) if w < 64 else np.int64(-1)
    u = (raw & mask) ^ np.left_shift(np.int64(1), bit)
    if t.signed and w < 64:
        sign = (u >> (w - 1)) & 1
        u = u - (sign << w)
    return u
