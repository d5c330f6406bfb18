"""The ``baseline`` model family: ``baseline:TASK`` is TASK's trivial floor, fitted on TASK's train split.

The reference names a registered task (or a task file). Loading fits the baseline of the task's kind
(see :mod:`.strategies`) on the train split; its provenance records the fit, its ``extra.baseline``
says which baseline it is (the leaderboard marks such rows), and its "weights" hash is the hash of the
fitted parameters. A baseline has no torch modules: the ``baseline`` backend answers for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmos_hub import Capability, LoadedModel, ModelFamily, ModelInfo, Provenance, UsageError

from .strategies import STRATEGIES, Baseline, ChoiceIndex, fit_baseline

_KIND_OF_CAPABILITY = {"classifier": "classification", "causal-lm": "language-modelling", "seq2seq": "translation"}
_CAPABILITY = {
    "classification": Capability.CLASSIFIER,
    "translation": Capability.SEQ2SEQ,
    "summarization": Capability.SEQ2SEQ,
    "language-modelling": Capability.CAUSAL_LM,
    "multiple-choice": Capability.CAUSAL_LM,
}


class ByteTokenizer:
    """UTF-8 bytes as token ids: what the bench counts as a baseline's prompt and generated tokens."""

    eos_id: int = 256
    pad_id: int = 256
    bos_id: int | None = None

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")


def _no_modules(ref: str):
    def build() -> Any:
        raise UsageError(f"baseline:{ref} has no torch modules; its answers come from the baseline backend: "
                         "add --backend baseline")

    return build


class BaselineFamily(ModelFamily):
    """``baseline:TASK`` (a registered task name or a task file)."""

    name = "baseline"

    def __init__(self) -> None:
        self._host: Any = None
        self._fitted: dict[str, tuple[Any, Baseline]] = {}

    def _task(self, ref: str) -> Any:
        if ref.endswith((".yaml", ".yml")) and Path(ref).is_file():
            from llmos_hub.tasks import task_from_file

            return task_from_file(ref)
        if self._host is None:
            from llmos_hub import load_plugins

            self._host = load_plugins()
        return self._host.get("tasks", ref)

    def kind(self, ref: str) -> str:
        task = self._task(ref)
        kind = str(task.describe().get("kind") or _KIND_OF_CAPABILITY.get(str(task.capability), ""))
        if kind not in STRATEGIES:
            raise UsageError(f"no baseline for task {task.name} of kind {kind or 'unknown'}; "
                             f"baselines exist for {', '.join(STRATEGIES)}")
        return kind

    def capabilities(self, ref: str) -> frozenset[Capability] | None:
        return frozenset({_CAPABILITY[self.kind(ref)]})

    def available(self) -> Sequence[str]:
        return ("TASK (e.g. baseline:classification-sample)",)

    def inspect(self, ref: str, *, revision: str | None = None) -> ModelInfo | None:
        """Capabilities, the task's labels and the hash of the fitted parameters, before any run."""
        task, baseline = self._fit(ref)
        labels = tuple(baseline.params["labels"]) if baseline.strategy == "majority-class" else None
        return ModelInfo(capabilities=frozenset({_CAPABILITY[self.kind(ref)]}), weights_sha256=baseline.sha256,
                         labels=labels, backends=("baseline",))

    def _fit(self, ref: str) -> tuple[Any, Baseline]:
        """The task and its fitted baseline (fitted once per reference)."""
        if ref in self._fitted:
            return self._fitted[ref]
        task = self._task(ref)
        kind = self.kind(ref)
        labels = getattr(task, "labels", None)
        train: list[Any] | None = None
        fitted_on: dict[str, Any] = {}
        if STRATEGIES[kind] not in ("copy-source", "first-sentence"):
            try:
                data = task.load(split="train")
            except Exception as exc:  # noqa: BLE001 - any failure to read the split is the same user problem
                raise UsageError(f"baseline:{ref} is fitted on task {task.name}'s train split, which cannot be read: "
                                 f"{' '.join(str(exc).split())}") from exc
            train = list(data.examples)
            fitted_on = {"split": data.split, "examples": len(train), "dataset_fingerprint": data.fingerprint}
        baseline = fit_baseline(kind, task.name, train, labels=labels, fitted_on=fitted_on)
        self._fitted[ref] = (task, baseline)
        return task, baseline

    def load(self, ref: str, *, revision: str | None = None) -> LoadedModel:
        task, baseline = self._fit(ref)
        kind = self.kind(ref)
        fitted_on = dict(baseline.fitted_on)
        where = f"{task.name} {fitted_on['split']} split ({fitted_on['examples']} examples)" if fitted_on else "no data"
        config: dict[str, Any] = {"baseline": baseline}
        if baseline.strategy == "choice-position":
            config["choices"] = ChoiceIndex.of_task(task)
        return LoadedModel(
            family=self.name,
            ref=ref,
            capabilities=frozenset({_CAPABILITY[kind]}),
            tokenizer=ByteTokenizer(),
            provenance=Provenance(
                source=f"baseline fitted on {where}",
                revision=None,
                weights_sha256=baseline.sha256,
                num_parameters=baseline.num_parameters,
                extra={"baseline": baseline.description, "strategy": baseline.strategy, "fitted_on": fitted_on},
            ),
            max_length=1 << 30,
            build_modules=_no_modules(ref),
            config=config,
            labels=list(baseline.params["labels"]) if baseline.strategy == "majority-class" else None,
        )
