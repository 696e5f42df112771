"""Value ranges against fixed-point type ranges, and the type that would hold them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.fixed import FixedType


@dataclass
class Range:
    """Observed values of one tensor (a layer's weights, biases or outputs)."""

    layer: str
    what: str  # "weight", "bias" or "output"
    type: str  # the firmware type holding it
    low: float
    high: float
    abs_nonzero: np.ndarray  # |values| > 0, for the log2 box plots (sampled)

    @property
    def type_low(self) -> float:
        return FixedType.parse(self.type).min_value

    @property
    def type_high(self) -> float:
        return FixedType.parse(self.type).max_value

    @property
    def type_lsb(self) -> float:
        return FixedType.parse(self.type).lsb

    @property
    def fits(self) -> bool:
        return self.type_low <= self.low and self.high <= self.type_high


def observe(layer: str, what: str, type_: str, values: np.ndarray, keep: int = 20_000, seed: int = 0) -> Range:
    v = np.asarray(values, dtype=np.float64).ravel()
    nz = np.abs(v[v != 0])
    if len(nz) > keep:
        nz = np.random.default_rng(seed).choice(nz, keep, replace=False)
    low, high = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
    return Range(layer, what, type_, low, high, nz)


def suggest_type(current: str | FixedType, low: float, high: float) -> FixedType:
    """The type with ``current``'s fractional bits and modes and just enough integer
    bits for ``[low, high]`` (signed if anything is negative)."""
    t = FixedType.parse(current) if isinstance(current, str) else current
    lsb = t.lsb
    signed = t.signed or low < 0
    if signed:
        need = max(-low, high + lsb, lsb)
        int_bits = math.ceil(math.log2(need)) + 1
    else:
        int_bits = math.ceil(math.log2(max(high + lsb, lsb)))
    width = max(int_bits + t.frac_bits, 1 + (1 if signed else 0))
    int_bits = width - t.frac_bits
    if width > 64:
        peak = max(abs(low), abs(high))
        raise ValueError(f"values up to {peak:g} need more than 64 bits at {t.frac_bits} fractional bits")
    return FixedType(width, int_bits, signed, t.quantization, t.overflow, min(t.sat_bits, width))
