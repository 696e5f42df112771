"""Max/average pooling, 1-d and 2-d, windowed and global (hls4ml's Pooling1D/2D,
GlobalPooling1D/2D).  The io type goes into the entry: the stream kernels compute
differently (see ``sim/network/layers/pooling.py``)."""

from __future__ import annotations

from fpgaflow.network.exporters import exporter
from fpgaflow.network.exporters.conv2d import check_channels_last
from fpgaflow.network.types import layer_type

KERAS = (
    "MaxPooling1D",
    "MaxPooling2D",
    "AveragePooling1D",
    "AveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
)
WINDOW_2D = ("in_height", "in_width", "n_filt", "pool_height", "pool_width", "stride_height", "stride_width")
PADS_2D = ("pad_top", "pad_bottom", "pad_left", "pad_right", "out_height", "out_width")


def _common(layer, ctx, kind: str) -> dict:
    check_channels_last(layer)
    op = str(layer.get_attr("pool_op")).lower()
    if op not in ("max", "average"):
        raise ValueError(f"layer {layer.name!r} ({layer.class_name}): pool_op {op!r} is not supported (max, average)")
    return {
        "kind": kind,
        "pool_op": op,
        "accum_type": layer_type(layer, "accum_t"),
        "stream": ctx.io_type == "io_stream",
        "implementation": str(layer.get_attr("implementation", "linebuffer")).lower(),  # same arithmetic
    }


def _check_stream(layer, ctx, spec: dict, pool: tuple, strides: tuple) -> None:
    pads = [spec.get(k, 0) for k in ("pad_top", "pad_bottom", "pad_left", "pad_right")]
    if ctx.io_type == "io_stream" and (any(pads) or pool != strides):
        raise ValueError(
            f"layer {layer.name!r} ({layer.class_name}): io_stream pooling needs padding 'valid' and strides equal "
            f"to the pool size (hls4ml's stream kernel asserts it); got pads {pads}, pool {pool}, strides {strides}"
        )


@exporter("Pooling2D", keras=KERAS)
def export_pooling2d(layer, ctx) -> dict:
    spec = _common(layer, ctx, "pooling2d")
    spec.update({key: int(layer.get_attr(key)) for key in WINDOW_2D + PADS_2D})
    spec["count_pad"] = bool(layer.get_attr("count_pad", False))
    pool = (spec["pool_height"], spec["pool_width"])
    _check_stream(layer, ctx, spec, pool, (spec["stride_height"], spec["stride_width"]))
    return spec


@exporter("Pooling1D")
def export_pooling1d(layer, ctx) -> dict:
    spec = _common(layer, ctx, "pooling1d")
    spec.update(
        in_width=int(layer.get_attr("n_in")),
        n_filt=int(layer.get_attr("n_filt")),
        pool_width=int(layer.get_attr("pool_width")),
        stride_width=int(layer.get_attr("stride_width")),
        pad_left=int(layer.get_attr("pad_left")),
        pad_right=int(layer.get_attr("pad_right")),
        out_width=int(layer.get_attr("n_out")),
        count_pad=bool(layer.get_attr("count_pad", False)),
    )
    _check_stream(layer, ctx, spec, (spec["pool_width"],), (spec["stride_width"],))
    return spec


@exporter("GlobalPooling2D")
def export_global_pooling2d(layer, ctx) -> dict:
    spec = _common(layer, ctx, "global_pooling2d")
    spec.update({key: int(layer.get_attr(key)) for key in ("in_height", "in_width", "n_filt")})
    return spec


@exporter("GlobalPooling1D")
def export_global_pooling1d(layer, ctx) -> dict:
    spec = _common(layer, ctx, "global_pooling1d")
    spec.update(in_width=int(layer.get_attr("n_in")), n_filt=int(layer.get_attr("n_filt")))
    return spec
