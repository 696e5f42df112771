"""hls4ml reads each Keras weight by its own name, not by a substring of the layer's name.

hls4ml 1.3's ``KerasModelReader.get_weights_data(layer, var)`` returns the layer's first
weight whose full name (``"<layer>/<weight>:0"``) contains ``var``: in a Dense named
``fc_bias`` the bias it reads is ``fc_bias/kernel:0`` (the firmware adds kernel values
as the bias), in a BatchNormalization named ``bn_beta`` the beta is the gamma, and a
``fc_bias`` with ``use_bias=False`` gets its kernel as a bias.  fpgaflow always hands
hls4ml the loaded model (``convert_from_keras_model``), so this reader is the one used
for JSON + weights, .h5 and SavedModel projects alike.  While hls4ml parses or converts,
the reader matches the weight's own name (the full name without the layer's scope and
``:0``): exactly, else (hls4ml's substring rule) within that name only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fpgaflow.network.patching import replaced


def own_name(weight_name: str, layer_name: str) -> str:
    """``"fc_bias/kernel:0"`` of layer ``fc_bias`` -> ``"kernel"``."""
    name = weight_name.rsplit(":", 1)[0]
    scope = f"{layer_name}/"
    return name[len(scope) :] if name.startswith(scope) else name.rsplit("/", 1)[-1]


def weight_index(names: list[str], layer_name: str, var_name: str) -> int | None:
    """Which of a layer's weights (by full name) hls4ml should read as ``var_name``."""
    own = [own_name(n, layer_name) for n in names]
    for match in (lambda o: o == var_name, lambda o: var_name in o):
        found = next((i for i, o in enumerate(own) if match(o)), None)
        if found is not None:
            return found
    return None


def _get_weights_data(self: Any, layer_name: str, var_name: str) -> Any:
    """``KerasModelReader.get_weights_data``, picking the weight by its own name."""
    layer = self.model.get_layer(layer_name)
    i = weight_index([w.name for w in layer.weights], layer.name, var_name)
    return None if i is None else layer.weights[i].numpy()


@contextmanager
def exact_weight_names() -> Iterator[None]:
    """While hls4ml parses or converts a loaded Keras model, its reader picks weights by
    their own names (``weight_index``)."""
    from hls4ml.converters import KerasModelReader

    with replaced(KerasModelReader, "get_weights_data", _get_weights_data):
        yield
