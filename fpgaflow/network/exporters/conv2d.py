"""Conv2D / QConv2D (and hls4ml's PointwiseConv2D for 1x1 kernels): geometry and the
MAC fields shared with Dense."""

from __future__ import annotations

from fpgaflow.network.exporters import exporter, keras_check
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


def check_input_shape(layer, expected: tuple[int, ...]) -> None:
    """The graph must hand the layer the input it was built for: hls4ml 1.3.0 can mis-wire
    io_stream graphs (two padded convolutions reading one cloned stream), and that
    firmware reads the wrong stream; refuse it rather than emulate a broken design."""
    got = tuple(int(d) for d in layer.get_input_variable().shape)
    if got != tuple(expected):
        raise ValueError(
            f"layer {layer.name!r} ({layer.class_name}): hls4ml wired it to an input of shape {got} but built "
            f"it for {tuple(expected)} (an hls4ml graph bug; in io_stream, avoid two padded convolutions "
            "reading the same tensor)"
        )


@keras_check("Conv1D", "QConv1D", "Conv2D", "QConv2D", "QConv2DBatchnorm")
def no_dilation(layer) -> str | None:
    """hls4ml 1.3.0 ignores ``dilation_rate``: its firmware would be a plain convolution."""
    rate = layer.get_config().get("dilation_rate", 1)
    rates = rate if isinstance(rate, (list, tuple)) else (rate,)
    if any(int(r) != 1 for r in rates):
        return f"dilation_rate {tuple(rates)} is not supported (hls4ml ignores it; supported: 1)"
    return None


@exporter("Conv2D", "PointwiseConv2D", "Conv2DBatchnorm", keras=("Conv2D", "QConv2D", "QConv2DBatchnorm"))
def export_conv2d(layer, ctx) -> dict:
    check_channels_last(layer)
    for key in ("dilation_height", "dilation_width"):
        if int(layer.get_attr(key, 1)) != 1:
            raise ValueError(f"layer {layer.name!r} ({layer.class_name}): dilation is not supported (supported: 1)")
    spec = {"kind": "conv2d", **{key: int(layer.get_attr(key)) for key in GEOMETRY}}
    check_input_shape(layer, (spec["in_height"], spec["in_width"], spec["n_chan"]))
    spec["parallelization_factor"] = int(layer.get_attr("parallelization_factor", 1))  # pixels per step
    spec["implementation"] = str(layer.get_attr("implementation", "linebuffer")).lower()  # io_stream window
    return _mac_fields(layer, ctx, spec, (1, 2, 3, 0))  # (F,H,W,C) -> (H,W,C,F)


CONV1D_GEOMETRY = ("in_width", "n_chan", "filt_width", "n_filt", "stride_width", "pad_left", "pad_right", "out_width")


@exporter(
    "DepthwiseConv2D",
    "DepthwiseConv1D",
    keras=("DepthwiseConv2D", "SeparableConv2D", "DepthwiseConv1D", "SeparableConv1D"),
)
def export_depthwise(layer, ctx) -> dict:
    """A depthwise convolution is the conv kernel with a block-diagonal weight: output
    channel c sees only input channel c.  The firmware's product kernel
    (``nnet_depthwise_product.h``) casts each product to ``accum_t`` and adds the taps
    in order into ``acc[c]``, exactly what the dense MAC does with zeros elsewhere
    (adding a zero product changes no accumulator, saturating or not).  hls4ml splits a
    SeparableConv1D/2D into this and a pointwise convolution."""
    import numpy as np

    check_channels_last(layer)
    if int(layer.get_attr("depth_multiplier", 1)) != 1:
        raise ValueError(
            f"layer {layer.name!r} ({layer.class_name}): depth_multiplier "
            f"{layer.get_attr('depth_multiplier')} is not supported (hls4ml supports 1)"
        )
    strategy = str(layer.get_attr("strategy", "latency")).lower()
    if ctx.io_type == "io_parallel" and strategy != "latency":
        raise ValueError(
            f"layer {layer.name!r} ({layer.class_name}): the {strategy} strategy is not supported in io_parallel "
            "(hls4ml's io_parallel depthwise kernels assert against it; use Latency, or io_stream)"
        )
    two_d = layer.class_name == "DepthwiseConv2D"
    spec = {"kind": "conv2d" if two_d else "conv1d"}
    spec.update({key: int(layer.get_attr(key)) for key in (GEOMETRY if two_d else CONV1D_GEOMETRY)})
    image = (spec["in_height"], spec["in_width"]) if two_d else (spec["in_width"],)
    check_input_shape(layer, (*image, spec["n_chan"]))
    spec = _mac_fields(layer, ctx, spec, None)  # keep the array as the firmware holds it
    key = spec["arrays"]["weight"]
    c = spec["n_chan"]
    taps = ctx.arrays[key].reshape(-1, c)  # the kernel reads it flat, (taps..., C) order
    diag = taps[:, :, None] * np.eye(c, dtype=np.int64)  # (taps, C, C)
    shape = (spec["filt_height"], spec["filt_width"]) if two_d else (spec["filt_width"],)
    ctx.arrays[key] = np.ascontiguousarray(diag.reshape(*shape, c, c))
    spec["depthwise"] = True
    return spec
