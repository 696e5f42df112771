"""Manifest exporters, one module per layer family (mirror of ``sim.network.layers``).

An exporter turns one layer of hls4ml's graph (after its optimizer passes) into the
layer's manifest entry and constant arrays::

    @exporter("Dense", keras=("Dense", "QDense"))
    def export_dense(layer, ctx: ExportContext) -> dict: ...

``hls4ml`` names the graph classes it handles, ``keras`` the Keras/QKeras classes that
become them (checked before conversion so that an unsupported layer is reported by
name).  Every module in this package is imported on first use: a new family is a new
module here plus one under ``sim/network/layers/``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Exporter = Callable[[Any, "ExportContext"], dict]

EXPORTERS: dict[str, Exporter] = {}
KERAS_CLASSES: set[str] = set()
KerasCheck = Callable[[Any], "str | None"]
KERAS_CHECKS: dict[str, list[KerasCheck]] = {}
_loaded = False


def exporter(*hls_classes: str, keras: tuple[str, ...] = ()) -> Callable[[Exporter], Exporter]:
    def deco(fn: Exporter) -> Exporter:
        for name in hls_classes:
            EXPORTERS[name] = fn
        KERAS_CLASSES.update(keras)
        return fn

    return deco


def keras_check(*keras_classes: str) -> Callable[[KerasCheck], KerasCheck]:
    """A check on a Keras layer before conversion, for options hls4ml would silently
    ignore (e.g. dilation): it returns why the layer is refused, or None."""

    def deco(fn: KerasCheck) -> KerasCheck:
        for name in keras_classes:
            KERAS_CHECKS.setdefault(name, []).append(fn)
        return fn

    return deco


def load_all() -> None:
    global _loaded
    if not _loaded:
        for info in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True


@dataclass
class ExportContext:
    """What an exporter may use: the layer's arrays and the graph's wiring."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    io_type: str = "io_parallel"
    warnings: list[str] = field(default_factory=list)  # for synth's output and report

    def add_array(self, layer: Any, short: str, raw: np.ndarray, spec: dict) -> None:
        full = f"{layer.name}/{short}"
        self.arrays[full] = np.ascontiguousarray(np.asarray(raw, dtype=np.int64))
        spec.setdefault("arrays", {})[short] = full


def written_raw(var: Any, type_text: str) -> np.ndarray:
    """A weight variable as the firmware holds it: hls4ml prints each value with the
    type's number of decimals into the weights header; the C++ literal is then cast
    into the weight type.  Reproduce exactly that (same strings, same cast)."""
    from sim.fixed import FixedType

    values = np.array([float(text) for text in var], dtype=np.float64).reshape(var.data.shape)
    return FixedType.parse(type_text).to_raw(values)


def config_constants(layer: Any) -> dict[str, str]:
    """``static const ... name = value;`` and ``typedef T name;`` from the layer's
    generated C++ config struct: the values the firmware is compiled with."""
    import re

    text = layer.get_attr("config_cpp") or ""
    out: dict[str, str] = {}
    for m in re.finditer(r"static\s+(?:const|constexpr)\s+[\w:<>, ]+?\s+(\w+)\s*=\s*([^;]+);", text):
        out[m.group(1)] = m.group(2).strip()
    for m in re.finditer(r"typedef\s+(.+?)\s+(\w+)\s*;", text):
        out[m.group(2)] = m.group(1).strip()
    return out
