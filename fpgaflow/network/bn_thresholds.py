"""A BatchNormalization and the binary or ternary activation after it, as QKeras computes them.

hls4ml 1.3.0 merges the two into its BatchNormalizationQuantizedTanh layer
(``backends/vivado/passes/bn_quant.py``): per channel, thresholds on the input,
``t = -bias / scale`` rounded down to the input type's step, which the firmware compares as
``x >= t`` (binary: +1, else -1) or ``x > t_hi`` / ``x <= t_lo`` (ternary).  That is
QKeras's ``binary(scale * x + bias)`` (+1 where it is >= 0) or ternary only for a positive
scale: where gamma is negative the comparison is the other way round, and the firmware
gives the opposite sign on almost every input.  And for binary, rounding ``t`` down makes
the firmware give +1 on the one input step below ``t``, where QKeras gives -1; the first
step at or above ``t`` is QKeras's threshold.  While hls4ml converts, synth refuses a
negative scale by layer and rounds a binary threshold up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from fpgaflow.network import hls4ml_version
from fpgaflow.network.patching import replaced
from fpgaflow.network.types import ap_type
from fpgaflow.project import ProjectError
from sim.fixed import FixedType


@contextmanager
def qkeras_thresholds(where: str) -> Iterator[list[str]]:
    """While hls4ml converts, its BatchNormalizationQuantizedTanh thresholds are QKeras's
    (or the conversion is refused); yields the notes naming the layers whose binary
    thresholds moved."""
    from hls4ml.backends.fpga.fpga_layers import BatchNormalizationQuantizedTanh

    notes: list[str] = []
    hls4ml_set_thresholds = BatchNormalizationQuantizedTanh.__dict__["set_thresholds"]

    def set_thresholds(node: Any, scale: Any, bias: Any, ternary_threshold: float = 0.5) -> None:
        scale = np.asarray(scale, dtype=np.float64)
        kind = "binary" if node.get_attr("quantize") == 2 else "ternary"
        what = _merged(node, kind)
        if np.any(scale < 0):
            channels = np.flatnonzero(np.broadcast_to(scale, np.shape(bias)) < 0)
            shown = ", ".join(map(str, channels[:8])) + (" ..." if len(channels) > 8 else "")
            raise ProjectError(
                f"{where}: layer {node.name!r} ({what}) is not supported: its scale (gamma / sqrt(variance + "
                f"epsilon)) is negative in {len(channels)} of {np.size(bias)} channels ({shown}), where QKeras's "
                "output is +1 below the threshold and the firmware's, which compares x >= threshold, above it: the "
                "opposite sign on almost every input"
            )
        hls4ml_set_thresholds(node, scale, bias, ternary_threshold)
        if kind != "binary":
            return
        held = node.get_weights("threshold")
        t = FixedType.parse(ap_type(held.type.precision, f"layer {node.name!r} threshold"))
        # the first input QKeras gives +1 (scale * x + bias >= 0); none above the type's range
        up = np.minimum(np.ceil(-np.asarray(bias, dtype=np.float64) / scale / t.lsb) * t.lsb, t.max_value)
        moved = int(np.count_nonzero(up != held.data))
        if moved:
            held.data = up
            notes.append(
                f"layer {node.name!r} ({what}): hls4ml rounds the threshold down to the input's step {t.lsb:g}, so "
                f"the firmware gives +1 one step below QKeras's threshold in {moved} of {np.size(up)} channels; "
                "fpgaflow rounds it up, as QKeras computes"
            )

    with replaced(BatchNormalizationQuantizedTanh, "set_thresholds", set_thresholds):
        yield notes


def _merged(node: Any, kind: str) -> str:
    """``hls4ml 1.3.0's merge of the BatchNormalization 'bn' and the binary activation 'q'``
    (the BatchNormalization is hls4ml's scale layer for a ternary threshold other than 0.5,
    with the model's BatchNormalization folded in)."""
    graph = node.model.graph
    bn = graph.get(node.name.removeprefix("bnbt_"))
    if bn is None:
        return f"hls4ml {hls4ml_version()}'s merge of a BatchNormalization and the {kind} activation after it"
    activation = next((n for n in graph.values() if n is not bn and bn.outputs[0] in n.inputs), None)
    after = f"the {kind} activation {activation.name!r}" if activation is not None else f"a {kind} activation"
    if bn.class_name == "ApplyAlpha":
        before = f"the BatchNormalization before {after} (folded into hls4ml's threshold scale {bn.name!r})"
        return f"hls4ml {hls4ml_version()}'s merge of {before} and that activation"
    return f"hls4ml {hls4ml_version()}'s merge of the BatchNormalization {bn.name!r} and {after}"
