"""The scaling applied to raw features before they enter the firmware, as the
manifest's optional top-level ``preprocessing`` block describes it::

    "preprocessing": {"kind": "affine", "formula": "(x - offset) / scale",
                      "offset": "preprocessing_offset", "scale": "preprocessing_scale",
                      "features": [...], "fill_non_finite": 0.0}

``offset``/``scale`` name arrays in the manifest's npz (one value per feature);
``fill_non_finite`` (optional) replaces NaN/inf first, as the training data policy
did.  Training fitted these numbers, so the emulator, the board and the node all
scale exactly as training did, in float64.  NumPy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.manifest import Manifest, ManifestError

KINDS = ("affine",)


def has_preprocessing(manifest: Manifest) -> bool:
    return manifest.meta.get("preprocessing") is not None


def apply_preprocessing(manifest: Manifest, x: np.ndarray) -> np.ndarray:
    """``x`` (samples, features) scaled by the manifest's ``preprocessing`` block;
    ``x`` as float64 unchanged when the manifest has none."""
    x = np.asarray(x, dtype=np.float64)
    block: Any = manifest.meta.get("preprocessing")
    if block is None:
        return x
    kind = manifest.field("kind", where=block) if isinstance(block, dict) else None
    if kind not in KINDS:
        raise ManifestError(f"{manifest.path}: preprocessing kind {kind!r} is not one of {KINDS}")
    offset = manifest.array(manifest.field("offset", where=block)).astype(np.float64)
    scale = manifest.array(manifest.field("scale", where=block)).astype(np.float64)
    n_features = x.shape[-1] if x.ndim else 0
    if offset.shape != (n_features,) or scale.shape != (n_features,):
        raise ManifestError(
            f"{manifest.path}: preprocessing is for {offset.size} features, the input has {n_features} "
            f"per sample (shape {x.shape})"
        )
    fill = block.get("fill_non_finite")
    if fill is not None:
        x = np.where(np.isfinite(x), x, float(fill))
    return (x - offset) / scale
