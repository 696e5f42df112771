"""The casts of a network that abort hls4ml's C simulation (docs/fixed_point.md, quirk 8).

A rounding cast that drops more fraction bits than its source has bits
(``sim.fixed.reads_beyond_msb``) makes ``ap_fixed_base::operator=`` read a bit beyond
the source's MSB; ap_private asserts there and csim (built with asserts) dies with
SIGABRT.  The firmware itself is fine: the value is defined, hardware computes it and
the emulator reproduces it.  ``aborting_casts`` finds every such cast the emulator
makes, layer by layer, naming the variables by the layer's type fields, so that synth
can warn and verify can refuse to start csim instead of dying inside it.

Which casts a layer makes depends on the types alone, never on the values: building
each layer's multiply-accumulate (the bias cast into the accumulator) and running the
layer once on one sample makes all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim.fixed import Fixed, FixedType, watch_csim_aborts
from sim.network.casts import as_int, from_float
from sim.network.mac import AccumulatorPerInputType
from sim.network.registry import Layer

if TYPE_CHECKING:
    from sim.network import Network

QUIRK = "docs/fixed_point.md, quirk 8"

# what the type fields of the manifest's layer entries hold, in words
_FIELD_WORDS = {
    "weight_type": "the weight",
    "bias_type": "the bias",
    "accum_type": "the accumulator",
    "result_type": "the result",
    "table_type": "the table",
    "exp_table_type": "the exp table",
    "inv_table_type": "the inverse table",
    "inv_inp_type": "the inverse's input",
    "inp_norm_type": "the normalised input",
    "scale_type": "the scale",
    "shift_type": "the shift",
    "slope_type": "the slope",
    "threshold_type": "the threshold",
    "param_type": "the parameter",
}


@dataclass(frozen=True)
class AbortingCast:
    """One cast of layer ``layer`` from ``source`` into ``target`` that aborts csim;
    ``source_is`` / ``target_is`` say which variables of the layer hold those types."""

    layer: str
    source: FixedType
    target: FixedType
    source_is: str
    target_is: str

    @property
    def dropped(self) -> int:
        return self.source.frac_bits - self.target.frac_bits

    def __str__(self) -> str:
        return (
            f"layer {self.layer!r}: casting {self.source_is} into {self.target_is} rounds away {self.dropped} "
            f"fraction bits, more than the {self.source.width} bits of the source"
        )

    def fix(self) -> str:
        """What makes the cast one csim can run, in words."""
        need = self.source.frac_bits - self.source.width
        return (
            f"a target with at least {need} fraction bits, W - I >= {need} ({self.target} has "
            f"{self.target.frac_bits}), or the truncating AP_TRN"
        )


def _names(t: FixedType, layer: Layer, input_types: dict[str, FixedType]) -> str:
    """The variables of ``layer`` whose type is ``t``, with their type fields and ``t``:
    "the bias (bias_type ap_fixed<18,1>)"."""
    words, keys = [], []
    for key, value in layer.spec.items():
        if key.endswith("_type") and key != "io_type" and isinstance(value, str):
            try:
                same = FixedType.parse(value) == t
            except ValueError:
                continue
            if same:
                words.append(_FIELD_WORDS.get(key, "the " + key[: -len("_type")].replace("_", " ")))
                keys.append(key)
    words += [f"the input from layer {name!r}" for name, it in input_types.items() if it == t]
    if isinstance(layer, AccumulatorPerInputType) and "weight_type" in layer.spec:
        weight = layer.type_of("weight_type")
        if any(it.mul_type(weight) == t for it in input_types.values()):
            words.append("the product of input and weight")
    fields = " / ".join(keys) + " " if keys else ""
    return f"{' / '.join(words) or 'an intermediate value'} ({fields}{t})"


def aborting_casts(net: Network) -> list[AbortingCast]:
    """Every cast of the network ``net`` (a ``sim.network.Network``) that aborts hls4ml's
    C simulation, in layer order (see the module's docstring)."""
    found: list[AbortingCast] = []
    values: dict[str, Fixed] = {}
    current = Fixed(from_float(np.zeros((1, *net.input_shape)), net.input_type), net.input_type)
    for layer in net.layers:
        inputs = [values[name] for name in layer.spec["inputs"]] if layer.spec["inputs"] else [current]
        if not layer.float_input:
            inputs = [f if f.raw.dtype == np.int64 else Fixed(as_int(f.raw), f.type) for f in inputs]
        with watch_csim_aborts() as seen:
            if isinstance(layer, AccumulatorPerInputType):
                layer.__dict__.pop("_accumulators", None)  # built again in here: the bias cast is made then
            values[layer.name] = layer.forward(*inputs)
        input_types = {name: values[name].type for name in layer.spec["inputs"]}
        found += [AbortingCast(layer.name, s, d, _names(s, layer, input_types), _names(d, layer, {})) for s, d in seen]
    return found
