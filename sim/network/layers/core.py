"""Input, Flatten/Reshape: no arithmetic beyond the cast into the layer's result type."""

from __future__ import annotations

from sim.fixed import Fixed
from sim.network.registry import Layer, register


@register("input")
class Input(Layer):
    """The input port: the network casts float inputs into ``result_type`` before this."""

    def forward(self, x: Fixed) -> Fixed:
        return x.cast(self.result_type)


@register("reshape", "flatten")
class Reshape(Layer):
    """Same values in a new shape (hls4ml passes the array through, in C order)."""

    def forward(self, x: Fixed) -> Fixed:
        out = x.cast(self.result_type)
        return Fixed(out.raw.reshape((len(out.raw), *self.output_shape)), out.type)
