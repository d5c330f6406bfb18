"""llmos-hub plugin ``onnxruntime``: export models to ONNX and run them with ONNX Runtime.

Public pieces: :class:`~llmos_hub_onnxruntime.backend.OnnxRuntimeBackend` (the backend),
:func:`~llmos_hub_onnxruntime.export.export_model` (export a :class:`llmos_hub.LoadedModel`),
:class:`~llmos_hub_onnxruntime.cache.ExportCache` (the content-hash cache). Importing this package
imports none of torch, onnx or onnxruntime.
"""

__version__ = "0.1.0"
