"""The backend interface: something that runs a :class:`~llmos_hub.LoadedModel` and answers requests.

A :class:`Backend` prepares a model for a device and dtype and returns a :class:`Runner`. Runners answer
batches of requests; the bench decides the batches, so speed is measured the same way for every
backend. Generation is written once, in :mod:`llmos_hub.decoding`: a backend supplies forward steps
and the engine does greedy and beam search on top of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ._model import LoadedModel

__all__ = ["Backend", "Generation", "GenerationConfig", "Loglikelihood", "Runner"]


@dataclass(frozen=True)
class GenerationConfig:
    """How to generate: greedy when ``num_beams == 1``, beam search otherwise.

    ``length_penalty`` divides a finished beam's log-probability by ``length ** length_penalty``;
    ``stop`` strings end a sequence (the text is cut before the stop string); EOS always ends one.
    """

    max_new_tokens: int = 64
    num_beams: int = 1
    length_penalty: float = 1.0
    stop: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data


@dataclass(frozen=True)
class Generation:
    """One generated continuation, with the token counts the bench turns into tokens/s."""

    text: str
    token_ids: tuple[int, ...]
    prompt_tokens: int

    @property
    def generated_tokens(self) -> int:
        return len(self.token_ids)


@dataclass(frozen=True)
class Loglikelihood:
    """The summed log-probability (natural log) of ``num_tokens`` scored tokens."""

    logprob: float
    num_tokens: int
    is_greedy: bool | None = None


class Runner(ABC):
    """A model prepared on a device; every method takes and answers one batch.

    Results never depend on how requests are batched: padding is masked out and positions come
    from the mask, so a batch of 8 gives what 8 batches of 1 give (within float rounding).
    """

    model: LoadedModel
    device: str = "cpu"
    dtype: str = "float32"

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

