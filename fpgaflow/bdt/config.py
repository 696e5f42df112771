"""The BDT project file: conifer's own configuration keys, checked and turned into the
configuration conifer takes, plus the fixed-point types the emulator needs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fpgaflow.project import Project, ProjectError, clock_period, refuse_unknown_keys
from sim.bdt import MAX_COMPARE_BITS, compare_bits
from sim.fixed import FixedType

BACKENDS = ("xilinxhls", "vhdl")
DEFAULT_PRECISION = "ap_fixed<18,8>"  # conifer's own default for both backends
PRECISION_KEYS = ("InputPrecision", "ThresholdPrecision", "ScorePrecision", "WeightPrecision")
MODEL_KEYS = ("XGBoostModel", "SklearnModel", "ConiferModel")
XILINXHLS_ONLY = ("ClockPeriod", "Unroll")  # conifer's vhdl backend reads neither
KNOWN_KEYS = {
    "Backend",
    "ProjectName",
    "OutputDir",
    "XilinxPart",
    "ClockPeriod",
    "Precision",
    "Unroll",
    *MODEL_KEYS,
    *PRECISION_KEYS,
}
# The keys that reach conifer and shape the firmware beyond the backend and the types:
# synth records a digest of each in the manifest's settings_sha256 (fpgaflow.stale), as
# conifer receives it, so that a default written out or another spelling of the same
# identifier is no change: ProjectName (conifer names the top function, the files and the
# VHDL netlist after it), XilinxPart (the HLS and Vivado scripts' part), ClockPeriod and
# Unroll (xilinxhls: the HLS clock; unrolled or rolled trees).  Left out, with the reason,
# so that editing them is no false alarm.
RECORDED = ("ProjectName", "XilinxPart", "ClockPeriod", "Unroll")
NOT_RECORDED = {
    "Backend": "the manifest records the backend, compared by value",
    "Precision": "resolved into the manifest's types, compared by value",
    **{key: "resolved into the manifest's types, compared by value" for key in PRECISION_KEYS},
    **{key: "the model's content is recorded (source.sha256), not where it lies" for key in MODEL_KEYS},
    "OutputDir": "where the firmware is written, not what it is (another folder holds another build)",
}


@dataclass
class BDTConfig:
    """A BDT project's settings; ``conifer`` is the dict handed to conifer's backends."""

    project: Project
    backend: str
    project_name: str
    types: dict[str, FixedType]  # input, threshold, score, weight
    unroll: bool
    conifer: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # conifer's key -> the key the project file sets it with (Precision, the default of all four), for errors
    written: dict[str, str] = field(default_factory=dict)

    @property
    def hls_dir(self) -> Path:
        return self.project.build_dir / "hls"

    @property
    def emulator_dir(self) -> Path:
        return self.project.build_dir / "emulator"


def firmware_settings(cfg: BDTConfig) -> dict[str, Any]:
    """``RECORDED`` as conifer receives them (key -> value): defaults filled in, the
    project name as the identifier it becomes, ``ClockPeriod`` as one number; the vhdl
    backend reads neither ``ClockPeriod`` nor ``Unroll``, so they are not among its."""
    return {key: cfg.conifer[key] for key in RECORDED if key in cfg.conifer}


def _precision(project: Project, key: str, text: Any) -> FixedType:
    if not isinstance(text, str) or not text.strip().startswith(("ap_fixed", "ap_ufixed", "ap_int", "ap_uint")):
        raise ProjectError(
            f"{project.file}: {key} is {text!r}; firmware needs an HLS fixed-point type such as ap_fixed<18,8> "
            "(float precision only runs in conifer's software backends)"
        )
    try:
        return FixedType.parse(text)
    except ValueError as exc:
        raise ProjectError(f"{project.file}: {key}: {exc}") from None


def _ap_spelling(text: str | None) -> str | None:
    """hls4ml's spelling of a type (``fixed<18,8>``, ``fixed<18,8,RND,SAT>``), as network
    projects take it, spelt as conifer writes it into the firmware: ``ap_fixed<18,8>``.
    It was refused as "(float precision only runs in conifer's software backends)"."""
    if text is None or not re.match(r"\s*u?(fixed|int)<", text):
        return text
    try:
        return str(FixedType.parse(text.strip()))
    except ValueError:  # refused by _precision, naming the key
        return text


def _text(project: Project, key: str, what: str) -> str | None:
    """A key whose value is text (a name, a path, a type), or None when absent: ``str()``
    of a number or a list named a file or a part nobody meant, and an empty or false
    precision fell back on the default without a word."""
    if key not in project.config:
        return None
    value = project.config[key]
    if not isinstance(value, str) or not value.strip():
        raise ProjectError(f"{project.file}: {key}: expected {what}, got {value!r}")
    return value


def read_config(project: Project) -> BDTConfig:
    """Check the conifer keys of a BDT project and resolve the precisions as conifer does
    (each falls back on ``Precision``; weight and threshold on the input precision)."""
    cfg = project.config
    backend_text = _text(project, "Backend", "xilinxhls or vhdl") or "xilinxhls"
    backend = backend_text.lower()
    if backend not in BACKENDS:
        raise ProjectError(f"{project.file}: Backend {backend_text!r} is not supported; use one of {BACKENDS}")
    refuse_unknown_keys(str(project.file), cfg, sorted(KNOWN_KEYS))  # ignored, a typo built the defaults
    for key in MODEL_KEYS:
        _text(project, key, "the path of the model file")
    _text(project, "OutputDir", "the path of a folder")
    warnings: list[str] = []
    ignored = [k for k in XILINXHLS_ONLY if k in cfg]
    if backend == "vhdl" and ignored:
        warnings.append(
            f"{project.file}: the vhdl backend ignores {' and '.join(ignored)} (xilinxhls settings): the firmware is "
            "built without them; remove them, or use Backend: xilinxhls"
        )
    unroll = cfg.get("Unroll", True)
    if not isinstance(unroll, bool):  # bool("false") is True: a string gave the unrolled firmware
        raise ProjectError(f"{project.file}: Unroll: expected true or false, got {unroll!r}")
    period = clock_period(str(project.file), cfg.get("ClockPeriod", 5))
    default = _ap_spelling(_text(project, "Precision", "an HLS fixed-point type such as ap_fixed<18,8>"))
    default = default or DEFAULT_PRECISION
    given = {
        k: _ap_spelling(_text(project, k, "an HLS fixed-point type such as ap_fixed<18,8>")) for k in PRECISION_KEYS
    }
    # each key's text, and the key it was written under, for the errors (`Precision:
    # ap_fixd<18,8>` was refused as "InputPrecision is 'ap_fixd<18,8>'", a key the file does
    # not have): a key not given takes the one it falls back to, or Precision
    texts: dict[str, str] = {}
    written: dict[str, str] = {}
    for key, falls_back_to in (("InputPrecision", None), ("ThresholdPrecision", "InputPrecision"),
                               ("WeightPrecision", "ThresholdPrecision"), ("ScorePrecision", None)):  # fmt: skip
        if given[key]:
            texts[key], written[key] = given[key], key
        elif falls_back_to:
            texts[key], written[key] = texts[falls_back_to], written[falls_back_to]
        else:
            texts[key], written[key] = default, "Precision"
    types = {
        "input": _precision(project, written["InputPrecision"], texts["InputPrecision"]),
        "threshold": _precision(project, written["ThresholdPrecision"], texts["ThresholdPrecision"]),
        "weight": _precision(project, written["WeightPrecision"], texts["WeightPrecision"]),
        "score": _precision(project, written["ScorePrecision"], texts["ScorePrecision"]),
    }
    if not types["score"].signed and types["score"].width == 64:  # sim.bdt's scores are int64
        raise ProjectError(
            f"{project.file}: {written['ScorePrecision']} is {texts['ScorePrecision']}: a 64-bit unsigned score type "
            "is beyond the emulator (its scores are int64); use at most 63 bits"
        )
    _check_compare_width(project, texts, types, written)
    if backend == "vhdl":
        _check_vhdl(project, texts, types, written["InputPrecision"])
    if types["weight"].to_raw(1.0) != round(1 / types["weight"].lsb):
        warnings.append(
            f"{project.file}: WeightPrecision {texts['WeightPrecision']} cannot hold 1.0, the one-hot weight conifer "
            "multiplies every input by: the firmware compares a garbled input "
            "(set WeightPrecision to e.g. ap_fixed<4,3>)"
        )
    # conifer names C++ functions and VHDL files after the project: keep it an identifier
    name = re.sub(r"\W", "_", _text(project, "ProjectName", "a name") or project.root.name)
    if not name or name[0].isdigit():
        name = "bdt_" + name
    conifer_cfg: dict[str, Any] = {
        "Backend": backend,
        "ProjectName": name,
        "OutputDir": str(project.build_dir / "hls"),
        "XilinxPart": _text(project, "XilinxPart", "an FPGA part name") or "xcvu9p-flgb2104-2L-e",
        "InputPrecision": texts["InputPrecision"],
        "ThresholdPrecision": texts["ThresholdPrecision"],
        "WeightPrecision": texts["WeightPrecision"],
        "ScorePrecision": texts["ScorePrecision"],
    }
    if backend == "xilinxhls":
        conifer_cfg.update({"ClockPeriod": int(period) if period.is_integer() else period, "Unroll": unroll})
    return BDTConfig(project, backend, name, types, unroll, conifer_cfg, warnings, written)


def check_norm(cfg: BDTConfig, norm: float) -> None:
    """Every score is multiplied by the model's normalisation cast into the score type
    (conifer's HLS/cpp ``score_t``, the VHDL's input type): a type that cannot hold it
    wraps it (``ap_fixed<16,1>`` turns 1.0 into -1.0: every output negated) or clips it
    far.  Refused naming the key; a quantisation of up to one LSB passes, unless the LSB
    is coarser than the normalisation itself (``ap_fixed<8,10>``, LSB 4, turns 1.0 into
    0: every output 0; or into a multiple of it)."""
    t = cfg.types["score"]
    held = float(t.quantize(float(norm)))
    coarse = t.lsb > abs(norm) and held != norm
    if abs(held - norm) <= t.lsb and not coarse:
        return
    key = "ScorePrecision" if cfg.backend != "vhdl" else "InputPrecision"
    written = cfg.written.get(key, key)  # Precision, where the file sets all four with it
    raise ProjectError(
        f"{cfg.project.file}: {written} {cfg.conifer[key]} cannot hold the normalisation {norm:g} every score is "
        + (
            f"multiplied by (it becomes {held:g}; its LSB is {t.lsb:g}): give it fractional bits"
            if coarse
            else f"multiplied by (it becomes {held:g}; the type holds {t.min_value:g} to {t.max_value:g}); "
            "give it more integer bits"
        )
    )


def _check_compare_width(project: Project, texts: dict[str, str], types: dict[str, FixedType],
                         written: dict[str, str]) -> None:  # fmt: skip
    """The emulator compares inputs with thresholds as 64-bit integers on a common grid
    (``sim.bdt``): types whose aligned values need more than 62 bits are refused here,
    naming the keys, rather than by the emulator after synth said it had built them."""
    if compare_bits(types["input"], types["threshold"]) > MAX_COMPARE_BITS:
        # (the threshold type may be the input type's, written once: named once)
        keys = " and ".join(dict.fromkeys(f"{written[k]} {texts[k]}" for k in ("InputPrecision", "ThresholdPrecision")))
        raise ProjectError(
            f"{project.file}: {keys}: compared on one grid they need more than 62 bits, beyond the emulator's "
            "64-bit comparisons; narrow them"
        )


def _check_vhdl(project: Project, texts: dict[str, str], types: dict[str, FixedType], input_key: str) -> None:
    """conifer's VHDL backend uses the input precision for thresholds and scores, signed,
    wrapping, at most 32 bits: refuse settings it would silently ignore.  Its sums are
    numeric_std additions, which wrap whatever the type says (conifer's cpp and HLS
    saturate them for AP_SAT): a saturating type would be a firmware that wraps."""
    differ = [k for k in ("ThresholdPrecision", "ScorePrecision") if types[k[:-9].lower()] != types["input"]]
    if differ:
        raise ProjectError(
            f"{project.file}: the vhdl backend uses InputPrecision ({texts['InputPrecision']}) for thresholds and "
            f"scores too, but {', '.join(f'{k} is {texts[k]}' for k in differ)}; use one Precision"
        )
    t = types["input"]
    if not t.signed or t.integer or t.width > 32:
        raise ProjectError(
            f"{project.file}: {input_key} is {texts['InputPrecision']}; the vhdl backend needs a signed ap_fixed of at "
            "most 32 bits"
        )
    if t.overflow != "AP_WRAP" or t.sat_bits:
        raise ProjectError(
            f"{project.file}: {input_key} is {texts['InputPrecision']}, but the vhdl backend's adders wrap "
            f"(numeric_std), they cannot {t.overflow}{f' with {t.sat_bits} saturation bits' if t.sat_bits else ''}; "
            "use the default overflow mode AP_WRAP, or Backend: xilinxhls"
        )
