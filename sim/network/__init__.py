"""The network emulator: runs a network manifest layer by layer on raw integers.

``Network(manifest)`` builds one object per manifest layer through the layer
registry (``sim.network.registry``) and evaluates them in the manifest's order (the
order of hls4ml's graph after its optimizer passes), each on a chunk of the batch
(``sim.network.parallel``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from sim.emulator import Prediction, sample_rows
from sim.fixed import Fixed, FixedType
from sim.manifest import Manifest, ManifestError
from sim.network.casts import as_int, from_float
from sim.network.mac import AccumulatorPerInputType
from sim.network.parallel import chunked, prepare
from sim.network.registry import Layer, layer_class
from sim.preprocessing import apply_preprocessing

__all__ = ["Network"]


def _int64(f: Fixed) -> Fixed:
    return f if f.raw.dtype == np.int64 else Fixed(as_int(f.raw), f.type)


class Network:
    """Bit-exact emulator of one hls4ml firmware (satisfies ``sim.emulator.Emulator``)."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.id = manifest.id
        specs = manifest.field("layers")
        if not specs:
            raise ManifestError(f"{manifest.path}: network manifest lists no layers")
        self.layers: list[Layer] = []
        for i, spec in enumerate(specs):
            for key in ("name", "kind", "inputs", "output_shape", "result_type"):
                if key not in spec:
                    raise ManifestError(f"{manifest.path}: layer {i} ({spec.get('name', '?')}) has no field {key!r}")
            arrays = {short: manifest.array(full) for short, full in spec.get("arrays", {}).items()}
            if "stream" not in spec and "io_type" in manifest.meta:
                # entries written before activation and softmax carried it: the network's io type
                spec = {**spec, "stream": manifest.meta["io_type"] == "io_stream"}
            self.layers.append(layer_class(spec["kind"], spec["name"])(spec, arrays))
        first = self.layers[0]
        if first.spec["kind"] != "input":
            raise ManifestError(f"{manifest.path}: the first layer must be the input, got {first.spec['kind']!r}")
        n_inputs = sum(1 for layer in self.layers if not layer.spec["inputs"])
        if n_inputs != 1:
            raise ManifestError(f"{manifest.path}: networks with {n_inputs} inputs are not supported (one input)")
        self.input_name = first.name
        last_use: dict[str, str] = {}
        for layer in self.layers:
            for name in layer.spec["inputs"]:
                last_use[name] = layer.name
        self._free_after: dict[str, list[str]] = {}
        for name, user in last_use.items():
            self._free_after.setdefault(user, []).append(name)
        self.output_name = manifest.field("output") if "output" in manifest.meta else self.layers[-1].name
        by_name = {layer.name: layer for layer in self.layers}
        if self.output_name not in by_name:
            raise ManifestError(f"{manifest.path}: output layer {self.output_name!r} is not among the layers")
        self.input_shape = tuple(first.output_shape)
        self.input_type: FixedType = first.result_type
        self.output_shape = tuple(by_name[self.output_name].output_shape)
        self.output_type: FixedType = by_name[self.output_name].result_type
        # every multiply-accumulate built now, for the type its producer gives it: one this
        # emulator cannot replay is refused at load (and by synth), not at the first prediction
        for layer in self.layers:
            if isinstance(layer, AccumulatorPerInputType):
                layer.accumulator(by_name[layer.spec["inputs"][0]].result_type)
        # predict only: a layer that takes scratch (relu) may overwrite its input where that
        # is a weighted layer's output (a fresh array, never a view of another value) that
        # nothing else reads and that is not the network's output
        readers = Counter(name for layer in self.layers for name in layer.spec["inputs"])
        fresh = {layer.name for layer in self.layers if isinstance(layer, AccumulatorPerInputType)}
        self._scratch_input = {
            layer.name
            for layer in self.layers
            if getattr(layer, "takes_scratch", False)
            and len(layer.spec["inputs"]) == 1
            and layer.spec["inputs"][0] in fresh
            and readers[layer.spec["inputs"][0]] == 1
            and layer.spec["inputs"][0] != self.output_name
        }
        prepare()

    # ---------------------------------------------------------------- running
    def _input_raw(self, x: np.ndarray) -> np.ndarray:
        """``x`` as ``(samples, *input_shape)`` (``sim.emulator.sample_rows``: flat rows too)."""
        return sample_rows(x, self.input_shape)

    def _run(self, x_raw: np.ndarray, keep: bool) -> dict[str, Fixed]:
        x_raw = self._input_raw(x_raw)
        values: dict[str, Fixed] = {}
        current = Fixed(np.asarray(x_raw, dtype=np.int64), self.input_type)
        for layer in self.layers:
            inputs = [values[name] for name in layer.spec["inputs"]] if layer.spec["inputs"] else [current]
            if not layer.float_input:
                inputs = [_int64(f) for f in inputs]
            if not keep and layer.name in self._scratch_input:
                values[layer.name] = layer.forward(*inputs, scratch=True)
            else:
                values[layer.name] = layer.forward(*inputs)
            if not keep:
                for name in self._free_after.get(layer.name, ()):
                    del values[name]
        # raws leave the emulator as int64 whatever domain they were computed in
        return {name: _int64(f) for name, f in values.items()} if keep else values

    def _output_raw(self, x_raw: np.ndarray) -> np.ndarray:
        return as_int(self._run(x_raw, keep=False)[self.output_name].raw)

    def predict_raw(self, x_raw: np.ndarray) -> Prediction:
        x_raw = self._input_raw(np.asarray(x_raw))
        raw = chunked(x_raw, self._output_raw, self.output_shape)
        return Prediction(raw, self.output_type.from_raw(raw))

    def preprocess(self, x: np.ndarray) -> np.ndarray:
        """Raw features scaled as in training (the manifest's ``preprocessing``; identity without one)."""
        return apply_preprocessing(self.manifest, x)

    def predict(self, x: np.ndarray) -> Prediction:
        """Outputs for raw features: preprocessed, then cast into the input type as the port does."""
        self._input_raw(x)  # its shape named before the scaling reads it
        return self.predict_scaled(self.preprocess(x))

    def predict_scaled(self, x: np.ndarray) -> Prediction:
        """Outputs for features already preprocessed (``preprocess``): cast into the input
        type as the port does.  For a caller that checks the scaled values first."""
        x = self._input_raw(x)
        raw = chunked(
            x,
            lambda part: self._output_raw(from_float(part, self.input_type)),
            self.output_shape,
        )
        return Prediction(raw, self.output_type.from_raw(raw))

    def trace(self, x: np.ndarray) -> dict[str, Prediction]:
        """Every layer's output (raw and values), keyed by hls4ml's layer name, for
        inputs as the firmware's port takes them (already preprocessed: see ``preprocess``)."""
        x = self._input_raw(np.asarray(x, dtype=np.float64))
        outs = self._run(from_float(x, self.input_type), keep=True)
        return {name: Prediction(f.raw, f.values) for name, f in outs.items()}

    def describe(self) -> list[dict[str, Any]]:
        return [dict(layer.spec) for layer in self.layers]
