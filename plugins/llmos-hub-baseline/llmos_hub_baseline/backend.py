"""The ``baseline`` backend: answers the requests of a ``baseline:TASK`` model in plain Python."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from llmos_hub import (
    Backend,
    Capability,
    Generation,
    GenerationConfig,
    LoadedModel,
    Loglikelihood,
    RequestType,
    Runner,
    UsageError,
)

from .strategies import Baseline, first_sentence


def _cut(text: str, stop: Sequence[str]) -> str:
    """``text`` up to its first stop string, as the decoding engine cuts a model's output."""
    for s in stop:
        at = text.find(s)
        if at >= 0:
            text = text[:at]
    return text


class BaselineRunner(Runner):
    """Answers from a fitted :class:`Baseline`; batching cannot change an answer (there is no state)."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.baseline: Baseline = model.config["baseline"]

    @property
    def request_types(self) -> frozenset[RequestType]:
        return BaselineBackend().request_types(self.model.capabilities)

    def generate(self, prompts: Sequence[str], config: GenerationConfig) -> list[Generation]:
        strategy = self.baseline.strategy
        if strategy not in ("copy-source", "first-sentence"):
            raise NotImplementedError(f"the {self.baseline.description} baseline does not generate")
        out = []
        for prompt in prompts:
            text = _cut(prompt if strategy == "copy-source" else first_sentence(prompt), config.stop)
            out.append(Generation(text, tuple(self.model.tokenizer.encode(text)), len(self.model.tokenizer.encode(prompt))))
        return out

    def classify(self, texts: Sequence[str]) -> list[list[float]]:
        if self.baseline.strategy != "majority-class":
            raise NotImplementedError(f"the {self.baseline.description} baseline does not classify")
        label = self.baseline.params["label"]
        row = [1.0 if name == label else 0.0 for name in self.baseline.params["labels"]]
        return [list(row) for _ in texts]

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[Loglikelihood]:
        if self.baseline.unigram is None:
            raise NotImplementedError(f"the {self.baseline.description} baseline does not score texts")
        return [Loglikelihood(*self.baseline.unigram.logprob(t)) for t in texts]

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[Loglikelihood]:
        if self.baseline.strategy == "choice-position":
            # The favoured position gets log-likelihood 0, every other choice -1: it is always picked.
            index = self.model.config["choices"]
            favoured = int(self.baseline.params["position"])
            out = []
            for context, continuation in requests:
                position = index.position(context, continuation)
                if position is None:
                    raise UsageError(f"{self.model.name} answers only task {self.baseline.task}'s own examples; "
                                     f"this request is not one of them")
                out.append(Loglikelihood(0.0 if position == favoured else -1.0, 1, position == favoured))
            return out
        if self.baseline.unigram is None:
            raise NotImplementedError(f"the {self.baseline.description} baseline does not score continuations")
        return [Loglikelihood(*self.baseline.unigram.logprob(continuation)) for _, continuation in requests]

    def describe(self) -> Mapping[str, Any]:
        return {"strategy": self.baseline.strategy, "baseline": self.baseline.description}


class BaselineBackend(Backend):
    """Runs ``baseline:TASK`` models only; never chosen unless named (``--backend baseline``)."""

    name = "baseline"
    devices = ("cpu",)
    dtypes = ("float32",)
    consumes: ClassVar[tuple[str, ...]] = ("baseline",)
    priority: ClassVar[int] = -100

    def request_types(self, capabilities: frozenset[Capability]) -> frozenset[RequestType]:
        types: set[RequestType] = set()
        for capability in capabilities:
            types |= {
                Capability.CLASSIFIER: {RequestType.CLASSIFY},
                Capability.SEQ2SEQ: {RequestType.GENERATE},
                Capability.CAUSAL_LM: {RequestType.ROLLING, RequestType.LOGLIKELIHOOD},
            }.get(Capability(capability), set())
        return frozenset(types)

    def check_model(self, info: Any) -> str | None:
        if getattr(info, "artifacts", None) is not None:
            return "backend baseline runs only baseline:TASK models (a model with weight files needs another backend)"
        return None

    def prepare(self, model: LoadedModel, *, device: str = "cpu", dtype: str = "float32",
                options: Mapping[str, Any] | None = None) -> Runner:
        if model.family != "baseline" or not isinstance(model.config.get("baseline"), Baseline):
            raise UsageError(f"backend baseline runs only baseline:TASK models, not {model.name}; "
                             "use --backend pytorch (or another backend) for it")
        if options:
            raise UsageError(f"backend baseline takes no options (got {', '.join(sorted(options))})")
        return BaselineRunner(model)

    def versions(self) -> Mapping[str, str]:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return {"llmos-hub-baseline": version("llmos-hub-baseline")}
        except PackageNotFoundError:
            return {}
