"""Score a checkpoint on its task's held-out test split, beside a trivial baseline.

A tiny model's score means little on its own; next to the score of something that needs no model at
all (the majority class, a unigram LM, copying the source, the first sentence) it says whether the
model learned anything. Both go through the task's own metrics, so they are computed exactly as a
``llmos-hub bench`` run computes them.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmos_hub import Generation, GenerationConfig, Loglikelihood

__all__ = ["BASELINES", "Evaluation", "evaluate"]

#: The trivial baseline of each architecture, as the model card names it.
BASELINES = {
    "language-modelling": "unigram model (add-one smoothed token frequencies of the train split)",
    "classification": "majority class of the train split",
    "translation": "copy the source",
    "summarization": "first sentence of the input",
}


@dataclass
class Evaluation:
    """Scores of the model and of the baseline on one split, and a few sample outputs."""

    task: str
    split: str
    fingerprint: str
    examples: int
    primary: str
    higher_is_better: bool
    model: dict[str, float]
    baseline: dict[str, float]
    baseline_name: str
    generation: dict[str, Any] | None
    seconds: float
    samples: list[dict[str, str]] = field(default_factory=list)

    @property
    def beats_baseline(self) -> bool:
        m, b = self.model[self.primary], self.baseline[self.primary]
        return m > b if self.higher_is_better else m < b

    def summary(self) -> str:
        verdict = "beats" if self.beats_baseline else "does NOT beat"
        return (
            f"{self.task} {self.split} ({self.examples} examples): {self.primary} model "
            f"{self.model[self.primary]:.4g} vs baseline {self.baseline[self.primary]:.4g} "
            f"({self.baseline_name}); the model {verdict} the baseline"
        )


def _kind(task: Any) -> str:
    spec = getattr(task, "spec", None)
    kind = getattr(getattr(spec, "kind", None), "name", None)
    if kind:
        return str(kind)
    raise ValueError(f"task {task.name} is not a declared task; nano evaluation reads its kind and prompt")


def _first_sentence(text: str) -> str:
    match = re.search(r"(?<=[.!?])\s", text)
    return text[: match.start()] if match else text


def _unigram_outputs(tokenizer: Any, train: Sequence[Any], texts: Sequence[str]) -> list[Loglikelihood]:
    """A unigram LM over the model's own tokens; it also predicts the EOS that ends each text."""
    counts: Counter[int] = Counter()
    for ids in tokenizer.encode_batch([ex.input for ex in train]):
        counts.update(ids)
    vocab = tokenizer.vocab_size
    total = sum(counts.values()) + vocab
    outputs = []
    for ids in tokenizer.encode_batch(list(texts)):
        logprob = sum(math.log((counts[t] + 1) / total) for t in ids)
        outputs.append(Loglikelihood(logprob=logprob, num_tokens=len(ids)))
    return outputs


def _in_batches(items: Sequence[Any], size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def evaluate(folder: Path, task_name: str, train: Sequence[Any], *, split: str = "test", batch_size: int = 16) -> Evaluation:
    """Score the checkpoint in ``folder`` and the task's trivial baseline on ``split``."""
    import torch

    from llmos_hub._plugins import default_host
    from llmos_hub_pytorch.backend import TorchBackend

    from .family import NanoFamily

    started = time.time()
    task = default_host().get("tasks", task_name)
    data = task.load(split=split)
    examples = list(data.examples)
    model = NanoFamily().load(str(folder))
    runner = TorchBackend().prepare(model, device="cpu", dtype="float32", options={"threads": torch.get_num_threads()})
    texts = [task.prompt(ex) for ex in examples]
    kind = _kind(task)
    generation = None
    outputs: list[Any] = []
    if kind == "language-modelling":
        for chunk in _in_batches(texts, batch_size):
            outputs += runner.loglikelihood_rolling(chunk)
        baseline = _unigram_outputs(model.tokenizer, train, texts)
    elif kind == "classification":
        for chunk in _in_batches(texts, batch_size):
            outputs += runner.classify(chunk)
        majority = Counter(ex.target for ex in train).most_common(1)[0][0]
        labels = list(model.labels or [])
        baseline = [[1.0 if name == majority else 0.0 for name in labels] for _ in examples]
    else:
        config = task.generation or GenerationConfig()
        generation = config.to_dict()
        for chunk in _in_batches(texts, batch_size):
            outputs += runner.generate(chunk, config)
        if kind == "summarization":
            baseline = [Generation(_first_sentence(t), (), 0) for t in texts]
        else:
            baseline = [Generation(t, (), 0) for t in texts]
    labels = model.labels
    formulation = {"language-modelling": "rolling", "classification": "logits"}.get(kind, "seq2seq")
    model_scores = task.score(examples, [[o] for o in outputs], formulation=formulation, labels=labels)
    baseline_scores = task.score(examples, [[o] for o in baseline], formulation=formulation, labels=labels)
    primary = task.primary_metric
    samples = []
    if kind not in ("language-modelling", "classification"):
        for ex, out in list(zip(examples, outputs))[:5]:
            samples.append({"input": ex.input[:160], "reference": ex.target, "model": out.text})
    return Evaluation(
        task=task_name,
        split=split,
        fingerprint=data.fingerprint,
        examples=len(examples),
        primary=primary,
        higher_is_better=model_scores[primary].higher_is_better,
        model={k: float(v.value) for k, v in model_scores.items()},
        baseline={k: float(v.value) for k, v in baseline_scores.items()},
        baseline_name=BASELINES.get(kind, "trivial baseline"),
        generation=generation,
        seconds=time.time() - started,
        samples=samples,
    )


def as_dict(evaluation: Evaluation) -> Mapping[str, Any]:
    return {
        "split": evaluation.split,
        "fingerprint": evaluation.fingerprint,
        "examples": evaluation.examples,
        "primary": evaluation.primary,
        "model": evaluation.model,
        "baseline": evaluation.baseline,
        "baseline_name": evaluation.baseline_name,
        "beats_baseline": evaluation.beats_baseline,
    }
