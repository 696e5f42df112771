"""Bit-accurate emulator of fpgaflow firmware: NumPy only (pyzmq for the board stand-in).

``sim.load(path)`` reads a firmware manifest exported by ``fpgaflow synth`` and returns
an emulator whose ``predict`` reproduces the firmware's fixed-point outputs bit for
bit (``sim.from_manifest``: of a manifest already read).  Nothing here imports
TensorFlow, hls4ml, conifer or the front end.
"""

from __future__ import annotations

import os
from typing import Any

from sim.manifest import Manifest, ManifestError, read_manifest

__all__ = ["load", "from_manifest", "ManifestError"]


def load(path: str | os.PathLike) -> Any:
    """The emulator for the manifest at ``path`` (a network or a BDT)."""
    return from_manifest(read_manifest(path))


def from_manifest(manifest: Manifest) -> Any:
    """The emulator for a manifest already read (its caller checked it against the
    project: reading it again would hash its arrays again, and could read another one)."""
    if manifest.kind == "network":
        from sim.network import Network

        return Network(manifest)
    from sim.bdt import BDT

    return BDT(manifest)
