"""The conformance kit catches what CONTRIBUTING says it checks (each check fails on a plugin that breaks it)."""

from __future__ import annotations

import hashlib
import math
import random
import sys
import textwrap
from collections.abc import Sequence

import pytest

from llmos_hub import (
    Backend,
    Capability,
    ClassifyRequest,
    Example,
    Formulation,
    Generation,
    GenerationConfig,
    LoadedModel,
    Loglikelihood,
    Metric,
    Provenance,
    RequestType,
    Runner,
    Score,
    Task,
    TaskData,
    UsageError,
)
from llmos_hub.decoding import cut_at_stop
from llmos_hub.testing import check_backend, check_light_import, check_metric, check_plugin, check_task

from ._fakes import CharTokenizer, FakePlugin


# -- heavy imports ---------------------------------------------------------------------------------------
def _plugin_module(tmp_path, monkeypatch, name: str, source: str):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    return __import__(name)


LIGHT = """
    from llmos_hub import hookimpl

    @hookimpl
    def register_backends(register):
        def make():
            import xml.dom.minidom  # heavy work belongs in the factory
            from llmos_hub import Backend
            class B(Backend):
                name = "b"
                def prepare(self, model, *, device="cpu", dtype="float32", options=None):
                    raise NotImplementedError
            return B()
        register("b", make)
"""


def test_light_plugin_module_passes(tmp_path, monkeypatch):
    module = _plugin_module(tmp_path, monkeypatch, "kit_light", LIGHT)
    check_light_import(module, heavy=["xml.dom.minidom"])


@pytest.mark.parametrize("where", ["module level", "hook body"])
def test_heavy_import_at_plugin_import_fails(where, tmp_path, monkeypatch):
    if where == "module level":
        source = "import xml.dom.minidom\n" + textwrap.dedent(LIGHT)
    else:
        source = textwrap.dedent(LIGHT).replace("def register_backends(register):\n", "def register_backends(register):\n    import xml.dom.minidom\n")
    module = _plugin_module(tmp_path, monkeypatch, f"kit_heavy_{where[0]}", source)
    with pytest.raises(AssertionError, match="imported xml.dom.minidom; import heavy libraries inside the factory"):
        check_light_import(module, heavy=["xml.dom.minidom"])


@pytest.mark.slow
def test_check_plugin_refuses_a_plugin_that_imports_torch_at_module_level(tmp_path, monkeypatch):
    module = _plugin_module(tmp_path, monkeypatch, "kit_torchy", "import torch\n" + textwrap.dedent(LIGHT))
    with pytest.raises(AssertionError, match="imported torch"):
        check_plugin(module)


# -- backends --------------------------------------------------------------------------------------------
EOS = 0


def _tokens(text: str) -> list[int]:
    return [ord(c) % 250 + 1 for c in text]


class ToyRunner(Runner):
    """A causal LM whose greedy continuation of a prompt is its reversed letters (then EOS)."""

    def __init__(self, model, flaws: frozenset[str]) -> None:
        self.model = model
        self.flaws = flaws

    def generate(self, prompts: Sequence[str], config: GenerationConfig) -> list[Generation]:
        out = []
        for p in prompts:
            text = "".join(reversed([c for c in p if c.isalpha()]))[: config.max_new_tokens]
            if "ignores stop" not in self.flaws:
                text = cut_at_stop(text, config.stop) if config.stop else text
            ids = tuple(_tokens(text)) + ((EOS,) if "keeps eos" in self.flaws else ())
            if "batch dependent" in self.flaws and len(prompts) > 1:
                ids = ids[:-1]
            out.append(Generation(text, ids, len(p)))
        return out

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[Loglikelihood]:
        shift = 0.5 if "off reference" in self.flaws else 0.0
        return [Loglikelihood(-0.1 * len(t) - shift, len(t)) for t in texts]

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[Loglikelihood]:
        return [Loglikelihood(-0.2 * len(k), len(k)) for _, k in requests]


class ToyBackend(Backend):
    dtypes = ("float32",)

    def __init__(self, name: str = "toy", flaws: Sequence[str] = ()) -> None:
        self.name = name
        self.flaws = frozenset(flaws)

    def prepare(self, model, *, device="cpu", dtype="float32", options=None):
        if dtype not in self.dtypes and "any dtype" not in self.flaws:
            raise UsageError(f"backend {self.name} does not support dtype {dtype}; it supports float32")
        return ToyRunner(model, self.flaws)


@pytest.fixture
def toy_model():
    return LoadedModel(
        family="toy", ref="lm", capabilities=frozenset({Capability.CAUSAL_LM}), tokenizer=CharTokenizer(),
        provenance=Provenance("test", None, "0" * 64, 1), max_length=64, modules={},
    )


TEXTS = ["Hello there, world", "Another longer prompt with words", "Mid size"]


def test_a_conforming_backend_passes(toy_model):
    check_backend(ToyBackend(), toy_model, reference=ToyBackend("ref"), texts=TEXTS)


@pytest.mark.parametrize(
    "flaw, message",
    [
        ("any dtype", "accepted dtype 'float64'"),
        ("batch dependent", "batched answers differ from one-at-a-time answers"),
        ("keeps eos", "EOS token"),
        ("ignores stop", "stop string"),
        ("off reference", "answers differ from the reference backend ref"),
    ],
)
def test_each_broken_rule_fails_the_backend_check(flaw, message, toy_model):
    with pytest.raises(AssertionError, match=message):
        check_backend(ToyBackend(flaws=[flaw]), toy_model, reference=ToyBackend("ref"), texts=TEXTS)


# -- tasks -----------------------------------------------------------------------------------------------
class ToyTask(Task):
    name = "toy-task"
    primary_metric = "accuracy"
    labels = ("even", "odd")

    def __init__(self, flaw: str = "") -> None:
        self.flaw = flaw

    def formulations(self):
        return [Formulation("logits", frozenset({RequestType.CLASSIFY}), capability=Capability.CLASSIFIER, needs_labels=True)]

    def load(self, *, split=None, limit=None, seed=0) -> TaskData:
        examples = [Example(str(i), "x" * i, "even" if i % 2 == 0 else "odd") for i in range(20)]
        if limit is not None and limit < len(examples):
            rng = random.Random() if self.flaw == "unseeded" else random.Random(seed)
            examples = [examples[i] for i in sorted(rng.sample(range(len(examples)), limit))]
        digest = hashlib.sha256(",".join(e.id for e in examples).encode()).hexdigest()
        return TaskData(examples, digest, "toy", "test")

    def requests(self, example, *, formulation, seed=0):
        return [ClassifyRequest(example.input)]

    def score(self, examples, answers, *, formulation, labels=None, seed=0):
        predicted = [labels[max(range(len(a[0])), key=a[0].__getitem__)] for a in answers]
        if self.flaw == "inverted":
            predicted = ["odd" if p == "even" else "even" for p in predicted]
        hits = [p == e.target for p, e in zip(predicted, examples)]
        p = sum(hits) / len(hits)
        return {"accuracy": Score(p, math.sqrt(p * (1 - p) / len(hits)))}


def test_a_conforming_task_passes():
    check_task(ToyTask())


@pytest.mark.parametrize("flaw, message", [("unseeded", "same limit and seed"), ("inverted", "gold answers score accuracy=0.0")])
def test_each_broken_task_rule_fails(flaw, message):
    with pytest.raises(AssertionError, match=message):
        for _ in range(5):  # an unseeded subsample may repeat by chance once
            check_task(ToyTask(flaw))


def test_bundled_task_gold_answers_score_perfectly():
    from llmos_hub import load_plugins

    host = load_plugins(autoload=False, extra=[("fake", FakePlugin())])
    for name in ("classification-sample", "translation-sample", "summarization-sample", "lm-sample", "multiple-choice-sample"):
        check_task(host.get("tasks", name), limit=6)


# -- metrics ---------------------------------------------------------------------------------------------
class ToyMetric(Metric):
    name = "toy-exact"

    def __init__(self, flaw: str = "") -> None:
        self.flaw = flaw
        self.calls = 0

    def compute(self, predictions, references, *, seed=0, **options):
        self.calls += 1
        hits = [p == r for p, r in zip(predictions, references)]
        value = sum(hits) / len(hits)
        if self.flaw == "drifts":
            value += 0.01 * self.calls
        if self.flaw == "seeded value":
            value = random.Random(seed).random()
        if self.flaw == "out of range":
            value *= 100
        if self.flaw == "default is not the default":  # declares scale=1.0 but behaves as 0.5 without it
            value *= options.get("scale", 0.5)
        key = "em" if self.flaw == "other keys" else "exact_match"
        if self.flaw == "percent":  # the score in percent, its per-example values 0/1
            value *= 100
        return {key: Score(value, math.sqrt(value * (1 - value) / len(hits)) if value <= 1 else 0.0)}

    def example_statistics(self, predictions, references, **options):
        return {"exact_match": {"kind": "binary", "values": [float(p == r) for p, r in zip(predictions, references)]}}


def test_a_conforming_metric_passes():
    scores = check_metric(ToyMetric(), ["a", "b", "c"], ["a", "b", "x"], value_range=(0.0, 1.0))
    assert scores["exact_match"].value == pytest.approx(2 / 3)


@pytest.mark.parametrize("flaw, message", [("drifts", "two computations"), ("seeded value", "depends on the seed"),
                                           ("out of range", "outside"), ("default is not the default", "declared options"),
                                           ("other keys", "not among score_keys"),
                                           ("percent", "must be that mean")])
def test_each_broken_metric_rule_fails(flaw, message):
    metric = ToyMetric(flaw)
    metric.options = {"scale": 1.0}
    metric.score_keys = ("exact_match",)
    with pytest.raises(AssertionError, match=message):
        check_metric(metric, ["a", "b", "c"], ["a", "b", "x"], value_range=None if flaw == "percent" else (0.0, 1.0))


def test_a_plugin_metrics_declared_options_are_checked_in_a_task_file(tmp_path):
    """``Metric.options`` is public: a plugin metric that declares its options gets a misspelt one in a task
    file refused when the file is read (it would otherwise change nothing, silently)."""
    from llmos_hub import DataError, hookimpl, load_plugins
    from llmos_hub._plugins import set_default_host
    from llmos_hub.bench._checks import check_task_metrics
    from llmos_hub.tasks import task_from_file

    (tmp_path / "rows.jsonl").write_text('{"en": "ab", "de": "AB"}\n')
    task = tmp_path / "t.yaml"
    task.write_text("name: tr\nkind: translation\ndata: rows.jsonl\nfields: {input: en, target: de}\n"
                    "metrics: {toy-exact: {stirp: false}}\nprimary_metric: exact_match\n")
    metric = ToyMetric()
    metric.options = {"strip": True}

    class ToyMetricPlugin:
        @hookimpl
        def register_metrics(self, register):
            register("toy-exact", lambda: metric)

    host = load_plugins(extra=[("toy-metric", ToyMetricPlugin())])
    set_default_host(host)  # what a task file's metric names are resolved against, as the CLI does
    try:
        declared = task_from_file(task)
        with pytest.raises(DataError, match=r"field 'metrics.toy-exact': unknown option 'stirp'; known: strip"):
            check_task_metrics(host, declared)
        metric.options = None  # undeclared: passed through to compute, as before
        check_task_metrics(host, declared)
    finally:
        set_default_host(None)
