"""Networks to firmware: hls4ml conversion, the firmware manifest, reports, verification.

Heavy libraries (TensorFlow, QKeras, hls4ml) are imported inside functions only."""
