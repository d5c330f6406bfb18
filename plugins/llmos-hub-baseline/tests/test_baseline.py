"""The baseline family: each bundled task's floor equals the same floor computed by hand from the data."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest
import sacrebleu
from click.testing import CliRunner
from rouge_score import rouge_scorer

import llmos_hub
from llmos_hub import UsageError, load_plugins
from llmos_hub.bench import make_plan, run_bench
from llmos_hub.cli import main
from llmos_hub.leaderboard import build_boards
from llmos_hub_baseline.strategies import Unigram

DATA = Path(llmos_hub.__file__).parent / "tasks" / "builtin" / "data"


def _jsonl(task: str, split: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / task / f"{split}.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def host():
    return load_plugins()


def _run(host, tmp_path, task, model=None, backend="baseline"):
    plan = make_plan(host, models=[model or f"baseline:{task}"], tasks=[task], backends=[backend])
    report = run_bench(plan, host=host, output_dir=tmp_path, command="test")
    return report


def test_majority_class(host, tmp_path):
    (_, record), = _run(host, tmp_path, "classification-sample").written
    labels = ["admin", "games", "graphics", "net", "science", "sound"]  # declared order breaks ties
    counts = Counter(row["label"] for row in _jsonl("classification-sample", "train"))
    majority = max(labels, key=lambda name: (counts[name], -labels.index(name)))
    test = [row["label"] for row in _jsonl("classification-sample", "test")]
    assert record.scores["accuracy"]["value"] == pytest.approx(sum(t == majority for t in test) / len(test), abs=1e-12)
    model = record.data["model"]
    assert model["family"] == "baseline" and model["extra"]["baseline"] == "majority class of the train split"
    assert model["extra"]["fitted_on"]["examples"] == sum(counts.values())
    assert record.data["per_example"]["scores"]["accuracy"]["values"] == [int(t == majority) for t in test]


def test_copy_source_equals_sacrebleu_on_the_sources(host, tmp_path):
    (_, record), = _run(host, tmp_path, "translation-sample").written
    rows = _jsonl("translation-sample", "test")
    hyps = [row["en"].split("\n")[0] for row in rows]  # cut at the task's stop string, as a model's output
    refs = [[row["de"] for row in rows]]
    assert record.scores["chrf"]["value"] == pytest.approx(sacrebleu.corpus_chrf(hyps, refs).score, abs=1e-9)
    assert record.scores["bleu"]["value"] == pytest.approx(sacrebleu.corpus_bleu(hyps, refs).score, abs=1e-9)


def test_first_sentence_equals_rouge_score(host, tmp_path):
    (_, record), = _run(host, tmp_path, "summarization-sample").written
    rows = _jsonl("summarization-sample", "test")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    firsts = [re.split(r"(?<=[.!?])\s", row["description"], maxsplit=1)[0].split("\n")[0] for row in rows]
    expected = sum(scorer.score(row["synopsis"], f)["rougeL"].fmeasure for row, f in zip(rows, firsts)) / len(rows)
    assert record.scores["rougeL"]["value"] == pytest.approx(expected, abs=1e-12)


def test_unigram_probabilities_by_hand():
    model = Unigram.fit(["a a b", "a c"])
    # a: 3 of N=5 (kept); b, c seen once -> <unk> with (2+1)/(5+1); bytes of b, c and two ends: 4 of 4+257.
    assert model.logprob("a") == (pytest.approx(math.log(3 / 6)), 1)
    spelled_b = math.log(2 / 261) + math.log(3 / 261)
    assert model.logprob("a b")[0] == pytest.approx(math.log(3 / 6) + math.log(3 / 6) + spelled_b)
    assert model.logprob("zz")[0] == pytest.approx(math.log(3 / 6) + 2 * math.log(1 / 261) + math.log(3 / 261))
    # A proper distribution: known words and the <unk> class share all the mass; byte spellings too.
    assert sum(c / 6 for c in model.counts.values()) + 3 / 6 == pytest.approx(1.0)
    assert sum((c + 1) / 261 for c in model.byte_counts) == pytest.approx(1.0)


def test_unigram_lm_on_lm_sample(host, tmp_path):
    (_, record), = _run(host, tmp_path, "lm-sample").written
    model = Unigram.fit([row["text"] for row in _jsonl("lm-sample", "train")])
    scored = [model.logprob(row["text"]) for row in _jsonl("lm-sample", "test")]
    token_ppl = math.exp(-sum(lp for lp, _ in scored) / sum(n for _, n in scored))
    assert record.scores["token_perplexity"]["value"] == pytest.approx(token_ppl, rel=1e-9)
    assert record.data["model"]["extra"]["baseline"] == "unigram word model of the train split"


@pytest.mark.slow
def test_board_shows_the_baseline_below_the_model(host, tmp_path):
    _run(host, tmp_path, "classification-sample")
    _run(host, tmp_path, "classification-sample", model="nano:classification-sample", backend="pytorch")
    from llmos_hub import load_record

    (board,) = build_boards([load_record(p) for p in sorted(tmp_path.glob("*.json"))])
    assert [(r.data["model"]["ref"], r.band, r.baseline) for r in board.rows] == [
        ("nano:classification-sample", 1, None),
        ("baseline:classification-sample", 2, "majority class of the train split"),
    ]
    assert board.band_method == "paired"


def test_wrong_backend_pairings_fail_in_one_line(host, tmp_path):
    with pytest.raises(UsageError, match="runs only on baseline; add --backend baseline"):  # before loading
        _run(host, tmp_path, "classification-sample", backend="pytorch")
    with pytest.raises(UsageError, match="backend baseline runs only baseline:TASK models"):
        _run(host, tmp_path, "classification-sample", model="nano:classification-sample")


def test_most_frequent_choice_position(host, tmp_path):
    (_, record), = _run(host, tmp_path, "multiple-choice-sample").written
    counts = Counter(row["label"] for row in _jsonl("multiple-choice-sample", "train"))
    favoured = min(p for p in counts if counts[p] == max(counts.values()))  # ties: the first position
    gold = [row["label"] for row in _jsonl("multiple-choice-sample", "test")]
    expected = sum(g == favoured for g in gold) / len(gold)
    for key in ("acc", "acc_norm", "acc_bytes"):
        assert record.scores[key]["value"] == pytest.approx(expected, abs=1e-12)
    assert record.data["model"]["extra"]["baseline"] == "most frequent right choice position of the train split"
    assert record.data["per_example"]["scores"]["acc"]["values"] == [int(g == favoured) for g in gold]


def test_unknown_task_is_a_usage_error(tmp_path):
    out = CliRunner().invoke(main, ["bench", "--model", "baseline:clasification-sample", "--task", "classification-sample",
                                    "--backend", "baseline", "--output-dir", str(tmp_path)])
    assert out.exit_code == 2 and "classification-sample" in out.output and "Traceback" not in out.output
