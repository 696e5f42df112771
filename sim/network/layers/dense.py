"""Dense (and QDense): ``nnet::dense`` with the Latency or Resource kernel, any reuse factor.

Manifest entry: ``weight_type``, ``bias_type``, ``accum_type``, ``strategy``,
``reuse_factor``; arrays ``weight`` (n_in, n_out) and ``bias`` (n_out,) as raw
integers of their types, exactly as in the firmware's weight headers.  The strategy
and reuse factor change only the order of additions, which matters only for a
saturating accumulator (see ``sim.network.mac``)."""

from __future__ import annotations

import numpy as np

from sim.fixed import Fixed
from sim.network.casts import cast
from sim.network.mac import AccumulatorPerInputType
from sim.network.registry import Layer, register


@register("dense")
class Dense(AccumulatorPerInputType, Layer):
    def __init__(self, spec, arrays):
        super().__init__(spec, arrays)
        self.weight, self.bias = arrays["weight"], arrays["bias"]
        self.accum_type = self.type_of("accum_type")

    def forward(self, x: Fixed) -> Fixed:
        flat = x.raw.reshape(len(x.raw), -1)
        acc = self.accumulator(x.type)(flat)
        res = cast(acc, self.accum_type, self.result_type)
        return Fixed(np.asarray(res).reshape((len(res), *self.output_shape)), self.result_type)
