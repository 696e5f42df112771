"""QKeras's QConv2DBatchnorm folded as QKeras computes it.

At inference QKeras's layer is a convolution with the kernel
``kernel_quantizer(gamma * kernel / sqrt(moving_variance + epsilon))`` and the bias
``bias_quantizer(gamma * (bias - moving_mean) / sqrt(moving_variance + epsilon) + beta)``
(``bias`` 0 with ``use_bias=False``; no quantizer: the folded value itself), folded in
TensorFlow (``get_folded_weights``).  hls4ml 1.3.0's ``Conv2DBatchnorm.initialize`` folds
the same in NumPy, but for the Vivado backend with the Resource strategy it transposes
the folded kernel, which its resource pass transposes again (the kernel reads a
(C, F, H, W) array as (F, H, W, C), and an ``alpha='auto'`` kernel's scales come out
per input channel); without a bias quantizer it keeps the stored, unfolded bias; with
``use_bias=False`` it holds the folded bias in ``ap_uint<1>``; without a kernel
quantizer it raises TypeError.  While hls4ml converts, fpgaflow initialises the layer as
the QConv2D it is: hls4ml's Conv2D initialisation with QKeras's folded kernel and bias
as the layer's kernel and bias, which the layer's quantizers quantize and type as for a
QConv2D.  Checked against QKeras and csim in ``tests/test_network_conv.py``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from fpgaflow.network import hls4ml_version
from fpgaflow.network.patching import replaced

# hls4ml 1.3.0's Conv2DBatchnorm.initialize transposes the folded kernel for these backends
_PRE_TRANSPOSED = ("Vivado", "VivadoAccelerator", "Catapult")


@contextmanager
def qkeras_folded_convolutions(model: Any) -> Iterator[list[str]]:
    """While hls4ml converts ``model``, its Conv2DBatchnorm layers hold QKeras's folded
    kernel and bias; yields the notes naming the layers whose firmware hls4ml's own
    folding would have made differ from QKeras's, and by how much."""
    folds = {
        layer.name: tuple(np.asarray(w.numpy()) for w in layer.get_folded_weights())
        for layer in model.layers
        if type(layer).__name__ == "QConv2DBatchnorm"
    }
    notes: list[str] = []
    if not folds:
        yield notes
        return
    from hls4ml.model.layers import Conv2D, Conv2DBatchnorm

    def initialize(node: Any) -> None:
        kernel, bias = folds[node.name]
        note = _hls4ml_difference(node, kernel, bias)
        if note and note not in notes:
            notes.append(note)
        node.set_attr("weight_data", kernel)
        node.set_attr("bias_data", bias)
        Conv2D.initialize(node)

    with replaced(Conv2DBatchnorm, "initialize", initialize):
        yield notes


def _quantized(quantizer: Any, values: np.ndarray) -> np.ndarray:
    return np.asarray(values if quantizer is None else quantizer(values), dtype=np.float64)


def _hls4ml_difference(node: Any, kernel: np.ndarray, bias: np.ndarray) -> str | None:
    """What hls4ml 1.3.0's own Conv2DBatchnorm.initialize would have given the firmware
    (kernel in the order its convolution reads it, bias values, for the bias type it
    gives), against QKeras's folded kernel and bias: a note when they differ."""
    from sim.fixed import FixedType

    weight_q, bias_q = node.get_attr("weight_quantizer"), node.get_attr("bias_quantizer")
    if weight_q is None:
        return None  # hls4ml raises TypeError (it quantizes the folded kernel with no quantizer)
    folded_kernel, folded_bias = node._get_folded_weights()
    ours_kernel, ours_bias = _quantized(weight_q, kernel), _quantized(bias_q, bias)
    theirs_kernel = _quantized(weight_q, folded_kernel)
    reasons = []
    backend = node.model.config.backend.name
    if node.model.config.is_resource_strategy(node) and backend in _PRE_TRANSPOSED:
        # (H,W,C,F) -> (F,H,W,C) in initialize, again in the resource pass: (C,F,H,W), read as (F,H,W,C)
        once = np.transpose(theirs_kernel, (3, 0, 1, 2))
        theirs_kernel = np.transpose(once, (3, 0, 1, 2)).reshape(once.shape).transpose(1, 2, 3, 0)
        alpha = getattr(weight_q, "alpha", None)
        scales = " (and an alpha kernel's scales are taken per input channel)" if alpha not in (None, 1) else ""
        reasons.append(
            f"for the {backend} backend's Resource strategy it transposes the folded kernel and its resource pass "
            f"transposes it again, so the convolution reads its weights in another order{scales}"
        )
    stored = node.get_attr("bias_data")
    if stored is None:
        held = _quantized(bias_q, folded_bias) if bias_q is not None else np.zeros_like(ours_bias)
        theirs_bias = FixedType.parse("ap_uint<1>").quantize(held)
        reasons.append("with use_bias=False it holds the folded bias in ap_uint<1> (0 or 1)")
    elif bias_q is None:
        theirs_bias = np.asarray(stored, dtype=np.float64)
        reasons.append("without a bias_quantizer it keeps the stored bias, not the folded one")
    else:
        theirs_bias = _quantized(bias_q, folded_bias)
    if not np.array_equal(_quantized(weight_q, folded_kernel), ours_kernel) or (
        stored is not None and bias_q is not None and not np.array_equal(theirs_bias, ours_bias)
    ):
        reasons.append("its NumPy fold rounds some values to another step than QKeras's TensorFlow one")
    kernel_off = np.abs(theirs_kernel - ours_kernel)
    bias_off = np.abs(np.reshape(theirs_bias, ours_bias.shape) - ours_bias)
    if not kernel_off.any() and not bias_off.any():
        return None
    differ = [
        f"{name} in {int(np.count_nonzero(off))} of {off.size} values (by up to {off.max():.6g})"
        for name, off in (("kernel", kernel_off), ("bias", bias_off))
        if off.any()
    ]
    return (
        f"layer {node.name!r} (QConv2DBatchnorm): hls4ml {hls4ml_version()} does not fold it as QKeras does: "
        f"{'; '.join(reasons)}; so the firmware would differ from QKeras's folded, quantized "
        f"{' and '.join(differ)}; fpgaflow gives hls4ml QKeras's folded kernel and bias (get_folded_weights), "
        "which the layer's quantizers quantize as for a QConv2D"
    )
