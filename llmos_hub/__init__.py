"""llmos-hub: benchmark models on shared tasks, compare backends, publish results.

The public SDK is what ``__all__`` lists; every other module is private. Plugin authors need
:data:`hookimpl` and the interfaces (:class:`ModelFamily`, :class:`Task`, :class:`Backend`,
:class:`Metric`); users of the library need :func:`load_plugins` and the bench API.
Importing this package loads no torch, onnxruntime, transformers, datasets or evaluate.
"""

from ._backend import Backend, Runner
from ._cache import CacheEntry, FolderCache, cache_root
from ._fileio import atomic_write
from ._hashing import file_sha256
from ._metric import Metric, Score
from ._model import Artifacts, Capability, LoadedModel, ModelFamily, ModelInfo, Provenance, Tokenizer
from ._requests import (
    ClassifyRequest,
    GenerateRequest,
    Generation,
    GenerationConfig,
    Loglikelihood,
    LoglikelihoodRequest,
    RequestType,
    RollingRequest,
)
from ._plugins import PluginHost, PluginInfo, default_host, load_plugins
from ._result import ResultRecord, load_record
from ._requests import Request
from ._task import Example, Formulation, Task, TaskData, TaskKind
from ._version import __version__
from ._weights import check_inside, check_safetensors
from .errors import DataError, LlmosHubError, PluginError, UnknownNameError, UsageError
from .hookspecs import hookimpl

__all__ = [
    "Artifacts",
    "Backend",
    "CacheEntry",
    "Capability",
    "ClassifyRequest",
    "DataError",
    "Example",
    "FolderCache",
    "Formulation",
    "GenerateRequest",
    "Generation",
    "GenerationConfig",
    "LlmosHubError",
    "LoadedModel",
    "Loglikelihood",
    "LoglikelihoodRequest",
    "Metric",
    "ModelFamily",
    "ModelInfo",
    "PluginError",
    "PluginHost",
    "PluginInfo",
    "Provenance",
    "Request",
    "RequestType",
    "ResultRecord",
    "RollingRequest",
    "Runner",
    "Score",
    "Task",
    "TaskData",
    "TaskKind",
    "Tokenizer",
    "UnknownNameError",
    "UsageError",
    "__version__",
    "atomic_write",
    "cache_root",
    "check_inside",
    "check_safetensors",
    "default_host",
    "file_sha256",
    "hookimpl",
    "load_plugins",
]
