"""The demo's picture: built-event rates over time per path, and the latency
distribution (board timestamp to event out of the node)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot(paths: list[dict[str, Any]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_rate, ax_lat) = plt.subplots(1, 2, figsize=(12, 4.5))
    t0 = min((int(p["_built_ns"].min()) for p in paths if len(p["_built_ns"])), default=0)
    for p in paths:
        built = p["_built_ns"]
        if not len(built):
            continue
        t = (built.astype(np.int64) - t0) / 1e9
        width = max(0.5, float(t.max()) / 60)
        edges = np.arange(0.0, float(t.max()) + width, width)
        counts, _ = np.histogram(t, edges)
        ax_rate.step(edges[:-1], counts / width, where="post", label=f"{p['path']} ({len(p['sources'])} boards)")
    ax_rate.set_xlabel("time since the first built event (s)")
    ax_rate.set_ylabel("built events / s")
    ax_rate.set_title("event building rate per node")
    ax_rate.legend(loc="upper right")
    lat = np.concatenate([p["_latency"] for p in paths if len(p["_latency"])] or [np.zeros(0)])
    lat = lat[lat > 0]
    if len(lat):
        bins = np.logspace(np.log10(max(lat.min(), 1e-5)), np.log10(lat.max() * 1.01), 80)
        for p in paths:
            x = p["_latency"][p["_latency"] > 0]
            ax_lat.hist(x, bins=bins, histtype="step", label=p["path"])
        ax_lat.set_xscale("log")
        ax_lat.set_yscale("log")
        for q, style in ((0.5, "--"), (0.99, ":")):
            v = float(np.quantile(lat, q))
            ax_lat.axvline(v, color="k", linestyle=style, label=f"p{int(q * 100)} {v * 1e3:.2f} ms")
    ax_lat.set_xlabel("latency: board timestamp -> event out of the node (s)")
    ax_lat.set_ylabel("events")
    ax_lat.set_title("end-to-end latency (incomplete events wait for the timeout)")
    ax_lat.legend()
    fig.tight_layout()
    path = out / "demo.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
