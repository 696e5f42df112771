"""``fpgaflow profile PROJECT --input X``: how the firmware's fixed-point types fit the
data: per-layer ranges against type ranges, overflow/underflow counts measured by the
emulator, suggested types, ROC curves and accuracy of the float model vs the firmware
(``report.md`` and PNG plots under ``build/profile/``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fpgaflow.project import Project


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("project", help="a synthesized network project (folder or project file)")
    p.add_argument(
        "--input",
        help="raw features: a data file read with the project's Data: columns, or with --dataset an array "
        "(.npy/.npz/.h5); default: the validation entries of the project's training data (the split its "
        "training history records)",
    )
    p.add_argument("--dataset", help="array name inside an .npz/.h5 input (skips the Data: columns)")
    p.add_argument("--labels", help="with --dataset: the labels' array name in the same file, or a labels file")
    p.add_argument("--samples", type=int, default=20_000, help="profile at most this many samples")
    p.add_argument("--output", help="folder for report.md, report.json and the plots (default: build/profile)")


def check_options(args: argparse.Namespace, project: Project) -> None:
    """Refuse options that would be ignored (``--labels`` with the ``Data:`` columns, which
    carry their own) or misread (``--samples -5`` dropped the last five samples, 0 meant
    all, where verify refuses values below 1)."""
    from fpgaflow.errors import UserError

    if args.samples < 1:
        raise UserError(f"--samples {args.samples}: must be at least 1 (the most samples profiled)")
    if args.dataset is not None and args.input is None:
        raise UserError(f"--dataset {args.dataset!r} names an array inside --input, and no --input is given")
    if args.labels is not None and args.dataset is None and "Data" in project.config:
        raise UserError(
            f"--labels {args.labels}: the inputs are read with the project's Data: columns, whose labels are "
            "Data.Labels; --labels goes with --dataset (the inputs read as one array)"
        )


def run(args: argparse.Namespace) -> int:
    import os

    from fpgaflow.project import ProjectError, load_project

    project = load_project(args.project)
    if project.kind != "network":
        raise ProjectError(f"{project.file}: profiling is for networks; this project is a {project.kind}")
    check_options(args, project)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from fpgaflow.profiling.profile import profile_project

    result = profile_project(project, args.input, args.dataset, args.labels, args.output, args.samples)
    acc = result["accuracy"]
    if acc:
        print(
            f"profile: accuracy float {acc['float']:.4f}, firmware {acc['firmware']:.4f} "
            f"(top class agrees for {acc['argmax_agreement'] * 100:.2f}%)"
        )
    for row in result["layers"]:
        if row["overflow"] or row["underflow"]:
            print(
                f"profile: {row['name']}: {row['overflow']} overflows, {row['underflow']} underflows "
                f"in {row['type']} (suggested: {row['suggestion']})"
            )
    print(f"profile: {result['samples']} samples -> {result['report']}")
    return 0
