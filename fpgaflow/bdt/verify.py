"""``fpgaflow verify`` for a BDT project: the emulator against conifer's compiled C++
(10,000 inputs by default) and, with ``--rtl``, against GHDL running the VHDL; plus how
closely the firmware follows the float model.  Exit status 1 unless 100% bit-exact."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from fpgaflow.bdt.config import BDTConfig, read_config
from fpgaflow.bdt.inputs import probe_inputs
from fpgaflow.bdt.load import SourceModel, load_model
from fpgaflow.project import Project, ProjectError

RTL_SAMPLES = 1_000


def _say(msg: str) -> None:
    print(f"verify: {msg}", file=sys.stderr, flush=True)


def inputs(args: argparse.Namespace, source: SourceModel, cfg: BDTConfig) -> np.ndarray:
    n_features = int(source.ensemble["n_features"])
    if args.input:
        from fpgaflow.arrays import read_array
        from sim.emulator import refuse_non_finite

        x = read_array(args.input, args.dataset)[: args.samples]  # --samples: its first rows
        if x.ndim != 2 or x.shape[1] != n_features:
            raise ValueError(f"{args.input}: inputs have shape {x.shape}; the model takes {n_features} features")
        refuse_non_finite(x, args.input + (f":{args.dataset}" if args.dataset else ""), cfg.types["input"])
        if not len(x):
            raise ValueError(f"{args.input}: no samples")
        return x
    return probe_inputs(source.ensemble, cfg.types["input"], args.samples, args.seed)


def compare(name: str, emulated: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    bad = np.any(emulated != reference, axis=1)
    result = {"oracle": name, "samples": int(len(bad)), "bit_exact": int(len(bad) - bad.sum())}
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        result["first_mismatch"] = {"sample": i, "emulator": emulated[i].tolist(), "oracle": reference[i].tolist()}
    return result


def float_agreement(source: SourceModel, values: np.ndarray, x: np.ndarray, input_type: Any) -> dict[str, Any]:
    """Firmware vs float model on the inputs the input type can hold (others wrap or
    saturate at the input port, which is the firmware's business, not a precision loss)."""
    inside = np.all((x >= input_type.min_value) & (x <= input_type.max_value), axis=1)
    x, values = x[inside], values[inside]
    out: dict[str, Any] = {"reference": source.reference_name, "samples_in_range": int(inside.sum())}
    if not len(x):
        return out
    ref = source.reference(x)
    diff = np.abs(values - ref)
    out.update(max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()))
    if (
        source.library != "conifer"
        and "Regressor" not in source.estimator
        and not source.estimator.startswith(("reg:", "count:"))
    ):
        decide = (lambda s: s.argmax(axis=1)) if ref.shape[1] > 1 else (lambda s: s[:, 0] > _cut(source))
        out["same_decision"] = float(np.mean(decide(values) == decide(ref)))
    return out


def _cut(source: SourceModel) -> float:
    """Decision threshold on the summed score: 0 for margins, 0.5 for forest probabilities."""
    return 0.5 if "Forest" in source.estimator or "Trees" in source.estimator else 0.0


def refuse_changed_since_synth(cfg: BDTConfig, meta: dict[str, Any], recorded: dict[str, str] | None = None) -> None:
    """The model file, the project's backend and precisions and (``recorded``: the
    manifest's ``settings_sha256``, None when an older synth wrote none) the other settings
    conifer builds from against what synth recorded in the manifest: the firmware built
    from the old ones is not the project any more."""
    from fpgaflow.bdt.config import firmware_settings
    from fpgaflow.bdt.export import firmware_types
    from fpgaflow.bdt.load import file_sha256, model_file
    from fpgaflow.stale import changed_settings, settings_digests

    _, path = model_file(cfg.project)
    if meta["source"]["sha256"] != file_sha256(path):
        raise ProjectError(f"{path} changed since `fpgaflow synth`; run it again")
    configured = {k: (str(v) if v is not None else None) for k, v in firmware_types(cfg).items()}
    settings = firmware_settings(cfg)
    edited = changed_settings(recorded, settings_digests(settings)) if recorded is not None else []
    if meta["backend"] != cfg.backend:  # ClockPeriod and Unroll are xilinxhls settings: the Backend says it
        edited = [key for key in edited if key in recorded and key in settings]
    if meta["types"] == configured and meta["backend"] == cfg.backend and not edited:
        return
    # named, as a network's settings are: "(backend or precisions)" left the user to diff the file
    changed = [f"Backend ({meta['backend']} at synth, {cfg.backend} now)"] if meta["backend"] != cfg.backend else []
    for key in edited:  # the manifest holds the name conifer got; of the others only a digest
        then = f"{meta['name']} at synth, " if key == "ProjectName" and "name" in meta else ""
        changed.append(f"{key} ({then}{_shown(settings.get(key))} now)")
    edits: dict[tuple[Any, Any], list[str]] = {}  # (at synth, now) -> the kinds: one Precision sets all four
    for kind, now in configured.items():
        if kind != "sum" and meta["types"].get(kind) != now:  # the sum's type follows the score's or the input's
            edits.setdefault((meta["types"].get(kind), now), []).append(kind)
    for (then, now), kinds in edits.items():
        named = kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} and {kinds[-1]}"
        changed.append(
            f"the {named} type{'s' if len(kinds) > 1 else ''} ({then or 'none'} at synth, {now or 'none'} now)"
        )
    raise ProjectError(
        f"{cfg.project.file}: {', '.join(changed) or 'the types'} changed since `fpgaflow synth`; re-run "
        f"`{cfg.project.command('synth')}`"
    )


def _shown(value: Any) -> str:
    """A setting's value as the project file spells it (``false``, not ``False``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def verify(project: Project, args: argparse.Namespace) -> int:
    import sim
    from fpgaflow.stale import refuse_stale_firmware

    cfg = read_config(project)
    emulator = sim.load(project.synthesized_emulator())
    refuse_stale_firmware(project, emulator.manifest, _say)  # model, backend, types and the recorded settings
    source = load_model(project)
    x = inputs(args, source, cfg)
    _say(f"{len(x)} inputs; emulator {emulator.id}")
    start = time.monotonic()
    pred = emulator.predict(x)
    t_emu = time.monotonic() - start
    result: dict[str, Any] = {"project": cfg.project_name, "manifest_id": emulator.id, "checks": []}
    result["checks"].append(_firmware_check(cfg, source, emulator, x, pred.raw, t_emu))
    if args.rtl:
        result["checks"].append(_rtl(cfg, emulator, x[:RTL_SAMPLES], pred.raw[:RTL_SAMPLES]))
    result["float_model"] = {"inputs": "input" if args.input else "probe",
                             **float_agreement(source, pred.values, x, emulator.input_type)}  # fmt: skip
    ok = all(c["bit_exact"] == c["samples"] for c in result["checks"])
    result["ok"] = ok
    _print(result, args.json)
    return 0 if ok else 1


def _firmware_check(
    cfg: BDTConfig, source: SourceModel, emulator: Any, x: np.ndarray, emulated: np.ndarray, t_emu: float
) -> dict[str, Any]:
    """The emulator against conifer's cpp backend; against the HLS firmware's own C++ where
    the cpp backend cannot stand for it: a saturating sum (conifer's C++ adds tree by tree,
    the unrolled firmware in a balanced tree) or input and threshold types that differ
    (conifer's cpp backend casts inputs to the threshold type)."""
    from fpgaflow.bdt.export import firmware_types
    from fpgaflow.bdt.oracle import CppOracle, HlsOracle

    types = {k: (v if v is not None else cfg.types[k]) for k, v in firmware_types(cfg).items()}
    order_matters = emulator.order != "sequential" and not emulator.sum_wraps
    cpp_possible = types["input"] == types["threshold"]
    cpp = None
    if cpp_possible:
        _say("conifer cpp backend (its g++ build is cached per precision under ~/.cache/fpgaflow)")
        start = time.monotonic()
        cpp = compare(
            "conifer cpp", emulated, CppOracle(source.ensemble, types, cfg.project.build_dir / "cpp").predict_raw(x)
        )
        cpp["oracle_s"] = round(time.monotonic() - start, 3)
    if cpp is not None and not order_matters:
        cpp["emulator_s"] = round(t_emu, 3)
        return cpp
    if cfg.backend != "xilinxhls":
        raise ProjectError(f"{cfg.project.file}: no C++ reference for this vhdl firmware; use --rtl")
    why = "the score type saturates" if order_matters else "InputPrecision differs from ThresholdPrecision"
    _say(f"{why}: checking the HLS firmware's own C++ (compiled by g++; minutes for 100 trees, then cached)")
    start = time.monotonic()
    check = compare(
        "conifer xilinxhls C simulation",
        emulated,
        HlsOracle(source.ensemble, cfg.conifer, cfg.types["score"]).predict_raw(x),
    )
    check.update(emulator_s=round(t_emu, 3), oracle_s=round(time.monotonic() - start, 3))
    if cpp is not None:
        check["note"] = (
            f"conifer cpp (sequential sum) agrees on {cpp['bit_exact']}/{cpp['samples']}; "
            "the firmware sums in a balanced tree"
        )
    return check


def _rtl(cfg: BDTConfig, emulator: Any, x: np.ndarray, emulated: np.ndarray) -> dict[str, Any]:
    from fpgaflow.bdt.rtl import simulate

    if cfg.backend != "vhdl":
        raise ProjectError(
            f"{cfg.project.file}: --rtl simulates conifer's VHDL with GHDL, but Backend is {cfg.backend} "
            "(HLS C++ needs a vendor tool to become RTL); use Backend: vhdl"
        )
    _say(f"GHDL simulation of the VHDL on {len(x)} inputs")
    start = time.monotonic()
    x_raw = emulator.input_type.to_raw(x.astype(np.float64))
    y = simulate(cfg.hls_dir, x_raw, emulator.n_outputs)
    check = compare("GHDL RTL (conifer vhdl)", emulated, y)
    check["oracle_s"] = round(time.monotonic() - start, 1)
    return check


def _print(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=1))
        return
    for c in result["checks"]:
        status = "OK" if c["bit_exact"] == c["samples"] else "MISMATCH"
        print(f"{c['oracle']}: {c['bit_exact']}/{c['samples']} bit-exact  {status}")
        if "first_mismatch" in c:
            print(f"  first mismatch: {c['first_mismatch']}")
        if "note" in c:
            print(f"  note: {c['note']}")
    f = result["float_model"]
    line = f"float model ({f['reference']}) on {f['samples_in_range']} inputs inside the input type"
    if "max_abs_diff" in f:
        line += f": max |diff| {f['max_abs_diff']:.4g}, mean {f['mean_abs_diff']:.4g}"
    if "same_decision" in f:
        line += f", same decision on {100 * f['same_decision']:.2f}%"
    if f.get("inputs") == "probe":  # read as an accuracy, a low figure looked like wrong firmware
        line += (
            " (probe inputs, chosen on and beside the trees' thresholds where firmware and model part: "
            "not an accuracy figure; for one, give rows of your data with --input)"
        )
    print(line)
    print("verify: " + ("PASS (100% bit-exact)" if result["ok"] else "FAIL"))
