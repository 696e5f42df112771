"""Conv2D / QConv2D (and hls4ml's PointwiseConv2D for 1x1 kernels): geometry and the
MAC fields shared with Dense."""

from __future__ import annotations

from fpgaflow.network.exporters import exporter
from fpgaflow.network.exporters.dense import _mac_fields

GEOMETRY = (
    "in_height",
    "in_width",
    "n_chan",
    "filt_height",
    "filt_width",
    "n_filt",
    "stride_height",
    "stride_width",
    "pad_top",
    "pad_bottom",
    "pad_left",
    "pad_right",
    "out_height",
    "out_width",
)


def check_channels_last(layer) -> None:
    fmt = layer.get_attr("data_format", "channels_last")
    if fmt != "channels_last":
        raise ValueError(
            f"layer {layer.name!r} ({layer.class_name}): data_format {fmt!r} is not supported "
            "(supported: channels_last)"
        )


@exporter("Conv2D", "PointwiseConv2D", keras=("Conv2D", "QConv2D"))
def export_conv2d(layer, ctx) -> dict:
    check_channels_last(layer)
    for key in ("dilation_height", "dilation_width"):
        if int(layer.get_attr(key, 1)) != 1:
            raise ValueError(f"layer {layer.name!r} ({layer.class_name}): dilation is not supported (supported: 1)")
    spec = {"kind": "conv2d", **{key: int(layer.get_attr(key)) for key in GEOMETRY}}
    spec["parallelization_factor"] = int(layer.get_attr("parallelization_factor", 1))  # pixels per step
    return _mac_fields(layer, ctx, spec, (1, 2, 3, 0))  # (F,H,W,C) -> (H,W,C,F)
