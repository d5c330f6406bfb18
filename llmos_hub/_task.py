"""The task interface: data, the requests each example makes, and how the answers are scored.

A task turns each example into a list of typed requests (:mod:`llmos_hub._requests`) under one of its
*formulations*, and scores the answers. A formulation is one way of asking a model for the task: a
classification task can read a classifier head's logits, or compare the log-likelihood of each label's
verbalization under any language model; translation can feed the source to a seq2seq model, or prompt a
causal LM and stop at the task's stop sequence. The bench picks the first formulation the (model,
backend) pair can answer, before any model loads; ``--formulation`` forces one.

Tasks are usually declared in a YAML file (see :mod:`llmos_hub.tasks`), whose ``kind`` names a
:class:`TaskKind` registered by a plugin (``register_task_kinds``), so a plugin can add a kind (question
answering, code) without touching the core. Any object implementing :class:`Task` can be registered too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._metric import Score
from ._model import Capability
from ._requests import Answer, GenerationConfig, Request, RequestType

__all__ = ["Example", "Formulation", "Task", "TaskData", "TaskKind"]


@dataclass(frozen=True)
class Example:
    """One item of a dataset: an id, the model's input text and the reference (text, label or index).

    ``extra`` holds the example's other fields (a multiple-choice example's ``choices``, several
    references, fields named in a prompt template).
    """

    id: str
    input: str
    target: Any
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskData:
    """The examples a run uses, and the fingerprint (sha256 over exactly those) that identifies them."""

    examples: Sequence[Example]
    fingerprint: str
    source: str
    split: str


@dataclass(frozen=True)
class Formulation:
    """One way of asking a model for a task: the request types it makes and what it needs of the model.

    ``capability`` (optional) restricts it to models with that capability (feeding a source to a
    seq2seq model); ``needs_labels`` to classifiers whose labels are the task's; ``fewshot`` says
    whether few-shot examples can be prepended to its prompts.
    """

    name: str
    request_types: frozenset[RequestType]
    capability: Capability | None = None
    needs_labels: bool = False
    fewshot: bool = True
    description: str = ""


class Task(ABC):
    """A benchmark task.

    Example::

        data = task.load(limit=50, seed=0)
        form = task.formulations()[0]
        requests = [task.requests(ex, formulation=form.name, seed=0) for ex in data.examples]
        answers = ...  # one list of answers per example, answered by a Runner
        scores = task.score(data.examples, answers, formulation=form.name, labels=model.labels)
    """

    name: str = ""
    version: str = "1"
    primary_metric: str = ""
    description: str = ""

    @abstractmethod
    def formulations(self) -> Sequence[Formulation]:
        """The ways this task can be asked, in order of preference."""

    @abstractmethod
    def load(self, *, split: str | None = None, limit: int | None = None, seed: int = 0) -> TaskData:
        """Read and validate the data; ``limit`` takes a seeded, deterministic subsample."""

    @abstractmethod
    def requests(self, example: Example, *, formulation: str, seed: int = 0) -> list[Request]:
        """The requests one example makes under ``formulation`` (``seed`` draws few-shot examples)."""

    @abstractmethod
    def score(
        self,
        examples: Sequence[Example],
        answers: Sequence[Sequence[Answer]],
        *,
        formulation: str,
        labels: Sequence[str] | None = None,
        seed: int = 0,
    ) -> Mapping[str, Score]:
        """Corpus scores (each with a standard error) from each example's answers, in request order."""

    def per_example(
        self,
        example: Example,
        answers: Sequence[Answer],
        *,
        formulation: str,
        labels: Sequence[str] | None = None,
    ) -> Mapping[str, Any]:
        """The prediction as text and per-example scores, for ``--log-samples``."""
        return {}

    def describe(self) -> Mapping[str, Any]:
        """Everything that can change a number (prompt, fields, labels, metric options, generation,
        few-shot settings), as data: it is hashed into the run's identity and kept in the record."""
        return {"name": self.name, "version": self.version}

    def formulation(self, name: str) -> Formulation:
        """The formulation called ``name``; a one-line error naming the others if there is none."""
        from .errors import UsageError

        for form in self.formulations():
            if form.name == name:
                return form
        known = ", ".join(f.name for f in self.formulations())
        raise UsageError(f"task {self.name} has no formulation {name!r}; it has {known}")


class TaskKind(ABC):
    """A kind of task a YAML file can declare (``kind: classification``): its formulations, the fields
    it reads, how an example becomes requests and how answers become the predictions its metrics score.

    Built-in kinds (classification, translation, summarization, language-modelling, multiple-choice)
    are registered through ``register_task_kinds`` like a plugin's. ``task`` below is the
    :class:`~llmos_hub.tasks.DeclaredTask` (its ``spec`` holds the file's settings: prompts,
    delimiters, labels, verbalizers, generation).
    """

    name: str = ""
    #: Field roles an example needs besides ``input`` (``target``, ``choices``).
    required_fields: tuple[str, ...] = ("target",)
    #: Optional field roles besides ``input``, ``id`` and the required ones.
    optional_fields: tuple[str, ...] = ()
    #: Metrics (name → options) and the primary score when a task file names none.
    default_metrics: Mapping[str, Mapping[str, Any]] = {}
    default_primary: str = ""
    #: Whether tasks of this kind declare ``labels`` (classification) and ``generation`` settings.
    has_labels: bool = False
    generates: bool = False

    @abstractmethod
    def formulations(self) -> Sequence[Formulation]:
        """This kind's formulations, in order of preference."""

    @abstractmethod
    def requests(self, task: Any, example: Example, formulation: str, prefix: str) -> list[Request]:
        """The requests of ``example``; ``prefix`` is the few-shot context ("" without shots)."""

    @abstractmethod
    def prediction(self, task: Any, example: Example, answers: Sequence[Answer], formulation: str,
                   labels: Sequence[str] | None) -> Any:
        """What the metrics score for this example (generated text, a label, log-likelihoods...)."""

    def reference(self, task: Any, example: Example) -> Any:
        """What the prediction is compared with (by default the example's target)."""
        return example.target

    def shot(self, task: Any, example: Example) -> str:
        """One few-shot demonstration: the prompt followed by its answer."""
        return task.lm_prompt(example) + task.spec.target_delimiter + str(example.target)

    def generation(self, task: Any) -> GenerationConfig | None:
        """The generation settings of a generating kind."""
        return task.spec.generation if self.generates else None
