"""Firmware older than its project: the model file, the input scaling, (network) the
settings that shape the firmware (``HLSConfig``, ``IOType``, ``Backend``, ``Part``,
``ClockPeriod``, ``ProjectName``) or (BDT) the backend, precisions, ``ProjectName``,
``XilinxPart``, ``ClockPeriod`` and ``Unroll`` changed since ``fpgaflow synth``.  One
check: ``verify`` and ``profile`` refuse on it, ``emulate`` and ``board`` warn (they run
the firmware as built, which is what a board holds until it is built again).

The settings that shape the firmware are recorded by synth as one digest per setting
(its canonical path -> ``setting_digest`` of its canonical value) in the manifest's
``settings_sha256``; the check names the settings whose digest differs
(``changed_settings``)."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from typing import Any

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

        cfg = read_config(project)
        recorded = _recorded_settings(project, manifest, "ProjectName, XilinxPart, ClockPeriod or Unroll", say)
        refuse_changed_since_synth(cfg, manifest.meta, recorded)


def _refuse_changed_network_settings(project: Project, manifest: Manifest, say: Callable[[str], None] | None) -> None:
    """The project file's firmware settings against the digests synth recorded."""
    from fpgaflow.network.config import read_settings
    from fpgaflow.network.firmware_settings import refuse_changed_settings

    recorded = _recorded_settings(
        project, manifest, "HLSConfig, IOType, Backend, Part, ClockPeriod or ProjectName", say
    )
    if recorded is not None:
        refuse_changed_settings(read_settings(project), recorded)


def _recorded_settings(
    project: Project, manifest: Manifest, keys: str, say: Callable[[str], None] | None
) -> dict[str, str] | None:
    """The manifest's ``settings_sha256``.  None for a manifest written before synth
    recorded them, which loads as before: nothing to compare, no alarm; ``say`` (verify,
    profile) is told that edits to ``keys`` cannot be checked, emulate and board stay quiet."""
    recorded = manifest.meta.get("settings_sha256")
    if recorded is None:
        if say is not None:
            say(
                f"note: {manifest.path / MANIFEST_FILE} has no settings_sha256 (written by an older synth): edits to "
                f"{project.file}'s {keys} since then cannot be detected; re-run `{project.command('synth')}` to "
                "record them"
            )
        return None
    if not isinstance(recorded, dict):
        raise ManifestError(f"{manifest.path / MANIFEST_FILE}: field 'settings_sha256' is not a mapping")
    return recorded


def setting_digest(value: Any) -> str:
    """One setting's digest, as ``settings_sha256`` holds it (``value`` canonical)."""
    text = json.dumps(value, sort_keys=True, default=str)  # default: a YAML date, say
    return hashlib.sha256(text.encode()).hexdigest()


def settings_digests(values: dict[str, Any]) -> dict[str, str]:
    """What synth records in ``settings_sha256``: canonical path -> canonical value, digested."""
    return {path: setting_digest(value) for path, value in sorted(values.items())}


def changed_settings(recorded: dict[str, str], now: dict[str, str]) -> list[str]:
    """The canonical paths (sorted) whose digest ``now`` (``settings_digests`` of the
    project file's settings) is not the one synth ``recorded`` (``settings_sha256``).  A
    path recorded and now absent, or now set and not recorded, is a change."""
    return sorted(path for path in recorded.keys() | now.keys() if recorded.get(path) != now.get(path))


def warn_if_stale(project: Project, manifest: Manifest, command: str) -> None:
    """One line on stderr when the firmware ``manifest`` describes is older than
    ``project``: ``emulate`` printed its outputs with no word where ``verify`` refused."""
    try:
        refuse_stale_firmware(project, manifest)
    except ValueError as exc:  # ProjectError, DataError, ManifestError: the message names the file
        print(f"fpgaflow {command}: warning: {exc} (running the firmware as synthesized)", file=sys.stderr)
