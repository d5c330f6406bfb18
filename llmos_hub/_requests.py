"""Typed requests: what a task asks of a model, independent of the model's architecture.

A task turns each example into a list of requests; the bench batches requests of one type across
examples and hands each batch to a runner; the runner answers with one :data:`Answer` per request. This
is the whole meeting point of tasks, models and backends (as lm-evaluation-harness's ``output_type``):
a (model, task, backend) triple is compatible when the runner answers every request type the task's
chosen formulation makes.

=================== ======================================= ==========================================
request             what it asks                             answer
=================== ======================================= ==========================================
:class:`GenerateRequest`continue ``text`` (causal LM) or map a   :class:`~llmos_hub.Generation`
                    source to a target (seq2seq)
:class:`LoglikelihoodRequest` log P(``continuation`` | ``context``) :class:`~llmos_hub.Loglikelihood`
:class:`RollingRequest`log P(``text``), every token once        :class:`~llmos_hub.Loglikelihood`
:class:`ClassifyRequest`the classifier head's logits of ``text`` ``list[float]`` in ``model.labels`` order
=================== ======================================= ==========================================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Union

from dataclasses import asdict
from typing import Any, ClassVar

__all__ = [
    "Answer",
    "Generation",
    "GenerationConfig",
    "Loglikelihood",
    "ClassifyRequest",
    "GenerateRequest",
    "LoglikelihoodRequest",
    "Request",
    "RequestType",
    "RollingRequest",
    "ENGINE_REQUEST_TYPES",
    "request_length",
]


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
        """JSON types only (``stop`` as a list), as records and run hashes store it."""
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


class RequestType(str, enum.Enum):
    """The four kinds of question a runner can be asked."""

    GENERATE = "generate"
    LOGLIKELIHOOD = "loglikelihood"
    ROLLING = "loglikelihood_rolling"
    CLASSIFY = "classify"

    def __str__(self) -> str:
        return self.value


class Request:
    """One question for a runner; its subclass says which (``request.type`` is its :class:`RequestType`).

    Requests are frozen dataclasses, so equal requests compare equal and a task's requests can be
    checked for determinism.
    """

    type: ClassVar[RequestType]


@dataclass(frozen=True)
class GenerateRequest(Request):
    """Generate from ``text`` with ``config`` (greedy or beam, stop strings, EOS)."""

    text: str
    config: GenerationConfig = field(default_factory=GenerationConfig)
    type: ClassVar[RequestType] = RequestType.GENERATE


@dataclass(frozen=True)
class LoglikelihoodRequest(Request):
    """The log-probability of ``continuation`` right after ``context`` (a seq2seq model: target given source)."""

    context: str
    continuation: str
    type: ClassVar[RequestType] = RequestType.LOGLIKELIHOOD


@dataclass(frozen=True)
class RollingRequest(Request):
    """The log-probability of the whole ``text``, scoring every token once (rolling windows)."""

    text: str
    type: ClassVar[RequestType] = RequestType.ROLLING


@dataclass(frozen=True)
class ClassifyRequest(Request):
    """The classifier head's logits for ``text``."""

    text: str
    type: ClassVar[RequestType] = RequestType.CLASSIFY


#: What a runner answers: a :class:`Generation`, a :class:`Loglikelihood`, or a classifier's logits.
Answer = Union[Generation, Loglikelihood, list[float]]


def request_length(request: Request) -> int:
    """A cheap size of the request's text, to sort a batch by length (less padding)."""
    if isinstance(request, LoglikelihoodRequest):
        return len(request.context) + len(request.continuation)
    if isinstance(request, (GenerateRequest, RollingRequest, ClassifyRequest)):
        return len(request.text)
    return 0


def _engine_types() -> dict[str, frozenset[RequestType]]:
    g, ll, r, c = RequestType.GENERATE, RequestType.LOGLIKELIHOOD, RequestType.ROLLING, RequestType.CLASSIFY
    return {"causal-lm": frozenset({g, ll, r}), "seq2seq": frozenset({g, ll}), "classifier": frozenset({c})}


#: What the shared decoding engine answers for a model of each capability (``Capability`` values): a
#: causal LM generates and scores continuations and whole texts; a seq2seq model generates and scores a
#: target given a source; a classifier answers with its head's logits.
ENGINE_REQUEST_TYPES: dict[str, frozenset[RequestType]] = _engine_types()
