"""Layer names that hls4ml 1.3 mistakes for weight names: the firmware against Keras
(hls4ml's C simulation) and the emulator against the firmware."""

from __future__ import annotations

import numpy as np
import pytest
from network_oracle import keras_project, synth_and_build

pytestmark = pytest.mark.oracle


def named_like_weights_model():
    """Each layer's name holds the name of a weight hls4ml reads from it: ``bias`` in a
    Conv1D and in a Dense without a bias (hls4ml's reader took the kernel for both),
    ``beta`` and ``moving_mean`` in a BatchNormalization (it took gamma for both), and
    ``kernel`` in a Dense."""
    import tensorflow as tf

    k = tf.keras
    inp = k.Input((8, 2), name="x")
    h = k.layers.Conv1D(3, 3, activation="relu", name="conv_bias")(inp)
    h = k.layers.Flatten(name="flat")(h)
    h = k.layers.BatchNormalization(name="bn_beta_moving_mean")(h)
    h = k.layers.Dense(5, use_bias=False, name="fc_bias")(h)
    h = k.layers.Dense(4, name="kernel_bias")(h)
    model = k.Model(inp, h)
    rng = np.random.default_rng(11)
    for layer in model.layers:
        layer.set_weights(
            [
                rng.uniform(0.5, 2.0, w.shape) if "variance" in w.name else rng.normal(0, 1.0, w.shape)
                for w in layer.weights
            ]
        )
    return model


def test_layer_names_holding_weight_names_get_their_own_weights(tmp_path_factory):
    from fpgaflow.network.verify import csim_trace

    model = named_like_weights_model()
    precision = {"default": "ap_fixed<24,10>", "result": "ap_fixed<24,10>"}
    folder = tmp_path_factory.mktemp("names")
    oracle = synth_and_build(keras_project(folder, model, "names", {"Model": {"Precision": precision}}))
    x = np.random.default_rng(3).integers(-4 * 256, 4 * 256, (2000, 8, 2)) / 256.0
    csim_y, _ = csim_trace(oracle.hls_model, x)
    keras_y = model.predict(x, verbose=0).astype(np.float64)
    # the types' rounding only (outputs up to ~60, 14 fraction bits: <0.01); a misread weight was off by 30
    assert np.abs(csim_y.reshape(keras_y.shape) - keras_y).max() < 0.05
    for inputs in (x, oracle.random_inputs(2000)):
        result = oracle.compare(inputs)
        assert result["first_divergence"] is None, result["first_divergence"]
        assert result["bit_exact_fraction"] == 1.0
        assert result["predict_bit_exact"] == {"scipy": True, "numpy": True}
