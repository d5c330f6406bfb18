"""Test doubles for the SDK interfaces: a model family, a backend and a task with no heavy imports.

They implement the public interfaces exactly as a plugin would, so the bench harness, the records and the
leaderboard can be tested without torch. The fake "model" answers deterministically from the text, and
can be told to fail, to test that one failing run does not stop the others.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from llmos_hub import (
    Backend,
    Capability,
    ClassifyRequest,
    Example,
    Formulation,
    GenerateRequest,
    Generation,
    GenerationConfig,
    LoadedModel,
    Loglikelihood,
    ModelFamily,
    Provenance,
    Request,
    RequestType,
    RollingRequest,
    Runner,
    Score,
    Task,
    TaskData,
    hookimpl,
)


class CharTokenizer:
    eos_id = 0
    pad_id = 0
    bos_id = None

    def encode(self, text: str) -> list[int]:
        return [ord(c) % 250 + 1 for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i + 96) for i in ids)


class FakeFamily(ModelFamily):
    name = "fake"
    loads = 0

    def load(self, ref: str, *, revision: str | None = None) -> LoadedModel:
        FakeFamily.loads += 1
        if ref == "broken":
            raise RuntimeError("weights are corrupt")
        caps = {"upper": Capability.SEQ2SEQ, "clf": Capability.CLASSIFIER, "lm": Capability.CAUSAL_LM}[ref]
        return LoadedModel(
            family="fake",
            ref=ref,
            capabilities=frozenset({caps}),
            tokenizer=CharTokenizer(),
            modules={},
            provenance=Provenance("test", revision, hashlib.sha256(ref.encode()).hexdigest(), 42),
            max_length=64,
            labels=["even", "odd"] if ref == "clf" else None,
        )

    def capabilities(self, ref: str) -> frozenset[Capability] | None:
        return {"upper": frozenset({Capability.SEQ2SEQ}), "clf": frozenset({Capability.CLASSIFIER}), "lm": frozenset({Capability.CAUSAL_LM})}.get(ref)


class FakeRunner(Runner):
    def __init__(self, model: LoadedModel, *, fail: bool = False) -> None:
        self.model = model
        self.fail = fail
        self.batches: list[int] = []

    def generate(self, prompts: Sequence[str], config: GenerationConfig) -> list[Generation]:
        if self.fail:
            raise RuntimeError("export failed in module decoder (operator Foo)")
        self.batches.append(len(prompts))
        return [Generation(p.upper(), tuple(range(len(p))), len(p)) for p in prompts]

    def classify(self, texts: Sequence[str]) -> list[list[float]]:
        self.batches.append(len(texts))
        return [[1.0, 0.0] if len(t) % 2 == 0 else [0.0, 1.0] for t in texts]

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[Loglikelihood]:
        self.batches.append(len(texts))
        return [Loglikelihood(-0.5 * len(t), len(t)) for t in texts]


class FakeBackend(Backend):
    name = "fake"
    dtypes = ("float32",)

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.runners: list[FakeRunner] = []

    def prepare(self, model, *, device="cpu", dtype="float32", options=None):
        runner = FakeRunner(model, fail=self.fail)
        self.runners.append(runner)
        return runner


class FakeTask(Task):
    """Uppercasing (seq2seq), parity of length (classifier) or scoring text (causal LM)."""

    def __init__(self, name: str, capability: Capability, n: int = 10) -> None:
        self.name = name
        self.version = "1"
        self.capability = capability
        self.n = n
        self.primary_metric = {"upper": "exact", "clf": "accuracy", "lm": "nll"}[self._kind]
        self.generation = GenerationConfig(max_new_tokens=8) if capability == Capability.SEQ2SEQ else None

    @property
    def _kind(self) -> str:
        return {Capability.SEQ2SEQ: "upper", Capability.CLASSIFIER: "clf", Capability.CAUSAL_LM: "lm"}[Capability(self.capability)]

    def load(self, *, split=None, limit=None, seed=0) -> TaskData:
        words = ["alpha", "be", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu"]
        examples = []
        for i in range(self.n):
            text = " ".join(words[i % len(words): i % len(words) + 1 + i % 3])
            target = text.upper() if self._kind == "upper" else ("even" if len(text) % 2 == 0 else "odd")
            examples.append(Example(str(i), text, target))
        if limit:
            examples = examples[:limit]
        fingerprint = hashlib.sha256(repr([(e.id, e.input, e.target) for e in examples]).encode()).hexdigest()
        return TaskData(examples, fingerprint, "fake", split or "test")

    def formulations(self):
        kind = {"upper": RequestType.GENERATE, "clf": RequestType.CLASSIFY, "lm": RequestType.ROLLING}[self._kind]
        return (Formulation(self._kind, frozenset({kind}), Capability(self.capability)),)

    def requests(self, example: Example, *, formulation: str, seed: int = 0) -> list[Request]:
        if self._kind == "upper":
            return [GenerateRequest(example.input, self.generation)]
        if self._kind == "clf":
            return [ClassifyRequest(example.input)]
        return [RollingRequest(example.input)]

    def score(self, examples, answers, *, formulation, labels=None, seed=0):
        outputs = [a[0] for a in answers]
        if self._kind == "upper":
            hits = [o.text == e.target for e, o in zip(examples, outputs)]
        elif self._kind == "clf":
            hits = [labels[max(range(len(o)), key=o.__getitem__)] == e.target for e, o in zip(examples, outputs)]
        else:
            total = sum(o.logprob for o in outputs)
            return {"nll": Score(-total / sum(o.num_tokens for o in outputs), 0.0, higher_is_better=False)}
        p = sum(hits) / len(hits)
        name = "exact" if self._kind == "upper" else "accuracy"
        return {name: Score(p, math.sqrt(p * (1 - p) / len(hits)))}

    def per_example(self, example, answers, *, formulation, labels=None):
        return {"prediction": getattr(answers[0], "text", None)}


class FakePlugin:
    """A plugin object registering the doubles above (passed as ``extra`` to ``load_plugins``)."""

    def __init__(self, failing_backend: bool = False) -> None:
        self.backend = FakeBackend()
        self.failing = FakeBackend(fail=True)

    @hookimpl
    def register_models(self, register):
        register("fake", FakeFamily)

    @hookimpl
    def register_backends(self, register):
        register("fake", lambda: self.backend)
        register("failing", lambda: self.failing)

    @hookimpl
    def register_tasks(self, register):
        register("upper", lambda: FakeTask("upper", Capability.SEQ2SEQ))
        register("parity", lambda: FakeTask("parity", Capability.CLASSIFIER))
        register("text", lambda: FakeTask("text", Capability.CAUSAL_LM))

    @hookimpl
    def register_suites(self, register):
        register("fake-suite", lambda: ["upper", "parity", "text"])
