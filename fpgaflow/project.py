"""Firmware projects: a folder under ``firmware_projects/`` holding a project file.

The project file is what hls4ml and conifer users already write: hls4ml's YAML keys
(``KerasJson``/``KerasH5``/``KerasModel``, ``OutputDir``, ``HLSConfig``...) for a
network, conifer's configuration keys with ``XGBoostModel``/``SklearnModel``/
``ConiferModel`` for a BDT.  Relative paths resolve against the project file.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.hints import did_you_mean

NETWORK_KEYS = ("KerasJson", "KerasH5", "KerasModel")
BDT_KEYS = ("XGBoostModel", "SklearnModel", "ConiferModel")
PROJECT_FILE_NAMES = ("project.yml", "project.yaml", "config.yml", "config.yaml")


class ProjectError(ValueError):
    """A project that cannot be used; the message names the file and the key."""


def refuse_unknown_keys(
    where: str,
    given: Any,
    known: Any,
    what: str = "key(s)",
    reasons: Mapping[str, str] | None = None,
    error: type[Exception] = ProjectError,
) -> None:
    """Refuse the keys of ``given`` not in ``known``, naming them with a "did you mean"
    (ignored, a misspelt key builds the defaults); ``reasons``: why a known-elsewhere key
    is refused.  For network and BDT projects alike, and (``error``: their exception)
    the ``Training:`` and ``Data:`` blocks."""
    known, reasons = list(known), reasons or {}
    unknown = [k for k in given if k not in known]
    if not unknown:
        return
    named = []
    for key in unknown:
        text = str(key)
        if key in reasons:
            named.append(f"{text} ({reasons[key]})")
            continue
        if text.rstrip().endswith(">"):  # `{Precision: ap_fixed<16,6>}`: YAML split the type at its comma
            named.append(f"{text} (the end of a type split at its comma: quote types inside {{...}})")
            continue
        named.append(text + did_you_mean(text, known))
    raise error(f"{where}: unknown {what} {', '.join(named)}; known: {', '.join(map(str, known))}")


def clock_period(where: str, value: Any) -> float | None:
    """A project's ``ClockPeriod`` in ns (None if not given): one rule for network and
    BDT projects (``5ns``, ``fast``, 0 or a boolean refused, naming the key)."""
    if value is None:
        return None
    try:
        period = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        period = math.nan
    if not (math.isfinite(period) and period > 0):
        raise ProjectError(f"{where}: ClockPeriod is {value!r}; give the period in ns as a positive number, e.g. 5")
    return period


@dataclass
class Project:
    kind: str  # "network" or "bdt"
    file: Path
    config: dict[str, Any]

    @property
    def root(self) -> Path:
        return self.file.parent

    @property
    def name(self) -> str:
        return str(self.config.get("ProjectName") or self.root.name)

    def command(self, verb: str) -> str:
        """``fpgaflow VERB FILE`` for a hint, the file quoted for a shell where it needs it
        (a folder with a space in its name gave a command that did not run as pasted)."""
        return f"fpgaflow {verb} {shlex.quote(str(self.file))}"

    def synthesized_emulator(self) -> Path:
        """``build/emulator``, the manifest folder ``fpgaflow synth`` exports; a
        ``ProjectError`` with the synth command to run where synth has not run yet."""
        from sim.manifest import MANIFEST_FILE

        emulator = self.build_dir / "emulator"
        if not (emulator / MANIFEST_FILE).is_file():
            raise ProjectError(f"{emulator}: no manifest; run `{self.command('synth')}` first")
        return emulator

    @property
    def build_dir(self) -> Path:
        """``OutputDir`` if the project file names one, else ``build/`` beside it."""
        out = self.config.get("OutputDir")
        return self.resolve(out) if out else self.root / "build"

    def resolve(self, path: str | os.PathLike) -> Path:
        p = Path(os.path.expanduser(str(path)))
        return p if p.is_absolute() else (self.root / p)

    def existing(self, key: str) -> Path:
        """The file named by ``key``, which must exist."""
        value = self.config.get(key)
        if not value:
            raise ProjectError(f"{self.file}: key '{key}' is missing")
        path = self.resolve(value)
        if not path.exists():
            raise ProjectError(f"{self.file}: {key} names {value!r}, but {path} does not exist")
        return path


def find_project_file(path: str | os.PathLike) -> Path:
    """The project file ``path`` names, or the one in the folder ``path``.  A folder with
    two of the standard names is refused, naming both: it took the first silently (a
    ``config.yml`` copied beside ``project.yml`` and edited did nothing)."""
    p = Path(path)
    if p.is_dir():
        standard = [p / name for name in PROJECT_FILE_NAMES if (p / name).is_file()]
        if len(standard) > 1:
            raise ProjectError(
                f"{p}: several project files ({', '.join(f.name for f in standard)}); name the one to use"
            )
        if standard:
            return standard[0]
        from fpgaflow.folders import SYNTH_MARK

        build = next((b for b in (p, p.parent) if (b / SYNTH_MARK).is_file()), None)
        if build is not None:  # build/hls holds hls4ml's own hls4ml_config.yml, which is no project file
            raise ProjectError(
                f"{p}: in the folder `fpgaflow synth` wrote ({build}), not a project; give the project file or its "
                f"folder (the emulator's manifest is {build / 'emulator'})"
            )
        ymls = sorted(p.glob("*.yml")) + sorted(p.glob("*.yaml"))
        if len(ymls) == 1:
            return ymls[0]
        raise ProjectError(
            f"{p}: no project file found (looked for {', '.join(PROJECT_FILE_NAMES)}"
            + (f"; several candidates: {', '.join(y.name for y in ymls)}" if ymls else "")
            + ")"
        )
    if not p.is_file():
        raise ProjectError(f"{p}: no such project file or folder")
    return p


def _unique_key_loader() -> Any:
    """PyYAML's safe loader refusing a key given twice in one mapping: it kept the last
    value and dropped the first without a word (a second ``ReuseFactor``, or a layer's
    LayerName entry pasted twice, built the firmware with only one of them).  A key that
    overrides a ``<<`` merge is no duplicate."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: SafeLoader's own error names it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} given twice in one mapping (YAML would keep the last)",
                        key_node.start_mark,
                    )  # fmt: skip
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def _yaml_error(file: Path, exc: Exception) -> str:
    """One line naming the file, the line and column and PyYAML's reason: its own message
    spans six lines, quoting the text with a caret under it."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(file)
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None and (mark is None or context_mark.line != mark.line):
        context += f" (line {context_mark.line + 1}, column {context_mark.column + 1})"
    problem = getattr(exc, "problem", None)
    what = ": ".join(p for p in (context, problem) if p) or " ".join(str(exc).split())
    return f"{where}: not valid YAML: {what}"


def load_project(path: str | os.PathLike) -> Project:
    """Read a project file (or the project file in a folder) and tell its kind."""
    import yaml

    file = find_project_file(path).resolve()
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:  # a model or data file given for the project
        raise ProjectError(f"{file}: not a project file: not UTF-8 text, as YAML must be ({exc.reason} at byte "
                           f"{exc.start})") from None  # fmt: skip
    try:
        config = yaml.load(text, Loader=_unique_key_loader())
    except yaml.YAMLError as exc:
        raise ProjectError(_yaml_error(file, exc)) from None
    if not isinstance(config, dict):
        raise ProjectError(f"{file}: expected a mapping of configuration keys at the top level")
    net = [k for k in NETWORK_KEYS if k in config]
    bdt = [k for k in BDT_KEYS if k in config]
    if net and bdt:
        raise ProjectError(f"{file}: names both a network ({', '.join(net)}) and a BDT ({', '.join(bdt)})")
    if "KerasModel" in net and len(net) > 1:  # else KerasModel was ignored without a word
        raise ProjectError(
            f"{file}: names two models ({', '.join(net[:-1])} and {net[-1]}); give KerasJson with KerasH5 "
            "(architecture and weights), KerasH5 alone (a full model) or KerasModel alone"
        )
    if len(bdt) > 1:  # else the first of BDT_KEYS was built and the others ignored
        raise ProjectError(
            f"{file}: names two BDT models ({', '.join(bdt[:-1])} and {bdt[-1]}); give one of {', '.join(BDT_KEYS)}"
        )
    if not net and not bdt:
        raise ProjectError(
            f"{file}: names no model; a network project needs one of {', '.join(NETWORK_KEYS)}, "
            f"a BDT project one of {', '.join(BDT_KEYS)}"
        )
    return Project("network" if net else "bdt", file, config)
