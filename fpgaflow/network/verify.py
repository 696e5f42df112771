"""``fpgaflow verify`` for a network: the emulator against hls4ml's C simulation
(the firmware sources compiled with g++) and against the float Keras model."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import pickle
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from fpgaflow.errors import UserError
from fpgaflow.network.model import quiet_qkeras_serialize
from fpgaflow.project import Project, ProjectError


def _say(msg: str) -> None:
    print(f"verify: {msg}", file=sys.stderr, flush=True)


def random_inputs(input_type: Any, shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    """Inputs across the input type's whole range: exact grid values (uniform raw),
    off-grid floats reaching 25% beyond both ends (the port's rounding and
    saturation), and rows at the edges (all min, all max, zero, alternating)."""
    rng = np.random.default_rng(seed)
    t = input_type
    raw = rng.integers(t.min_raw, t.max_raw, size=(n, *shape), endpoint=True)
    x = t.from_raw(raw)
    n_off = n // 5
    lo, hi = t.min_value, t.max_value
    span = hi - lo
    x[:n_off] = rng.uniform(lo - 0.25 * span, hi + 0.25 * span, size=(n_off, *shape))
    edges = [
        np.full(shape, lo),
        np.full(shape, hi),
        np.zeros(shape),
        np.where(np.indices(shape).sum(axis=0) % 2 == 0, lo, hi),
    ]
    for i, row in enumerate(edges[: max(0, n - n_off)]):
        x[n_off + i] = row
    return x


def raw_of(values: np.ndarray, t: Any) -> np.ndarray:
    """Raw integers of csim's double outputs (exact: every value is on the type's grid)."""
    return np.round(np.ldexp(np.asarray(values, dtype=np.float64), t.frac_bits)).astype(np.int64)


def first_divergence(net: Any, ours: dict, theirs: dict) -> dict | None:
    for layer in net.layers:
        if layer.name not in theirs or layer.name not in ours:
            continue
        got = ours[layer.name].raw.reshape(len(ours[layer.name].raw), -1)
        expected = raw_of(theirs[layer.name], layer.result_type).reshape(got.shape)
        bad = np.argwhere(got != expected)
        if len(bad):
            s, i = (int(v) for v in bad[0])
            return {
                "layer": layer.name,
                "kind": layer.spec["kind"],
                "sample": s,
                "index": i,
                "expected_raw": int(expected[s, i]),
                "got_raw": int(got[s, i]),
                "type": str(layer.result_type),
                "mismatching_samples": int(len(np.unique(bad[:, 0]))),
            }
    return None


def compare(
    net: Any, x: np.ndarray, csim_y: np.ndarray, csim_trace: dict, keras_y: np.ndarray | None, float_from: int = 0
) -> dict:
    """The emulator against the C simulation on every sample of ``x``; against the float
    model (``keras_y``, its outputs for ``x[float_from:]``) on those samples only."""
    ours = net.trace(x)
    out = ours[net.output_name]
    n = len(x)
    expected = raw_of(csim_y, net.output_type).reshape(out.raw.shape)
    same = (expected == out.raw).reshape(n, -1)
    result: dict[str, Any] = {
        "samples": n,
        "outputs_compared": int(same.size),
        "bit_exact_fraction": float(same.mean()),
        "bit_exact_samples": int(same.all(axis=1).sum()),
        "first_divergence": None if same.all() else first_divergence(net, ours, csim_trace),
        "most_common_output_share": most_common_share(out.raw.reshape(n, -1)),
    }
    if not same.all() and result["first_divergence"] is None:
        s, i = (int(v) for v in np.argwhere(~same)[0])
        result["first_divergence"] = {
            "layer": net.output_name,
            "sample": s,
            "index": i,
            "expected_raw": int(expected.reshape(n, -1)[s, i]),
            "got_raw": int(out.raw.reshape(n, -1)[s, i]),
        }
    if keras_y is not None:
        result["float_model"] = float_agreement(net, x[float_from:], out.values[float_from:], keras_y)
    return result


# the share of inputs given one output row from which verify warns: KERAS_3layer under
# Model.Precision alone gave 97.9% of 2,000 random inputs one output, 100% of in-range ones
ALIKE_WARN = 0.95
ALIKE_MIN_SAMPLES = 20


def most_common_share(rows: np.ndarray) -> float:
    """The share of samples whose whole output is the commonest one: near 1, the firmware
    hardly depends on its input (bit-exact with csim all the same: a softmax exp table too
    coarse gave every class 0.2 on every input, and verify said PASS without a word)."""
    if not len(rows):
        return 0.0
    _, counts = np.unique(rows, axis=0, return_counts=True)
    return float(counts.max() / len(rows))


def alike_line(share: float, n: int) -> str | None:
    """verify's warning when one output row stands for nearly every input; None otherwise."""
    if n < ALIKE_MIN_SAMPLES or share < ALIKE_WARN:
        return None
    return (
        f"verify: warning: the firmware gives one and the same output for {share:.1%} of the {n} inputs: bit-exact "
        "with the C simulation, but it hardly depends on its input; see synth's warnings (a softmax exp table too "
        "coarse, a result type that saturates) and the report's types"
    )


def float_agreement(net: Any, x: np.ndarray, values: np.ndarray, keras_y: np.ndarray) -> dict[str, Any]:
    """Firmware vs float model on the inputs the input type can hold, as BDT verify compares
    them: the others wrap or saturate at the input port, which is the firmware's business,
    not a precision loss (the random inputs reach 25% beyond the type: a 6-bit QKeras
    model read max |diff| 7.969 over all of them, 0 over those in range).  Over the samples whose float outputs
    are finite (a float model can overflow); null where no sample is left (JSON has no NaN)."""
    n = len(x)
    t = net.input_type
    flat = np.asarray(x, dtype=np.float64).reshape(n, -1)
    inside = np.all((flat >= t.min_value) & (flat <= t.max_value), axis=1)
    k = np.asarray(keras_y, dtype=np.float64).reshape(n, -1)[inside]
    v = np.asarray(values).reshape(n, -1)[inside]
    finite = np.isfinite(k).all(axis=1)
    k, v = k[finite], v[finite]
    diff = np.abs(k - v)
    return {
        "samples_in_range": int(inside.sum()),
        "max_abs_diff": float(diff.max()) if diff.size else None,
        "non_finite_samples": int(len(finite) - finite.sum()),
        "argmax_agreement": float(np.mean(k.argmax(axis=1) == v.argmax(axis=1))) if k.shape[1] > 1 and len(k) else None,
    }


def csim_model(model: Any, settings: Any, workdir: Path) -> Any:
    """A copy of the project with every layer traced; ``trace()`` compiles it with g++."""
    from fpgaflow.network.convert import convert

    return convert(model, settings, workdir, trace=True)


class CsimAborted(UserError):
    """hls4ml's C simulation ended on a signal (an ap_types assert's SIGABRT, a crash)."""


def csim_trace(hls_model: Any, x: np.ndarray) -> tuple[np.ndarray, dict]:
    """hls4ml's C simulation with per-layer outputs (compiles first: 10-20 s).

    Double inputs make the bridge run in double, so outputs come back exactly.  hls4ml
    runs the compiled firmware in-process (ctypes), where an assert in the ap_types
    headers (``refuse_csim_aborts`` finds the one known; docs/fixed_point.md, quirk 8)
    or a crash ended fpgaflow with SIGABRT and the header's text: it runs in a forked
    child, whose output is passed on, and a child ended by a signal is a ``CsimAborted``
    naming the signal, with what the simulation printed."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    with tempfile.TemporaryDirectory(prefix="fpgaflow-csim-run-") as tmp:
        log, out = Path(tmp) / "output.txt", Path(tmp) / "result.pickle"
        sys.stdout.flush()
        sys.stderr.flush()
        # the parent's objects are out of the child's garbage collections: one that freed
        # TensorFlow's garbage there (its threads are not in the child) died with SIGSEGV
        gc.freeze()
        try:
            with warnings.catch_warnings():  # Python 3.12+ frets over fork with threads: the child only runs csim
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:  # pragma: no cover - the child (coverage does not follow it)
                gc.disable()
                _csim_child(hls_model, x, log, out)
        finally:
            gc.unfreeze()
        try:
            _, status = os.waitpid(pid, 0)
        except BaseException:  # Ctrl-C: the child goes too
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        printed = log.read_text(errors="replace") if log.exists() else ""
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            try:
                name = f", {signal.Signals(number).name}"
            except ValueError:
                name = ""
            raise CsimAborted(f"hls4ml C simulation aborted (signal {number}{name}){_printed(printed)}")
        if not out.exists():  # the firmware called exit()
            code = os.waitstatus_to_exitcode(status)
            raise CsimAborted(f"hls4ml C simulation exited with status {code}{_printed(printed)}")
        sys.stderr.write(printed)  # hls4ml's 'Recompiling ...', a compiler's errors, the firmware's prints
        sys.stderr.flush()
        with open(out, "rb") as f:
            kind, value = pickle.load(f)
    if kind == "error":
        raise value
    return value


CSIM_OUTPUT_LINES = 40


def _printed(text: str) -> str:
    """What the C simulation printed, for an error message: its last lines."""
    lines = text.rstrip().splitlines()
    if not lines:
        return "; it printed nothing"
    if len(lines) > CSIM_OUTPUT_LINES:
        return f"; the last {CSIM_OUTPUT_LINES} of the {len(lines)} lines it printed:\n" + "\n".join(
            lines[-CSIM_OUTPUT_LINES:]
        )
    return "; it printed:\n" + "\n".join(lines)


def _csim_child(hls_model: Any, x: np.ndarray, log: Path, out: Path) -> None:  # pragma: no cover - in the child
    """``csim_trace``'s child: stdout and stderr into ``log``, the result (or the
    exception) pickled into ``out``; never returns."""
    code = 0
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        # line-buffered: what Python printed is in the log even when the firmware aborts
        sys.stdout = sys.stderr = open(fd, "w", buffering=1, closefd=False)  # left open: os._exit ends the child
        y, trace = hls_model.trace(x)
        result: tuple[str, Any] = ("ok", (np.asarray(y), trace))
    except BaseException as exc:  # handed to the parent, which raises it
        result, code = ("error", exc), 1
    try:
        with open(out, "wb") as f:
            try:
                pickle.dump(result, f)
            except Exception:  # an exception that does not pickle: its text
                f.seek(0)
                f.truncate()
                pickle.dump(("error", RuntimeError(f"{type(result[1]).__name__}: {result[1]}")), f)
    finally:
        os._exit(code)


CSIM_ABORT = (
    "on such a cast ap_types' operator= reads a bit beyond the source's MSB and ap_private's assert aborts hls4ml's "
    "C simulation (docs/fixed_point.md, quirk 8)"
)


def csim_abort_warnings(net: Any) -> list[str]:
    """synth's warnings for the casts of ``net`` that abort hls4ml's C simulation: the
    firmware is fine for hardware (the value is defined, the emulator computes it), so synth
    goes on, and says that verify will not run csim on it."""
    from sim.network.csim_casts import aborting_casts

    return [
        f"{cast}: {CSIM_ABORT}, so `fpgaflow verify` cannot run on this project; the firmware is fine for hardware "
        f"(it and the emulator compute the defined value); for a project verify can check, use {cast.fix()}"
        for cast in aborting_casts(net)
    ]


def refuse_csim_aborts(net: Any) -> None:
    """verify's refusal to start hls4ml's C simulation on a firmware with a cast it aborts on
    (it died with SIGABRT and ap_private's assert text, no word of ours), naming each cast."""
    from sim.network.csim_casts import aborting_casts

    casts = aborting_casts(net)
    if casts:
        named = "; ".join(f"{cast}, where csim needs {cast.fix()}" for cast in casts)
        raise ProjectError(
            f"hls4ml's C simulation cannot run on this firmware: {named}. {CSIM_ABORT[0].upper() + CSIM_ABORT[1:]}. "
            "The firmware itself is fine: hardware and the emulator (`fpgaflow emulate`) compute the value the code "
            "means; to verify it against the C simulation, change those types and re-run `fpgaflow synth`"
        )


def refuse_changed_model(project: Project, synthesized: str | None) -> None:
    """The model files against the hash synth recorded: verify compares the firmware built
    from the old model with the C simulation of the new one, and a changed model reads as
    an emulator bug ('97.5% bit-exact, first divergence at layer fc2_relu')."""
    from fpgaflow.network.config import model_files
    from fpgaflow.network.model import source_sha256

    files = model_files(project)
    if synthesized and source_sha256(files) != synthesized:
        named = ", ".join(str(f) for f in files)
        raise ProjectError(
            f"{named}: the model file{'s' if len(files) > 1 else ''} changed since `fpgaflow synth` (the hash it "
            f"recorded in the manifest differs); re-run `{project.command('synth')}`"
        )


def refuse_stale_manifest(manifest: Any, meta: dict, arrays: dict, emulator_dir: Path) -> None:
    """The firmware hls4ml builds now (``meta``, ``arrays``) against the manifest synth
    wrote: its layers and their weights.  The model files' hash catches a model changed
    since synth; this catches the rest (another hls4ml, or a model that loads with other
    weights each time), which would otherwise read as an emulator divergence."""
    layers = manifest.meta["layers"]
    stale = [a["name"] for a, b in zip(meta["layers"], layers, strict=False) if a != b]
    if stale or len(meta["layers"]) != len(layers):
        raise ProjectError(
            f"{emulator_dir}: the manifest does not match the project any more "
            f"(layers differ: {', '.join(stale) or 'layer count'}); re-run `fpgaflow synth`"
        )
    differ = [
        spec["name"]
        for spec in meta["layers"]
        if any(
            name not in manifest.arrays or not np.array_equal(arrays[name], manifest.arrays[name])
            for name in (spec.get("arrays") or {}).values()
        )
    ]
    if differ:
        raise ProjectError(
            f"{emulator_dir}: the manifest does not match the project any more (the weights of "
            f"{', '.join(map(repr, differ))} differ from what hls4ml builds from the model now); "
            "re-run `fpgaflow synth`"
        )


def project_rows(project: Project, net: Any, samples: int) -> tuple[np.ndarray, str] | None:
    """The first ``samples`` rows of the project's data (its ``Data:`` columns; a missing
    file made by its ``Generator`` first, as ``train`` and ``profile`` make it),
    preprocessed as ``emulate`` preprocesses ``--input`` rows, and what they are; None
    for a project without a ``Data:`` block, and for one whose data is not on this machine
    (no file, no ``Generator`` to make it), said in a note: the bit-exact check, verify's
    first job, needs no data, and the float line then says its inputs are random.  Data
    that is there but cannot be read is an error naming the file (``DataError``), never a
    quiet fall-back to the random inputs."""
    if "Data" not in project.config:
        return None
    from dataclasses import replace

    from fpgaflow.data import DataConfig, read_dataset
    from fpgaflow.data.config import DataError
    from fpgaflow.data.dataset import generate_missing
    from fpgaflow.data.scaling import refuse_feature_mismatch
    from sim.emulator import refuse_non_finite, sample_rows

    cfg = DataConfig.from_project(project)
    generate_missing(cfg)
    try:
        cfg.expand_files()
    except DataError as exc:  # not here: the float model on the random inputs, said so
        _say(f"note: {exc}; the float model is compared on the random inputs instead (or give rows with --input)")
        return None
    limit = samples if cfg.max_entries is None else min(samples, cfg.max_entries)
    ds = read_dataset(replace(cfg, max_entries=limit, labels=[]), need_labels=False)  # the labels are not needed
    files = ", ".join(str(f) for f in ds.files)
    block = net.manifest.meta.get("preprocessing")
    features = block.get("features") if isinstance(block, dict) else None
    if features is not None:  # the columns in the order the firmware's scaling was fitted for
        refuse_feature_mismatch(project, features, f"the manifest {project.build_dir / 'emulator'}", ds.feature_names)
    x = ds.features.astype(np.float64)
    sample_rows(x, net.input_shape, files)  # (N, *shape) or flat rows, nothing reshaped to fit
    x = net.preprocess(x)
    refuse_non_finite(x, files, net.input_type, features)
    return x, f"the first {len(x)} rows of the project data in {files}"


def divergence_line(d: dict[str, Any], data_from: int | None) -> str:
    """The first divergence as a text line; ``data_from``: the first sample that is a row of
    the project's data (they follow the random inputs), None without them."""
    row = (
        f" (row {d['sample'] - data_from} of the project data)"
        if data_from is not None and d["sample"] >= data_from
        else ""
    )
    return (
        f"verify: first divergence at layer {d['layer']!r}, sample {d['sample']}{row}, element {d['index']}: "
        f"expected raw {d['expected_raw']}, got {d['got_raw']}"
    )


def float_line(f: dict[str, Any]) -> str:
    """The text line of the firmware against the float model, saying which inputs it is on:
    on random inputs across the input type the agreement is no accuracy figure, and says so."""
    agree = f", argmax agreement {f['argmax_agreement'] * 100:.2f}%" if f["argmax_agreement"] is not None else ""
    diff = "n/a" if f["max_abs_diff"] is None else f"{f['max_abs_diff']:.4g}"
    odd = f", {f['non_finite_samples']} samples with NaN/inf float outputs left out" if f["non_finite_samples"] else ""
    line = (
        f"verify: float Keras model on {f['source']}, {f['samples_in_range']} of them inside the input type: "
        f"max |diff| {diff}{odd}{agree}"
    )
    if f["inputs"] == "random":
        line += (
            " (random inputs across the input type are out of distribution for a trained model: this agreement is "
            "not an accuracy figure; for one, give rows of your data with --input, or declare them in the project's "
            "Data: block)"
        )
    return line


@quiet_qkeras_serialize()  # Keras frets over QKeras quantizers at each serialization
def verify(project: Project, args: argparse.Namespace) -> int:
    import sim
    from fpgaflow.arrays import read_array
    from fpgaflow.network.config import read_settings
    from fpgaflow.network.manifest import manifest_content
    from fpgaflow.network.model import load_keras_model
    from fpgaflow.stale import refuse_stale_firmware
    from sim.emulator import refuse_non_finite, sample_rows

    settings = read_settings(project)
    emulator_dir = project.synthesized_emulator()
    net = sim.load(emulator_dir)
    refuse_stale_firmware(project, net.manifest, _say)  # model, settings, the scaling --input rows go through
    refuse_csim_aborts(net)  # before anything is compiled
    data = None
    if args.input:
        where = args.input + (f":{args.dataset}" if args.dataset else "")
        x = read_array(args.input, args.dataset)[: args.samples]  # --samples: its first rows
        sample_rows(x, net.input_shape, where)  # (N, *shape) or flat rows, nothing reshaped to fit
        x = net.preprocess(x)  # raw features, as `emulate` takes them
        features = (net.manifest.meta.get("preprocessing") or {}).get("features")
        refuse_non_finite(x, where, net.input_type, features)
        inputs = {"input": len(x)}
        float_inputs = ("input", f"the {len(x)} rows of --input {where}")
    else:
        x = random_inputs(net.input_type, net.input_shape, int(args.samples), int(args.seed))
        inputs = {"random": len(x)}
        float_inputs = ("random", f"the {len(x)} random inputs across {net.input_type} drawn with seed {args.seed}")
        # the bit-exact check keeps the random inputs, every corner of the arithmetic; the float model
        # is compared on the project's own rows (what it was trained for), which csim checks too
        data = project_rows(project, net, int(args.samples))
    x = net._input_raw(x)
    float_from = 0
    if data is not None:
        float_from = len(x)
        x = np.concatenate([x, net._input_raw(data[0])])
        inputs["project_data"] = len(data[0])
        float_inputs = ("project_data", data[1])
    model = load_keras_model(project)
    with tempfile.TemporaryDirectory(prefix="fpgaflow-csim-") as tmp:
        hls_model = csim_model(model, settings, Path(tmp) / "hls")
        meta, arrays = manifest_content(hls_model, settings, net.manifest.meta.get("source_sha256", ""))
        refuse_stale_manifest(net.manifest, meta, arrays, emulator_dir)
        t0 = time.monotonic()
        _say(f"compiling the C simulation and running {len(x)} samples")
        csim_y, trace = csim_trace(hls_model, x)
        _say(f"C simulation done in {time.monotonic() - t0:.1f} s")
    with contextlib.redirect_stdout(sys.stderr):
        keras_y = model.predict(x[float_from:], verbose=0, batch_size=4096)
    result = {
        "project": str(project.file),
        "manifest_id": net.id,
        "inputs": inputs,
        **compare(net, x, csim_y, trace, keras_y, float_from),
    }
    kind, source = float_inputs
    result["float_model"] = {"inputs": kind, "source": source, "samples": len(x) - float_from, **result["float_model"]}
    ok = result["bit_exact_fraction"] == 1.0
    if args.json:
        print(json.dumps(result, indent=1, allow_nan=False))  # valid JSON, or an error here rather than NaN
    else:
        which = ""
        if data is not None:
            which = f": {inputs['random']} random across the input type, {inputs['project_data']} project data rows"
        print(
            f"verify: {result['bit_exact_fraction'] * 100:.4f}% of {result['outputs_compared']} outputs bit-exact "
            f"({result['bit_exact_samples']}/{result['samples']} samples{which}) against hls4ml C simulation"
        )
        if result["first_divergence"]:
            print(divergence_line(result["first_divergence"], float_from if data is not None else None))
        print(float_line(result["float_model"]))
    alike = alike_line(result["most_common_output_share"], result["samples"])
    if alike is not None:  # on stderr, with --json too
        print(alike, file=sys.stderr)
    return 0 if ok else 1
