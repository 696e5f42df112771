"""Dense (and QDense): ``nnet::dense`` with the Latency or Resource kernel, any reuse factor.

Manifest entry: ``weight_type``, ``bias_type``, ``accum_type``, ``strategy``,
``reuse_factor``; arrays ``weight`` (n_in, n_out) and ``bias`` (n_out,) as raw
integers of their types, exactly as in the firmware's weight headers.  The strategy
and reuse factor change only the order of additions, which matters only for a
saturating accumulator (see ``sim.network.mac``).  Where the sums are exact in a
float BLAS the output stays in the float64 domain (``sim.network.casts``)."""

from __future__ import annotations

from sim.fixed import Fixed
from sim.network.mac import AccumulatorPerInputType
from sim.network.registry import Layer, register


@register("dense")
class Dense(AccumulatorPerInputType, Layer):
    def __init__(self, spec, arrays):
        super().__init__(spec, arrays)
        self.weight, self.bias = arrays["weight"], arrays["bias"]
        self.accum_type = self.type_of("accum_type")

    def forward(self, x: Fixed) -> Fixed:
        res = self.mac_result(x.type, x.raw.reshape(len(x.raw), -1))
        return Fixed(res.reshape((len(res), *self.output_shape)), self.result_type)
