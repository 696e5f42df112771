"""Keras model -> hls4ml model graph (after hls4ml's optimizer passes) and HLS project."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fpgaflow.network.config import (
    LAYER_KEYS,
    LayerInfo,
    NetworkSettings,
    c_name,
    check_table_sizes,
    check_table_types,
    merge_hls_config,
    normalised,
)
from fpgaflow.project import ProjectError
from sim.fixed import FixedType


def check_supported(model: Any, where: str) -> None:
    """Every Keras layer must be one the emulator covers: name the first one that is not."""
    from fpgaflow.network.exporters import KERAS_CHECKS, KERAS_CLASSES, load_all

    load_all()
    for layer in model.layers:
        cls = type(layer).__name__
        if cls not in KERAS_CLASSES:
            raise ProjectError(
                f"{where}: layer {layer.name!r} of type {cls} is not supported "
                f"(supported: {', '.join(sorted(KERAS_CLASSES))})"
            )
        checks = [*KERAS_CHECKS.get(cls, ()), channels_last]
        for check in checks:
            why = check(layer)
            if why:
                raise ProjectError(f"{where}: layer {layer.name!r} of type {cls}: {why}")
    if type(model).__name__ != "Sequential":  # a Sequential model's output is its last layer hls4ml builds
        for name in model.output_names:
            if type(model.get_layer(name)).__name__ == "Dropout":
                from fpgaflow.network import hls4ml_version

                raise ProjectError(
                    f"{where}: layer {name!r} (Dropout) is the model's output: hls4ml {hls4ml_version()} skips "
                    "Dropout layers, and in a functional model the output named after one with it (the firmware "
                    "would have no output); end the model with the layer before it (Dropout does nothing at inference)"
                )


def channels_last(layer: Any) -> str | None:
    """hls4ml 1.3.0 fails deep inside on a ``channels_first`` convolution ('cannot reshape
    array of size 0'), and a ``channels_first`` Flatten or pooling would order the values
    otherwise than the emulator: any layer with that data format is refused."""
    fmt = layer.get_config().get("data_format")
    if fmt not in (None, "channels_last"):
        return f"data_format {fmt!r} is not supported (supported: channels_last)"
    return None


@contextmanager
def hls4ml_errors(where: str) -> Iterator[None]:
    """hls4ml's errors while it parses or converts the model as one line naming the
    project file and, where the error comes from a layer's parser, that layer (hls4ml
    raises bare ``Exception('ERROR: ...')`` from its per-layer handlers: 'Merging more
    than two tensors is not yet supported', 'Unsupported QKeras activation: ...')."""
    import importlib

    handlers = importlib.import_module("hls4ml.converters.keras_v2_to_hls").layer_handlers
    saved = dict(handlers)
    failed: list[dict[str, Any]] = []

    def named(handler: Any) -> Any:
        def parse(keras_layer: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            try:
                return handler(keras_layer, *args, **kwargs)
            except Exception:
                failed.append(keras_layer)
                raise

        return parse

    handlers.update({cls: named(handler) for cls, handler in saved.items()})
    try:
        yield
    except ProjectError:
        raise
    except Exception as exc:
        text = str(exc).removeprefix("ERROR: ")
        why = text if type(exc) is Exception else f"{type(exc).__name__}: {text}"
        if failed:
            layer = failed[0]
            name = (layer.get("config") or {}).get("name", "?")
            why = f"layer {name!r} ({layer.get('class_name', '?')}): {why}"
        raise ProjectError(f"{where}: hls4ml could not convert the model: {why}") from None
    finally:
        handlers.clear()
        handlers.update(saved)


def keras_layer_list(model: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """hls4ml's parsed layers (before its optimizer passes) and the output layer names."""
    import json

    import hls4ml
    import keras

    from fpgaflow.network.quantizers import exact_weight_types
    from fpgaflow.network.weight_names import exact_weight_names

    with exact_weight_types(), exact_weight_names():
        if keras.__version__ > "3.0":
            layer_list, _, outputs, _ = hls4ml.converters.parse_keras_v3_model(model)
        else:
            reader = hls4ml.converters.KerasModelReader(model)
            layer_list, _, outputs, _ = hls4ml.converters.parse_keras_model(json.loads(model.to_json()), reader)
    return layer_list, list(outputs or [])


def layer_catalog(layer_list: list[dict[str, Any]], backend: str, base: dict[str, Any]) -> list[LayerInfo]:
    """Each layer of ``base`` (hls4ml's name-granularity config) with its classes, the
    keys hls4ml reads for it and the variables its QKeras quantizers set -- from the
    model parsed as ``config_from_keras_model`` parses it (``keras_layer_list``) -- and
    the ApplyAlpha layers hls4ml will insert (``alpha_layers``)."""
    import hls4ml

    from fpgaflow.network.alpha_layers import alpha_layers

    hls_backend = hls4ml.backends.get_backend(backend)
    infos = []
    for layer in layer_list:
        cls = layer["class_name"]
        if layer.get("config", {}).get("activation") == "softmax":
            cls = "Softmax"  # as config_from_keras_model
        base_cls = hls4ml.model.layers.layer_map[cls]
        layer_cls = hls_backend.create_layer_class(base_cls)
        keys = {normalised(k): k for k in LAYER_KEYS}
        for attr in layer_cls.expected_attributes:
            if attr.configurable:
                keys[normalised(attr.name)] = attr.name if attr.name.endswith("_t") else attr.config_name
        generated = base["LayerName"].get(layer["name"], {})
        keys.update({normalised(k): k for k in generated})
        variables = dict.fromkeys(generated.get("Precision") or {})
        variables.update(
            (a.name[:-2], None)
            for a in layer_cls.expected_attributes
            if a.configurable and isinstance(a, hls4ml.model.attributes.TypeAttribute)
        )
        quantized = set()
        for key, quantizer in layer.items():
            if "quantizer" in key and quantizer is not None:
                var = key.lower().split("_quantizer")[0]
                quantized.add("result" if var == "activation" else var)
        classes = tuple(dict.fromkeys((base_cls.__name__, layer["class_name"], cls)))
        activation = "softmax" if cls == "Softmax" else str(layer.get("activation") or "").lower()
        infos.append(LayerInfo(layer["name"], classes, keys, tuple(variables), frozenset(quantized), activation))
    return infos + alpha_layers(layer_list)


def hls_config(
    model: Any, settings: NetworkSettings, trace: bool = False, layer_list: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """``layer_list``: the model as ``keras_layer_list`` parses it, when the caller has it."""
    import hls4ml

    from fpgaflow.network.quantizers import exact_weight_types, quantizer_types
    from fpgaflow.network.weight_names import exact_weight_names

    with hls4ml_errors(str(settings.project.file)), exact_weight_types(), exact_weight_names():
        base = hls4ml.utils.config_from_keras_model(model, granularity="name", backend=settings.backend)
    if layer_list is None:
        with hls4ml_errors(str(settings.project.file)):
            layer_list, _ = keras_layer_list(model)
    fixes, fixed = quantizer_types(layer_list, str(settings.project.file))
    for name, right in fixes.items():  # before the user's entries: a LayerName result type still wins
        base["LayerName"][name]["Precision"]["result"] = right
    settings.warnings.extend(f"{settings.project.file}: {n}" for n in fixed if n not in settings.warnings)
    layers = layer_catalog(layer_list, settings.backend, base)
    config, notes = merge_hls_config(base, settings.hls_config, layers, str(settings.project.file))
    check_table_sizes(config, settings.hls_config, layers, str(settings.project.file))
    notes += check_table_types(config, base, settings.hls_config, layers, str(settings.project.file))
    settings.warnings.extend(f"{settings.project.file}: {n}" for n in notes if n not in settings.warnings)
    if trace:
        for entry in config["LayerName"].values():
            entry["Trace"] = True
    return config


def convert(model: Any, settings: NetworkSettings, output_dir: Path, trace: bool = False) -> Any:
    """``hls4ml.converters.convert_from_keras_model`` with the project's settings."""
    check_supported(model, str(settings.project.file))
    with hls4ml_errors(str(settings.project.file)):
        layer_list, outputs = keras_layer_list(model)  # once: the config, then the merged-away layers
    for layer in layer_list:  # the layers hls4ml builds, split-off activations included
        what = f"layer {layer['name']!r} ({layer['class_name']}): its name"
        c_name(str(settings.project.file), what, layer["name"], "rename the layer in the model, ")
    kwargs: dict[str, Any] = {
        "output_dir": str(output_dir),
        "project_name": settings.project_name,
        "backend": settings.backend,
        "io_type": settings.io_type,
        "hls_config": hls_config(model, settings, trace, layer_list),
    }
    if settings.part:
        kwargs["part"] = settings.part
    if settings.clock_period is not None:
        kwargs["clock_period"] = settings.clock_period
    hls_model = _convert(model, settings, kwargs)
    quantizers = {
        layer.name: str(layer.get_config().get("activation"))
        for layer in model.layers
        if type(layer).__name__ == "QActivation"
    }
    dropped = dropped_linear_types(hls_model, layer_list, outputs, quantizers)
    fixable = [d for d in dropped if d.fixable]
    if fixable:  # convert again with the quantizer's type where hls4ml merges the layer
        names = kwargs["hls_config"]["LayerName"]
        for d in fixable:
            for name in d.set_on:
                entry = names.setdefault(name, {})
                have = entry.get("Precision")
                precision = dict(have) if isinstance(have, dict) else ({"default": have} if have else {})
                entry["Precision"] = {**precision, "result": d.asked}
        hls_model = _convert(model, settings, kwargs)
        left = {d.layer for d in dropped_linear_types(hls_model, layer_list, outputs, quantizers)}
        for d in fixable:
            if d.layer not in left:
                note = (
                    f"layer {d.layer!r} ({d.what}) is removed by hls4ml's MergeLinearActivation, which would leave "
                    f"layer {d.stand_in!r}'s automatic type {d.built}: fpgaflow gives {', '.join(map(repr, d.set_on))} "
                    f"the result type {d.built_asked} instead, so the firmware applies {d.layer!r}'s type"
                )
                _warn(settings, note)
        dropped = [d for d in dropped if not d.fixable or d.layer in left]
    for d in dropped:
        _warn(
            settings,
            f"layer {d.layer!r} ({d.what}, type {d.built_asked}) is removed by hls4ml's MergeLinearActivation and "
            f"not applied: the firmware uses layer {d.stand_in!r}'s type {d.built} instead; fpgaflow does not give "
            f"{d.stand_in!r} that type because {d.why}",
        )
    from fpgaflow.network.alpha_layers import alpha_layers, check_alpha_entries
    from fpgaflow.network.quantizers import alpha_notes, table_notes

    user_names = settings.hls_config.get("LayerName") or {}
    notes = check_alpha_entries(hls_model, settings.hls_config, alpha_layers(layer_list), str(settings.project.file))
    for note in notes + table_notes(hls_model, layer_list) + alpha_notes(hls_model, layer_list, user_names):
        _warn(settings, note)
    _normalise_softmax(hls_model)
    return hls_model


def _warn(settings: NetworkSettings, note: str) -> None:
    note = f"{settings.project.file}: {note}"
    if note not in settings.warnings:
        settings.warnings.append(note)


def _convert(model: Any, settings: NetworkSettings, kwargs: dict[str, Any]) -> Any:
    import hls4ml

    from fpgaflow.network.bn_thresholds import qkeras_thresholds
    from fpgaflow.network.folding import qkeras_folded_convolutions
    from fpgaflow.network.quantizers import exact_alpha_results, exact_weight_types, quantized_batchnorm_parameters
    from fpgaflow.network.weight_names import exact_weight_names

    with hls4ml_errors(str(settings.project.file)):
        with (
            exact_weight_types(),
            exact_alpha_results(),
            exact_weight_names(),
            quantized_batchnorm_parameters(model) as notes,
            qkeras_folded_convolutions(model) as folded,
            qkeras_thresholds(str(settings.project.file)) as thresholds,
        ):
            # a copy: hls4ml replaces an ApplyAlpha's LayerName entry in the dict it is given
            hls_config = copy.deepcopy(kwargs["hls_config"])
            hls_model = hls4ml.converters.convert_from_keras_model(model, **{**kwargs, "hls_config": hls_config})
    for note in notes + folded + thresholds:
        _warn(settings, note)
    return hls_model


@dataclass
class DroppedType:
    """A linear activation with its own result type (a QActivation's quantized_bits, or a
    LayerName entry) that hls4ml removed, leaving the type of the layer it merged into."""

    layer: str
    what: str  # "QActivation quantized_bits(6,2,alpha=1)" or "linear activation"
    asked: str  # the type as hls4ml's config spells it
    built_asked: str  # the same, as sim.fixed spells it
    stand_in: str  # the graph layer whose output replaces it
    built: str  # that layer's result type
    set_on: tuple[str, ...]  # the layers to give ``asked`` so that the firmware applies it
    why: str  # why fpgaflow does not, when it does not ('' when fixable)

    @property
    def fixable(self) -> bool:
        return not self.why


def dropped_linear_types(
    hls_model: Any, layer_list: list[dict[str, Any]], outputs: list[str], quantizers: dict[str, str]
) -> list[DroppedType]:
    """hls4ml 1.3's MergeLinearActivation removes a linear Activation whose parent
    (Dense, Conv, BatchNorm, Activation) has an automatic result type, copying only a
    QONNX ``quantizer``: for a QKeras ``QActivation(quantized_bits(...))`` the firmware
    keeps the parent's (wide) type and the quantization is not done.  Each such layer
    whose type the firmware's stand-in does not have; fixable when every layer between
    (the stand-in and removed linear activations) feeds only the next one."""
    from fpgaflow.network.types import result_type

    graph = {layer.name: layer for layer in hls_model.get_layers()}
    names = hls_model.config.config.get("HLSConfig", {}).get("LayerName") or {}
    by_name = {layer["name"]: layer for layer in layer_list}
    inputs: dict[str, list[str]] = {}
    readers: dict[str, int] = dict.fromkeys(outputs, 1)
    previous = None
    for layer in layer_list:
        inputs[layer["name"]] = list(layer.get("inputs") or ([previous] if previous else []))
        for name in inputs[layer["name"]]:
            readers[name] = readers.get(name, 0) + 1
        previous = layer["name"]
    found = []
    for layer in layer_list:
        name = layer["name"]
        if name in graph or layer["class_name"] != "Activation" or layer.get("activation") != "linear":
            continue
        precision = (names.get(name) or {}).get("Precision")
        asked = precision if isinstance(precision, str) else (precision or {}).get("result")
        if not isinstance(asked, str) or asked == "auto" or not inputs[name]:
            continue
        chain, up = [], inputs[name][0]
        while up not in graph and inputs.get(up):
            chain.append(up)
            up = inputs[up][0]
        if up not in graph:
            continue
        built = result_type(graph[up])
        if FixedType.parse(built) == FixedType.parse(asked):
            continue
        what = f"QActivation {quantizers[name]}" if name in quantizers else "linear activation"
        why = ""
        folded = [
            c for c in chain if by_name[c]["class_name"] != "Activation" or by_name[c].get("activation") != "linear"
        ]
        if folded:
            why = f"hls4ml folds {', '.join(map(repr, folded))} between them"
        elif any(readers.get(n, 0) != 1 for n in (up, *chain)):
            why = f"{up!r}'s output also feeds other layers, which would then read the quantized values"
        found.append(
            DroppedType(name, what, asked, str(FixedType.parse(asked)), up, built, (up, *reversed(chain)), why)
        )
    return found


def _normalise_softmax(hls_model: Any) -> None:
    """A Keras ``layers.Softmax`` reaches hls4ml 1.3 with activation 'Softmax' (its class
    name): the config struct is then ``Softmax_configN`` while the call names
    ``softmax_configN``, and the project does not compile.  Spell it as an
    ``Activation('softmax')`` layer has it and regenerate the layer's C++."""
    from hls4ml.model.optimizer import get_optimizer

    backend = hls_model.config.backend
    for layer in hls_model.get_layers():
        if layer.class_name == "Softmax" and layer.get_attr("activation") != "softmax":
            layer.set_attr("activation", "softmax")
            for name in backend._get_layer_templates():  # hls4ml 1.3's config and call templates
                template = get_optimizer(name)
                if template.match(layer):
                    template.transform(hls_model, layer)
