"""Overflow and underflow counts per layer, measured by the emulator itself.

Each layer is re-run on the inputs the firmware really gave it (from ``trace``), with
its result type (and a dense/conv accumulator type) widened: a *shadow* with the same
fractional bits and 12 more integer bits differs from the firmware's output exactly
where the firmware's value was changed by saturation or wrap-around (**overflow**); a
shadow with 8 more fractional bits tells values that were nonzero before the cast but
became 0 (**underflow**: smaller than the type's LSB).  The shadow values are also
the range the type would have to hold.  No layer code changes: shadows are built
from the manifest entries through the layer registry.  NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.fixed import Fixed, FixedType
from sim.network.registry import layer_class

EXTRA_INT_BITS = 12
EXTRA_FRAC_BITS = 8
MAX_SHADOW_WIDTH = 60  # keeps the emulator on its int64 fast paths
WIDENED_ACCUMULATORS = ("dense", "conv1d", "conv2d")


@dataclass
class LayerCounts:
    """One layer's result cast over a batch."""

    name: str
    kind: str
    result_type: str
    values: int  # elements counted
    overflow: int  # elements changed by saturation/wrap (of the result or the accumulator)
    underflow: int  # nonzero values that became 0
    low: float  # smallest value before the cast (what the type would have to hold)
    high: float  # largest
    note: str = ""  # why a layer could not be counted
    detail: dict[str, Any] = field(default_factory=dict)


def shadow_type(t: FixedType, extra_frac: int = 0) -> FixedType:
    """A signed type with the same rounding, more integer (and optionally fractional)
    bits, and plain wrap-around that never triggers at that width."""
    extra_int = EXTRA_INT_BITS + (0 if t.signed else 1)
    width = t.width + extra_int + extra_frac
    if width > MAX_SHADOW_WIDTH:
        cut = width - MAX_SHADOW_WIDTH
        extra_int = max(extra_int - cut, 1)
        width = min(t.width + extra_int + extra_frac, MAX_SHADOW_WIDTH)
    return FixedType(width, width - t.frac_bits - extra_frac, True, t.quantization, "AP_WRAP")


def _shadow_layer(net: Any, layer: Any, extra_frac: int) -> Any:
    spec = dict(layer.spec)
    spec["result_type"] = str(shadow_type(layer.result_type, extra_frac))
    if spec["kind"] in WIDENED_ACCUMULATORS and "accum_type" in spec:
        spec["accum_type"] = str(shadow_type(FixedType.parse(spec["accum_type"]), extra_frac))
    arrays = {short: net.manifest.array(full) for short, full in spec.get("arrays", {}).items()}
    return layer_class(spec["kind"], spec["name"])(spec, arrays)


def _input_counts(net: Any, x: np.ndarray) -> LayerCounts:
    t: FixedType = net.input_type
    raw = t.to_raw(x)
    values = t.from_raw(raw)
    over = (x > t.max_value) | (x < t.min_value)
    under = (x != 0) & (raw == 0)
    return LayerCounts(
        net.input_name, "input", str(t), int(x.size), int(over.sum()), int(under.sum()),
        float(x.min()) if x.size else 0.0, float(x.max()) if x.size else 0.0,
        detail={"quantized_low": float(values.min()) if x.size else 0.0},
    )  # fmt: skip


def count_overflows(net: Any, x: np.ndarray) -> list[LayerCounts]:
    """Counts for every layer of ``net`` (a ``sim.network.Network``) on firmware
    inputs ``x`` (already preprocessed, as ``trace`` takes them)."""
    x = net._input_raw(np.asarray(x, dtype=np.float64))
    trace = net.trace(x)
    types = {layer.name: layer.result_type for layer in net.layers}
    out: list[LayerCounts] = []
    for layer in net.layers:
        if layer.spec["kind"] == "input":
            out.append(_input_counts(net, x))
            continue
        real = trace[layer.name].raw
        if layer.result_type.integer or layer.result_type.width <= 2:
            # binary/ternary results: the layer's arithmetic depends on the type itself
            out.append(LayerCounts(layer.name, layer.spec["kind"], str(layer.result_type), int(real.size), 0, 0,
                                   0.0, 0.0, note="not counted (integer or 1-2 bit result)"))  # fmt: skip
            continue
        inputs = [Fixed(trace[n].raw, types[n]) for n in layer.spec["inputs"]]
        try:
            same_frac = _shadow_layer(net, layer, 0).forward(*inputs)
            finer = _shadow_layer(net, layer, EXTRA_FRAC_BITS).forward(*inputs)
        except Exception as exc:  # a family whose arithmetic depends on its exact types
            out.append(LayerCounts(layer.name, layer.spec["kind"], str(layer.result_type), int(real.size), 0, 0,
                                   0.0, 0.0, note=f"not counted ({type(exc).__name__}: {exc})"))  # fmt: skip
            continue
        over = np.asarray(same_frac.raw).reshape(real.shape) != real
        fine = np.asarray(finer.raw).reshape(real.shape)
        under = (fine != 0) & (real == 0)
        vals = finer.values
        out.append(
            LayerCounts(
                layer.name,
                layer.spec["kind"],
                str(layer.result_type),
                int(real.size),
                int(over.sum()),
                int(under.sum()),
                float(np.min(vals)) if vals.size else 0.0,
                float(np.max(vals)) if vals.size else 0.0,
            )  # fmt: skip
        )
    return out
