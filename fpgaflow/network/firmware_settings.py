"""The project-file settings that shape a network's firmware, recorded by ``synth`` in
the manifest (``settings_sha256``) and compared by the stale check (``fpgaflow.stale``):
a ClockPeriod or Part edited after synth passed ``verify`` without a word, a precision
was refused only once hls4ml had converted the model again (naming a layer, not the
key), and ``emulate`` ran the old firmware silently.

In the record, because each reaches hls4ml's conversion and so the firmware:
``ProjectName`` (its top function, files and types are named after it), ``Backend``,
``Part``, ``ClockPeriod``, ``IOType`` and every ``HLSConfig`` entry except ``Trace``
and ``TraceOutput``.  Left out, in ``NOT_RECORDED`` with the reason, so that editing
them is no false alarm.

One digest per setting (its path), not one for all: the stale check then names the key
that changed.  The values are canonical, so that a spelling hls4ml reads alike is no
change: defaults filled in and types spelt as ``read_settings`` checks them (``fixed<16,6>``
is ``ap_fixed<16,6>``), ``ClockPeriod`` a float, entry keys as ``normalised`` compares
them (``TableSize`` is ``table_size``), a ``Precision`` string as ``{default: ...}`` and
an empty mapping as none, as ``merge_hls_config`` reads them, a ``Strategy`` snake-cased as
hls4ml reads it (``Latency`` is ``latency``), and a value equal to hls4ml's default as the
key left out (``HLS4ML_DEFAULTS``: ``ClockPeriod: 5`` written out after a synth without it
forced a re-synth for the same firmware).  So is a LayerName or LayerType ``ReuseFactor``
or ``Strategy`` equal to the Model's (``INHERITED``): ``LayerName.fc1.ReuseFactor: 4``
beside ``Model.ReuseFactor: 4`` builds the same firmware, but only while no LayerType
entry sets that key to another value (the settings alone do not say a layer's class).
A LayerName ``Precision`` variable equal to the entry's ``default`` is left out as well
(``{default: ap_fixed<12,4>, weight: ap_fixed<12,4>}`` is ``ap_fixed<12,4>``:
``merge_hls_config`` gives every variable of the layer the default); ``{result: ...}``
alone is not the string, which sets the weights' types too.  A key recorded now but left
out at synth (or the other way round) with the value it had then is not named: the
Model's or the ``default`` it equalled changed, and that is named.
"""

from __future__ import annotations

from typing import Any

from fpgaflow.network.config import NetworkSettings, normalised
from fpgaflow.network.config import _snake as snake
from fpgaflow.project import ProjectError
from fpgaflow.stale import changed_settings
from fpgaflow.stale import setting_digest as _digest
from fpgaflow.stale import settings_digests as digest_all

RECORDED = ("ProjectName", "Backend", "Part", "ClockPeriod", "IOType", "HLSConfig")
NOT_RECORDED = {
    "KerasJson": "the model's content is recorded (source_sha256), not where it lies",
    "KerasH5": "the model's content is recorded (source_sha256), not where it lies",
    "KerasModel": "the model's content is recorded (source_sha256), not where it lies",
    "Preprocessing": "the scaling's numbers are compared with the manifest's preprocessing instead",
    "OutputDir": "where the firmware is written, not what it is (another folder holds another build)",
    "Data": "the data train and profile read; Data.Features is checked against the scaling instead",
    "Training": "how the model was trained: its result is the model file",
}
# HLSConfig keys that change only the C simulation: hls4ml writes the trace calls under
# `#ifndef __SYNTHESIS__`, and verify traces its own copy of the project anyway
SIMULATION_ONLY = ("trace", "traceoutput")
# hls4ml 1.3.0's values for a key left out (canonical path -> value): the Vivado and Vitis
# backends' create_initial_config (part, clock_period) and config_from_keras_model's Model
# entry; spelling one out builds the same firmware, so it is recorded as the key left out.
# Known here without importing hls4ml, which emulate and board do not
# (tests/test_network_stale.py checks them against hls4ml's own).
HLS4ML_DEFAULTS: dict[str, Any] = {
    "Part": "xcvu13p-flga2577-2-e",
    "ClockPeriod": 5.0,
    "HLSConfig.Model.precision.default": "ap_fixed<16,6>",  # as read_settings spells hls4ml's fixed<16,6>
    "HLSConfig.Model.reusefactor": 1,
    "HLSConfig.Model.strategy": "latency",
    "HLSConfig.Model.bramfactor": 1_000_000_000,
}
# layer keys that a layer without its own inherits from its class's LayerType entry, else
# from the Model entry: hls4ml 1.3.0's get_reuse_factor and get_strategy look them up in that
# order, and merge_hls_config folds the Model's ReuseFactor into every generated layer entry
# that has one (they all have ReuseFactor 1, the Model's default).  Not ConvImplementation
# and TargetCycles, whose LayerType look-up hls4ml makes by another name (the layer's Python
# class), nor Compression (not in HLS4ML_DEFAULTS; hls4ml reads it through bool()), nor
# Precision (a layer's variables have defaults of their own, not the Model's).
INHERITED = ("reusefactor", "strategy")


def firmware_settings(settings: NetworkSettings) -> dict[str, tuple[str, Any]]:
    """canonical path -> (the path as the project file spells it, canonical value)."""
    top = {
        "ProjectName": settings.project_name,
        "Backend": settings.backend,
        "Part": settings.part,
        "ClockPeriod": settings.clock_period,
        "IOType": settings.io_type,
    }
    out = {key: (key, value) for key, value in top.items()}
    for section, entries in settings.hls_config.items():
        if section == "Model":
            _entry(out, f"HLSConfig.{section}", entries)
            continue
        for name, entry in entries.items():
            if isinstance(entry, dict):
                _entry(out, f"HLSConfig.{section}.{name}", entry)
            else:  # not a mapping: merge_hls_config refuses it, synth never records it
                out[f"HLSConfig.{section}.{name}"] = (f"HLSConfig.{section}.{name}", entry)
    for path, (shown, value) in list(out.items()):
        if path.endswith(".strategy") and isinstance(value, str):
            value = snake(value)  # hls4ml snake-cases a strategy wherever it reads one
            out[path] = (shown, value)
        if path in HLS4ML_DEFAULTS and value in (HLS4ML_DEFAULTS[path], ""):  # Part "": convert passes none
            if path in top:
                out[path] = (shown, None)  # as a key left out: top-level keys are recorded even then
            else:
                del out[path]
    for key in INHERITED:
        _leave_out_inherited(out, key)
    for path in [p for p in out if p.startswith("HLSConfig.LayerName.") and p.split(".")[3:4] == ["precision"]]:
        default = path.rsplit(".", 1)[0] + ".default"
        if path != default and default in out and _digest(out[path][1]) == _digest(out[default][1]):
            del out[path]  # merge_hls_config gives every variable of the layer its entry's default
    return out


def _leave_out_inherited(out: dict[str, tuple[str, Any]], key: str) -> None:
    """A LayerName or LayerType ``key`` equal to the Model's (or hls4ml's default) as
    the key left out, unless a LayerType entry sets it otherwise: a layer of that class
    then inherits that value instead (of a QDense's two classes, the later one's), and
    which layers those are the settings alone do not say."""
    model = f"HLSConfig.Model.{key}"
    inherited = _digest(out[model][1] if model in out else HLS4ML_DEFAULTS[model])
    sections = ("HLSConfig.LayerType.", "HLSConfig.LayerName.")
    layers = [p for p in out if p.startswith(sections) and p.count(".") == 3 and p.endswith(f".{key}")]
    if any(_digest(out[path][1]) != inherited for path in layers if path.startswith("HLSConfig.LayerType.")):
        return
    for path in layers:
        if _digest(out[path][1]) == inherited:
            del out[path]


def _entry(out: dict[str, tuple[str, Any]], path: str, entry: dict[str, Any]) -> None:
    """One Model, LayerType or LayerName entry's settings, a leaf each."""
    for key, value in entry.items():
        name = normalised(key)
        if name in SIMULATION_ONLY:
            continue
        if name == "precision" and not isinstance(value, dict):
            out[f"{path}.precision.default"] = (f"{path}.{key}", value)
        else:
            _leaves(out, f"{path}.{name}", f"{path}.{key}", value)


def _leaves(out: dict[str, tuple[str, Any]], path: str, shown: str, value: Any) -> None:
    if not isinstance(value, dict):
        out[path] = (shown, value)
        return
    for key, inner in value.items():
        _leaves(out, f"{path}.{key}", f"{shown}.{key}", inner)


def settings_digests(settings: NetworkSettings) -> dict[str, str]:
    """What synth records in the manifest's ``settings_sha256``."""
    return _digests(firmware_settings(settings))


def _digests(spelt: dict[str, tuple[str, Any]]) -> dict[str, str]:
    return digest_all({path: value for path, (_, value) in spelt.items()})


def refuse_changed_settings(settings: NetworkSettings, recorded: dict[str, str]) -> None:
    """A ``ProjectError`` naming the settings whose values differ from those synth built
    the firmware with (``recorded``: the manifest's ``settings_sha256``)."""
    spelt = firmware_settings(settings)
    digests = _digests(spelt)
    changed = changed_settings(recorded, digests)
    if not changed:
        return
    changed = [path for path in changed if not _follows(path, recorded, digests)] or changed  # never none named
    changed.sort(key=lambda path: path.startswith("HLSConfig."))  # (stable) IOType before a hundred precisions
    shown = list(dict.fromkeys(spelt[p][0] if p in spelt else p for p in changed))
    named = ", ".join(shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")
    raise ProjectError(
        f"{settings.project.file}: {named} changed since `fpgaflow synth` (the manifest records the settings the "
        f"firmware was built with); re-run `{settings.project.command('synth')}`"
    )


def _follows(path: str, recorded: dict[str, str], digests: dict[str, str]) -> bool:
    """A key recorded on one side only, its value the same on both: recorded as left out
    on the other because it equalled what it is compared with there, which changed (a
    layer's ``ReuseFactor``/``Strategy`` the Model's, a LayerName ``Precision`` variable
    its entry's ``default``).  The message names that edit, not a ``LayerName.fc1.ReuseFactor:
    1`` left as it was when the Model's went from 1 to 2 (left out at synth, itself now)."""
    parts = path.split(".")
    if len(parts) == 5 and parts[1] == "LayerName" and parts[3] == "precision" and parts[4] != "default":
        compared = f"{path.rsplit('.', 1)[0]}.default"
    elif len(parts) == 4 and parts[1] in ("LayerType", "LayerName") and parts[3] in INHERITED:
        compared = f"HLSConfig.Model.{parts[3]}"
    else:
        return False
    default = _digest(HLS4ML_DEFAULTS[compared]) if compared in HLS4ML_DEFAULTS else None
    if path in digests and path not in recorded:
        return digests[path] == recorded.get(compared, default)
    if path in recorded and path not in digests:
        return recorded[path] == digests.get(compared, default)
    return False  # its own value changed
