"""The backend interface: something that runs a :class:`~llmos_hub.LoadedModel` and answers requests.

A :class:`Backend` prepares a model for a device and dtype and returns a :class:`Runner`. Runners answer
batches of typed requests (:mod:`llmos_hub._requests`) of one type; the bench decides the batches, so
speed is measured the same way for every backend. A backend declares what it consumes (the model's torch
modules, or its files in a given layout) and which request types it answers for a model of given
capabilities, so the bench can refuse an impossible (model, task, backend) before anything loads.
Generation is written once, in :mod:`llmos_hub.decoding`: backends that run torch modules or graphs
supply forward steps and the engine does greedy and beam search; an engine that decodes by itself
(CTranslate2) implements the four answer methods directly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ._model import Capability, LoadedModel, ModelInfo
from ._requests import (
    ENGINE_REQUEST_TYPES,
    Answer,
    ClassifyRequest,
    Generation,
    GenerateRequest,
    GenerationConfig,
    Loglikelihood,
    LoglikelihoodRequest,
    Request,
    RequestType,
    RollingRequest,
)

__all__ = ["Backend", "Generation", "GenerationConfig", "Loglikelihood", "Runner", "engine_request_types"]


class Runner(ABC):
    """A model prepared on a device; every method takes and answers one batch.

    Results never depend on how requests are batched: padding is masked out and positions come
    from the mask, so a batch of 8 gives what 8 batches of 1 give (within float rounding).
    :meth:`answer` is what the bench calls; it dispatches a batch of one request type to the method
    that answers it.
    """

    model: LoadedModel
    device: str = "cpu"
    dtype: str = "float32"

    @property
    def request_types(self) -> frozenset[RequestType]:
        """The request types this runner answers for its model (by default the engine's, per capability)."""
        return engine_request_types(self.model.capabilities)

    def answer(self, requests: Sequence[Request]) -> list[Answer]:
        """Answer a batch of requests of one type (and, for generation, one config), in order."""
        if not requests:
            return []
        kind = requests[0].type
        if any(r.type is not kind for r in requests):
            raise ValueError("a batch holds requests of one type")
        if kind is RequestType.GENERATE:
            gen = [r for r in requests if isinstance(r, GenerateRequest)]
            config = gen[0].config
            if any(r.config != config for r in gen):
                raise ValueError("a generation batch shares one GenerationConfig")
            return list(self.generate([r.text for r in gen], config))
        if kind is RequestType.LOGLIKELIHOOD:
            pairs = [(r.context, r.continuation) for r in requests if isinstance(r, LoglikelihoodRequest)]
            return list(self.loglikelihood(pairs))
        if kind is RequestType.ROLLING:
            return list(self.loglikelihood_rolling([r.text for r in requests if isinstance(r, RollingRequest)]))
        return list(self.classify([r.text for r in requests if isinstance(r, ClassifyRequest)]))

    def generate(self, prompts: Sequence[str], config: GenerationConfig) -> list[Generation]:
        """Continue each prompt (causal LM) or translate/summarise each source (seq2seq)."""
        raise NotImplementedError(f"{type(self).__name__} cannot generate")

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[Loglikelihood]:
        """The log-probability of each ``continuation`` given its ``context``."""
        raise NotImplementedError(f"{type(self).__name__} cannot score continuations")

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[Loglikelihood]:
        """The log-probability of each whole text, scoring every token once (rolling windows)."""
        raise NotImplementedError(f"{type(self).__name__} cannot score texts")

    def classify(self, texts: Sequence[str]) -> list[list[float]]:
        """The classifier's logits for each text, in the order of ``model.labels``."""
        raise NotImplementedError(f"{type(self).__name__} cannot classify")

    def peak_memory_bytes(self) -> int | None:
        """Peak memory since :meth:`reset_peak_memory`: by default the process's resident set.

        Backends with device memory (CUDA) override this with the device's own counter.
        """
        from ._memory import peak_rss_bytes

        return peak_rss_bytes()

    def reset_peak_memory(self) -> None:
        """Start a new peak-memory measurement (resets the process's high-water mark on Linux)."""
        from ._memory import reset_peak_rss

        reset_peak_rss()

    def peak_memory_kind(self) -> str:
        """What :meth:`peak_memory_bytes` measures (``process-rss`` unless a backend says otherwise)."""
        return "process-rss"

    def describe(self) -> Mapping[str, Any]:
        """Facts for the record: device name, threads, execution provider, quantization."""
        return {}

    def close(self) -> None:
        """Free what :meth:`Backend.prepare` allocated."""


class Backend(ABC):
    """Runs models: ``prepare`` returns a :class:`Runner` bound to a device and dtype.

    Example::

        class EchoBackend(Backend):
            name = "echo"
            def prepare(self, model, *, device="cpu", dtype="float32", options=None):
                return EchoRunner(model)
    """

    name: str = ""
    #: Devices and dtypes this backend accepts (checked before a model loads).
    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[str, ...] = ("float32",)
    #: What the backend reads from a :class:`~llmos_hub.LoadedModel`: ``"torch-modules"`` (the modules
    #: and their calling conventions; built on demand) or ``"files:<layout>"`` (the model's files in a
    #: layout such as ``transformers``; a files backend never makes the family build torch modules).
    consumes: ClassVar[tuple[str, ...]] = ("torch-modules",)
    #: The backend chosen when the user names none: the installed one with the highest priority.
    priority: ClassVar[int] = 0

    def request_types(self, capabilities: frozenset[Capability]) -> frozenset[RequestType]:
        """The request types a runner of this backend answers for a model with ``capabilities``.

        Known before any model loads; the default is what the shared decoding engine answers.
        """
        return engine_request_types(capabilities)

    def check_model(self, info: ModelInfo) -> str | None:
        """Why this backend cannot run the model described by ``info`` (``None``: it can).

        Called before the model loads. A backend that consumes files checks their layout and
        architecture here (``info.artifacts``); the default accepts any model with torch modules.
        """
        if "torch-modules" in self.consumes:
            return None
        layouts = {c.split(":", 1)[1] for c in self.consumes if c.startswith("files:")}
        layout = info.artifacts.layout if info.artifacts is not None else None
        if layout is None or layout not in layouts:
            return (f"backend {self.name} reads model files in the {' or '.join(sorted(layouts))} layout; "
                    f"this model's files are {layout or 'unknown'}")
        return None

    @abstractmethod
    def prepare(
        self,
        model: LoadedModel,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        options: Mapping[str, Any] | None = None,
    ) -> Runner:
        """Place ``model`` on ``device`` in ``dtype``; raise :class:`~llmos_hub.UsageError` if impossible."""

    def versions(self) -> Mapping[str, str]:
        """Versions of the libraries this backend runs on, for provenance (``{"torch": "2.13.0"}``)."""
        return {}



def engine_request_types(capabilities: frozenset[Capability] | set[Capability]) -> frozenset[RequestType]:
    """What the shared engine answers for a model with these capabilities (the union over them)."""
    out: set[RequestType] = set()
    for capability in capabilities:
        out |= ENGINE_REQUEST_TYPES.get(str(capability), frozenset())
    return frozenset(out)
