"""ZeroPadding1D/2D: Keras's own, and the ones hls4ml inserts before a padded
convolution in io_stream."""

from __future__ import annotations

from fpgaflow.network.exporters import exporter
from fpgaflow.network.exporters.conv2d import check_channels_last, check_input_shape


@exporter("ZeroPadding2D", keras=("ZeroPadding2D",))
def export_zeropad2d(layer, ctx) -> dict:
    check_channels_last(layer)
    spec = {"kind": "zeropad2d"}
    for key in ("pad_top", "pad_bottom", "pad_left", "pad_right"):
        spec[key] = int(layer.get_attr(key))
    h, w, c = (int(d) for d in layer.get_output_variable().shape)
    check_input_shape(layer, (h - spec["pad_top"] - spec["pad_bottom"], w - spec["pad_left"] - spec["pad_right"], c))
    return spec


@exporter("ZeroPadding1D", keras=("ZeroPadding1D",))
def export_zeropad1d(layer, ctx) -> dict:
    check_channels_last(layer)
    spec = {
        "kind": "zeropad1d",
        "pad_left": int(layer.get_attr("pad_left")),
        "pad_right": int(layer.get_attr("pad_right")),
    }
    w, c = (int(d) for d in layer.get_output_variable().shape)
    check_input_shape(layer, (w - spec["pad_left"] - spec["pad_right"], c))
    return spec
