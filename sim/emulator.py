"""What every emulator offers (networks and BDTs alike), so the CLI, the board
stand-in and the node's CPU fallback can treat firmware uniformly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from sim.fixed import FixedType


@dataclass(frozen=True)
class Prediction:
    """Firmware outputs: raw fixed-point integers and their values."""

    raw: np.ndarray  # int64, shape (n_samples, *output_shape)
    values: np.ndarray  # float64, same shape


class Emulator(Protocol):
    id: str  # the manifest id: which firmware this is
    input_shape: tuple[int, ...]  # one sample
    output_shape: tuple[int, ...]  # one sample
    input_type: FixedType
    output_type: FixedType

    def predict(self, x: np.ndarray) -> Prediction:
        """Outputs for float inputs, cast into the input type as the firmware's input port does."""

    def predict_raw(self, x_raw: np.ndarray) -> Prediction:
        """Outputs for inputs already given as raw integers of ``input_type`` (from a stream)."""
