"""hls4ml precision objects -> ``ap_...`` type strings the emulator parses."""

from __future__ import annotations

from typing import Any

from sim.fixed import FixedType


class UnsupportedType(ValueError):
    pass


def ap_type(precision: Any, where: str) -> str:
    """The C++ type hls4ml writes for ``precision``, checked parseable by ``FixedType``."""
    from hls4ml.model.types import (
        ExponentPrecisionType,
        FixedPrecisionType,
        IntegerPrecisionType,
        XnorPrecisionType,
    )

    if isinstance(precision, XnorPrecisionType):
        text = "ap_uint<1>"
    elif isinstance(precision, IntegerPrecisionType):
        text = f"ap_{'' if precision.signed else 'u'}int<{precision.width}>"
    elif isinstance(precision, FixedPrecisionType):
        text = (
            f"ap_{'' if precision.signed else 'u'}fixed<{precision.width},{precision.integer},"
            f"AP_{precision.rounding_mode.name},AP_{precision.saturation_mode.name},{precision.saturation_bits}>"
        )
    elif isinstance(precision, ExponentPrecisionType):
        raise UnsupportedType(f"{where}: exponent (power-of-two) precision {precision} is not emulated")
    else:
        raise UnsupportedType(f"{where}: precision {precision} ({type(precision).__name__}) is not a fixed-point type")
    try:
        return str(FixedType.parse(text))
    except ValueError as exc:
        raise UnsupportedType(f"{where}: {exc}") from None


def layer_type(layer: Any, attr: str) -> str:
    """The type of a layer attribute such as ``accum_t`` (an hls4ml NamedType)."""
    named = layer.get_attr(attr)
    if named is None:
        raise UnsupportedType(f"layer {layer.name!r} ({layer.class_name}): has no {attr}")
    return ap_type(named.precision, f"layer {layer.name!r} {attr}")


def result_type(layer: Any) -> str:
    return ap_type(layer.get_output_variable().type.precision, f"layer {layer.name!r} result_t")
