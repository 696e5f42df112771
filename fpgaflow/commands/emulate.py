"""``fpgaflow emulate PROJECT --input X --output Y``: the firmware's outputs, bit-exact,
computed by the NumPy emulator from the project's manifest (no compiler, no vendor tool)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.manifest import Manifest

CHUNK = 65_536


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("project", help="project folder/file, or a manifest folder (build/emulator)")
    p.add_argument("--input", required=True, help="inputs: .npy, .npz or .h5 (one row per sample)")
    p.add_argument("--dataset", help="array name inside an .npz/.h5 input")
    p.add_argument("--output", required=True, help="outputs: .npy (values), .npz or .h5 (values and raw)")


def firmware_manifest(target: str, command: str) -> Manifest:
    """The manifest of a folder given directly, or the one a synthesized project exported,
    read once for the stale check and the emulator alike; of a project, a warning on
    stderr when files or settings changed since synth (``fpgaflow.stale``)."""
    from fpgaflow.project import load_project
    from fpgaflow.stale import warn_if_stale
    from sim.manifest import MANIFEST_FILE, read_manifest

    p = Path(target)
    if (p / MANIFEST_FILE).is_file() or p.name == MANIFEST_FILE:
        return read_manifest(p)
    project = load_project(p)
    manifest = read_manifest(project.synthesized_emulator())
    warn_if_stale(project, manifest, command)
    return manifest


def run(args: argparse.Namespace) -> int:
    import numpy as np

    import sim
    from fpgaflow.arrays import check_output_path, read_array, write_arrays
    from fpgaflow.progress import Progress
    from fpgaflow.project import ProjectError
    from sim.emulator import refuse_non_finite, sample_rows

    check_output_path(args.output)  # before the run: a folder was said only after it
    if Path(args.output).resolve() == Path(args.input).resolve():  # the inputs were replaced, exit 0
        raise ProjectError(
            f"--output {args.output} is the --input file: the outputs would replace the inputs; name another file"
        )
    model = sim.from_manifest(firmware_manifest(args.project, "emulate"))
    x = read_array(args.input, args.dataset)
    where = args.input + (f":{args.dataset}" if args.dataset else "")
    sample_rows(x, model.input_shape, where)  # (N, *shape) or flat rows, nothing reshaped to fit
    preprocess = getattr(model, "preprocess", None)  # networks: the training's scaling (and NaN/inf replacement)
    features = (model.manifest.meta.get("preprocessing") or {}).get("features")
    progress = Progress(len(x), "emulate")
    raws, values = [], []
    for start in range(0, len(x), CHUNK):
        part = x[start : start + CHUNK]
        # NaN/inf left after the preprocessing: named (file, row, feature) before the port casts it;
        # a network's chunk is scaled once, for the check and the prediction alike
        scaled = preprocess(part) if preprocess is not None else part
        refuse_non_finite(scaled, where, model.input_type, features, first_row=start)
        pred = model.predict_scaled(scaled) if preprocess is not None else model.predict(part)
        raws.append(pred.raw)
        values.append(pred.values)
        progress.update(len(pred.raw))
    if not raws:
        raise ValueError(f"{args.input}: no samples")
    write_arrays(args.output, values=np.concatenate(values), raw=np.concatenate(raws))
    print(f"emulate: {len(x)} samples -> {args.output} (firmware {model.id})")
    return 0
