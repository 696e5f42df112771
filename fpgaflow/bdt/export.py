"""The BDT manifest: the firmware conifer wrote, as arrays and types, for ``sim.bdt``.

Trees are taken from conifer's backend model after its own processing (padding for
the VHDL and rolled HLS code), thresholds and scores as the raw integers the firmware
holds: for VHDL the very integers conifer wrote into ``Arrays*.vhd`` (its compiled
``ap_fixed`` converter), for HLS the ``double`` constructor of each type applied to
the literals conifer writes (``str(float)``, which round-trips exactly)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fpgaflow.bdt.config import BDTConfig, firmware_settings
from fpgaflow.bdt.load import SourceModel
from fpgaflow.stale import settings_digests
from sim.fixed import FixedType
from sim.manifest import write_manifest

INIT_PREDICT_POSITION = {"balanced": "after", "pairwise": "last", "sequential": "first"}


def reduction(cfg: BDTConfig) -> str:
    if cfg.backend == "vhdl":
        return "pairwise"  # AddReduce.vhd: adjacent pairs, init_predict as the last operand
    return "balanced" if cfg.unroll else "sequential"  # BDT_unrolled.h reduce<> / BDT_rolled.h loop


def firmware_types(cfg: BDTConfig) -> dict[str, FixedType | None]:
    t = cfg.types
    if cfg.backend == "vhdl":
        # numeric_std signed arithmetic: the input precision's bits, wrapping, no weights
        sum_type = FixedType(t["input"].width, t["input"].int_bits)
        return {"input": t["input"], "threshold": t["input"], "score": t["input"], "weight": None, "sum": sum_type}
    return {**t, "sum": t["score"]}


def _arrays(model: Any, cfg: BDTConfig, types: dict[str, FixedType | None]) -> dict[str, np.ndarray]:
    trees = model.trees
    n_trees, n_outputs = len(trees), len(trees[0]) if trees else 0
    width = max((len(t.feature) for ts in trees for t in ts), default=1)
    shape = (n_trees, n_outputs, width)
    feature = np.full(shape, -1, dtype=np.int32)
    left = np.full(shape, -1, dtype=np.int32)
    right = np.full(shape, -1, dtype=np.int32)
    thr_raw = np.zeros(shape, dtype=np.int64)
    val_raw = np.zeros(shape, dtype=np.int64)
    thr = np.zeros(shape)
    val = np.zeros(shape)
    n_nodes = np.zeros(shape[:2], dtype=np.int32)
    vhdl = cfg.backend == "vhdl"
    for i, ts in enumerate(trees):
        for k, t in enumerate(ts):
            n = len(t.feature)
            n_nodes[i, k] = n
            feature[i, k, :n] = t.feature
            left[i, k, :n] = t.children_left
            right[i, k, :n] = t.children_right
            thr[i, k, :n] = t.threshold
            val[i, k, :n] = t.value
            if vhdl:
                thr_raw[i, k, :n] = t.threshold_int
                val_raw[i, k, :n] = t.value_int
            else:
                thr_raw[i, k, :n] = types["threshold"].to_raw(np.asarray(t.threshold, dtype=np.float64))
                val_raw[i, k, :n] = types["score"].to_raw(np.asarray(t.value, dtype=np.float64))
    init = [float(v) for v in model.init_predict][:n_outputs]
    if vhdl:
        convert = model._fp_converter.to_int
        init_raw = np.asarray([convert(np.float64(v)) for v in init], dtype=np.int64)
        norm_raw = np.asarray(convert(np.float64(model.norm)), dtype=np.int64)
    else:
        init_raw = types["score"].to_raw(np.asarray(init, dtype=np.float64)).astype(np.int64)
        norm_raw = np.asarray(types["score"].to_raw(float(model.norm)), dtype=np.int64)
    return {
        "feature": feature,
        "children_left": left,
        "children_right": right,
        "threshold_raw": thr_raw,
        "value_raw": val_raw,
        "threshold": thr,
        "value": val,
        "n_nodes": n_nodes,
        "init_predict_raw": init_raw,
        "norm_raw": norm_raw,
    }


def export_manifest(model: Any, source: SourceModel, cfg: BDTConfig, directory: Path) -> str:
    """Write ``build/emulator``; returns the manifest id."""
    types = firmware_types(cfg)
    arrays = _arrays(model, cfg, types)
    order = reduction(cfg)
    normalise = True if cfg.backend != "vhdl" else int(arrays["norm_raw"]) != 1  # BDT.vhd: "normalisation = 1"
    ens = source.ensemble
    meta = {
        "kind": "bdt",
        "name": cfg.project_name,
        "backend": cfg.backend,
        "source": {
            "file": source.path.name,
            "sha256": source.sha256,
            "library": source.library,
            "estimator": source.estimator,
        },
        "n_features": int(ens["n_features"]),
        "n_outputs": int(arrays["n_nodes"].shape[1]),
        "n_trees": int(arrays["n_nodes"].shape[0]),
        "max_depth": int(model.max_depth),
        "splitting_convention": model.splitting_convention,
        "types": {k: (str(v) if v is not None else None) for k, v in types.items()},
        "reduction": {
            "order": order,
            "init_predict": INIT_PREDICT_POSITION[order],
            "normalise": normalise,
        },
        "init_predict": [float(v) for v in model.init_predict][: int(arrays["n_nodes"].shape[1])],
        "norm": float(model.norm),
        "settings_sha256": settings_digests(firmware_settings(cfg)),  # what the stale check compares the file with
    }
    return write_manifest(directory, meta, arrays)
