"""Firmware older than its project: the model file, the input scaling, (network) the
settings that shape the firmware (``HLSConfig``, ``IOType``, ``Backend``, ``Part``,
``ClockPeriod``, ``ProjectName``) or (BDT) the backend and precisions changed since
``fpgaflow synth``.  One check: ``verify`` and ``profile`` refuse on it, ``emulate`` and
``board`` warn (they run the firmware as built, which is what a board holds until it is
built again)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from fpgaflow.project import Project
from sim.manifest import MANIFEST_FILE, Manifest, ManifestError


def refuse_stale_firmware(project: Project, manifest: Manifest, say: Callable[[str], None] | None = None) -> None:
    """A ``ProjectError`` (or ``DataError``) naming the file, or the setting, changed since
    synth wrote ``manifest``; ``say``: where to tell what could not be compared."""
    if project.kind == "network":
        from fpgaflow.data.scaling import refuse_stale_preprocessing
        from fpgaflow.network.verify import refuse_changed_model

        refuse_changed_model(project, manifest.meta.get("source_sha256"))
        _refuse_changed_network_settings(project, manifest, say)
        refuse_stale_preprocessing(project, manifest)
    else:
        from fpgaflow.bdt.config import read_config
        from fpgaflow.bdt.verify import refuse_changed_since_synth

        refuse_changed_since_synth(read_config(project), manifest.meta)


def _refuse_changed_network_settings(project: Project, manifest: Manifest, say: Callable[[str], None] | None) -> None:
    """The project file's firmware settings against the digests synth recorded.  A manifest
    written before synth recorded them loads as before: nothing to compare, no alarm;
    ``say`` (verify, profile) is told so, emulate and board stay quiet."""
    from fpgaflow.network.config import read_settings
    from fpgaflow.network.firmware_settings import refuse_changed_settings

    recorded = manifest.meta.get("settings_sha256")
    if recorded is None:
        if say is not None:
            say(
                f"note: {manifest.path / MANIFEST_FILE} has no settings_sha256 (written by an older synth): edits to "
                f"{project.file}'s HLSConfig, IOType, Backend, Part, ClockPeriod or ProjectName since then cannot be "
                f"detected; re-run `fpgaflow synth {project.file}` to record them"
            )
        return
    if not isinstance(recorded, dict):
        raise ManifestError(f"{manifest.path / MANIFEST_FILE}: field 'settings_sha256' is not a mapping")
    refuse_changed_settings(read_settings(project), recorded)


def warn_if_stale(project: Project, manifest: Manifest, command: str) -> None:
    """One line on stderr when the firmware ``manifest`` describes is older than
    ``project``: ``emulate`` printed its outputs with no word where ``verify`` refused."""
    try:
        refuse_stale_firmware(project, manifest)
    except ValueError as exc:  # ProjectError, DataError, ManifestError: the message names the file
        print(f"fpgaflow {command}: warning: {exc} (running the firmware as synthesized)", file=sys.stderr)
