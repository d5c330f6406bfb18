"""The task–model–backend contract, version 2: typed requests, formulations, run identity.

What is asserted here is what a user relies on: a causal LM runs every bundled task through the
formulation that fits it; multiple-choice scores are lm-evaluation-harness's acc/acc_norm computed
from the model's own logits; anything that can change a number (prompt, weights, metric options,
few-shot settings) changes the configuration hash, so ``--resume`` never reuses a stale record and the
leaderboard keeps both.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from llmos_hub import load_plugins, load_record
from llmos_hub._windows import encode_pair
from llmos_hub.bench import make_plan, run_bench
from llmos_hub.leaderboard._boards import build_boards
from llmos_hub.tasks import BUILTIN_DIR


@pytest.fixture(scope="module")
def host():
    return load_plugins()


def _scores(report, task):
    (record,) = [r for _, r in report.written if r.task == task]
    return {k: v["value"] for k, v in record.scores.items()}


def test_multiple_choice_acc_equals_an_independent_computation_from_the_models_logits(host, tmp_path):
    import torch

    plan = make_plan(host, models=["nano:lm-sample"], tasks=["multiple-choice-sample"], limit=24, batch_size=5)
    (run,) = plan.runs
    assert run.spec.formulation == "loglikelihood"
    report = run_bench(plan, host=host, output_dir=tmp_path, command="test")
    got = _scores(report, "multiple-choice-sample")

    model = host.get("models", "nano").load("lm-sample")
    lm = model.modules["causal_lm"]
    acc, acc_norm = [], []
    for example in run.data.examples:
        lls = []
        for choice in example.extra["choices"]:
            context, continuation = encode_pair(model.tokenizer.encode, example.input, " " + choice)
            ids = torch.tensor([context + continuation[:-1]])
            with torch.inference_mode():
                logits, _ = lm(ids, torch.ones_like(ids))  # the whole sequence, no cache
            logprobs = torch.log_softmax(logits[0, -len(continuation):].double(), dim=-1)
            lls.append(float(logprobs[torch.arange(len(continuation)), torch.tensor(continuation)].sum()))
        lens = np.array([float(len(c)) for c in example.extra["choices"]])
        acc.append(float(np.argmax(lls) == example.target))
        acc_norm.append(float(np.argmax(np.array(lls) / lens) == example.target))
    assert got["acc"] == pytest.approx(np.mean(acc), abs=1e-12)
    assert got["acc_norm"] == pytest.approx(np.mean(acc_norm), abs=1e-12)
    (record,) = [r for _, r in report.written]
    stderr = record.scores["acc"]["stderr"]
    assert stderr == pytest.approx(np.std(acc, ddof=1) / math.sqrt(len(acc)))


def _copy_task(tmp_path: Path, name: str, **changes) -> Path:
    """A copy of a bundled task file and its data, with ``changes`` to its declaration."""
    declared = yaml.safe_load((BUILTIN_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    shutil.copytree(BUILTIN_DIR / declared["data"], tmp_path / declared["data"])
    declared.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(declared, allow_unicode=True), encoding="utf-8")
    return path


def _hash(host, task_file: Path, model: str = "nano:lm-sample", **kw) -> str:
    (run,) = make_plan(host, models=[model], tasks=[str(task_file)], limit=3, **kw).runs
    return run.spec.hash


def test_prompt_metric_options_and_fewshot_are_part_of_the_configuration(host, tmp_path):
    base = _hash(host, _copy_task(tmp_path / "a", "classification-sample"))
    assert base == _hash(host, _copy_task(tmp_path / "b", "classification-sample"))  # same declaration
    prompt = _hash(host, _copy_task(tmp_path / "c", "classification-sample", lm_prompt="{input}\nTopic:"))
    option = _hash(host, _copy_task(tmp_path / "d", "classification-sample", metrics={"accuracy": {}}))  # f1 takes no options: a made-up one is refused at plan time (issue 13)
    verbal = _hash(host, _copy_task(tmp_path / "e", "classification-sample", verbalizers={"net": "networking"}))
    shots = _hash(host, _copy_task(tmp_path / "f", "classification-sample"), num_fewshot=2)
    assert len({base, prompt, option, verbal, shots}) == 5


def test_retrained_weights_make_a_new_configuration_and_resume_reruns(host, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "ckpt"
    shutil.copytree(host.get("models", "nano").load("classification-sample").artifacts.folder, folder)
    model = f"nano:{folder}"
    out = tmp_path / "results"
    first = run_bench(make_plan(host, models=[model], tasks=["classification-sample"], limit=20), host=host,
                      output_dir=out, command="x", resume=True)
    assert len(first.written) == 1
    again = run_bench(make_plan(host, models=[model], tasks=["classification-sample"], limit=20), host=host,
                      output_dir=out, command="x", resume=True)
    assert len(again.reused) == 1 and not again.written  # same weights: reused

    weights = load_file(folder / "model.safetensors")  # "retrain in place": every weight changes
    save_file({k: v * 0.5 for k, v in weights.items()}, folder / "model.safetensors")
    third = run_bench(make_plan(host, models=[model], tasks=["classification-sample"], limit=20), host=host,
                      output_dir=out, command="x", resume=True)
    assert len(third.written) == 1 and not third.reused
    (_, old), (_, new) = first.written[0], third.written[0]
    assert old.config_hash != new.config_hash
    assert old.data["model"]["weights_sha256"] != new.data["model"]["weights_sha256"]
    records = [load_record(p) for p in sorted(out.glob("*.json"))]
    (board,) = build_boards(records)
    assert len(board.rows) == 2  # both configurations are ranked, neither is dropped


def test_a_rerun_of_one_configuration_is_named_on_the_board(host, tmp_path):
    plan = make_plan(host, tasks=["classification-sample"], limit=10)
    a = run_bench(plan, host=host, output_dir=tmp_path / "a", command="x")
    b = run_bench(plan, host=host, output_dir=tmp_path / "b", command="x")
    (_, first), (_, second) = a.written[0], b.written[0]
    second.data["finished_at"] = "2999-01-01T00:00:00Z"
    (board,) = build_boards([first, second])
    assert [row.record for row in board.rows] == [second]
    assert len(board.notes) == 1 and first.data["id"] in board.notes[0] and "superseded" in board.notes[0]


def test_the_record_keeps_the_task_definition_and_formulation(host, tmp_path):
    report = run_bench(make_plan(host, models=["nano:lm-sample"], tasks=["translation-sample"], limit=3),
                       host=host, output_dir=tmp_path, command="x", log_samples=True)
    (path, record) = report.written[0]
    task = record.data["task"]
    assert task["formulation"] == "prompt" and task["kind"] == "translation"
    assert task["definition"]["lm_prompt"] == "English: {input}\nGerman:"
    assert record.data["config"]["spec"]["task_sha256"] == task["definition_sha256"]
    samples = [json.loads(line) for line in path.with_name(record.data["samples_file"]).read_text().splitlines()]
    assert len(samples) == 3 and all(isinstance(s["prediction"], str) for s in samples)


def test_fewshot_examples_come_from_train_and_never_the_example_itself(host):
    task = host.get("tasks", "multiple-choice-sample").with_fewshot(3)
    form = task.formulation("loglikelihood")
    train = {ex.id: ex for ex in task.load(split="train").examples}
    example = train[next(iter(train))]
    requests = task.requests(example, formulation="loglikelihood", seed=0)
    prefix = requests[0].context[: -len(example.input)]
    shots = prefix.split("\n\n")[:-1]
    assert len(shots) == 3
    assert all(s.split(" ", 1)[0] in {ex.input.split(" ", 1)[0] for ex in train.values()} for s in shots)
    assert example.input not in prefix
    assert task.requests(example, formulation="loglikelihood", seed=0) == requests  # seeded
    assert task.requests(example, formulation="loglikelihood", seed=1) != requests
    assert form.fewshot


@pytest.mark.slow
@pytest.mark.parametrize("task", ["classification-sample", "translation-sample", "multiple-choice-sample"])
def test_new_formulations_agree_across_backends_and_batch_sizes(host, task):
    """A causal LM on the prompt and log-likelihood formulations: identical greedy text, log-likelihoods
    within 1e-5, on pytorch and onnxruntime at batch sizes 1 and 8."""
    from llmos_hub.bench._execute import answer_all

    t = host.get("tasks", task)
    model = host.get("models", "nano").load("lm-sample")
    form = "prompt" if task == "translation-sample" else "loglikelihood"
    examples = t.load(limit=6).examples
    requests = [t.requests(ex, formulation=form) for ex in examples]
    results = []
    for backend in ("pytorch", "onnxruntime"):
        runner = host.get("backends", backend).prepare(model, options={"threads": 1})
        for size in (1, 8):
            results.append(answer_all(runner, requests, size).answers)
        runner.close()
    reference = results[0]
    for other in results[1:]:
        for ref_answers, answers in zip(reference, other):
            for a, b in zip(ref_answers, answers):
                if form == "prompt":
                    assert a.token_ids == b.token_ids and a.text == b.text
                else:
                    assert a.logprob == pytest.approx(b.logprob, abs=1e-5) and a.num_tokens == b.num_tokens


@pytest.mark.slow
def test_a_tiny_gpt2_runs_every_bundled_task_on_both_backends(host, tmp_path):
    """``hf:`` GPT-2 (decoder-only): classification by label log-likelihood, translation and summarization
    by prompt, language modelling, multiple choice; pytorch and onnxruntime agree on every score."""
    from llmos_hub_transformers.tiny import save_tiny

    folder = tmp_path / "tiny-gpt2"
    save_tiny("gpt2", folder)
    plan = make_plan(host, models=[f"hf:{folder}"], backends=["pytorch", "onnxruntime"], limit=4,
                     backend_options={"threads": 1})
    forms = {(r.task.name, r.spec.backend): r.spec.formulation for r in plan.runs}
    assert len(forms) == 10 and not plan.refused
    assert {forms[(t, "pytorch")] for t in ("translation-sample", "summarization-sample")} == {"prompt"}
    assert forms[("classification-sample", "pytorch")] == "loglikelihood"
    report = run_bench(plan, host=host, output_dir=tmp_path / "out", command="x", log_samples=True)
    assert report.ok, report.failed
    by_task: dict[str, dict[str, dict]] = {}
    for _, record in report.written:
        by_task.setdefault(record.task, {})[record.backend] = record.scores
    for task, scores in by_task.items():
        for key, score in scores["pytorch"].items():
            assert scores["onnxruntime"][key]["value"] == pytest.approx(score["value"], rel=1e-4), (task, key)
