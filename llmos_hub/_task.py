"""The task interface: data, how an example becomes a request, and how outputs are scored.

Tasks are usually declared in a YAML file (see :mod:`llmos_hub.tasks`), but any object that
implements :class:`Task` can be registered by a plugin. A task's ``load`` validates its data before any
model is loaded, so a malformed file fails fast with the file, the line and the field.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ._requests import GenerationConfig
from ._metric import Score
from ._model import Capability

__all__ = ["Example", "Request", "Task", "TaskData"]

RequestKind = Literal["generate", "loglikelihood", "loglikelihood_rolling", "classify"]


@dataclass(frozen=True)
class Example:
    """One item of a dataset: an id, the model's input text and the reference (text or label)."""

    id: str
    input: str
    target: str
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskData:
    """The examples a run uses, and the fingerprint (sha256 over exactly those) that identifies them."""

    examples: Sequence[Example]
    fingerprint: str
    source: str
    split: str


@dataclass(frozen=True)
class Request:
    """What the bench asks a runner for one example (``continuation`` only for ``loglikelihood``)."""

    kind: RequestKind
    text: str
    continuation: str | None = None


class Task(ABC):
    """A benchmark task.

    Example::

        data = task.load(limit=50, seed=0)
        requests = [task.request(ex) for ex in data.examples]
        outputs = ...  # answered by a Runner, one output per request
        scores = task.score(data.examples, outputs, labels=model.labels)
    """

    name: str = ""
    version: str = "1"
    capability: Capability = Capability.CAUSAL_LM
    primary_metric: str = ""
    description: str = ""
    generation: GenerationConfig | None = None

    @abstractmethod
    def load(self, *, split: str | None = None, limit: int | None = None, seed: int = 0) -> TaskData:
        """Read and validate the data; ``limit`` takes a seeded, deterministic subsample."""

    @abstractmethod
    def request(self, example: Example) -> Request:
        """Turn an example into the request a runner answers."""

    @abstractmethod
    def score(
        self,
        examples: Sequence[Example],
        outputs: Sequence[Any],
        *,
        labels: Sequence[str] | None = None,
        seed: int = 0,
    ) -> Mapping[str, Score]:
        """Corpus scores (each with a standard error) from one output per example."""

    def per_example(
        self, example: Example, output: Any, *, labels: Sequence[str] | None = None
    ) -> Mapping[str, Any]:
        """The prediction as text and per-example scores, for ``--log-samples``."""
        return {}

    def describe(self) -> Mapping[str, Any]:
        """The task's declaration as data (what a record keeps of it)."""
        return {"name": self.name, "version": self.version, "capability": str(self.capability)}
