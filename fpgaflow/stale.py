"""Firmware older than its project: the model file, the input scaling or (BDT) the
backend and precisions changed since ``fpgaflow synth``.  One check: ``verify`` and
``profile`` refuse on it, ``emulate`` and ``board`` warn (they run the firmware as
built, which is what a board holds until it is built again)."""

from __future__ import annotations

import sys
from pathlib import Path

from fpgaflow.project import Project
from sim.manifest import Manifest, read_manifest


def refuse_stale_firmware(project: Project, manifest: Manifest) -> None:
    """A ``ProjectError`` (or ``DataError``) naming the file changed since synth wrote ``manifest``."""
    if project.kind == "network":
        from fpgaflow.data.scaling import refuse_stale_preprocessing
        from fpgaflow.network.verify import refuse_changed_model

        refuse_changed_model(project, manifest.meta.get("source_sha256"))
        refuse_stale_preprocessing(project, manifest)
    else:
        from fpgaflow.bdt.config import read_config
        from fpgaflow.bdt.verify import refuse_changed_since_synth

        refuse_changed_since_synth(read_config(project), manifest.meta)


def warn_if_stale(project: Project, manifest_dir: Path, command: str) -> None:
    """One line on stderr when the firmware in ``manifest_dir`` is older than ``project``:
    ``emulate`` printed its outputs with no word where ``verify`` refused."""
    try:
        refuse_stale_firmware(project, read_manifest(manifest_dir))
    except ValueError as exc:  # ProjectError, DataError: the message names the file
        print(f"fpgaflow {command}: warning: {exc} (running the firmware as synthesized)", file=sys.stderr)
