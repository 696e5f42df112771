"""LayerName entries for the ApplyAlpha layers hls4ml inserts for a QKeras kernel alpha.

hls4ml 1.3.0's ``QKerasFactorizeAlpha`` pass divides a Dense/Conv kernel quantizer's
``alpha`` (a number, ``'auto'``, ``'auto_po2'``) out of the weights and multiplies it back
in an ApplyAlpha layer ``<layer>_alpha``, which it creates only during the conversion:
the name is in no generated configuration, yet hls4ml reads a ``LayerName`` entry for it.
The pass replaces that entry with ``{Precision: auto}`` and sets the layer's default
precision to auto, but the variables the configuration names one by one (``scale``,
``bias``, ``result``) were read before and stay: those are the types the layer gets,
except where a QKeras quantizer gives the type (``'auto_po2'`` scales: hls4ml's power-of-two
type; a bias quantizer: its type).  So synth passes only ``Precision`` on, spelt per
variable, and checks after the conversion that the layer exists and holds the types the
entry asks for (the emulator reads the types from the built layer, as for any layer)."""

from __future__ import annotations

from typing import Any

from fpgaflow.network import hls4ml_version
from fpgaflow.network.config import LayerInfo
from fpgaflow.project import ProjectError
from sim.fixed import FixedType

# the hls4ml classes QKerasFactorizeAlpha matches, and the ApplyAlpha's type variables
_ALPHA_PARENTS = ("Dense", "Conv1D", "Conv2D", "Conv2DBatchnorm")
VARIABLES = ("scale", "bias", "result")


def _has_alpha(quantizer: Any) -> bool:
    """As ``QKerasFactorizeAlpha.match`` tests a weight or bias quantizer."""
    alpha = getattr(quantizer, "alpha", None)
    return alpha is not None and alpha != 1


def alpha_layers(layer_list: list[dict[str, Any]]) -> list[LayerInfo]:
    """The ApplyAlpha layers hls4ml 1.3.0 inserts for the model (``layer_list`` as
    ``convert.keras_layer_list`` parses it), for ``merge_hls_config``: only their own
    LayerName entry reaches them, with ``Precision`` alone."""
    from hls4ml.model.layers import layer_map

    infos = []
    for layer in layer_list:
        parent = layer_map.get(layer["class_name"])
        if parent is None or parent.__name__ not in _ALPHA_PARENTS:
            continue
        if _has_alpha(layer.get("weight_quantizer")) or _has_alpha(layer.get("bias_quantizer")):
            name = f"{layer['name']}_alpha"
            infos.append(LayerInfo(name, ("ApplyAlpha",), {"precision": "Precision"}, VARIABLES, inserted=True))
    return infos


def _asked(precision: Any, var: str) -> tuple[str | None, bool]:
    """The type an entry's Precision asks for ``var`` and whether it names the variable."""
    if isinstance(precision, dict):
        if var in precision:
            return precision[var], True
        return precision.get("default"), False
    return precision, False


def check_alpha_entries(hls_model: Any, user: dict[str, Any], layers: list[LayerInfo], where: str) -> list[str]:
    """Refuse a ``<layer>_alpha`` entry hls4ml did not apply: the layer was not built
    (hls4ml removes an ApplyAlpha whose scales are 1 and bias 0, and folds one into the
    layer before where it can), or a variable it names holds another type (a quantizer's).
    A type a Precision string or ``default`` asks for and a quantizer overrides is left to
    ``precision.unapplied_weight_types``'s warning.  Returns the notes on the linear
    activation hls4ml keeps after such a layer, which casts its result again."""
    names = user.get("LayerName") or {}
    graph = {node.name: node for node in hls_model.get_layers()}
    notes = []
    for info in layers:
        if not info.inserted or info.name not in names:
            continue
        path, parent = f"{where}: HLSConfig.LayerName.{info.name}", info.name.removesuffix("_alpha")
        node = graph.get(info.name)
        if node is None or node.class_name != "ApplyAlpha":
            raise ProjectError(
                f"{path} sets the types of hls4ml's ApplyAlpha layer for layer {parent!r}'s alpha, but hls4ml "
                f"{hls4ml_version()} built no such layer (it removes one whose scales are all 1 and bias 0, and folds "
                f"one into {parent!r} where it can): remove the entry"
            )
        precision = names[info.name].get("Precision")
        for var in VARIABLES:
            _check_variable(node, parent, var, precision, path)
        note = _linear_after(node, graph, names, precision)
        if note:
            notes.append(f"HLSConfig.LayerName.{info.name} {note}")
    return notes


def _check_variable(node: Any, parent: str, var: str, precision: Any, path: str) -> None:
    from fpgaflow.network.types import UnsupportedType, ap_type

    asked, named = _asked(precision, var)
    if asked is None or asked == "auto":
        return
    held = node.types[f"{var}_t"].precision
    try:
        built = ap_type(held, f"layer {node.name!r} {var}")
    except UnsupportedType:
        built = f"hls4ml's power-of-two type {held}"
    if built == str(FixedType.parse(asked)):
        return
    quantized = var != "result" and getattr(node.weights[var], "quantizer", None) is not None
    if quantized and not named:
        return
    why = "hls4ml did not apply it"
    if quantized and var == "scale":
        why = (
            f"the kernel quantizer's alpha='auto_po2' gives {parent!r} power-of-two scales, which hls4ml holds "
            "exactly in its exponent type whatever the entry says"
        )
    elif quantized:
        why = f"hls4ml moves {parent!r}'s bias into {node.name!r} with its QKeras bias quantizer, which sets its type"
    raise ProjectError(
        f"{path}.Precision{'.' + var if named else ''} asks for {var} {asked}, but hls4ml {hls4ml_version()} "
        f"builds the {var} of layer {node.name!r} as {built}: {why}; remove it from the entry"
    )


def _linear_after(node: Any, graph: dict[str, Any], names: dict[str, Any], precision: Any) -> str | None:
    """hls4ml's MergeLinearActivation removes the linear activation split off the Keras
    layer only after an automatic result type: once the entry sets one, that activation
    stays and casts the result again into its own type (automatic: the Model's default)."""
    from fpgaflow.network.types import result_type

    asked, _ = _asked(precision, "result")
    after = [n for n in graph.values() if node.outputs[0] in n.inputs]
    if asked in (None, "auto") or len(after) != 1:
        return None
    (linear,) = after
    if linear.class_name != "Activation" or linear.get_attr("activation") != "linear":
        return None
    if (names.get(linear.name) or {}).get("Precision") is not None:
        return None  # the user typed that one too
    kept, given = FixedType.parse(result_type(linear)), FixedType.parse(asked)
    if kept.lsb <= given.lsb and kept.min_value <= given.min_value and kept.max_value >= given.max_value:
        return None  # it holds every value of the result type: the cast changes none
    return (
        f"gives layer {node.name!r} the result type {FixedType.parse(asked)}, and hls4ml {hls4ml_version()} then "
        f"keeps the linear activation {linear.name!r} after it (it removes it only after an automatic type), which "
        f"casts that result again into its own automatic type {kept}; give "
        f"HLSConfig.LayerName.{linear.name}.Precision.result a type too"
    )
