"""Multiply-accumulate as hls4ml's dense kernels compute it (``nnet_dense_latency.h``,
``nnet_dense_resource.h``; conv layers reuse it on im2col patches).

What the firmware does, per output ``j``::

    acc = (accum_t) bias[j]
    for i in 0..n_in-1:  acc = (accum_t)(acc + (accum_t)(x[i] * w[i][j]))
    res[j] = (res_T) acc

Each product is cast to ``accum_t`` and every partial sum is cast back to ``accum_t``.
With a wrapping accumulator (``AP_WRAP``, no saturation bits) those casts are
arithmetic modulo 2**W, so the order of the sums does not matter and, when the cast
of a product loses no fraction bits, the whole thing is one exact integer matrix
product followed by one wrap (the *fast path*).  Otherwise products are cast one by
one; an accumulator that saturates (``AP_SAT*``, or ``AP_WRAP`` with saturation bits) is
summed in the firmware's exact order.

Exactness of the matrix product: see ``ExactAffine`` (the float32/float64/int64
choice is proven per layer from the input type and the actual weights and bias).
"""

from __future__ import annotations

import numpy as np

from sim.fixed import Fixed, FixedType
from sim.manifest import ManifestError
from sim.network.blas import matmul
from sim.network.casts import cast, cast_float, float_cast_ok

_FLOAT_EXACT = 2**53
_FLOAT32_EXACT = 2**24
_CHUNK_ELEMENTS = 1 << 22  # products held at once on the slow paths


def wrap(raw: np.ndarray, t: FixedType) -> np.ndarray:
    """Keep the low W bits of int64 values as type ``t`` (two's complement); in place."""
    if t.width >= 64:
        return raw
    if t.signed:
        raw <<= np.int64(64 - t.width)  # sign extension from bit W-1
        raw >>= np.int64(64 - t.width)
        return raw
    raw &= np.int64((1 << t.width) - 1)
    return raw


def is_wrapping(t: FixedType) -> bool:
    return t.overflow == "AP_WRAP" and t.sat_bits == 0


def accumulator_kind(t: FixedType) -> str:
    """How an accumulator that is not plainly wrapping handles overflow, in a refusal's words."""
    if t.overflow == "AP_WRAP":
        return f"an accumulator wrapping with {t.sat_bits} saturation bit(s) ({t})"
    return f"a saturating accumulator ({t})"


def max_abs_raw(t: FixedType) -> int:
    return max(abs(t.min_raw), abs(t.max_raw))


class ExactAffine:
    """``(x @ w) * 2**shift + bias`` on raw integers, exact.

    With ``B = (max|x_raw| * max_j sum_i |w_raw[i, j]|) * 2**shift + max|bias|``: float32
    BLAS when B < 2**24, float64 when B < 2**53 (every partial sum of every order,
    and every fused multiply-add, is then an integer the float holds exactly), else
    int64 (exact modulo 2**64, enough for a final wrap to W <= 64 bits)."""

    def __init__(self, w: np.ndarray, x_type: FixedType, shift: int, bias: np.ndarray) -> None:
        bound = max_abs_raw(x_type) * int(np.abs(w).sum(axis=0).max(initial=0))
        self.bound = (bound << shift) + int(np.abs(bias).max(initial=0))
        if self.bound < _FLOAT32_EXACT:
            self.dtype = np.float32
        elif self.bound < _FLOAT_EXACT:
            self.dtype = np.float64
        else:
            self.dtype = np.int64
        scale = 1 << shift
        if self.dtype == np.int64:
            self.w, self.shift = w.astype(np.int64), shift
        else:  # the shift folds into the weights: scaling by a power of two is exact
            self.w, self.shift = (w * scale).astype(self.dtype), 0
        self.bias = bias.astype(self.dtype)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.dtype == np.int64:
            y = x.astype(np.int64, copy=False) @ self.w
        else:
            y = matmul(x.astype(self.dtype, copy=False), self.w)
        if self.shift:
            y <<= np.int64(self.shift)
        y += self.bias
        return y if self.dtype == np.int64 else y.astype(np.int64)

    def in_float(self, x: np.ndarray) -> np.ndarray:
        """The same sums as float64 (``dtype`` must be a float): for the float64 domain
        of ``sim.network.casts``, which saves the conversion to int64 and back."""
        y = matmul(x.astype(self.dtype, copy=False), self.w)
        y += self.bias
        return y.astype(np.float64, copy=False)


def resource_order(n_in: int, n_out: int, rf: int) -> np.ndarray:
    """Per output, the input indices in the order ``dense_resource`` adds them.

    Replays the index arithmetic of the three Resource kernels
    (``rf_leq_nin``, ``rf_gt_nin_rem0``, ``rf_gt_nin``) on the transposed weights
    (``w_index = out * n_in + in``) and checks that each kernel pairs input, weight
    and output consistently (``in == w % n_in``, ``out == w // n_in``).  Returns an
    (n_out, n_in) array: row ``o`` lists the inputs in addition order."""
    total = n_in * n_out
    steps: list[tuple[int, int, int]] = []  # (out, in, w) in execution order
    block = -(-total // rf)
    if rf <= n_in:
        multscale = -(-total // min(n_in, rf)) // n_out
        for ir in range(rf):
            w, i, o, step = ir, ir, 0, 0
            for _ in range(block):
                steps.append((o, i, w))
                w += rf
                i += rf
                if i >= n_in:
                    i = ir
                if step + 1 >= multscale:
                    step, o = 0, o + 1
                else:
                    step += 1
    elif rf % n_in == 0:
        outscale = rf // n_in
        outidx, outstep = [], 0
        for ir in range(rf):
            outidx.append(outstep)
            if (ir + 1) % n_in == 0:
                outstep += 1
        i = 0
        for ir in range(rf):
            w, o = ir, outidx[ir]
            for _ in range(block):
                steps.append((o, i, w))
                w += rf
                if w >= total:
                    break
                o += outscale
            i = 0 if i + 1 >= n_in else i + 1
    else:
        for ir in range(rf):
            for im in range(block):
                w = ir + rf * im
                if w < total:
                    steps.append((w // min(n_in, rf), w % n_in, w))
    order: list[list[int]] = [[] for _ in range(n_out)]
    for o, i, w in steps:
        if w >= total or (o, i) != (w // n_in, w % n_in):
            raise ManifestError(
                f"reuse factor {rf} with n_in={n_in}, n_out={n_out}: the Resource kernel does not pair inputs "
                "and weights as a matrix product; not emulated"
            )
        order[o].append(i)
    if any(sorted(row) != list(range(n_in)) for row in order):
        raise ManifestError(f"reuse factor {rf} with n_in={n_in}, n_out={n_out}: incomplete Resource schedule")
    return np.array(order, dtype=np.int64).reshape(n_out, n_in)


class Accumulator:
    """One dense multiply-accumulate: ``x (n, n_in) -> acc (n, n_out)`` in ``accum_t``.

    ``order`` holds, per output, the input indices in the order the firmware adds
    them (Latency: 0..n_in-1; Resource: ``resource_order``); it matters only for a
    saturating accumulator."""

    def __init__(
        self,
        layer: str,
        x_type: FixedType,
        weight: np.ndarray,
        weight_type: FixedType,
        bias: np.ndarray,
        bias_type: FixedType,
        accum_type: FixedType,
        strategy: str,
        product: str = "mult",
        reuse_factor: int = 1,
        kernel: str = "dense",
        weight_shift: np.ndarray | None = None,
    ) -> None:
        if weight.ndim != 2 or bias.shape != (weight.shape[1],):
            raise ManifestError(f"layer {layer!r}: weight {weight.shape} and bias {bias.shape} do not match")
        self.input_shifts: tuple[int, ...] = ()
        if weight_shift is not None and np.any(weight_shift):
            weight, self.input_shifts = shifted_inputs_weight(layer, weight, weight_shift, accum_type)
        self.data_binary = product == "data_binary"
        if self.data_binary:
            x_type = FixedType.parse("ap_int<2>")
        self.layer, self.x_type, self.accum = layer, x_type, accum_type
        self.weight = weight.astype(np.int64)
        self.product_type = x_type.mul_type(weight_type)
        self.bias = accum_type.cast(bias.astype(np.int64), bias_type).astype(np.int64)
        self.wrapping = is_wrapping(accum_type)
        self.shift = accum_type.frac_bits - self.product_type.frac_bits
        self.fast = self.wrapping and self.shift >= 0
        self.affine = ExactAffine(self.weight, x_type, self.shift, self.bias) if self.fast else None
        # no wrap needed when no sum can leave the accumulator's range
        bound = self.affine.bound if self.fast else None
        self.never_wraps = bound is not None and bound <= accum_type.max_raw and -bound >= accum_type.min_raw
        if self.product_type.width > 62 and not self.fast:
            raise ManifestError(
                f"layer {layer!r}: products of {self.product_type.width} bits with accumulator {accum_type} "
                "are beyond this emulator's exact slow path (62 bits)"
            )
        n_in, n_out = self.weight.shape
        # the order in which each output's products are added: matters only when saturating
        self.order = np.tile(np.arange(n_in), (n_out, 1))
        if strategy == "resource" and kernel == "dense" and not self.input_shifts:
            try:
                self.order = resource_order(n_in, n_out, max(1, int(reuse_factor)))
            except ManifestError as exc:
                raise ManifestError(f"layer {layer!r}: {exc}") from None
        if not self.wrapping and strategy != "latency" and (strategy, kernel) != ("resource", "dense"):
            raise ManifestError(
                f"layer {layer!r}: {accumulator_kind(accum_type)} with the {strategy} strategy "
                "is not emulated (its summation order is generated code); use AP_WRAP for accum"
            )

    @property
    def float_out(self) -> bool:
        """The sums can stay in the float64 domain: exact in a float BLAS, never wrapped."""
        return self.fast and self.never_wraps and self.affine.dtype != np.int64 and not self.data_binary

    def in_float(self, x: np.ndarray) -> np.ndarray:
        """``self(x)`` as float64 (``float_out`` must hold); ``x`` raw, int64 or float64."""
        if self.input_shifts:  # floor(x / 2**d) is exact on integers held in a float
            x = np.concatenate([np.floor(x * 2.0**-d) for d in self.input_shifts], axis=1)
        return self.affine.in_float(x)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(np.int64, copy=False)
        if self.input_shifts:
            x = np.concatenate([x >> d for d in self.input_shifts], axis=1)
        if self.data_binary:  # ap_uint<1> data: 0 stands for -1 (the kernel returns -w)
            x = np.where(x == 0, -1, 1)
        if self.fast:
            acc = self.affine(x)
            return acc if self.never_wraps else wrap(acc, self.accum)
        n_in, n_out = self.weight.shape
        step = max(1, _CHUNK_ELEMENTS // max(1, n_in * n_out))
        out = [self._slow(x[i : i + step]) for i in range(0, len(x), step)]
        return np.concatenate(out) if out else np.zeros((0, n_out), dtype=np.int64)

    def _slow(self, x: np.ndarray) -> np.ndarray:
        products = x.astype(np.int64)[:, :, None] * self.weight[None, :, :]
        mult = self.accum.cast(products, self.product_type).astype(np.int64)
        if self.wrapping:
            return wrap(mult.sum(axis=1) + self.bias, self.accum)
        acc = np.broadcast_to(self.bias, (len(x), self.weight.shape[1])).copy()
        add_type = self.accum.add_type(self.accum)
        outputs = np.arange(self.weight.shape[1])
        for k in range(self.weight.shape[0]):  # k-th addition of every output, in firmware order
            acc = self.accum.cast(acc + mult[:, self.order[:, k], outputs], add_type).astype(np.int64)
        return acc


def shifted_inputs_weight(
    layer: str, weight: np.ndarray, weight_shift: np.ndarray, accum_type: FixedType
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Products that shift their input right before multiplying (hls4ml's power-of-two
    weights where the shift drops bits: ``w * (x_raw >> d)``, ``d`` per weight) as one
    matrix product over the inputs shifted by each distinct ``d``: the weight stacked
    once per shift, zero where that weight has another shift (a zero product adds
    nothing to a wrapping accumulator)."""
    if weight_shift.shape != weight.shape or np.any(weight_shift < 0):
        raise ManifestError(f"layer {layer!r}: weight_shift {weight_shift.shape} does not match weight {weight.shape}")
    if not is_wrapping(accum_type):
        raise ManifestError(
            f"layer {layer!r}: power-of-two weights that drop bits with {accumulator_kind(accum_type)} "
            "are not emulated; use AP_WRAP for accum"
        )
    shifts = tuple(int(d) for d in np.unique(weight_shift))
    return np.concatenate([np.where(weight_shift == d, weight, 0) for d in shifts], axis=0), shifts


class AccumulatorPerInputType:
    """Mixin of the weighted layers (Dense, Conv1D, Conv2D): one ``Accumulator`` per
    input type, built from the layer's manifest entry (``weight``, ``bias`` and
    ``accum_type`` set by the layer).  ``mac_kernel`` and ``mac_reuse`` say how the
    firmware orders the additions for that layer family."""

    mac_kernel = "dense"
    mac_reuse = True  # False: additions in Latency order whatever the reuse factor
    float_input = True  # rows of raw integers in float64 or int64 alike (sim.network.casts)

    def __init__(self, spec, arrays) -> None:
        super().__init__(spec, arrays)
        self.weight_shift = arrays.get("weight_shift")  # lossy power-of-two products, see Accumulator

    def _in_float(self, x_type: FixedType) -> bool:
        return self.accumulator(x_type).float_out and float_cast_ok(self.accum_type, self.result_type)

    def mac_input(self, x: Fixed) -> np.ndarray:
        """The raw inputs in the dtype the products take them in: converted before a
        convolution's im2col multiplies their number by the kernel size, not after."""
        if self._in_float(x.type):
            return x.raw.astype(self.accumulator(x.type).affine.dtype, copy=False)
        return x.raw.astype(np.int64, copy=False)

    def mac_result(self, x_type: FixedType, rows: np.ndarray) -> np.ndarray:
        """``(res_T) acc`` for every row of inputs: in the float64 domain when the
        sums are exact there and the cast can follow them, else as int64."""
        if self._in_float(x_type):
            return cast_float(self.accumulator(x_type).in_float(rows), self.accum_type, self.result_type, scratch=True)
        return cast(self.accumulator(x_type)(rows), self.accum_type, self.result_type, scratch=True)

    def accumulator(self, x_type: FixedType) -> Accumulator:
        cache = self.__dict__.setdefault("_accumulators", {})
        if x_type not in cache:
            cache[x_type] = Accumulator(
                self.name,
                x_type,
                self.weight,
                self.type_of("weight_type"),
                self.bias,
                self.type_of("bias_type"),
                self.accum_type,
                self.spec.get("strategy", "latency"),
                self.spec.get("product", "mult"),
                int(self.spec.get("reuse_factor", 1)) if self.mac_reuse else 1,
                self.mac_kernel,
                None if self.weight_shift is None else self.weight_shift.reshape(self.weight.shape),
            )
        return cache[x_type]
