"""llmos-hub plugin onnxruntime."""

__version__ = "0.1.0"
