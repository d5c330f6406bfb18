"""The built-in task kinds, registered through ``register_task_kinds`` like any plugin's.

Each kind says which formulations it offers, in order of preference, and how an example becomes
requests and answers become predictions under each:

======================= =================================================================================
kind                    formulations
======================= =================================================================================
classification          ``logits`` (a classifier head with the task's labels), ``loglikelihood`` (the
                        log-likelihood of each label's verbalization after ``lm_prompt``; any LM)
translation,            ``seq2seq`` (the source to a seq2seq model), ``prompt`` (a causal LM continues
summarization           ``lm_prompt`` and stops at the task's stop sequences)
language-modelling      ``rolling`` (the log-likelihood of the whole text)
multiple-choice         ``loglikelihood`` (one request per choice; acc and acc_norm as lm-eval)
======================= =================================================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .._model import Capability
from .._requests import (
    Answer,
    ClassifyRequest,
    GenerateRequest,
    Generation,
    GenerationConfig,
    Loglikelihood,
    LoglikelihoodRequest,
    Request,
    RequestType,
    RollingRequest,
)
from .._task import Example, Formulation, TaskKind
from ..errors import LlmosHubError, UsageError

__all__ = [
    "BUILTIN_KINDS",
    "ClassificationKind",
    "GenerationKind",
    "LanguageModellingKind",
    "MultipleChoiceKind",
]

_LL = frozenset({RequestType.LOGLIKELIHOOD})


def _argmax(values: Sequence[float]) -> int:
    """The first index of the largest value (as ``numpy.argmax``)."""
    return max(range(len(values)), key=lambda i: (values[i], -i))


def _logprobs(task: Any, example: Example, answers: Sequence[Answer], names: Sequence[str], what: str) -> list[float]:
    """One log-likelihood per label or choice (``names``), each a number or -inf.

    NaN (or +inf) comes from the model (an overflow, a broken checkpoint), never from the data, so the
    error names the example and says so instead of leaving the metric to reject it after scoring.
    """
    if len(answers) != len(names) or not all(isinstance(a, Loglikelihood) for a in answers):
        raise UsageError(f"task {task.name!r} expects one log-likelihood per {what}")
    values = [a.logprob for a in answers if isinstance(a, Loglikelihood)]
    for j, value in enumerate(values):
        if value != value or value == math.inf:  # NaN or +inf (anything else not a number: the metric says)
            raise LlmosHubError(f"task {task.name!r}, example {example.id!r}: the model gave log-likelihood "
                                f"{value} for {what} {j} ({names[j][:40]!r}); a model must not produce NaN: "
                                "check its weights, or try --dtype float32")
    return values


def _one(answers: Sequence[Answer], kind: type, task: Any) -> Any:
    if len(answers) != 1 or not isinstance(answers[0], kind):
        got = ", ".join(type(a).__name__ for a in answers) or "nothing"
        raise UsageError(f"task {task.name!r} expects one {kind.__name__} answer per example, got {got}")
    return answers[0]


class ClassificationKind(TaskKind):
    """A label per example: from a classifier head's logits, or by label log-likelihood under any LM."""

    name = "classification"
    default_metrics = {"accuracy": {}, "f1": {}}
    default_primary = "accuracy"
    has_labels = True

    def formulations(self) -> Sequence[Formulation]:
        return (
            Formulation("logits", frozenset({RequestType.CLASSIFY}), Capability.CLASSIFIER, needs_labels=True,
                        fewshot=False, description="the classifier head's logits over the task's labels"),
            Formulation("loglikelihood", _LL,
                        description="the label whose verbalization is most likely after lm_prompt"),
        )

    def requests(self, task: Any, example: Example, formulation: str, prefix: str) -> list[Request]:
        if formulation == "logits":
            return [ClassifyRequest(task.prompt(example))]
        context = prefix + task.lm_prompt(example)
        return [LoglikelihoodRequest(context, task.spec.target_delimiter + task.verbalize(label))
                for label in task.spec.labels]

    def prediction(self, task: Any, example: Example, answers: Sequence[Answer], formulation: str,
                   labels: Sequence[str] | None) -> Any:
        if formulation == "logits":
            logits = list(_one(answers, list, task))
            assert labels is not None
            if len(logits) != len(labels):
                raise UsageError(f"task {task.name!r}: a classifier output has {len(logits)} logits "
                                 f"for {len(labels)} labels")
            return labels[_argmax(logits)]
        labels = task.spec.labels
        return labels[_argmax(_logprobs(task, example, answers, labels, "label"))]

    def shot(self, task: Any, example: Example) -> str:
        return task.lm_prompt(example) + task.spec.target_delimiter + task.verbalize(example.target)


class GenerationKind(TaskKind):
    """Text to text (translation, summarization): a seq2seq model, or a causal LM after a prompt."""

    generates = True
    optional_fields = ()

    def __init__(self, name: str, default_metrics: Mapping[str, Mapping[str, Any]], default_primary: str) -> None:
        self.name = name
        self.default_metrics = default_metrics
        self.default_primary = default_primary

    def formulations(self) -> Sequence[Formulation]:
        gen = frozenset({RequestType.GENERATE})
        return (
            Formulation("seq2seq", gen, Capability.SEQ2SEQ, fewshot=False,
                        description="the prompt as the source of a seq2seq model"),
            Formulation("prompt", gen, Capability.CAUSAL_LM,
                        description="a causal LM continues lm_prompt up to the task's stop sequences"),
        )

    def requests(self, task: Any, example: Example, formulation: str, prefix: str) -> list[Request]:
        config: GenerationConfig = task.spec.generation
        if formulation == "seq2seq":
            return [GenerateRequest(task.prompt(example), config)]
        return [GenerateRequest(prefix + task.lm_prompt(example), config)]

    def prediction(self, task: Any, example: Example, answers: Sequence[Answer], formulation: str,
                   labels: Sequence[str] | None) -> Any:
        answer = answers[0] if len(answers) == 1 else None
        text = answer.text if isinstance(answer, Generation) else answer
        if not isinstance(text, str):
            raise UsageError(f"task {task.name!r} expects one Generation answer per example")
        return text.strip() if formulation == "prompt" else text

    def reference(self, task: Any, example: Example) -> Any:
        return list(example.target) if isinstance(example.target, (list, tuple)) else example.target

    def shot(self, task: Any, example: Example) -> str:
        target = example.target[0] if isinstance(example.target, (list, tuple)) else example.target
        return task.lm_prompt(example) + task.spec.target_delimiter + str(target)


class LanguageModellingKind(TaskKind):
    """The log-likelihood of whole texts (perplexities), scored with rolling windows."""

    name = "language-modelling"
    required_fields = ()
    #: No target: the text scored is the text whose words and bytes are counted (lm-eval scores and counts
    #: ``doc_to_target`` alone), so a second text field could only make the perplexities disagree.
    optional_fields = ()
    default_metrics = {"perplexity": {}}
    default_primary = "word_perplexity"

    def formulations(self) -> Sequence[Formulation]:
        return (Formulation("rolling", frozenset({RequestType.ROLLING}), fewshot=False,
                            description="the log-likelihood of the whole text, every token scored once"),)

    def requests(self, task: Any, example: Example, formulation: str, prefix: str) -> list[Request]:
        return [RollingRequest(task.prompt(example))]

    def prediction(self, task: Any, example: Example, answers: Sequence[Answer], formulation: str,
                   labels: Sequence[str] | None) -> Any:
        return _one(answers, Loglikelihood, task)

    def reference(self, task: Any, example: Example) -> Any:
        # Perplexity counts words and bytes of the text the model scored, i.e. the prompt.
        return task.prompt(example)


class MultipleChoiceKind(TaskKind):
    """Pick the gold choice: one log-likelihood request per choice; acc and acc_norm as lm-eval."""

    name = "multiple-choice"
    required_fields = ("choices", "target")
    default_metrics = {"multiple_choice": {}}
    default_primary = "acc"

    def formulations(self) -> Sequence[Formulation]:
        return (Formulation("loglikelihood", _LL,
                            description="the log-likelihood of target_delimiter + each choice after lm_prompt"),)

    def requests(self, task: Any, example: Example, formulation: str, prefix: str) -> list[Request]:
        context = prefix + task.lm_prompt(example)
        return [LoglikelihoodRequest(context, task.spec.target_delimiter + c) for c in example.extra["choices"]]

    def prediction(self, task: Any, example: Example, answers: Sequence[Answer], formulation: str,
                   labels: Sequence[str] | None) -> Any:
        choices = example.extra["choices"]
        # The metric normalizes by each choice's own length (characters for acc_norm, UTF-8 bytes for
        # acc_bytes, the delimiter left out), as lm-evaluation-harness does, so it gets the text.
        return list(zip(_logprobs(task, example, answers, choices, "choice"), choices))

    def shot(self, task: Any, example: Example) -> str:
        return task.lm_prompt(example) + task.spec.target_delimiter + example.extra["choices"][int(example.target)]


#: The kinds the core registers (``llmos_hub.builtins.tasks``).
BUILTIN_KINDS: tuple[TaskKind, ...] = (
    ClassificationKind(),
    GenerationKind("translation", {"chrf": {}, "bleu": {}}, "chrf"),
    GenerationKind("summarization", {"rouge": {"use_stemmer": True}}, "rougeL"),
    LanguageModellingKind(),
    MultipleChoiceKind(),
)
