"""A :class:`~llmos_hub.Task` built from a validated task file.

The task turns examples into the requests its kind makes under a formulation, and scores a runner's
answers through the metrics registered in the plugin host (so a plugin's metric can be named in a task
file exactly like a built-in one).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from .._metric import Metric, Score
from .._requests import Loglikelihood, Request
from .._task import Example, Formulation, Task, TaskData
from ..errors import DataError, UsageError
from ._examples import fingerprint, read_examples, subsample
from ._sources import open_split
from ._spec import TaskSpec

__all__ = ["DeclaredTask"]


class DeclaredTask(Task):
    """A task declared in YAML (see :mod:`llmos_hub.tasks._spec` for the file format).

    Its kind (:class:`~llmos_hub.TaskKind`, looked up in the plugin registry) decides the formulations
    and turns examples into requests and answers into predictions; this class adds what every kind
    shares: data loading, prompts, few-shot demonstrations and scoring through the registered metrics.

    Example::

        task = task_from_file("my-task.yaml")
        data = task.load(limit=50, seed=0)
        requests = task.requests(data.examples[0], formulation="prompt", seed=0)
    """

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.version = spec.version
        self.primary_metric = spec.primary_metric
        self.description = spec.description
        self.generation = spec.kind.generation(self)
        #: The declared kind (``"translation"``, ...) and, for classification, the declared labels.
        self.kind: str = spec.kind.name
        self.labels: tuple[str, ...] | None = spec.labels
        self._shots: dict[str, list[Example]] = {}

    def __repr__(self) -> str:
        return f"DeclaredTask({self.name!r}, kind={self.spec.kind.name!r}, file={str(self.spec.file)!r})"

    def with_fewshot(self, num_fewshot: int) -> DeclaredTask:
        """This task with ``num_fewshot`` demonstrations (``--num-fewshot``); a new configuration."""
        if num_fewshot == self.spec.num_fewshot:
            return self
        if num_fewshot and self.spec.fewshot_split is None:
            raise UsageError(f"--num-fewshot {num_fewshot}: task {self.name} has no 'train' split to draw "
                             f"demonstrations from; add one to 'splits' or name another with 'fewshot_split' "
                             f"in {self.spec.file}, or drop --num-fewshot")
        return DeclaredTask(replace(self.spec, num_fewshot=num_fewshot))

    # -- data --------------------------------------------------------------------------------------
    def formulations(self) -> Sequence[Formulation]:
        return tuple(self.spec.kind.formulations())

    def load(self, *, split: str | None = None, limit: int | None = None, seed: int = 0) -> TaskData:
        source = open_split(self.spec, split or self.spec.default_split)
        examples = subsample(read_examples(source), limit, seed)
        return TaskData(examples=examples, fingerprint=fingerprint(examples), source=source.portable,
                        split=source.split)

    def _shot_examples(self) -> list[Example]:
        """Every example of the few-shot split, read once."""
        split = str(self.spec.fewshot_split)
        if split not in self._shots:
            self._shots[split] = read_examples(open_split(self.spec, split), scored=False)
        return self._shots[split]

    def check_fewshot_pool(self, examples: Sequence[Example]) -> None:
        """Enough demonstrations for every example of ``examples``, checked by the plan for a formulation
        that takes them (before any model loads), so a too-large ``num_fewshot`` is a one-line error naming
        the fix rather than a failed run; a formulation without demonstrations needs no pool.

        Counted, not listed per example (a large split times a large pool would be slow): an example's
        pool is the split less the shots with its id or its input, as :meth:`fewshot_prefix` draws it.
        """
        if not self.spec.num_fewshot or self.spec.fewshot_split is None:
            return
        shots = self._shot_examples()
        same_input = Counter(s.input for s in shots)
        input_of = {s.id: s.input for s in shots}

        def pool_size(ex: Example) -> int:
            own = ex.id in input_of and input_of[ex.id] != ex.input  # same id, another input
            return len(shots) - same_input[ex.input] - int(own)

        smallest = min(pool_size(ex) for ex in examples)
        if smallest < self.spec.num_fewshot:
            raise DataError(self._too_few_shots(smallest))

    def _too_few_shots(self, available: int) -> str:
        return (f"task {self.name}: num_fewshot {self.spec.num_fewshot} but split {self.spec.fewshot_split!r} has "
                f"only {available} other examples; lower --num-fewshot (or 'num_fewshot' in {self.spec.file}) "
                f"to at most {available}")

    # -- requests ----------------------------------------------------------------------------------
    def prompt(self, example: Example) -> str:
        """The example's input put into the task's prompt template."""
        return self.spec.prompt.format_map({**example.extra, "input": example.input})

    def lm_prompt(self, example: Example) -> str:
        """The example's input put into the template a causal LM continues."""
        return self.spec.lm_prompt.format_map({**example.extra, "input": example.input})

    def verbalize(self, label: str) -> str:
        """The words a language model scores for ``label``."""
        return self.spec.verbalizers.get(label, label)

    def fewshot_prefix(self, example: Example, formulation: Formulation, seed: int) -> str:
        """``num_fewshot`` demonstrations drawn with a seeded sampler from the few-shot split (never the
        example itself), each a prompt and its answer, joined and followed by ``fewshot_delimiter``."""
        count = self.spec.num_fewshot
        if not count or not formulation.fewshot:
            return ""
        pool = [ex for ex in self._shot_examples() if ex.id != example.id and ex.input != example.input]
        if len(pool) < count:
            raise DataError(self._too_few_shots(len(pool)))
        rng = random.Random(f"{seed}:{example.id}")
        shots = rng.sample(pool, count)
        delimiter = self.spec.fewshot_delimiter
        return delimiter.join(self.spec.kind.shot(self, s) for s in shots) + delimiter

    def requests(self, example: Example, *, formulation: str, seed: int = 0) -> list[Request]:
        form = self.formulation(formulation)
        return list(self.spec.kind.requests(self, example, form.name, self.fewshot_prefix(example, form, seed)))

    # -- scoring -----------------------------------------------------------------------------------
    def _check_labels(self, formulation: str, labels: Sequence[str] | None) -> Sequence[str] | None:
        if not self.formulation(formulation).needs_labels:
            return labels
        if labels is None:
            raise UsageError(f"task {self.name!r} needs the model's label names to read its logits")
        assert self.labels is not None
        if sorted(labels) != sorted(self.labels):
            raise UsageError(
                f"the model's labels ({', '.join(labels)}) differ from task {self.name!r}'s labels "
                f"({', '.join(self.labels)}); use a classifier trained on this task's labels, or "
                "--formulation loglikelihood"
            )
        return labels

    def _prediction(self, example: Example, answers: Sequence[Any], formulation: str,
                    labels: Sequence[str] | None) -> Any:
        return self.spec.kind.prediction(self, example, answers, formulation, labels)

    def score(
        self,
        examples: Sequence[Example],
        answers: Sequence[Sequence[Any]],
        *,
        formulation: str,
        labels: Sequence[str] | None = None,
        seed: int = 0,
    ) -> Mapping[str, Score]:
        if len(examples) != len(answers):
            raise UsageError(f"task {self.name!r}: {len(answers)} answers for {len(examples)} examples")
        labels = self._check_labels(formulation, labels)
        predictions = [self._prediction(ex, a, formulation, labels) for ex, a in zip(examples, answers)]
        references = [self.spec.kind.reference(self, ex) for ex in examples]
        scores: dict[str, Score] = {}
        for name, options in self.spec.metrics.items():
            result = _metric(name).compute(predictions, references, seed=seed, **options)
            for key, value in result.items():
                if key in scores:
                    raise UsageError(f"task {self.name!r}: two metrics both give a {key!r} score")
                scores[key] = value
        if self.primary_metric not in scores:
            raise UsageError(f"task {self.name!r}: primary_metric {self.primary_metric!r} is not among the "
                             f"scores ({', '.join(scores)}); fix 'primary_metric' in {self.spec.file}")
        return scores

    def example_statistics(
        self,
        examples: Sequence[Example],
        answers: Sequence[Sequence[Any]],
        *,
        formulation: str,
        labels: Sequence[str] | None = None,
    ) -> Mapping[str, Mapping[str, Any]]:
        labels = self._check_labels(formulation, labels)
        predictions = [self._prediction(ex, a, formulation, labels) for ex, a in zip(examples, answers)]
        references = [self.spec.kind.reference(self, ex) for ex in examples]
        table: dict[str, Mapping[str, Any]] = {}
        for name, options in self.spec.metrics.items():
            for key, entry in _metric(name).example_statistics(predictions, references, **options).items():
                table[key] = {**entry, "metric": name, "options": dict(options)}
        return table

    def per_example(
        self,
        example: Example,
        answers: Sequence[Any],
        *,
        formulation: str,
        labels: Sequence[str] | None = None,
    ) -> Mapping[str, Any]:
        labels = self._check_labels(formulation, labels)
        prediction = self._prediction(example, answers, formulation, labels)
        reference = self.spec.kind.reference(self, example)
        row: dict[str, Any] = {"id": example.id}
        if isinstance(prediction, Loglikelihood):
            row["prediction"] = {"logprob": prediction.logprob, "num_tokens": prediction.num_tokens}
        else:
            row["prediction"] = prediction
            row["reference"] = reference
        for name, options in self.spec.metrics.items():
            row.update(_metric(name).per_example(prediction, reference, **options))
        return row

    def describe(self) -> Mapping[str, Any]:
        return self.spec.to_dict()


def _metric(name: str) -> Metric:
    from .._plugins import default_host

    metric = default_host().get("metrics", name)
    if not isinstance(metric, Metric):  # the registry checks this too; keep the type narrow here
        raise UsageError(f"metric {name!r} is not a llmos_hub.Metric")
    return metric
