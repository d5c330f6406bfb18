"""A :class:`~llmos_hub.Task` built from a validated task file.

The task turns examples into the request its kind needs, and scores a runner's outputs through the
metrics registered in the plugin host (so a plugin's metric can be named in a task file exactly like
a built-in one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._requests import Generation, Loglikelihood
from .._metric import Metric, Score
from .._task import Example, Request, Task, TaskData
from ..errors import UsageError
from ._examples import fingerprint, read_examples, subsample
from ._sources import open_split
from ._spec import TaskSpec

__all__ = ["DeclaredTask"]


class DeclaredTask(Task):
    """A task declared in YAML (see :mod:`llmos_hub.tasks._spec` for the file format).

    Example::

        task = task_from_file("my-task.yaml")
        data = task.load(limit=50, seed=0)
        requests = [task.request(ex) for ex in data.examples]
    """

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.version = spec.version
        self.capability = spec.kind.capability
        self.primary_metric = spec.primary_metric
        self.description = spec.description
        self.generation = spec.generation
        #: The declared kind (``"translation"``, ...) and, for classification, the declared labels.
        self.kind: str = spec.kind.name
        self.labels: tuple[str, ...] | None = spec.labels

    def __repr__(self) -> str:
        return f"DeclaredTask({self.name!r}, kind={self.spec.kind.name!r}, file={str(self.spec.file)!r})"

    # -- data --------------------------------------------------------------------------------------
    def load(self, *, split: str | None = None, limit: int | None = None, seed: int = 0) -> TaskData:
        source = open_split(self.spec, split or self.spec.default_split)
        examples = subsample(read_examples(source), limit, seed)
        return TaskData(examples=examples, fingerprint=fingerprint(examples), source=source.portable,
                        split=source.split)

    # -- requests ----------------------------------------------------------------------------------
    def prompt(self, example: Example) -> str:
        """The example's input put into the task's prompt template."""
        return self.spec.prompt.format_map({**example.extra, "input": example.input})

    def request(self, example: Example) -> Request:
        return Request(self.spec.kind.request_kind, self.prompt(example))  # type: ignore[arg-type]

    # -- scoring -----------------------------------------------------------------------------------
    def _prediction(self, output: Any, labels: Sequence[str] | None) -> Any:
        kind = self.spec.kind
        if kind.generates:
            if isinstance(output, Generation):
                return output.text
            if isinstance(output, str):
                return output
            raise UsageError(f"task {self.name!r} expects Generation outputs, got {type(output).__name__}")
        if kind.has_labels:
            assert labels is not None
            scores = list(output)
            if len(scores) != len(labels):
                raise UsageError(f"task {self.name!r}: a classifier output has {len(scores)} logits "
                                 f"for {len(labels)} labels")
            return labels[max(range(len(scores)), key=scores.__getitem__)]
        if isinstance(output, Loglikelihood):
            return output
        raise UsageError(f"task {self.name!r} expects Loglikelihood outputs, got {type(output).__name__}")

    def _reference(self, example: Example) -> str:
        # Perplexity counts words and bytes of the text the model scored, i.e. the prompt.
        return self.prompt(example) if self.spec.target_field is None else example.target

    def _check_labels(self, labels: Sequence[str] | None) -> Sequence[str] | None:
        if not self.spec.kind.has_labels:
            return labels
        if labels is None:
            raise UsageError(f"task {self.name!r} needs the model's label names to read its logits")
        assert self.labels is not None
        if sorted(labels) != sorted(self.labels):
            raise UsageError(
                f"the model's labels ({', '.join(labels)}) differ from task {self.name!r}'s labels "
                f"({', '.join(self.labels)}); use a classifier trained on this task's labels"
            )
        return labels

    def score(
        self,
        examples: Sequence[Example],
        outputs: Sequence[Any],
        *,
        labels: Sequence[str] | None = None,
        seed: int = 0,
    ) -> Mapping[str, Score]:
        if len(examples) != len(outputs):
            raise UsageError(f"task {self.name!r}: {len(outputs)} outputs for {len(examples)} examples")
        labels = self._check_labels(labels)
        predictions = [self._prediction(o, labels) for o in outputs]
        references = [self._reference(ex) for ex in examples]
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

    def per_example(
        self, example: Example, output: Any, *, labels: Sequence[str] | None = None
    ) -> Mapping[str, Any]:
        labels = self._check_labels(labels)
        prediction = self._prediction(output, labels)
        reference = self._reference(example)
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
