"""fpgaflow front end: training, conversion to HLS firmware projects, reports, the CLI.

Heavy libraries (TensorFlow, hls4ml, conifer) are imported inside the functions that
need them, so that ``import fpgaflow`` and ``fpgaflow --help`` stay fast and a node
machine without the front-end extras can still run ``fpgaflow node``.
"""

__version__ = "0.1.0"
