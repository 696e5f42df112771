"""Softmax in every hls4ml implementation (``nnet_activation.h``): latency, stable,
legacy and argmax, with the exp and inverse lookup tables built and indexed exactly as
the firmware does.

* latency/stable: the table index is the top ``N = ceillog2(table_size)`` bits of the
  value's two's-complement word; table entries are computed from the value those bits
  stand for (``expf`` in float, ``1 / x`` in float), then cast to the table type.  The
  sum of exponentials is a balanced adder tree (``nnet::reduce``) in ``accum_t`` with a
  cast at every node; stable first subtracts each input from the maximum into
  ``inp_norm_t``.
* legacy: ``exp(x_j - x_i)`` from a symmetric table indexed like sigmoid, summed per
  output in ``table_t``, then an inverse table over [0, 64).
* argmax: one-hot of the first maximum.

Manifest entry: ``implementation``, ``exp_table_size``, ``inv_table_size``,
``exp_scale``, ``exp_table_type``, ``inv_table_type``, ``accum_type``,
``inv_inp_type``, ``inp_norm_type`` (stable), ``table_type`` (legacy), ``n_outer``,
``n_slice``, ``n_inner`` (the softmax axis is the middle one), ``stream``,
``stream_word`` and ``table_size`` (legacy) for io_stream.

io_stream (``nnet_activation_stream.h``) differs: every kernel normalises each stream
word (``data_T::size`` values, the last axis: one row of a 2-D tensor) on its own,
whatever ``n_outer``/``n_slice``/``n_inner`` say; the legacy kernel sizes and indexes
both of its tables with ``CONFIG_T::table_size``, which the softmax config struct does
not define, so ``nnet::activ_config``'s 1024 whatever ``TableSize`` is.
"""

from __future__ import annotations

import numpy as np

from sim.fixed import Fixed, FixedType
from sim.manifest import ManifestError
from sim.network.layers.activations import INT32, expf, symmetric_inputs, table_index, trunc_div
from sim.network.registry import Layer, register

F32 = np.float32
LEGACY_STREAM_TABLE_SIZE = 1024  # nnet::activ_config::table_size; the softmax config struct has no table_size


def ceillog2(x: int) -> int:
    return 1 if x <= 2 else 1 + ceillog2((x + 1) // 2)


def floorlog2(x: int) -> int:
    return 0 if x < 2 else 1 + floorlog2(x // 2)


def top_bits_index(raw: np.ndarray, t: FixedType, table_size: int) -> np.ndarray:
    """``softmax_idx_from_real_val``: the top N bits of the W-bit word."""
    n = ceillog2(table_size)
    unsigned = raw.astype(np.int64) & np.int64((1 << t.width) - 1)
    return (unsigned >> np.int64(t.width - n)) & np.int64((1 << n) - 1)


def value_of_index(t: FixedType, table_size: int) -> np.ndarray:
    """``softmax_real_val_from_idx``: the float a table index stands for."""
    n = ceillog2(table_size)
    u = np.arange(table_size, dtype=np.int64) << np.int64(t.width - n)
    if t.signed:
        u = np.where(u >= (1 << (t.width - 1)), u - (1 << t.width), u)
    return t.from_raw(u).astype(F32)


def tree_sum(values: list[np.ndarray], t: FixedType) -> np.ndarray:
    """``nnet::reduce<T, N, Op_add<T>>``: balanced tree, each node cast to ``T``."""
    n = len(values)
    if n == 1:
        return values[0]
    if n == 2:
        return t.cast(values[0] + values[1], t.add_type(t))
    left = 1 << floorlog2(n - 1)
    a, b = tree_sum(values[:left], t), tree_sum(values[left:], t)
    return t.cast(a + b, t.add_type(t))


@register("softmax")
class Softmax(Layer):
    def __init__(self, spec, arrays):
        super().__init__(spec, arrays)
        self.implementation = self.param("implementation")
        impl = self.implementation
        if impl not in ("latency", "stable", "legacy", "argmax"):
            raise ManifestError(f"layer {self.name!r}: unknown softmax implementation {impl!r}")
        self.stream = bool(spec.get("stream", False))
        if self.stream:
            # one softmax per stream word (data_T::size values: the last axis), whatever n_slice says
            word = int(spec.get("stream_word", self.output_shape[-1]))
            n_in = int(np.prod(self.output_shape))
            if word < 1 or n_in % word:
                raise ManifestError(f"layer {self.name!r}: stream_word {word} does not divide the {n_in} values")
            self.n_outer, self.n_inner = n_in // word, 1
        else:
            self.n_outer = int(spec.get("n_outer", 1))
            self.n_inner = int(spec.get("n_inner", 1))
        if impl == "argmax":
            return
        if impl == "legacy" and self.stream:
            # the stream kernel sizes and indexes both tables with CONFIG_T::table_size
            self.exp_size = self.inv_size = int(spec.get("table_size", LEGACY_STREAM_TABLE_SIZE))
        else:
            self.exp_size = int(self.param("exp_table_size"))
            self.inv_size = int(self.param("inv_table_size"))
        with np.errstate(over="ignore", divide="ignore"):
            if impl == "legacy":
                self.table_type = self.type_of("table_type")
                exp_in = symmetric_inputs(self.exp_size, 8.0)
                self.exp_table = self.table_type.to_raw(expf(exp_in).astype(np.float64))
                inv_in = (64.0 * np.arange(self.inv_size, dtype=np.float64) / float(self.inv_size)).astype(F32)
                inv = np.where(inv_in > 0, 1.0 / np.where(inv_in > 0, inv_in, 1).astype(np.float64), 0.0)
                self.inv_table = self.table_type.to_raw(inv)
                return
            self.exp_table_type = self.type_of("exp_table_type")
            self.inv_table_type = self.type_of("inv_table_type")
            self.accum_type = self.type_of("accum_type")
            self.inv_inp_type = self.type_of("inv_inp_type")
            # the latency implementation's exp table is addressed by the input type: built on first use
            self._exp_tables: dict[FixedType, np.ndarray] = {}
            if impl == "stable":
                # addressed by x_max - x in inp_norm_t, holding exp(-value): init_exp_table(..., negative=true)
                self.inp_norm_type = self.type_of("inp_norm_type")
                x = -(value_of_index(self.inp_norm_type, self.exp_size) * F32(self.spec.get("exp_scale", 1.0)))
                self._stable_exp = self.exp_table_type.to_raw(expf(x).astype(np.float64))
            inv_x = value_of_index(self.inv_inp_type, self.inv_size)
            self.inv_table = self.inv_table_type.to_raw((F32(1) / inv_x).astype(np.float64))

    def _latency_exp_table(self, t: FixedType) -> np.ndarray:
        if t not in self._exp_tables:
            scale = F32(self.spec.get("exp_scale", 1.0))
            with np.errstate(over="ignore"):
                x = value_of_index(t, self.exp_size) * scale
                self._exp_tables[t] = self.exp_table_type.to_raw(expf(x).astype(np.float64))
        return self._exp_tables[t]

    def forward(self, x: Fixed) -> Fixed:
        n = len(x.raw)
        data = x.raw.reshape(n, self.n_outer, -1, self.n_inner)
        data = np.moveaxis(data, 2, -1).reshape(-1, data.shape[2])  # (rows, n_slice)
        res = getattr(self, f"_{self.implementation}")(data, x.type)
        res = res.reshape(n, self.n_outer, self.n_inner, -1)
        res = np.moveaxis(res, -1, 2).reshape((n, *self.output_shape))
        return Fixed(res.astype(np.int64), self.result_type)

    def _normalise(self, exp_res: np.ndarray) -> np.ndarray:
        """``exp_res`` (rows, n_slice) in ``accum_t``: sum, invert, multiply, all columns at once."""
        total = tree_sum([exp_res[:, i] for i in range(exp_res.shape[1])], self.accum_type)
        exp_sum = self.inv_inp_type.cast(total, self.accum_type)
        inv = self.inv_table[top_bits_index(exp_sum, self.inv_inp_type, self.inv_size)]
        prod_t = self.accum_type.mul_type(self.inv_table_type)
        return self.result_type.cast(exp_res * inv[:, None], prod_t)

    def _latency(self, data: np.ndarray, t: FixedType) -> np.ndarray:
        table = self._latency_exp_table(t)
        idx = top_bits_index(data, t, self.exp_size)
        return self._normalise(self.accum_type.cast(table[idx], self.exp_table_type))

    def _stable(self, data: np.ndarray, t: FixedType) -> np.ndarray:
        x_max = data.max(axis=1, keepdims=True)
        diff_t = t.sub_type(t)
        d = self.inp_norm_type.cast(x_max - data, diff_t)
        idx = top_bits_index(d, self.inp_norm_type, self.exp_size)
        return self._normalise(self.accum_type.cast(self._stable_exp[idx], self.exp_table_type))

    def _legacy(self, data: np.ndarray, t: FixedType) -> np.ndarray:
        tt, n_slice = self.table_type, data.shape[1]
        diff_t = t.sub_type(t)
        one = tt.cast(np.asarray(1), INT32)
        add_t = tt.add_type(tt)
        out = []
        for i in range(n_slice):
            acc = np.zeros(len(data), dtype=np.int64)
            for j in range(n_slice):
                if i == j:
                    term = np.full(len(data), one, dtype=np.int64)
                else:
                    index = table_index(data[:, j] - data[:, i], diff_t, self.exp_size, 16)
                    term = self.exp_table[np.clip(index, 0, self.exp_size - 1)]
                acc = tt.cast(acc + term, add_t)
            index = np.clip(trunc_div(acc, tt, self.inv_size, 64), 0, self.inv_size - 1)
            out.append(self.result_type.cast(self.inv_table[index], tt))
        return np.stack(out, axis=1)

    def _argmax(self, data: np.ndarray, t: FixedType) -> np.ndarray:
        idx = np.argmax(data, axis=1)  # the first maximum, as the firmware's strict '>'
        one = self.result_type.cast(np.asarray(1), INT32)
        res = np.zeros(data.shape, dtype=np.int64)
        res[np.arange(len(data)), idx] = one
        return res
