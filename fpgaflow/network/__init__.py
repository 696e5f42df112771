"""Networks to firmware: hls4ml conversion, the firmware manifest, reports, verification.

Heavy libraries (TensorFlow, QKeras, hls4ml) are imported inside functions only."""


def hls4ml_version() -> str:
    """The hls4ml whose behaviour a message describes ("hls4ml 1.3.0 builds a plain relu")."""
    import hls4ml

    return hls4ml.__version__
