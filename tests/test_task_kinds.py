"""Open tables: a plugin adds a task kind (and its metric) without touching the core, and a backend
that reads model files is planned, refused or run without any torch module being built."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from llmos_hub import (
    Backend,
    Formulation,
    GenerateRequest,
    Generation,
    Loglikelihood,
    Metric,
    RequestType,
    Runner,
    Score,
    TaskKind,
    UsageError,
    hookimpl,
    load_plugins,
)
from llmos_hub.bench import make_plan, run_bench
from llmos_hub.testing import check_task_kind


def _normalize(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9 ]", " ", text.lower()).split()


class QuestionAnswering(TaskKind):
    """Extractive question answering: generate an answer, scored by exact match and token F1."""

    name = "question-answering"
    default_metrics = {"squad": {}}
    default_primary = "exact_match"
    generates = True

    def formulations(self) -> Sequence[Formulation]:
        return (Formulation("prompt", frozenset({RequestType.GENERATE})),)

    def requests(self, task: Any, example: Any, formulation: str, prefix: str) -> list[Any]:
        return [GenerateRequest(prefix + task.lm_prompt(example), task.spec.generation)]

    def prediction(self, task: Any, example: Any, answers: Sequence[Any], formulation: str,
                   labels: Sequence[str] | None) -> Any:
        (answer,) = answers
        return answer.text.strip()


class Squad(Metric):
    """Exact match and token F1 after SQuAD's normalization (mean over examples)."""

    name = "squad"
    score_keys = ("exact_match", "f1")

    def compute(self, predictions: Sequence[Any], references: Sequence[Any], *, seed: int = 0,
                **options: Any) -> Mapping[str, Score]:
        em, f1 = [], []
        for p, r in zip(predictions, references):
            pt, rt = _normalize(p), _normalize(r)
            em.append(float(pt == rt))
            common = sum(min(pt.count(t), rt.count(t)) for t in set(pt))
            f1.append(0.0 if not common else 2 * common / (len(pt) + len(rt)))
        n = len(em)
        return {"exact_match": Score(sum(em) / n), "f1": Score(sum(f1) / n)}


class QAPlugin:
    @hookimpl
    def register_task_kinds(self, register: Any) -> None:
        register("question-answering", QuestionAnswering, description="extractive QA")

    @hookimpl
    def register_metrics(self, register: Any) -> None:
        register("squad", Squad, description="exact match and F1")


def _qa_task(tmp_path: Path) -> Path:
    # Real text: questions about the GPL-3 that ships with Debian, answered by a span of it.
    rows = [
        {"id": "1", "context": "This License refers to version 3 of the GNU General Public License.",
         "question": "Which version of the GNU General Public License?", "answer": "version 3"},
        {"id": "2", "context": "Everyone is permitted to copy and distribute verbatim copies of this license document.",
         "question": "Who is permitted to copy verbatim copies?", "answer": "Everyone"},
    ]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    path = tmp_path / "qa.yaml"
    path.write_text(
        "name: qa-gpl\nkind: question-answering\ndata: qa.jsonl\n"
        "fields: {id: id, input: question, target: answer}\n"
        "lm_prompt: \"{context}\\nQuestion: {input}\\nAnswer:\"\n"
        "generation: {max_new_tokens: 8, stop: [\"\\n\"]}\n", encoding="utf-8")
    return path


def test_a_plugin_adds_a_task_kind_and_it_runs_on_a_causal_lm(tmp_path):
    host = load_plugins(extra=[("qa-plugin", QAPlugin())])
    from llmos_hub._plugins import set_default_host

    set_default_host(host)
    try:
        task_file = _qa_task(tmp_path)
        check_task_kind(host.get("task_kinds", "question-answering"), task_file)
        plan = make_plan(host, models=["nano:lm-sample"], tasks=[str(task_file)])
        (run,) = plan.runs
        assert run.spec.formulation == "prompt"
        report = run_bench(plan, host=host, output_dir=tmp_path / "out", command="x")
        (_, record) = report.written[0]
        assert record.data["task"]["kind"] == "question-answering"
        assert set(record.scores) == {"exact_match", "f1"}
        # a classifier answers no generate request: refused before loading, one line
        with pytest.raises(UsageError, match="prompt needs generate requests, which pytorch does not answer"):
            make_plan(host, models=["nano:classification-sample"], tasks=[str(task_file)])
    finally:
        set_default_host(None)


class FilesRunner(Runner):
    def __init__(self, model: Any) -> None:
        self.model = model

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[Loglikelihood]:
        sizes = [f.stat().st_size for f in self.model.artifacts.weights]  # reads files, nothing else
        assert all(sizes)
        return [Loglikelihood(-float(len(t)), len(t)) for t in texts]


class FilesBackend(Backend):
    name = "files"
    consumes = ("files:nano",)

    def prepare(self, model, *, device="cpu", dtype="float32", options=None):
        return FilesRunner(model)


class FilesPlugin:
    def __init__(self, layout: str) -> None:
        self.layout = layout

    @hookimpl
    def register_backends(self, register: Any) -> None:
        backend = FilesBackend()
        backend.consumes = (f"files:{self.layout}",)
        register("files", lambda: backend)


def test_a_files_backend_never_builds_torch_modules():
    from llmos_hub.bench._execute import Session, execute

    host = load_plugins(extra=[("files-plugin", FilesPlugin("nano"))])
    (run,) = make_plan(host, tasks=["lm-sample"], backends=["files"], limit=3).runs
    session = Session(host)
    record = execute(run.spec, session=session, task=run.task, data=run.data, command="x")
    assert record.scores["token_perplexity"]["value"] == pytest.approx(2.718281828459045)
    assert not session.model(run.spec).model.modules_built


def test_a_files_backend_refuses_another_layout_before_loading():
    host = load_plugins(extra=[("files-plugin", FilesPlugin("transformers"))])
    with pytest.raises(UsageError, match="nano:lm-sample cannot run on files: backend files reads model files in "
                                          "the transformers layout; this model's files are nano"):
        make_plan(host, tasks=["lm-sample"], backends=["files"])
