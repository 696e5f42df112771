"""QKeras's default kernel alpha ('auto_po2'): hls4ml's ApplyAlpha layer against QKeras
(hls4ml's C simulation equal to QKeras's layer) and the emulator against the firmware."""

from __future__ import annotations

import numpy as np
import pytest
from network_oracle import keras_project, synth_and_build

pytestmark = pytest.mark.oracle

INPUT_SHAPES = {"QDense": (8,), "QConv1D": (6, 2), "QConv2D": (4, 4, 2)}


def po2_alpha_model(kind: str):
    """One layer with QKeras's default kernel alpha (per-output power-of-two scales from
    below 1 up to 4: hls4ml's scale quantizer held 4 as 2) and a quantized bias; its outputs
    reach +-100 with 14 fraction bits, beyond the Model default ap_fixed<16,6> both ways."""
    import tensorflow as tf
    from qkeras import QConv1D, QConv2D, QDense
    from qkeras.quantizers import quantized_bits

    k = tf.keras
    inp = k.Input(INPUT_SHAPES[kind], name="x")
    q = {"kernel_quantizer": quantized_bits(4, 0), "bias_quantizer": quantized_bits(8, 3, alpha=1)}
    layer = {
        "QDense": lambda: QDense(6, **q),
        "QConv1D": lambda: QConv1D(6, 3, **q),
        "QConv2D": lambda: QConv2D(6, 2, **q),
    }
    model = k.Model(inp, layer[kind]()(inp))
    fc = model.layers[-1]
    kernel, bias = fc.get_weights()
    rng = np.random.default_rng(3)
    kernel = rng.normal(0, 1, kernel.shape) * 2.0 ** (np.arange(6) - 3)  # one scale per output
    fc.set_weights([kernel.astype("f4"), rng.normal(0, 2, bias.shape).astype("f4")])
    return model


@pytest.mark.parametrize("kind", list(INPUT_SHAPES))
def test_po2_alpha_layer_computes_as_qkeras(tmp_path_factory, kind):
    from fpgaflow.network.verify import csim_trace

    model = po2_alpha_model(kind)
    scale = model.layers[-1].kernel_quantizer_internal
    scale(model.layers[-1].kernel)
    scales = set(np.ravel(scale.scale).tolist())
    assert 4.0 in scales and min(scales) < 1
    folder = tmp_path_factory.mktemp(f"alpha_{kind}")
    oracle = synth_and_build(keras_project(folder, model, "alpha", {"Model": {"Precision": "ap_fixed<16,6>"}}))
    # every input a value of the input type ap_fixed<16,6> (steps of 2**-10) within [-8, 8)
    x = np.random.default_rng(5).integers(-8 * 1024, 8 * 1024, (3000, *INPUT_SHAPES[kind])) / 1024.0
    csim_y, _ = csim_trace(oracle.hls_model, x)
    qkeras_y = model.predict(x, verbose=0).astype(np.float64)
    assert np.abs(qkeras_y).max() > 64  # beyond ap_fixed<16,6>
    np.testing.assert_array_equal(csim_y.reshape(qkeras_y.shape), qkeras_y)
    for inputs in (x, oracle.random_inputs(3000)):
        result = oracle.compare(inputs)
        assert result["first_divergence"] is None, result["first_divergence"]
        assert result["bit_exact_fraction"] == 1.0
        assert result["predict_bit_exact"] == {"scipy": True, "numpy": True}
