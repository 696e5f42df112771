"""Keras model -> hls4ml model graph (after hls4ml's optimizer passes) and HLS project."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fpgaflow.network.config import (
    LAYER_KEYS,
    LayerInfo,
    NetworkSettings,
    check_table_sizes,
    merge_hls_config,
    normalised,
)
from fpgaflow.project import ProjectError


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
        for check in KERAS_CHECKS.get(cls, ()):
            why = check(layer)
            if why:
                raise ProjectError(f"{where}: layer {layer.name!r} of type {cls}: {why}")


def layer_catalog(model: Any, backend: str, base: dict[str, Any]) -> list[LayerInfo]:
    """Each layer of ``base`` (hls4ml's name-granularity config) with its classes, the
    keys hls4ml reads for it and the variables its QKeras quantizers set -- parsed as
    ``config_from_keras_model`` parses the model."""
    import json

    import hls4ml
    import keras

    if keras.__version__ > "3.0":
        layer_list, *_ = hls4ml.converters.parse_keras_v3_model(model)
    else:
        reader = hls4ml.converters.KerasModelReader(model)
        layer_list, *_ = hls4ml.converters.parse_keras_model(json.loads(model.to_json()), reader)
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
        infos.append(LayerInfo(layer["name"], classes, keys, tuple(variables), frozenset(quantized)))
    return infos


def hls_config(model: Any, settings: NetworkSettings, trace: bool = False) -> dict[str, Any]:
    import hls4ml

    base = hls4ml.utils.config_from_keras_model(model, granularity="name", backend=settings.backend)
    layers = layer_catalog(model, settings.backend, base)
    config, notes = merge_hls_config(base, settings.hls_config, layers, str(settings.project.file))
    check_table_sizes(config, settings.hls_config, layers, str(settings.project.file))
    settings.warnings.extend(f"{settings.project.file}: {n}" for n in notes if n not in settings.warnings)
    if trace:
        for entry in config["LayerName"].values():
            entry["Trace"] = True
    return config


def convert(model: Any, settings: NetworkSettings, output_dir: Path, trace: bool = False) -> Any:
    """``hls4ml.converters.convert_from_keras_model`` with the project's settings."""
    import hls4ml

    check_supported(model, str(settings.project.file))
    kwargs: dict[str, Any] = {
        "output_dir": str(output_dir),
        "project_name": settings.project_name,
        "backend": settings.backend,
        "io_type": settings.io_type,
        "hls_config": hls_config(model, settings, trace),
    }
    if settings.part:
        kwargs["part"] = settings.part
    if settings.clock_period is not None:
        kwargs["clock_period"] = settings.clock_period
    try:
        hls_model = hls4ml.converters.convert_from_keras_model(model, **kwargs)
    except ProjectError:
        raise
    except Exception as exc:
        raise ProjectError(
            f"{settings.project.file}: hls4ml could not convert the model: {type(exc).__name__}: {exc}"
        ) from None
    _normalise_softmax(hls_model)
    return hls_model


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
