"""Bit-accurate emulator of fpgaflow firmware: NumPy only (pyzmq for the board stand-in).

``sim.load(path)`` reads a firmware manifest exported by ``fpgaflow synth`` and returns
an emulator whose ``predict`` reproduces the firmware's fixed-point outputs bit for
bit.  Nothing here imports TensorFlow, hls4ml, conifer or the front end.
"""

from __future__ import annotations

import os
from typing import Any

from sim.manifest import ManifestError, read_manifest

__all__ = ["load", "ManifestError"]


def load(path: str | os.PathLike) -> Any:
    """The emulator for the manifest at ``path`` (a network or a BDT)."""
    manifest = read_manifest(path)
    if manifest.kind == "network":
        from sim.network import Network

        return Network(manifest)
    from sim.bdt import BDT

    return BDT(manifest)
