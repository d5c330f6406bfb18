"""Task files: validation with one-line errors, requests per kind, scoring through registered metrics, listing.

Scoring is tested twice: through a fake metric registered by a test plugin (to see exactly what a
task hands its metrics) and, when the built-in metrics are installed, through the real ones.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from llmos_hub import (
    Capability,
    RequestType,
    DataError,
    Example,
    Generation,
    Loglikelihood,
    Metric,
    PluginHost,
    Score,
    UsageError,
    hookimpl,
)
from llmos_hub._plugins import set_default_host
from llmos_hub.tasks import BUILTIN_DIR, task_from_file

FIXTURES = Path(__file__).parent / "data" / "tasks"


@pytest.fixture(autouse=True)
def _fixtures_are_allowed_data():
    """These tests' task files live in tmp_path and name the shared fixtures by absolute path."""
    from llmos_hub.tasks import allow_data_paths

    with allow_data_paths([Path(__file__).resolve().parents[1]]):
        yield
MINI = FIXTURES / "mini-translation.yaml"
SUITE = ("lm-sample", "classification-sample", "translation-sample", "summarization-sample", "multiple-choice-sample")

BASE: dict[str, Any] = {
    "name": "t",
    "kind": "translation",
    "data": str(FIXTURES / "mini-translation" / "test.jsonl"),
    "fields": {"input": "en", "target": "de", "id": "key"},
}


def _write(tmp_path: Path, declaration: dict[str, Any]) -> Path:
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(declaration, allow_unicode=True), encoding="utf-8")
    return path


def _with(**changes: Any) -> dict[str, Any]:
    declaration = dict(BASE)
    for key, value in changes.items():
        if value is None:
            declaration.pop(key, None)
        else:
            declaration[key] = value
    return declaration


# -- validation -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("declaration", "expected"),
    [
        (_with(name=None), "missing field 'name'"),
        (_with(name="has space"), "field 'name': 'has space' may hold only"),
        (_with(kind=None), "missing field 'kind'"),
        (_with(kind="translaton"), "field 'kind': unknown kind 'translaton'; did you mean 'translation'?"),
        (_with(kind="regression"), "one of classification, language-modelling, multiple-choice, summarization, translation"),
        (_with(data=None), "missing field 'data'"),
        (_with(data={"path": "a.jsonl", "dataset": "x/y"}), "field 'data': give exactly one of 'path'"),
        (_with(data={"path": "a.jsonl", "format": "xml"}), "field 'data.format': unknown format 'xml'"),
        (_with(data={"path": "a.jsonl", "config": "de"}), "field 'data': config only apply to a 'dataset'"),
        (_with(data={"pth": "a.jsonl"}), "unknown field 'data.pth'; did you mean 'path'?"),
        (_with(splits={"train": "train.jsonl"}), "field 'splits': 'data' is a single file"),
        (_with(fields=None), "missing field 'fields'"),
        (_with(fields={"target": "de"}), "missing field 'fields.input'"),
        (_with(fields={"input": "en"}), "missing field 'fields.target'"),
        (_with(fields={"input": "en", "target": "de", "label": "x"}), "unknown field 'fields.label'"),
        (_with(prompt="Translate:"), "field 'prompt': the template must contain {input}"),
        (_with(prompt="{input} {"), "field 'prompt': not a valid template"),
        (_with(prompt="{input} {0}"), "placeholder {0} must be a plain field name"),
        (_with(generation={"max_new_tokens": 0}), "field 'generation.max_new_tokens': must be a positive integer"),
        (_with(generation={"num_beams": "4"}), "field 'generation.num_beams': must be a positive integer"),
        (_with(generation={"length_penalty": "long"}), "field 'generation.length_penalty': must be a finite number"),
        (_with(generation={"length_penalty": float("nan")}), "field 'generation.length_penalty': must be a finite number"),
        (_with(fewshot_split=["train"]), "field 'fewshot_split': must be text, not a list"),
        (_with(fewshot_split={"a": 1}), "field 'fewshot_split': must be text, not a mapping"),
        (_with(generation={"stop": [1]}), "field 'generation.stop': must be a list of non-empty strings"),
        (_with(generation={"beams": 2}), "unknown field 'generation.beams'"),
        (_with(metrics={"chrf": 3}), "field 'metrics.chrf': options must be a mapping"),
        (_with(metrics={"chrf": {}}), "missing field 'primary_metric'"),
        (_with(metrics={"chrf": {}}, primary_metric="bleu"),
         "field 'primary_metric': 'bleu' is not a score of the metrics chrf (they give chrf)"),
        (_with(labels=["a", "b"]), "field 'labels': only classification tasks have labels"),
        (_with(kind="classification", labels=["a"]), "field 'labels': a classification task declares its labels"),
        (_with(kind="classification", labels=["a", "a"]), "field 'labels': labels must be distinct"),
        (_with(kind="classification", labels=["a", "b"], generation={"num_beams": 2}),
         "field 'generation': only generating kinds (translation, summarization) take generation settings"),
        (_with(primary="chrf"), "unknown field 'primary'; did you mean 'primary_metric'?"),
        (_with(data=str(FIXTURES / "mini-translation"), splits={"test": "test.jsonl"}, default_split="dev"),
         "field 'default_split': 'dev' is not one of the splits (test)"),
        (_with(version=[1]), "field 'version': must be text, not a list"),
    ],
)
def test_invalid_task_file_gives_one_line_naming_file_and_field(
    tmp_path: Path, declaration: dict[str, Any], expected: str
) -> None:
    path = _write(tmp_path, declaration)
    with pytest.raises(DataError) as excinfo:
        task_from_file(path)
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert expected in message


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_text("name: t\nkind: [translation\nfields: {}\n", encoding="utf-8")
    with pytest.raises(DataError) as excinfo:
        task_from_file(path)
    assert str(excinfo.value).startswith(f"{path}:")
    assert "not valid YAML" in str(excinfo.value)


def test_missing_and_non_mapping_task_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="task file not found"):
        task_from_file(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(DataError, match="must be a mapping"):
        task_from_file(tmp_path / "list.yaml")


def test_defaults_per_kind(tmp_path: Path) -> None:
    task = task_from_file(_write(tmp_path, _with()))
    described = task.describe()
    assert [f.name for f in task.formulations()] == ["seq2seq", "prompt"]
    assert task.formulations()[0].capability is Capability.SEQ2SEQ
    assert task.kind == "translation" and task.labels is None
    assert described["metrics"] == {"chrf": {}, "bleu": {}}
    assert task.primary_metric == "chrf"
    assert described["default_split"] == "test"
    assert described["prompt"] == "{input}" and described["lm_prompt"] == "{input}"
    assert (described["target_delimiter"], described["fewshot_delimiter"], described["num_fewshot"]) == (" ", "\n\n", 0)
    assert task.generation is not None and task.generation.num_beams == 1
    summary = task_from_file(_write(tmp_path, _with(kind="summarization")))
    assert summary.primary_metric == "rougeL"
    assert summary.describe()["metrics"] == {"rouge": {"use_stemmer": True}}


def test_describe_returns_the_declaration() -> None:
    task = task_from_file(MINI)
    declared = yaml.safe_load(MINI.read_text(encoding="utf-8"))
    described = task.describe()
    json.dumps(described)  # plain data, as a record stores it
    for key in ("name", "version", "kind", "description", "source", "splits", "fields", "prompt",
                "metrics", "primary_metric"):
        assert described[key] == declared[key], key
    assert described["generation"] == {**declared["generation"], "length_penalty": 0.6}
    assert described["data"] == {"path": "mini-translation"}
    assert task.version == "2"


# -- requests -------------------------------------------------------------------------------------------

def test_translation_request_uses_the_prompt_template_and_generation_settings() -> None:
    task = task_from_file(MINI)
    example = task.load().examples[0]
    (request,) = task.requests(example, formulation="seq2seq")
    assert request.type is RequestType.GENERATE
    assert request.text == f"Translate (ui): {example.input}"
    assert request.config == task.generation
    assert task.generation is not None
    assert (task.generation.max_new_tokens, task.generation.num_beams, task.generation.length_penalty,
            task.generation.stop) == (24, 3, 0.6, ("\n",))


@pytest.mark.parametrize(
    ("name", "kind", "capability"),
    [
        ("lm-sample", "loglikelihood_rolling", None),
        ("classification-sample", "classify", Capability.CLASSIFIER),
        ("translation-sample", "generate", Capability.SEQ2SEQ),
        ("summarization-sample", "generate", Capability.SEQ2SEQ),
    ],
)
def test_bundled_task_requests(name: str, kind: str, capability: Capability | None) -> None:
    task = task_from_file(BUILTIN_DIR / f"{name}.yaml")
    first = task.formulations()[0]
    assert first.capability is capability
    for example in task.load(limit=5).examples:
        (request,) = task.requests(example, formulation=first.name)
        assert str(request.type) == kind
        assert request.text == example.input  # the bundled prompts are "{input}"
    assert (task.generation is not None) == (kind == "generate")


def test_language_modelling_target_is_the_text_itself(tmp_path: Path) -> None:
    (tmp_path / "docs.jsonl").write_text(json.dumps({"text": "A whole document."}) + "\n", encoding="utf-8")
    task = task_from_file(_write(tmp_path, {"name": "lm", "kind": "language-modelling", "data": "docs.jsonl",
                                            "fields": {"input": "text"}}))
    (example,) = task.load().examples
    assert (example.id, example.input, example.target) == ("0", "A whole document.", "A whole document.")
    assert [r.type for r in task.requests(example, formulation="rolling")] == [RequestType.ROLLING]
    assert task.primary_metric == "word_perplexity"


def test_language_modelling_refuses_a_target_whose_words_would_be_counted_for_another_text(tmp_path: Path) -> None:
    # Scoring one column while counting the words and bytes of another made word perplexity 3e36.
    (tmp_path / "docs.jsonl").write_text(json.dumps({"text": "A whole document.", "title": "os"}) + "\n",
                                         encoding="utf-8")
    path = _write(tmp_path, {"name": "lm", "kind": "language-modelling", "data": "docs.jsonl",
                             "fields": {"input": "text", "target": "title"}})
    with pytest.raises(DataError, match=r"field 'fields.target': a language-modelling task takes no target") as info:
        task_from_file(path)
    assert "\n" not in str(info.value) and "remove fields.target" in str(info.value)


# -- scoring through the plugin host ----------------------------------------------------------------------

class RecordingMetric(Metric):
    """Counts exact matches and remembers what it was given."""

    name = "exact"
    calls: list[dict[str, Any]] = []

    def compute(self, predictions: Sequence[Any], references: Sequence[Any], *, seed: int = 0,
                **options: Any) -> Mapping[str, Score]:
        RecordingMetric.calls.append({"predictions": list(predictions), "references": list(references),
                                      "seed": seed, "options": options})
        fold = (lambda s: s.lower()) if options.get("ignore_case") else (lambda s: s)
        hits = [fold(str(p)) == fold(str(r)) for p, r in zip(predictions, references)]
        return {"exact": Score(sum(hits) / len(hits))}

    def per_example(self, prediction: Any, reference: Any, **options: Any) -> Mapping[str, float]:
        return {"exact": float(prediction == reference)}


class _FakeMetricsPlugin:
    @hookimpl
    def register_metrics(self, register: Any) -> None:
        register("exact", RecordingMetric, description="exact match, for tests")


@pytest.fixture
def fake_metrics() -> Iterator[list[dict[str, Any]]]:
    host = PluginHost(autoload=False, extra=[("fake-metrics", _FakeMetricsPlugin())]).load()
    set_default_host(host)
    RecordingMetric.calls = []
    try:
        yield RecordingMetric.calls
    finally:
        set_default_host(None)


def _exact_task(tmp_path: Path, **changes: Any) -> Any:
    declaration = _with(metrics={"exact": {"ignore_case": True}}, primary_metric="exact", **changes)
    return task_from_file(_write(tmp_path, declaration))


def test_generation_scores_call_the_registered_metric(tmp_path: Path, fake_metrics: list) -> None:
    task = _exact_task(tmp_path)
    examples = task.load().examples
    outputs = [Generation(e.target.upper() if i % 3 == 0 else "falsch", (1, 2), 5) for i, e in enumerate(examples)]
    scores = task.score(examples, [[o] for o in outputs], formulation="seq2seq", seed=7)
    expected = sum(1 for i in range(len(examples)) if i % 3 == 0) / len(examples)
    assert scores["exact"].value == pytest.approx(expected)
    (call,) = fake_metrics
    assert call["predictions"] == [o.text for o in outputs]
    assert call["references"] == [e.target for e in examples]
    assert call["seed"] == 7 and call["options"] == {"ignore_case": True}


def test_classification_reads_logits_in_the_models_label_order(tmp_path: Path, fake_metrics: list) -> None:
    (tmp_path / "x.jsonl").write_text("".join(
        json.dumps({"text": t, "label": lab}) + "\n" for t, lab in [("a", "net"), ("b", "games"), ("c", "graphics")]
    ), encoding="utf-8")
    task = task_from_file(_write(tmp_path, {
        "name": "c", "kind": "classification", "data": "x.jsonl", "labels": ["games", "graphics", "net"],
        "fields": {"input": "text", "target": "label"}, "metrics": {"exact": {}}, "primary_metric": "exact"}))
    examples = task.load().examples
    model_labels = ["net", "graphics", "games"]  # another order than the task's
    logits = [[2.0, 0.5, -1.0], [0.0, 3.0, 1.0], [0.1, 0.9, 0.2]]  # argmax: net, graphics, graphics
    answers = [[row] for row in logits]
    scores = task.score(examples, answers, formulation="logits", labels=model_labels)
    assert fake_metrics[0]["predictions"] == ["net", "graphics", "graphics"]
    assert fake_metrics[0]["references"] == ["net", "games", "graphics"]
    assert scores["exact"].value == pytest.approx(2 / 3)
    row = task.per_example(examples[1], answers[1], formulation="logits", labels=model_labels)
    assert row["prediction"] == "graphics" and row["reference"] == "games" and row["exact"] == 0.0
    with pytest.raises(UsageError, match="differ from task 'c'"):
        task.score(examples, answers, formulation="logits", labels=["net", "graphics", "sports"])
    with pytest.raises(UsageError, match="needs the model's label names"):
        task.score(examples, answers, formulation="logits")
    with pytest.raises(UsageError, match="has 2 logits for 3 labels"):
        task.score(examples, [[[0.0, 1.0]]] * 3, formulation="logits", labels=model_labels)


def test_language_modelling_passes_loglikelihoods_and_texts(tmp_path: Path, fake_metrics: list) -> None:
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in ["one two", "three"]),
                                         encoding="utf-8")
    task = task_from_file(_write(tmp_path, {"name": "lm", "kind": "language-modelling", "data": "docs.jsonl",
                                            "fields": {"input": "text"}, "metrics": ["exact"],
                                            "primary_metric": "exact"}))
    examples = task.load().examples
    outputs = [Loglikelihood(-3.5, 2), Loglikelihood(-1.0, 1)]
    task.score(examples, [[o] for o in outputs], formulation="rolling")
    assert fake_metrics[0]["predictions"] == outputs
    assert fake_metrics[0]["references"] == ["one two", "three"]
    row = task.per_example(examples[0], [outputs[0]], formulation="rolling")
    assert row["prediction"] == {"logprob": -3.5, "num_tokens": 2}
    with pytest.raises(UsageError, match="expects one Loglikelihood answer"):
        task.score(examples, [[Generation("x", (), 1)]] * 2, formulation="rolling")


def test_score_checks_lengths_and_the_primary_metric(tmp_path: Path, fake_metrics: list) -> None:
    task = _exact_task(tmp_path)
    examples = task.load().examples
    with pytest.raises(UsageError, match="11 answers for 12 examples"):
        task.score(examples, [[Generation("x", (), 1)]] * 11, formulation="seq2seq")
    wrong = task_from_file(_write(tmp_path, _with(metrics={"exact": {}}, primary_metric="exactness")))
    with pytest.raises(UsageError, match="primary_metric 'exactness' is not among the scores"):
        wrong.score(examples, [[Generation("x", (), 1)]] * len(examples), formulation="seq2seq")


def test_per_example_for_log_samples(tmp_path: Path, fake_metrics: list) -> None:
    task = _exact_task(tmp_path)
    example = task.load().examples[0]
    row = task.per_example(example, [Generation(example.target, (1,), 3)], formulation="seq2seq")
    assert row == {"id": example.id, "prediction": example.target, "reference": example.target, "exact": 1.0}
    json.dumps(row)


def test_unknown_metric_is_reported_when_the_file_is_read(tmp_path: Path, fake_metrics: list) -> None:
    path = _write(tmp_path, _with(metrics={"nonesuch": {}}, primary_metric="x"))
    with pytest.raises(DataError, match="field 'metrics.nonesuch': unknown metric 'nonesuch'"):
        task_from_file(path)


def _builtin_metrics() -> dict[str, str]:
    from llmos_hub.metrics import BUILTIN_METRICS

    return BUILTIN_METRICS


@pytest.mark.skipif(not _builtin_metrics(), reason="the built-in metrics are not installed yet")
def test_bundled_tasks_score_with_the_real_metrics() -> None:
    set_default_host(None)
    tasks = {name: task_from_file(BUILTIN_DIR / f"{name}.yaml") for name in SUITE}

    translation = tasks["translation-sample"]
    examples = translation.load(limit=20).examples
    perfect = translation.score(examples, [[Generation(e.target, (), 1)] for e in examples], formulation="seq2seq")
    assert perfect["chrf"].value == pytest.approx(100.0) and perfect["bleu"].value == pytest.approx(100.0)
    copied = translation.score(examples, [[Generation(e.input, (), 1)] for e in examples], formulation="seq2seq")
    assert copied["chrf"].value < 60.0

    summary = tasks["summarization-sample"]
    examples = summary.load(limit=20).examples
    perfect = summary.score(examples, [[Generation(e.target, (), 1)] for e in examples], formulation="seq2seq")
    assert {k: perfect[k].value for k in ("rouge1", "rouge2", "rougeL", "rougeLsum")} == pytest.approx(
        {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0, "rougeLsum": 1.0})

    classification = tasks["classification-sample"]
    examples = classification.load().examples
    labels = list(classification.labels)
    one_hot = [[[float(label == e.target) for label in labels]] for e in examples]
    scores = classification.score(examples, one_hot, formulation="logits", labels=labels)
    assert scores["accuracy"].value == 1.0 and scores["macro_f1"].value == 1.0
    always_first = classification.score(examples, [[[1.0] + [0.0] * (len(labels) - 1)]] * len(examples),
                                        formulation="logits", labels=labels)
    assert always_first["accuracy"].value == pytest.approx(sum(e.target == labels[0] for e in examples) / len(examples))

    lm = tasks["lm-sample"]
    examples = lm.load(limit=10).examples
    outputs = [Loglikelihood(-0.5 * len(e.input.split()), len(e.input.split())) for e in examples]
    scores = lm.score(examples, [[o] for o in outputs], formulation="rolling")
    # -0.5 nats per whitespace-separated word, so the word perplexity is e ** 0.5
    assert scores["word_perplexity"].value == pytest.approx(math.exp(0.5), rel=1e-9)
    assert scores["word_perplexity"].higher_is_better is False


# -- registration and the CLI -------------------------------------------------------------------------------

def test_list_tasks_shows_the_bundled_suite() -> None:
    from llmos_hub.cli import main

    result = CliRunner().invoke(main, ["list", "tasks", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert set(SUITE) <= set(rows)
    assert all(rows[name]["distribution"] == "llmos-hub" for name in SUITE)
    result = CliRunner().invoke(main, ["list", "suites", "--json"])
    assert "default" in {row["name"] for row in json.loads(result.output)}


def test_registered_tasks_are_the_declared_ones() -> None:
    host = PluginHost(autoload=False).load()
    for name in SUITE:
        task = host.get("tasks", name)
        assert task.name == name
        assert task.describe()["name"] == name
    assert "default" not in host.registry.names("suites")  # the plugin with models for it registers it
    everything = PluginHost().load()
    assert [(e["task"], e["model"]) for e in everything.get("suites", "default")] == [
        (name, "nano:lm-sample" if name == "multiple-choice-sample" else f"nano:{name}") for name in SUITE]


def test_listing_tasks_imports_no_heavy_library() -> None:
    code = (
        "import sys, llmos_hub.tasks as t\n"
        "task = t.task_from_file(t.BUILTIN_DIR / 'translation-sample.yaml'); task.load(limit=3)\n"
        "print(sorted(m for m in ('datasets', 'pyarrow', 'torch', 'evaluate', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_example_is_the_sdk_example() -> None:
    example = task_from_file(MINI).load(limit=1).examples[0]
    assert isinstance(example, Example)


@pytest.mark.parametrize("name", SUITE)
def test_bundled_tasks_pass_the_sdk_conformance_check(name: str) -> None:
    from llmos_hub.testing import check_task

    check_task(task_from_file(BUILTIN_DIR / f"{name}.yaml"), limit=7, seed=1)
