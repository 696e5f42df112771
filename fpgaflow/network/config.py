"""The network project file: hls4ml's own YAML keys, read by fpgaflow itself.

(hls4ml 1.3.0's ``convert_from_config`` returns None for ``KerasJson``/``KerasH5``
configurations, so the keys are interpreted here and the model converted with
``convert_from_keras_model``.)"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fpgaflow.project import Project, ProjectError, clock_period, refuse_unknown_keys
from sim.fixed import FixedType
from sim.hints import did_you_mean

BACKENDS = ("Vivado", "Vitis")
IO_TYPES = ("io_parallel", "io_stream")
HLS_SECTIONS = ("Model", "LayerType", "LayerName")
STRATEGIES = ("Latency", "Resource", "resource_unrolled", "distributed_arithmetic")  # hls4ml 1.3's, snake-cased
# a network project file's keys: hls4ml's that fpgaflow reads, then fpgaflow's own
TOP_KEYS = (
    "KerasJson", "KerasH5", "KerasModel", "OutputDir", "ProjectName", "Backend", "Part", "ClockPeriod", "IOType",
    "HLSConfig", "Preprocessing", "Data", "Training",
)  # fmt: skip
# HLSConfig.Model keys hls4ml 1.3 reads (ModelGraph's configuration, its optimizer passes)
MODEL_KEYS = (
    "Precision", "ReuseFactor", "Strategy", "Compression", "TargetCycles", "ConvImplementation", "BramFactor",
    "TraceOutput", "PipelineStyle", "PipelineInterval",
)  # fmt: skip
# hls4ml keys fpgaflow does not pass on: refused with the reason rather than ignored
NOT_PASSED_ON = {
    "InputData": "hls4ml's test-bench data; fpgaflow verify draws its own inputs",
    "OutputPredictions": "hls4ml's test-bench data; fpgaflow verify compares with the C simulation",
    "ClockUncertainty": "fpgaflow does not pass it to hls4ml",
    "WriterConfig": "fpgaflow does not pass it to hls4ml",
    "XilinxPart": "conifer's key (BDT projects); a network's is Part",
    "BitExact": "hls4ml's convert_from_keras_model replaces it",
}


@dataclass
class NetworkSettings:
    project: Project
    backend: str
    project_name: str
    part: str | None
    clock_period: float | None
    io_type: str
    hls_config: dict[str, Any]  # the user's HLSConfig, its types checked and spelt as sim.fixed prints them
    warnings: list[str] = field(default_factory=list)  # for synth's output and report

    @property
    def build_dir(self) -> Path:
        return self.project.build_dir


def unknown_keys(where: str, given: Any, known: Any, what: str = "key(s)") -> None:
    """``fpgaflow.project.refuse_unknown_keys``, saying why for hls4ml keys fpgaflow does not pass on."""
    refuse_unknown_keys(where, given, known, what, NOT_PASSED_ON)


def read_settings(project: Project) -> NetworkSettings:
    cfg = project.config
    unknown_keys(str(project.file), cfg, TOP_KEYS)
    backend = str(cfg.get("Backend", "Vivado"))
    match = [b for b in BACKENDS if b.lower() == backend.lower()]
    if not match:
        raise ProjectError(f"{project.file}: Backend {backend!r} is not supported (supported: {', '.join(BACKENDS)})")
    io_type = str(cfg.get("IOType", "io_parallel"))
    if io_type not in IO_TYPES:
        raise ProjectError(f"{project.file}: IOType {io_type!r} is not one of {', '.join(IO_TYPES)}")
    hls = cfg.get("HLSConfig") or {}
    if not isinstance(hls, dict):
        raise ProjectError(f"{project.file}: HLSConfig must be a mapping")
    unknown_keys(f"{project.file}: HLSConfig", hls, HLS_SECTIONS, "section(s)")
    for section in HLS_SECTIONS:
        if not isinstance(hls.get(section) or {}, dict):
            raise ProjectError(f"{project.file}: HLSConfig.{section} must be a mapping")
    unknown_keys(f"{project.file}: HLSConfig.Model", hls.get("Model") or {}, MODEL_KEYS)
    where = str(project.file)
    checked: dict[str, Any] = {}
    if hls.get("Model"):
        checked["Model"] = _checked_entry(where, "HLSConfig.Model", hls["Model"], model=True)
    for section in ("LayerType", "LayerName"):
        if hls.get(section):
            checked[section] = {
                name: _checked_entry(where, f"HLSConfig.{section}.{name}", entry) if isinstance(entry, dict) else entry
                for name, entry in hls[section].items()
            }
    return NetworkSettings(
        project=project,
        backend=match[0],
        project_name=_project_name(where, cfg.get("ProjectName")),
        part=cfg.get("Part"),
        clock_period=clock_period(where, cfg.get("ClockPeriod")),
        io_type=io_type,
        hls_config=checked,
    )


CPP_KEYWORDS = frozenset(
    "alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t char32_t class "
    "compl concept const consteval constexpr constinit const_cast continue co_await co_return co_yield decltype "
    "default delete do double dynamic_cast else enum explicit export extern false float for friend goto if inline "
    "int long mutable namespace new noexcept not not_eq nullptr operator or or_eq private protected public "
    "register reinterpret_cast requires return short signed sizeof static static_assert static_cast struct switch "
    "template this thread_local throw true try typedef typeid typename union unsigned using virtual void volatile "
    "wchar_t while xor xor_eq".split()
)


def c_name(where: str, what: str, name: str, hint: str = "") -> str:
    """``name`` if it can name C++ functions, types and variables, as hls4ml uses the
    project's and the layers' names; else refused before anything is written (it
    built, and the C simulation then failed with g++'s errors and a traceback)."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name not in CPP_KEYWORDS:
        return name
    suggestion = re.sub(r"\W", "_", name)
    if not suggestion or suggestion[0].isdigit() or suggestion in CPP_KEYWORDS:
        suggestion = "n_" + suggestion
    raise ProjectError(
        f"{where}: {what} is not a C++ identifier, and hls4ml names the firmware's functions, types and variables "
        f"after it (letters, digits and _, not starting with a digit, not a keyword): {hint}e.g. {suggestion!r}"
    )


def _project_name(where: str, value: Any) -> str:
    name = str(value or "myproject")
    return c_name(where, f"ProjectName {name!r}", name, "give another name, ")


def _snake(key: Any) -> str:
    """hls4ml's ``convert_to_snake_case`` (a layer key ending in ``_t`` is a type)."""
    return re.sub(r"_{2,}", "_", re.sub(r"(?<!^)(?=[A-Z])", "_", str(key)).lower())


def _type(where: str, path: str, value: Any, auto: bool = True) -> str:
    """A user's type, checked by ``sim.fixed`` (hls4ml's own parser fails deep inside on
    ``ap_fixed<8>`` or ``AP_SATT``) and spelt as hls4ml reads it; 'auto' where hls4ml infers."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        if auto:
            return "auto"
        raise ProjectError(f"{where}: {path}: the model default must be a type such as ap_fixed<16,6>, not auto")
    try:
        parsed = FixedType.parse(value.strip() if isinstance(value, str) else value)
    except ValueError as exc:
        cut = isinstance(value, str) and "<" in value and not any(c in value for c in ",>")  # not ap_fixed<8,3
        # `Precision: {weight: ap_fixed<8,3>}`: YAML ends the value at the comma (and reads `3>` as a key)
        hint = " (a type split at its comma: quote types inside {...})" if cut else ""
        raise ProjectError(f"{where}: {path}: {exc}{hint}") from None
    if parsed.overflow == "AP_WRAP_SM":  # hls4ml's parser strips every 'AP_' from it: KeyError 'WRSM', no layer named
        raise ProjectError(
            f"{where}: {path}: {value}: hls4ml has no AP_WRAP_SM (sign-magnitude wrap), so it cannot build it; "
            "its overflow modes are AP_WRAP, AP_SAT, AP_SAT_ZERO or AP_SAT_SYM"
        )
    return str(parsed)


def _checked_entry(where: str, path: str, entry: dict[str, Any], model: bool = False) -> dict[str, Any]:
    """A Model, LayerType or LayerName entry with its types, reuse factor and strategy checked."""
    out = dict(entry)
    for key, value in entry.items():
        at, snake = f"{path}.{key}", _snake(key)
        if snake == "precision":
            if isinstance(value, dict):
                explicit = ("default", "maximum") if model else ()
                out[key] = {v: _type(where, f"{at}.{v}", t, v not in explicit) for v, t in value.items()}
            else:
                out[key] = _type(where, at, value, not model)
        elif snake.endswith("_t"):
            out[key] = _type(where, at, value)
        elif snake == "reuse_factor" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ProjectError(f"{where}: {at} is {value!r}; it must be a whole number >= 1")
        elif normalised(key) == "tablesize" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            # the C++ ``static const unsigned table_size``: 0 indexes an empty table, -1 or 512.5 do not compile
            raise ProjectError(f"{where}: {at} is {value!r}; a table size must be a whole number >= 1")
        elif snake == "strategy":
            names = {_snake(s): s for s in STRATEGIES}
            if _snake(value) not in names:
                raise ProjectError(
                    f"{where}: {at} is {value!r}{did_you_mean(str(value), STRATEGIES)}; "
                    f"hls4ml's strategies: {', '.join(STRATEGIES)}"
                )
            if _snake(value) == "distributed_arithmetic":  # hls4ml failed on it: "No module named 'da4ml'"
                raise ProjectError(
                    f"{where}: {at} is {value!r}, which the emulator does not compute (hls4ml builds it with "
                    "da4ml's generated code); use Latency, Resource or resource_unrolled"
                )
    return out


def model_files(project: Project) -> list[Path]:
    """The files the model is read from (for the source hash and error messages)."""
    cfg = project.config
    if "KerasJson" in cfg:
        files = [project.existing("KerasJson")]
        if "KerasH5" in cfg:
            files.append(project.existing("KerasH5"))
        return files
    if "KerasH5" in cfg:
        return [project.existing("KerasH5")]
    return [project.existing("KerasModel")]


# keys hls4ml's configuration reads for any layer (ModelGraph's _parse_hls_config)
LAYER_KEYS = ("Precision", "ReuseFactor", "Strategy", "Compression", "TargetCycles", "ConvImplementation", "Trace")
# Model keys hls4ml also reads per layer (a LayerName/LayerType entry's own wins)
MODEL_LAYER_KEYS = ("ReuseFactor", "Strategy", "Compression", "TargetCycles", "ConvImplementation")


@dataclass(frozen=True)
class LayerInfo:
    """One layer of hls4ml's name-granularity configuration, as the merge needs it."""

    name: str
    classes: tuple[str, ...]  # hls4ml's layer class, then the Keras class where it differs (QDense -> Dense)
    keys: dict[str, str]  # normalised key -> the key as hls4ml spells it (TableSize, exp_table_t...)
    precision_vars: tuple[str, ...]  # weight, bias, result, accum, table...
    quantized: frozenset[str] = frozenset()  # the variables a QKeras quantizer of the layer sets
    activation: str = ""  # an activation layer's function, lower case (sigmoid, elu, softmax...)
    inserted: bool = False  # made by an hls4ml pass (a QKeras alpha's ApplyAlpha): only its LayerName entry reaches it


def normalised(key: str) -> str:
    """``TableSize``, ``table_size`` and ``tablesize`` are one key to hls4ml (it snake-cases them)."""
    return str(key).replace("_", "").lower()


def _why_not(layer: str, known: list[str]) -> str:
    """The hint after an unknown LayerName: the layer in another case (``FC1``; fc1 was
    suggested for none), or why ``<layer>_alpha`` is not there (``fc1_relu`` was
    suggested for ``fc1_alpha`` of a layer whose quantizer has no alpha), then the layers."""
    base = layer.removesuffix("_alpha")
    if layer.endswith("_alpha") and base in known and not any(name.lower() == layer.lower() for name in known):
        hint = (
            f": hls4ml inserts the ApplyAlpha layer {layer!r} only for a QDense/QConv whose kernel or bias quantizer "
            f"has an alpha other than 1, and layer {base!r} has none"
        )
    else:
        hint = did_you_mean(layer, known)
    return hint + f"; its layers: {', '.join(sorted(known))}"


def merge_hls_config(
    base: dict[str, Any], user: dict[str, Any], layers: list[LayerInfo], where: str
) -> tuple[dict[str, Any], list[str]]:
    """hls4ml's per-name defaults (``base``) with the user's entries on top; the notes to show.

    ``base`` names every layer with a ReuseFactor, a Precision per variable ('auto' or
    hls4ml's defaults) and more; hls4ml reads a LayerName entry before LayerType and
    Model, so the user's LayerType and Model settings are folded into every layer's
    entry here: user LayerName > user LayerType > user Model > generated defaults.
    A ``Precision`` string (or a mapping's ``default``) sets every variable of the
    layer, a mapping the variables it names.  ``Model.Precision`` as a string (or its
    ``default``) stays hls4ml's model default, which the 'auto' types are inferred
    from; naming a variable there sets it in every layer that has it.  A type a QKeras
    quantizer gives a layer is the layer's own setting: Model and LayerType entries do
    not replace it (a note says so), LayerName ones do."""
    check_layer_keys(user, layers, where)
    merged = copy.deepcopy(base)
    notes: list[str] = []
    user_model = user.get("Model") or {}
    user_types = user.get("LayerType") or {}
    user_names = user.get("LayerName") or {}
    model = merged.setdefault("Model", {})
    for key, value in user_model.items():
        if key == "Precision":
            given = value if isinstance(value, dict) else {"default": value}
            have = model.get("Precision")
            model["Precision"] = {**(have if isinstance(have, dict) else {"default": have}), **copy.deepcopy(given)}
        else:
            model[key] = copy.deepcopy(value)
    if user_types:
        merged["LayerType"] = copy.deepcopy(user_types)  # for layers hls4ml's passes add
    names = merged.setdefault("LayerName", {})
    known = [*names, *(info.name for info in layers if info.inserted)]
    for layer, entry in user_names.items():
        if layer not in known:
            raise ProjectError(
                f"{where}: HLSConfig.LayerName names layer {layer!r}, which the model does not have"
                + _why_not(str(layer), known)
            )
        if not isinstance(entry, dict):
            raise ProjectError(f"{where}: HLSConfig.LayerName.{layer} must be a mapping")
    model_vars = user_model.get("Precision") if isinstance(user_model.get("Precision"), dict) else {}
    model_vars = {k: v for k, v in model_vars.items() if k not in ("default", "maximum")}
    for info in layers:
        if info.inserted:  # hls4ml gives it its own default precision: Model and LayerType entries do not reach it
            if info.name in user_names:
                _apply(names.setdefault(info.name, {}), user_names[info.name], info, None, set())
            continue
        entry = names.setdefault(info.name, {})
        kept: dict[str, set[str]] = {}  # a Model/LayerType path -> the quantizer types it left alone
        for key in MODEL_LAYER_KEYS:
            if key in user_model and key in entry:
                entry[key] = copy.deepcopy(user_model[key])
        if model_vars:
            own = {k: v for k, v in model_vars.items() if k in info.precision_vars}
            _set_precision(entry, own, info, "HLSConfig.Model.Precision", kept)
        for cls in info.classes:
            if isinstance(user_types.get(cls), dict):
                _apply(entry, user_types[cls], info, f"HLSConfig.LayerType.{cls}", kept)
        named: set[str] = set()  # the variables the layer's own LayerName entry sets
        if info.name in user_names:
            _apply(entry, user_names[info.name], info, None, named)
        for path, variables in kept.items():
            left = [v for v in info.precision_vars if v in variables and v not in named]
            if left:
                # hls4ml keeps a quantizer's weight types even over a LayerName entry (only a result type yields)
                can = "can" if left == ["result"] else "can for its result type, not for its weights'"
                notes.append(
                    f"{path} is not applied to layer {info.name!r}'s {', '.join(left)} type: its QKeras quantizer "
                    f"sets {'it' if len(left) == 1 else 'them'} (a HLSConfig.LayerName.{info.name} entry {can})"
                )
    return merged, notes


def check_layer_keys(user: dict[str, Any], layers: list[LayerInfo], where: str) -> None:
    """Every LayerType class, LayerName layer, key and Precision variable must be one
    hls4ml reads for the model's layers: a misspelt one would be ignored."""
    by_name = {info.name: info for info in layers}
    own = [info for info in layers if not info.inserted]  # the layers Model and LayerType entries reach
    precision = (user.get("Model") or {}).get("Precision")
    if isinstance(precision, dict):
        variables = dict.fromkeys(["default", "maximum", *(v for info in own for v in info.precision_vars)])
        unknown_keys(f"{where}: HLSConfig.Model.Precision", precision, variables, "variable(s)")
    classes = dict.fromkeys(c for info in own for c in info.classes)
    types = user.get("LayerType") or {}
    unknown_keys(f"{where}: HLSConfig.LayerType", types, classes, "layer class(es)")
    for cls, entry in types.items():
        _check_entry(f"{where}: HLSConfig.LayerType.{cls}", entry, [i for i in layers if cls in i.classes])
    for name, entry in (user.get("LayerName") or {}).items():
        if name in by_name:
            _check_entry(f"{where}: HLSConfig.LayerName.{name}", entry, [by_name[name]])


def _check_entry(path: str, entry: Any, infos: list[LayerInfo]) -> None:
    if not isinstance(entry, dict):
        raise ProjectError(f"{path} must be a mapping")
    keys = {n: k for info in infos for n, k in info.keys.items()}
    misspelt = [k for k in entry if normalised(k) not in keys]
    if misspelt:
        unknown_keys(path, {k: None for k in misspelt}, dict.fromkeys(keys.values()))
    precision = next((v for k, v in entry.items() if normalised(k) == "precision"), None)
    if isinstance(precision, dict):
        variables = dict.fromkeys(["default", *(v for info in infos for v in info.precision_vars)])
        unknown_keys(f"{path}.Precision", precision, variables, "variable(s)")


def _apply(entry: dict, given: dict, info: LayerInfo, path: str | None, seen: Any) -> None:
    """One user entry onto a layer's; ``path`` None for the layer's own LayerName entry."""
    for key, value in given.items():
        key = info.keys.get(normalised(key), key)
        if key == "Precision":
            _set_precision(entry, value, info, path and f"{path}.Precision", seen)
            continue
        for other in [k for k in entry if normalised(k) == normalised(key) and k != key]:
            del entry[other]  # hls4ml would read both spellings
        entry[key] = copy.deepcopy(value)


def _set_precision(entry: dict, given: Any, info: LayerInfo, path: str | None, seen: Any) -> None:
    """Lay ``given`` (a string, or a mapping variable -> type with an optional ``default``)
    over the layer's Precision mapping.  From a Model/LayerType ``path`` the quantizer
    types stay and are recorded in ``seen[path]``; from the layer's own entry
    (``path`` None) every variable set is recorded in the set ``seen``."""
    given = dict(given) if isinstance(given, dict) else {"default": given}
    if not given:
        return
    have = entry.get("Precision")
    target = dict(have) if isinstance(have, dict) else ({"default": have} if have is not None else {})
    default = given.pop("default", None)
    wanted = dict.fromkeys(info.precision_vars, default) if default is not None else {}
    if default is not None:
        wanted["default"] = default  # hls4ml's fallback for variables nobody named
    wanted.update(given)
    for var, value in wanted.items():
        if path is not None and var in info.quantized:
            seen.setdefault(path, set()).add(var)
            continue
        if path is None:
            seen.add(var)
        target[var] = copy.deepcopy(value)
    entry["Precision"] = target


# softmax implementations that address their exp/inv tables by the top ceillog2(N) bits of
# the word (nnet_activation.h softmax_idx_from_real_val): indices run to 2^ceillog2(N)-1
TOP_BITS_SOFTMAX = ("latency", "stable")


def check_table_sizes(merged: dict[str, Any], user: dict[str, Any], layers: list[LayerInfo], where: str) -> None:
    """A softmax ``latency``/``stable`` table must have a power-of-two size: with N = 1000
    the firmware reads indices up to 1023 past its static tables (undefined behaviour)."""
    names = merged.get("LayerName") or {}
    for info in layers:
        if "Softmax" not in info.classes:
            continue
        entry = names.get(info.name) or {}
        impl = next((v for k, v in entry.items() if normalised(k) == "implementation"), "stable")
        size = next((v for k, v in entry.items() if normalised(k) == "tablesize"), None)
        if str(impl).lower() not in TOP_BITS_SOFTMAX or not isinstance(size, int) or size & (size - 1) == 0:
            continue
        path = _user_path(user, info, "tablesize") or f"HLSConfig.LayerName.{info.name}.TableSize"
        low = 1 << (size.bit_length() - 1)
        raise ProjectError(
            f"{where}: {path} is {size}, but layer {info.name!r} is a softmax with Implementation {impl}, which "
            f"addresses its exp and inverse tables by the top {size.bit_length()} bits of the word (indices up to "
            f"{2 * low - 1}, past a {size}-entry table); give a power of two, e.g. {low} or {2 * low}"
        )


def _user_path(user: dict[str, Any], info: LayerInfo, key: str) -> str | None:
    """The user's entry that set ``key`` for a layer: its LayerName entry, else a LayerType one."""
    own = (user.get("LayerName") or {}).get(info.name) or {}
    for k in own:
        if normalised(k) == key:
            return f"HLSConfig.LayerName.{info.name}.{k}"
    for cls in reversed(info.classes):  # the later classes (Keras's) win, as merge_hls_config applies them
        for k in (user.get("LayerType") or {}).get(cls) or {}:
            if normalised(k) == key:
                return f"HLSConfig.LayerType.{cls}.{k}"
    return None


def check_table_types(
    merged: dict[str, Any], base: dict[str, Any], user: dict[str, Any], layers: list[LayerInfo], where: str
) -> list[str]:
    """A table type set through ``Precision`` reached no firmware: hls4ml 1.3 gives a
    table activation (sigmoid, tanh, softplus, softsign, elu, selu) its ``table_t`` and a
    latency/stable softmax its ``exp_table_t``, ``inv_table_t`` and ``inv_inp_t`` only
    from those keys, so ``Precision: {table: ap_fixed<10,2>}`` left the table
    ap_fixed<18,8> without a word (``Layer.__init__`` copies ``*_t`` keys; nothing asks
    the configuration's Precision for these).  A variable the user names is refused (the
    key that works is said); a Precision string or ``default`` that does not reach a
    table is a note.  Legacy softmax has its own (``unapplied_softmax_table_types``)."""
    from fpgaflow.network import hls4ml_version
    from fpgaflow.network.exporters.activations import TABLE_ACTIVATIONS

    notes = []
    for info in layers:
        entry = (merged.get("LayerName") or {}).get(info.name) or {}
        if info.classes[0] in ("Activation", "ParametrizedActivation") and info.activation in TABLE_ACTIVATIONS:
            what, variables = info.activation, ("table",)
        elif "Softmax" in info.classes:
            impl = str(next((v for k, v in entry.items() if normalised(k) == "implementation"), "stable")).lower()
            if impl not in TOP_BITS_SOFTMAX:
                continue
            what, variables = f"Softmax, Implementation {impl}", ("exp_table", "inv_table", "inv_inp")
        else:
            continue
        precision = entry.get("Precision")
        generated = ((base.get("LayerName") or {}).get(info.name) or {}).get("Precision") or {}
        unset: list[tuple[str, str]] = []
        for var in variables:
            source = _table_source(user, info, var)
            key = next((k for k in entry if normalised(k) == normalised(f"{var}_t")), None)
            asked = precision.get(var) if isinstance(precision, dict) else precision
            if source is None or key is not None or not isinstance(asked, str) or asked == "auto":
                continue  # not the user's, or the user's own *_t key sets the table
            if var not in generated:  # hls4ml gives the layer no such type
                continue
            used = str(FixedType.parse(generated[var]))
            if FixedType.parse(asked) == FixedType.parse(used):
                continue
            path, explicit = source
            if explicit:
                at = path.rsplit(".Precision.", 1)[0]
                put = f"in {at}" if not at.endswith("Model") else "in a LayerType or LayerName entry"
                raise ProjectError(
                    f"{where}: {path} is {asked}, but hls4ml {hls4ml_version()} does not apply a {var} type given in "
                    f"Precision: layer {info.name!r} ({what}) would use {used}; set `{var}_t: {asked}` {put} instead"
                )
            unset.append((var, used))
        if unset:
            path, _ = _table_source(user, info, unset[0][0]) or ("", False)
            names = ", ".join(f"{var}_t" for var, _ in unset)
            notes.append(
                f"{path} ({asked}) does not set layer {info.name!r}'s "
                + ", ".join(f"{var} type (it stays {used})" for var, used in unset)
                + f": hls4ml {hls4ml_version()} reads {'it' if len(unset) == 1 else 'them'} only from {names}"
            )
    return notes


def _table_source(user: dict[str, Any], info: LayerInfo, var: str) -> tuple[str, bool] | None:
    """The user's entry that sets a layer's ``var`` type through Precision, as
    ``merge_hls_config`` applies them (LayerName, then LayerType with the Keras class
    first, then a Model.Precision variable), and whether it names the variable."""
    entries = [(f"HLSConfig.LayerName.{info.name}", (user.get("LayerName") or {}).get(info.name))]
    entries += [(f"HLSConfig.LayerType.{c}", (user.get("LayerType") or {}).get(c)) for c in reversed(info.classes)]
    for path, entry in entries:
        key = next((k for k in entry or {} if normalised(k) == "precision"), None)
        precision = (entry or {}).get(key) if key else None
        if isinstance(precision, dict) and var in precision:
            return f"{path}.{key}.{var}", True
        if isinstance(precision, str) or (isinstance(precision, dict) and "default" in precision):
            return f"{path}.{key}", False
    model = (user.get("Model") or {}).get("Precision")
    if isinstance(model, dict) and var in model:
        return f"HLSConfig.Model.Precision.{var}", True
    return None
