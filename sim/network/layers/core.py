"""Input, Flatten/Reshape: no arithmetic beyond the cast into the layer's result type."""

from __future__ import annotations

from sim.fixed import Fixed
from sim.network.casts import cast, cast_either
from sim.network.registry import Layer, register


@register("input")
class Input(Layer):
    """The input port: the network casts float inputs into ``result_type`` before this."""

    def forward(self, x: Fixed) -> Fixed:
        return Fixed(cast(x.raw, x.type, self.result_type), self.result_type)


@register("reshape", "flatten")
class Reshape(Layer):
    """Same values in a new shape (hls4ml passes the array through, in C order)."""

    float_input = True

    def forward(self, x: Fixed) -> Fixed:
        raw = cast_either(x.raw, x.type, self.result_type)
        return Fixed(raw.reshape((len(raw), *self.output_shape)), self.result_type)
