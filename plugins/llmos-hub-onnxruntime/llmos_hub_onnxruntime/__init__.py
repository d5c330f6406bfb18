"""llmos-hub plugin ``onnxruntime``: export models to ONNX and run them with ONNX Runtime.

Public pieces: :class:`~llmos_hub_onnxruntime.backend.OnnxRuntimeBackend` (the backend),
:func:`~llmos_hub_onnxruntime.export.export_model` (export a :class:`llmos_hub.LoadedModel`),
:class:`~llmos_hub_onnxruntime.cache.ExportCache` (the content-hash cache). Importing this package
imports none of torch, onnx or onnxruntime.

Telemetry is off by default. The official onnxruntime wheels ship Microsoft's 1DS telemetry, on unless
told otherwise: it uploads trace events over HTTPS and writes a persistent device id under
``~/.cache/Microsoft/DeveloperTools/.onnxruntime/``. ONNX Runtime reads ``ORT_DISABLE_TELEMETRY`` once,
when the library loads, so it is set here, before any module of this plugin imports onnxruntime (the
plugin host imports this package when it loads plugins). A user who wants telemetry sets
``ORT_DISABLE_TELEMETRY=0`` themselves; an explicit value is never overridden.
"""

import os as _os

_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
