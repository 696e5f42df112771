"""``fpgaflow train PROJECT``: quantization-aware training of the network the project
file declares, on the data its ``Data:`` block names; writes the model, the input
scaling and the history into the project folder, ready for ``fpgaflow synth``."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("project", help="project folder or file with Training: and Data: blocks")
    p.add_argument("--epochs", type=int, help="override Training.Epochs (at least 1; e.g. a quick trial)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), help="Keras progress: 0 silent, 1 bars, 2 one line/epoch")


def run(args: argparse.Namespace) -> int:
    import os

    from fpgaflow.project import ProjectError, load_project

    project = load_project(args.project)
    if project.kind != "network":
        raise ProjectError(f"{project.file}: `fpgaflow train` trains networks; this project is a {project.kind}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    from fpgaflow.train.fit import train_project

    tf.get_logger().setLevel("ERROR")
    result = train_project(project, epochs=args.epochs, verbose=args.verbose)
    acc = f"validation accuracy {result.val_accuracy:.4f}" if result.val_accuracy is not None else "no validation"
    sparse = f", weight sparsity {result.sparsity:.2f}" if result.sparsity is not None else ""
    print(f"train: {result.epochs_run} epochs in {result.seconds:.0f} s, {acc}{sparse}")
    for path in result.outputs.all():
        print(f"  wrote {path}")
    print(f"next: fpgaflow synth {args.project}")
    return 0
