"""PNG plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fpgaflow.profiling.ranges import Range


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def ranges_plot(weights: list[Range], outputs: list[Range], overflowing: set[str], path: Path) -> Path:
    """log2|value| per tensor as box plots (whiskers at min and max) over grey bands
    spanning each type's [LSB, max]: a box reaching right of its band overflows, one
    left of it underflows (as hls4ml's numerical profiling draws it)."""
    plt = _pyplot()
    panels = [(p, title) for p, title in ((weights, "weights and biases"), (outputs, "layer outputs")) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 0.45 * max(len(p) for p, _ in panels) + 2))
    axes = np.atleast_1d(axes)
    for ax, (ranges, title) in zip(axes, panels, strict=True):
        labels = [f"{r.layer} {r.what}" if r.what != "output" else r.layer for r in ranges]
        ypos = np.arange(len(ranges))[::-1]
        for y, r in zip(ypos, ranges, strict=True):
            lo, hi = np.log2(r.type_lsb), np.log2(max(r.type_high, r.type_lsb))
            ax.add_patch(plt.Rectangle((lo, y - 0.4), hi - lo, 0.8, color="0.85", zorder=0))
        data = [np.log2(r.abs_nonzero) if len(r.abs_nonzero) else np.array([np.nan]) for r in ranges]
        box = ax.boxplot(
            data,
            positions=ypos,
            orientation="horizontal",
            whis=(0, 100),
            widths=0.5,
            patch_artist=True,
            showfliers=False,
        )
        for patch, r in zip(box["boxes"], ranges, strict=True):
            patch.set_facecolor("tab:red" if r.layer in overflowing and r.what == "output" else "tab:blue")
        ax.set_yticks(ypos, labels)
        ax.set_xlabel("log2 |value|   (grey: type range from LSB to max; red: outputs that overflow)")
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def roc_plot(float_roc: dict[str, dict], firmware_roc: dict[str, dict], path: Path) -> Path:
    """One curve per class, as HEP taggers are shown: signal efficiency against
    background efficiency (log scale); firmware (emulated) solid, float model dashed,
    AUCs in the legend."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(firmware_roc):
        c = colors[i % len(colors)]
        fw = firmware_roc[name]
        ax.plot(fw["tpr"], fw["fpr"], color=c, label=f"{name}: firmware AUC {fw['auc']:.4f}")
        if name in float_roc:
            fl = float_roc[name]
            ax.plot(fl["tpr"], fl["fpr"], color=c, ls="--", label=f"{name}: float AUC {fl['auc']:.4f}")
    ax.set_yscale("log")
    ax.set_ylim(1e-4, 1.05)
    ax.set_xlim(0, 1)
    ax.set_xlabel("signal efficiency (true positive rate)")
    ax.set_ylabel("background efficiency (false positive rate)")
    ax.set_title("ROC per class: emulated firmware (solid) vs float model (dashed)")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
