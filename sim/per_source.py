"""Several firmwares behind one node: the emulator of each source's firmware, with the
fragments of all sources in one padded layout.

A node fed by boards of different projects (a network board and a BDT board, say)
builds events whose fragments differ in size; on the wire every board pads its
fragments to the node's layout (the largest input and output counts, the widest raw
integer; ``fpgaflow board --layout``).  ``PerSource`` is what the node's CPU fallback
runs then: ``predict_raw_sources`` takes padded raw inputs with each row's source index
and returns padded raw outputs, each row computed by its own source's firmware.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.emulator import Prediction


class PerSource:
    def __init__(self, emulators: list[Any]):
        if not emulators:
            raise ValueError("PerSource needs one emulator per source")
        self.emulators = emulators
        self.n_in = [int(np.prod(e.input_shape)) for e in emulators]
        self.n_out = [int(np.prod(e.output_shape)) for e in emulators]
        self.input_shape = (max(self.n_in),)
        self.output_shape = (max(self.n_out),)
        # the widest types: what the padded raw integers on the wire must hold
        self.input_type = max((e.input_type for e in emulators), key=lambda t: t.width + (not t.signed))
        self.output_type = max((e.output_type for e in emulators), key=lambda t: t.width + (not t.signed))
        self.id = ""  # no single firmware: fragments carry their own manifest ids
        self.ids = [e.id for e in emulators]

    def predict_raw_sources(self, x_raw: np.ndarray, sources: np.ndarray) -> Prediction:
        """Raw outputs (padded with zeros) for padded raw inputs of the given source indices."""
        x_raw = np.asarray(x_raw, np.int64).reshape(len(x_raw), -1)
        sources = np.asarray(sources)
        out = np.zeros((len(x_raw), self.output_shape[0]), np.int64)
        values = np.zeros(out.shape, np.float64)
        for s in np.unique(sources):
            rows = np.flatnonzero(sources == s)
            e = self.emulators[int(s)]
            x = x_raw[rows, : self.n_in[s]].reshape((len(rows),) + tuple(e.input_shape))
            pred = e.predict_raw(x)
            out[rows, : self.n_out[s]] = np.asarray(pred.raw).reshape(len(rows), -1)
            values[rows, : self.n_out[s]] = np.asarray(pred.values).reshape(len(rows), -1)
        return Prediction(out, values)

    def predict_raw(self, x_raw: np.ndarray) -> Prediction:
        raise TypeError("a node with a firmware per source needs the source of each input: use predict_raw_sources")
