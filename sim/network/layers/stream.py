"""io_stream plumbing hls4ml inserts into the graph: ``Clone`` (``nnet::clone_stream``,
one copy of a stream per consumer) moves values unchanged; its repacking sibling
``Repack`` is exported as a ``reshape``.  Manifest entry: no extra fields."""

from __future__ import annotations

import numpy as np

from sim.fixed import Fixed
from sim.network.casts import cast
from sim.network.registry import Layer, register


@register("clone")
class Clone(Layer):
    def forward(self, x: Fixed) -> Fixed:
        res = np.asarray(cast(x.raw, x.type, self.result_type)).astype(np.int64)
        return Fixed(res.reshape((len(res), *self.output_shape)), self.result_type)
