"""Quantization-aware training: the network declared in the project file (or built by
a user's ``build_model``) learns at the fixed-point precision it will run at, on the
configured data; the model, its history and its input scaling land in the project
folder, ready for ``fpgaflow synth``.

TensorFlow and QKeras are imported inside functions only (DESIGN.md layering).
"""

from fpgaflow.train.config import LayerSpec, TrainingConfig, TrainingError

__all__ = ["LayerSpec", "TrainingConfig", "TrainingError"]
