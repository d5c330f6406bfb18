"""The bench on the bundled nano models: numbers do not depend on the batch size.

Each task of the default suite runs at batch size 1 and at batch size 8 (left-padded batches of mixed
lengths, since requests of different lengths share a batch); generated text must be identical and
log-likelihoods must agree within 1e-5.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("llmos_hub_nano")
pytest.importorskip("llmos_hub_pytorch")

from llmos_hub import load_plugins  # noqa: E402
from llmos_hub.bench import make_plan, run_bench  # noqa: E402

TASKS = ["lm-sample", "classification-sample", "translation-sample", "summarization-sample"]


@pytest.fixture(scope="module")
def host():
    return load_plugins()


def _samples(host, tmp_path, batch_size, limit):
    plan = make_plan(host, tasks=TASKS, batch_size=batch_size, limit=limit, seed=3)
    report = run_bench(plan, host=host, output_dir=tmp_path / f"b{batch_size}", command="test", log_samples=True)
    assert report.ok, report.failed
    out = {}
    for path, record in report.written:
        rows = [json.loads(line) for line in (path.parent / record.data["samples_file"]).read_text().splitlines()]
        out[record.task] = (record, rows)
    return out


@pytest.mark.slow
def test_batch_size_does_not_change_numbers(host, tmp_path):
    one = _samples(host, tmp_path, 1, 12)
    eight = _samples(host, tmp_path, 8, 12)
    for task in TASKS:
        rec1, rows1 = one[task]
        rec8, rows8 = eight[task]
        assert rec1.data["task"]["dataset_fingerprint"] == rec8.data["task"]["dataset_fingerprint"]
        lengths = {len(r["input"]) for r in rows1}
        assert len(lengths) > 1, "the batch must mix lengths to exercise padding"
        for a, b in zip(rows1, rows8):
            assert a["id"] == b["id"]
            if task == "lm-sample":
                assert a["prediction"]["num_tokens"] == b["prediction"]["num_tokens"]
                assert abs(a["prediction"]["logprob"] - b["prediction"]["logprob"]) <= 1e-5, (a["id"], a["prediction"], b["prediction"])
            else:
                assert a["prediction"] == b["prediction"], a["id"]
        for name, score in rec1.scores.items():
            assert score["value"] == pytest.approx(rec8.scores[name]["value"], rel=1e-6, abs=1e-9), (task, name)


def test_default_plan_pairs_each_task_with_its_model(host):
    plan = make_plan(host, limit=2)
    expected = [(f"nano:{t}", t) for t in TASKS] + [("nano:lm-sample", "multiple-choice-sample")]
    assert [(r.spec.model, r.task.name) for r in plan.runs] == expected
    assert [r.spec.formulation for r in plan.runs] == ["rolling", "logits", "seq2seq", "seq2seq", "loglikelihood"]


def test_model_without_the_capability_is_refused_before_loading(host):
    from llmos_hub import UsageError

    with pytest.raises(UsageError, match="nano:classification-sample cannot run translation-sample on pytorch: "
                       "seq2seq needs a seq2seq model .it is classifier.; prompt needs a causal-lm model"):
        make_plan(host, models=["nano:classification-sample"], tasks=["translation-sample"])
    with pytest.raises(UsageError, match="seq2seq needs a seq2seq model"):
        make_plan(host, models=["nano:lm-sample"], tasks=["translation-sample"], formulation="seq2seq")


def test_a_causal_lm_is_planned_on_every_bundled_task_with_the_fitting_formulation(host):
    plan = make_plan(host, models=["nano:lm-sample"], limit=2)
    got = {r.task.name: r.spec.formulation for r in plan.runs}
    assert got == {"lm-sample": "rolling", "classification-sample": "loglikelihood", "translation-sample": "prompt",
                   "summarization-sample": "prompt", "multiple-choice-sample": "loglikelihood"}
    assert not plan.refused


def test_num_fewshot_is_refused_where_the_formulation_takes_no_demonstrations(host):
    """Demonstrations a formulation ignores would change only the configuration hash (a split leaderboard row)."""
    from llmos_hub import UsageError

    with pytest.raises(UsageError, match=r"^--num-fewshot 2: task lm-sample \(rolling\) takes no demonstrations.*"
                                         r"drop --num-fewshot$"):
        make_plan(host, tasks=["lm-sample"], limit=3, num_fewshot=2)
    with pytest.raises(UsageError, match=r"task classification-sample as logits takes no demonstrations.*"
                                         r"--formulation loglikelihood"):
        make_plan(host, tasks=["classification-sample"], limit=3, num_fewshot=2)
    # Where the formulation takes them (a causal LM scoring the labels), they apply; 0 is always allowed.
    (run,) = make_plan(host, models=["nano:lm-sample"], tasks=["classification-sample"], limit=3, num_fewshot=2).runs
    assert run.spec.formulation == "loglikelihood" and run.task.describe()["num_fewshot"] == 2
    assert make_plan(host, tasks=["lm-sample"], limit=3, num_fewshot=0).runs


def test_num_fewshot_refuses_only_the_runs_that_ignore_it(host):
    """A bench mixing runs that take demonstrations and runs that do not runs the first and refuses the
    others, as for a backend that cannot run a model; it is not refused as a whole."""
    plan = make_plan(host, models=["nano:lm-sample", "nano:classification-sample"],
                     tasks=["classification-sample", "lm-sample"], limit=3, num_fewshot=2)
    assert [(r.spec.model, r.spec.task, r.spec.formulation) for r in plan.runs] == [
        ("nano:lm-sample", "classification-sample", "loglikelihood")]
    assert any(line.startswith("--num-fewshot 2: task lm-sample (rolling)") for line in plan.refused)
    assert any(line.startswith("nano:classification-sample on pytorch: --num-fewshot 2: task classification-sample "
                               "as logits") for line in plan.refused)
    default = make_plan(host, limit=3, num_fewshot=2)  # the default suite: its lm-sample run is refused
    assert default.runs and "lm-sample" not in {r.spec.task for r in default.runs}
