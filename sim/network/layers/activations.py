"""Element-wise activations of ``nnet_activation.h``, lookup tables included.

Lookup tables are rebuilt here exactly as the firmware's ``init_*_table`` functions
build them: the table input ``in_val`` computed in double and stored in a ``float``,
the function evaluated with the C library's single-precision ``expf`` (emulated as
the correctly rounded float32 of the double result) and the mixed float/double
arithmetic of the header, then the float cast into ``table_t``.  Indexing follows the
header too: ``index = (int)(x * table_size / 16) + 8 * table_size / 16`` (C
truncation towards zero, the conversion to ``int`` keeping the low 32 bits, the sum in
``unsigned`` wrapping modulo 2**32 too, then clipping to the table); elu's and selu's
``(int)(x * table_size / -8)`` likewise, clamped above in an unsigned comparison (a
wrapped negative index reads the last entry; io_parallel's selu clamps it to 0).  selu's positive
branch multiplies by lambda held in an ``ap_ufixed<16,1>`` in io_parallel but in the
input type in io_stream.

Manifest entry: ``activation`` (linear, relu, leaky_relu, thresholded_relu, elu,
selu, sigmoid, tanh, softplus, softsign, hard_sigmoid, hard_tanh, binary_tanh);
``table_size`` and ``table_type`` for table activations; ``param_raw`` and
``param_type`` for leaky_relu/thresholded_relu/elu; ``slope_raw``/``slope_type`` and
``shift_raw``/``shift_type`` for the hard activations; ``stream`` (io_stream).
"""

from __future__ import annotations

import numpy as np

from sim.fixed import Fixed, FixedType
from sim.manifest import ManifestError
from sim.network.casts import cast, cast_either
from sim.network.registry import Layer, register

INT32 = FixedType.parse("ap_int<32>")
INT32_HALF = 1 << 31
SELU_LAMBDA = 1.0507009873554805  # the C++ literal 1.0507009873554804934193349852946 as a double
F32 = np.float32


def expf(x: np.ndarray) -> np.ndarray:
    """glibc's ``expf``: the float32 rounding of the exact exponential of a float."""
    return np.exp(np.asarray(x, dtype=F32).astype(np.float64)).astype(F32)


def symmetric_inputs(n: int, half_range: float) -> np.ndarray:
    """``float in_val = 2 * R * (ii - float(N) / 2.0) / float(N)`` for ii in 0..N-1."""
    ii = np.arange(n, dtype=np.float64)
    return (2 * half_range * (ii - float(n) / 2.0) / float(n)).astype(F32)


def negative_inputs(n: int) -> np.ndarray:
    """``float in_val = -8.0 * ii / float(N)`` (elu, selu)."""
    return (-8.0 * np.arange(n, dtype=np.float64) / float(n)).astype(F32)


def table_values(kind: str, n: int) -> np.ndarray:
    """Float (as the header's float) entries of a lookup table, before the table_t cast."""
    with np.errstate(over="ignore", divide="ignore"):
        if kind == "sigmoid":
            x = symmetric_inputs(n, 8.0)
            e = expf(-x)
            return (1.0 / (F32(1) + e).astype(np.float64)).astype(F32)
        if kind == "tanh":
            x = symmetric_inputs(n, 4.0)
            return np.tanh(x.astype(np.float64)).astype(F32)
        if kind == "softplus":
            x = symmetric_inputs(n, 8.0)
            return np.log(expf(x).astype(np.float64) + 1.0).astype(F32)
        if kind == "softsign":
            x = symmetric_inputs(n, 8.0).astype(np.float64)
            return (x / (np.abs(x) + 1.0)).astype(F32)
        if kind == "elu":
            return (expf(negative_inputs(n)).astype(np.float64) - 1.0).astype(F32)
        if kind == "selu":
            e = expf(negative_inputs(n)).astype(np.float64) - 1.0
            return (1.0507009873554804934193349852946 * (1.6732632423543772848170429916717 * e)).astype(F32)
    raise ManifestError(f"no lookup table for activation {kind!r}")


def _quotient(raw: np.ndarray, x_type: FixedType, num: int, den: int) -> np.ndarray:
    """``x * num / den`` for a fixed-point ``x``, exactly, truncated towards zero
    (ap_fixed's product and division): int64, or Python integers where that may not hold it."""
    raw = np.asarray(raw)
    up, down = max(0, -x_type.frac_bits), max(0, x_type.frac_bits)  # x = raw * 2**(up - down)
    if raw.dtype == object or x_type.width + abs(num).bit_length() + up >= 62:
        scaled = raw.astype(object) * (num << up)  # exact in Python integers
    else:
        scaled = raw.astype(np.int64) * (num << up)
    d = den << down
    q = np.abs(scaled) // abs(d)
    return np.where((scaled < 0) != (d < 0), -q, q)


def wrap_int32(value: np.ndarray) -> np.ndarray:
    """The low 32 bits as a signed ``int`` (two's complement; g++'s conversion to ``int``)."""
    return ((value + INT32_HALF) % (2 * INT32_HALF) - INT32_HALF).astype(np.int64)


def trunc_div(raw: np.ndarray, x_type: FixedType, num: int, den: int) -> np.ndarray:
    """``int i = x * num / den`` for a fixed-point ``x``: the exact quotient truncated
    towards zero (ap_fixed's product and division, then ``to_int()``), of which the
    conversion to ``int`` keeps only the low 32 bits (two's complement wrap)."""
    return wrap_int32(_quotient(raw, x_type, num, den))


def table_index(raw: np.ndarray, x_type: FixedType, table_size: int, r: int) -> np.ndarray:
    """``int data_round = x * table_size / R; int index = data_round + (R / 2) * table_size
    / R;`` before the clamp to the table (R = 16 for sigmoid, softplus, softsign and the
    legacy softmax, 8 for tanh).  ``table_size`` is ``static const unsigned``, so the sum
    is unsigned arithmetic modulo 2**32, and its conversion to ``int`` keeps the low 32
    bits: where ``data_round`` lies within ``table_size / 2`` below 2**31 the index wraps
    negative and the clamp gives entry 0, not the last one (g++ -O0 to -O3 alike; the
    arithmetic is defined, not undefined behaviour)."""
    offset = (r // 2 * table_size) % (2 * INT32_HALF) // r  # computed in unsigned int
    return wrap_int32(_quotient(raw, x_type, table_size, r) + offset)


TABLE_RANGES = {"sigmoid": 16, "softplus": 16, "softsign": 16, "tanh": 8}


@register("activation")
class Activation(Layer):
    def __init__(self, spec, arrays):
        super().__init__(spec, arrays)
        self.activation = self.param("activation")
        if self.activation not in _FORWARD:
            raise ManifestError(
                f"layer {self.name!r}: activation {self.activation!r} is not emulated "
                f"(supported: {', '.join(sorted(_FORWARD))})"
            )
        # io_stream kernels (nnet_activation_stream.h); only selu computes differently
        self.stream = bool(spec.get("stream", False))
        if self.activation in TABLE_RANGES or self.activation in ("elu", "selu"):
            self.table_size = int(self.param("table_size"))
            self.table_type = self.type_of("table_type")
            self.table = self.table_type.to_raw(table_values(self.activation, self.table_size).astype(np.float64))

    @property
    def float_input(self) -> bool:
        """linear and relu take raw integers in the float64 domain (``sim.network.casts``)."""
        return self.activation in ("linear", "relu")

    @property
    def takes_scratch(self) -> bool:
        """``forward(x, scratch=True)`` may overwrite ``x`` (relu; ``sim.network.Network`` decides when)."""
        return self.activation == "relu"

    def forward(self, x: Fixed, scratch: bool = False) -> Fixed:
        if self.activation == "relu":
            raw = self._relu(x, scratch)
        else:
            raw = _FORWARD[self.activation](self, x)
        raw = np.asarray(raw)
        if raw.dtype != np.float64:
            raw = raw.astype(np.int64, copy=False)
        return Fixed(raw.reshape(x.raw.shape), self.result_type)

    # ------------------------------------------------------------------ kinds
    def _cast(self, raw: np.ndarray, t: FixedType) -> np.ndarray:
        return cast(raw, t, self.result_type)

    def _linear(self, x: Fixed) -> np.ndarray:
        return cast_either(x.raw, x.type, self.result_type)

    def _relu(self, x: Fixed, scratch: bool = False) -> np.ndarray:
        # ``datareg > 0 ? (res_T) datareg : 0``; a cast maps 0 to 0 in every mode
        positive = np.maximum(x.raw, 0, out=x.raw if scratch else None)
        return cast_either(positive, x.type, self.result_type, scratch=True)

    def _table(self, x: Fixed) -> np.ndarray:
        r, n = TABLE_RANGES[self.activation], self.table_size
        index = np.clip(table_index(x.raw, x.type, n, r), 0, n - 1)
        return self._cast(self.table[index], self.table_type)

    def _elu(self, x: Fixed) -> np.ndarray:
        table = self.table[self._clamp_above(trunc_div(x.raw, x.type, self.table_size, -8))]
        alpha_type = FixedType.parse(self.spec.get("param_type", "ap_uint<1>"))
        alpha = int(self.spec.get("param_raw", 1))
        prod = self.result_type.cast(table * alpha, self.table_type.mul_type(alpha_type))
        return np.where(x.raw >= 0, self._cast(x.raw, x.type), prod)

    def _selu(self, x: Fixed) -> np.ndarray:
        n = self.table_size
        index = trunc_div(x.raw, x.type, n, -8)
        # io_parallel clamps a negative (wrapped) index to 0, io_stream clamps it above only
        index = self._clamp_above(index) if self.stream else np.clip(index, 0, n - 1)
        neg = self._cast(self.table[index], self.table_type)
        # io_parallel: lambda is an ap_ufixed<16,1>; io_stream casts it into the input type,
        # ``(typename data_T::value_type)1.0507009873554804934193349852946 * datareg``
        lam_t = x.type if self.stream else FixedType.parse("ap_ufixed<16,1>")
        lam = Fixed(np.asarray(lam_t.to_raw(SELU_LAMBDA)), lam_t)
        pos = (Fixed(x.raw, x.type) * lam).cast(self.result_type).raw
        return np.where(x.raw >= 0, pos, neg)

    def _clamp_above(self, index: np.ndarray) -> np.ndarray:
        """``if (index > CONFIG_T::table_size - 1) index = CONFIG_T::table_size - 1;`` (elu,
        io_stream selu): ``table_size`` is ``unsigned``, so the comparison is unsigned and a
        negative index (``x * table_size / -8`` wrapped past 2**31 by the conversion to
        ``int``, for x < 0 only) compares above: the last entry, not outside the table."""
        n = self.table_size
        return np.where((index < 0) | (index > n - 1), n - 1, index)

    def _param(self) -> tuple[int, FixedType]:
        return int(self.param("param_raw")), self.type_of("param_type")

    def _leaky_relu(self, x: Fixed) -> np.ndarray:
        alpha, alpha_t = self._param()
        neg = self.result_type.cast(x.raw.astype(np.int64) * alpha, x.type.mul_type(alpha_t))
        return np.where(x.raw > 0, self._cast(x.raw, x.type), neg)

    def _thresholded_relu(self, x: Fixed) -> np.ndarray:
        theta, theta_t = self._param()
        above = Fixed(x.raw, x.type) - Fixed(np.asarray(theta), theta_t)
        return np.where(above.raw > 0, self._cast(x.raw, x.type), 0)

    def _hard(self, x: Fixed) -> Fixed:
        """``slope * x + shift`` clipped to [0, 1], in the full-precision ``auto`` type."""
        slope = Fixed(np.asarray(int(self.param("slope_raw"))), self.type_of("slope_type"))
        shift = Fixed(np.asarray(int(self.param("shift_raw"))), self.type_of("shift_type"))
        y = slope * x + shift
        one = 1 << y.type.frac_bits
        return Fixed(np.clip(y.raw, 0, one), y.type)

    def _hard_sigmoid(self, x: Fixed) -> np.ndarray:
        y = self._hard(x)
        return self._cast(y.raw, y.type)

    def _hard_tanh(self, x: Fixed) -> np.ndarray:
        y = self._hard(x)
        two = Fixed(np.asarray(2), INT32)
        one = Fixed(np.asarray(1), INT32)
        z = two * y - one
        return self._cast(z.raw, z.type)

    def _binary_tanh(self, x: Fixed) -> np.ndarray:
        cache_t = FixedType.parse("ap_int<2>")
        cache = np.where(x.raw >= 0, 1, -1)
        if self.result_type == FixedType.parse("ap_uint<1>"):
            return np.where(cache > 0, self.result_type.cast(cache, cache_t), 0)
        return self.result_type.cast(cache, cache_t)


_FORWARD = {
    "linear": Activation._linear,
    "relu": Activation._relu,
    "sigmoid": Activation._table,
    "tanh": Activation._table,
    "softplus": Activation._table,
    "softsign": Activation._table,
    "elu": Activation._elu,
    "selu": Activation._selu,
    "leaky_relu": Activation._leaky_relu,
    "thresholded_relu": Activation._thresholded_relu,
    "hard_sigmoid": Activation._hard_sigmoid,
    "hard_tanh": Activation._hard_tanh,
    "binary_tanh": Activation._binary_tanh,
}
