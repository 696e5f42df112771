"""The layer registry: manifest ``kind`` -> the class that computes that layer.

Each layer family lives in its own module under ``sim.network.layers`` and registers
its kinds with ``@register("kind", ...)``.  Every module in that package is imported
on first use, so a new family (Conv2D, pooling, merge...) is added by dropping a new
module there: nothing else changes.

A layer class is built from its manifest entry and computes one layer on a whole
batch of raw integers::

    @register("my_kind")
    class MyLayer(Layer):
        def __init__(self, spec, arrays): ...      # spec: the layer's JSON entry
        def forward(self, *inputs: Fixed) -> Fixed: ...

``spec`` always has ``name``, ``kind``, ``inputs`` (names of the layers feeding it),
``output_shape`` (one sample) and ``result_type``; the rest is the family's own
(documented in docs/manifest.md).  ``arrays`` holds the layer's constant arrays, keyed
by the short names the exporter gave them (e.g. ``weight``, ``bias``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

import numpy as np

from sim.fixed import Fixed, FixedType
from sim.manifest import ManifestError


class Layer:
    """Base class: keeps the manifest entry and the parsed result type.

    ``float_input``: the layer takes inputs whose raw integers are held in float64
    (the float64 domain of ``sim.network.casts``); others get int64 raws."""

    float_input = False

    def __init__(self, spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.result_type = FixedType.parse(spec["result_type"])
        self.output_shape = tuple(spec["output_shape"])

    def type_of(self, key: str) -> FixedType:
        """A fixed-point type named in the spec, with an error naming the layer."""
        try:
            return FixedType.parse(self.spec[key])
        except KeyError:
            raise ManifestError(f"layer {self.name!r} ({self.spec['kind']}): missing type field {key!r}") from None

    def param(self, key: str) -> Any:
        try:
            return self.spec[key]
        except KeyError:
            raise ManifestError(f"layer {self.name!r} ({self.spec['kind']}): missing field {key!r}") from None

    def forward(self, *inputs: Fixed) -> Fixed:  # pragma: no cover - interface
        raise NotImplementedError


LAYER_KINDS: dict[str, type[Layer]] = {}
_loaded = False


def register(*kinds: str) -> Callable[[type[Layer]], type[Layer]]:
    def deco(cls: type[Layer]) -> type[Layer]:
        for kind in kinds:
            if kind in LAYER_KINDS and LAYER_KINDS[kind] is not cls:
                raise RuntimeError(
                    f"layer kind {kind!r} registered twice ({LAYER_KINDS[kind].__name__}, {cls.__name__})"
                )
            LAYER_KINDS[kind] = cls
        return cls

    return deco


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    import sim.network.layers as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{info.name}")
    _loaded = True


def layer_class(kind: str, name: str) -> type[Layer]:
    _load_all()
    try:
        return LAYER_KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(LAYER_KINDS))
        raise ManifestError(
            f"layer {name!r}: kind {kind!r} is not supported by this emulator (supported: {known})"
        ) from None
