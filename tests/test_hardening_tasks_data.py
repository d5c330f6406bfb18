"""Task data and settings refused when read, before any model loads (review of the task checks).

A multiple-choice label that is both an index and another choice's text, duplicate choices, choices given
as one string, a row with fewer choices than ``num_choices``, a metric that cannot score choices, a row
with another number of references than the others, and more demonstrations than the few-shot split has:
each is one line naming the file (and row) and the fix, exit status 2, found while planning. NaN
log-likelihoods name the example and the model; ``llmos-hub new`` says which naming rule a name breaks.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmos_hub import DataError, LlmosHubError, UsageError
from llmos_hub._requests import GenerationConfig, Loglikelihood
from llmos_hub.cli import main
from llmos_hub.tasks import task_from_file

from ._hardening import error_lines

MC_METRICS = "metrics: {multiple_choice: {}}\nprimary_metric: acc\n"


def _rows(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _mc_task(folder: Path, rows: list[dict], *, metrics: str = MC_METRICS, train: list[dict] | None = None) -> Path:
    """A multiple-choice task file over ``rows`` (its test split) and, if given, a train split."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    _rows(folder / "data" / "test.jsonl", rows)
    splits = "{test: test.jsonl}"
    if train is not None:
        _rows(folder / "data" / "train.jsonl", train)
        splits = "{train: train.jsonl, test: test.jsonl}"
    task = folder / "task.yaml"
    task.write_text(f"name: mc\nkind: multiple-choice\ndata: data\nsplits: {splits}\n"
                    f"fields: {{id: id, input: context, choices: choices, target: label}}\n{metrics}",
                    encoding="utf-8")
    return task


def _row(i: int, choices: object = ("a b", "c d", "e f", "g h"), label: object = 0) -> dict:
    return {"id": f"r{i}", "context": f"context {i}", "choices": list(choices) if isinstance(choices, tuple)
            else choices, "label": label}


def _load_error(task: Path) -> str:
    with pytest.raises(DataError) as info:
        task_from_file(task).load()
    return str(info.value)


def _bench(args: list[str]):
    return CliRunner().invoke(main, ["bench", "--model", "nano:lm-sample", *args])


# -- multiple-choice labels and choices ------------------------------------------------------------


def test_a_split_that_reads_digit_labels_both_ways_is_refused(tmp_path):
    """``"1"`` names choice 2's text in the first row and, naming no choice in the second, an index there:
    one split, two conventions, so which gold was meant cannot be told."""
    task = _mc_task(tmp_path, [_row(0, ("3", "2", "1", "0"), "1"), _row(1, ("x y", "z w", "u v", "p q"), "1")])
    where = tmp_path / "data" / "test.jsonl"
    assert _load_error(task) == (
        f"{where}:2: field 'label' is digits that name no choice, so they were read as an index, while at "
        f"{where}:1 digits name a choice's text; one split must read its golds one way: write gold indices as "
        "numbers, or every gold as its choice's text")


@pytest.mark.parametrize(("rows", "golds"), [
    ([(("0", "1", "2", "3"), "1")], [1]),                     # the text and the index agree
    ([(("3", "2", "1", "0"), 1)], [1]),                       # a number is always an index
    ([(("x y", "z w", "u v", "p q"), "2")], [2]),             # digits and no choice with that text: an index
    ([(("x y", "z w", "u v", "p q"), "u v")], [2]),
    ([(("1", "2", "3", "4"), "2"), (("5", "6", "7", "8"), "8")], [1, 3]),  # numeric choices, golds as their text
    ([(("3", "2", "1", "0"), "1"), (("x y", "z w", "u v", "p q"), "u v")], [2, 2]),  # text golds, one way
])
def test_labels_read_one_way_in_a_split_still_read(tmp_path, rows, golds):
    task = _mc_task(tmp_path, [_row(i, choices, label) for i, (choices, label) in enumerate(rows)])
    assert [e.target for e in task_from_file(task).load().examples] == golds


def test_a_gold_that_repeats_an_earlier_choice_is_refused_other_repeats_are_not(tmp_path):
    repeated = ("None of the above", "Paris", "None of the above", "Rome")
    task = _mc_task(tmp_path, [_row(0, repeated, 1), _row(1, repeated, 0)])  # golds 1 and 0 can win
    assert [e.target for e in task_from_file(task).load().examples] == [1, 0]
    task = _mc_task(tmp_path, [_row(0), _row(1, ("a b", "c d", "a b", "g h"), 2)])
    assert _load_error(task) == (f"{tmp_path / 'data' / 'test.jsonl'}:2: the gold, choice 2, has the same text as "
                                 "choice 0 ('a b'); a tie goes to the first, so it could never be scored right: "
                                 "make the choices distinct")


def test_choices_written_as_one_string_must_be_a_list(tmp_path):
    task = _mc_task(tmp_path, [_row(0, "abcd", 0)])
    assert _load_error(task) == (f"{tmp_path / 'data' / 'test.jsonl'}:1: field 'choices' must be a list of "
                                 'non-empty strings, not text; write it as a JSON list, e.g. ["first", "second"]')


def test_a_row_with_fewer_choices_than_num_choices_is_named(tmp_path):
    rows = [_row(i, label=i % 4) for i in range(6)]
    rows[4]["choices"] = ["a b", "c d", "e f"]
    task = _mc_task(tmp_path, rows, metrics="metrics: {multiple_choice: {num_choices: 4}}\nprimary_metric: acc\n")
    assert _load_error(task) == (
        f"{tmp_path / 'data' / 'test.jsonl'}:5: field 'choices' has 3 choices, but the task's metric "
        "'multiple_choice' sets num_choices: 4; give this row 4 choices or remove it")


def test_num_choices_of_another_type_is_refused_with_the_task_file(tmp_path):
    task = _mc_task(tmp_path, [_row(0)], metrics="metrics: {multiple_choice: {num_choices: four}}\n"
                                                  "primary_metric: acc\n")
    with pytest.raises(DataError) as info:
        task_from_file(task)
    assert str(info.value) == (
        f"{task}: field 'metrics.multiple_choice.num_choices': must be a whole number of at least 2 (how many "
        "choices every row has), not 'four'; or leave it out to allow any number")


def test_a_metric_that_cannot_score_choices_is_refused_in_one_short_line(tmp_path):
    task = _mc_task(tmp_path, [_row(0)], metrics="metrics: {accuracy: {}}\nprimary_metric: accuracy\n")
    result = _bench(["--task", str(task), "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [
        f"error: {task}: field 'metrics.accuracy': 'accuracy' cannot score a multiple-choice task (its "
        "predictions are each choice's log-likelihood); use multiple_choice (acc, acc_norm, acc_bytes)"]


# -- references and few-shot -----------------------------------------------------------------------


def test_a_row_with_another_number_of_references_is_named_before_any_model_loads(tmp_path):
    (tmp_path / "data").mkdir()
    _rows(tmp_path / "data" / "test.jsonl", [{"id": "a", "en": "one", "de": "eins"},
                                             {"id": "b", "en": "two", "de": ["zwei", "2"]}])
    task = tmp_path / "task.yaml"
    task.write_text("name: tr\nkind: translation\ndata: data/test.jsonl\nfields: {id: id, input: en, target: de}\n",
                    encoding="utf-8")
    result = _bench(["--task", str(task), "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    where = tmp_path / "data" / "test.jsonl"
    assert error_lines(result.stderr) == [
        f"error: {where}:2: field 'de' has 2 reference(s), the row at {where}:1 has 1; metric 'chrf' needs the "
        "same number in every row, so give every row as many"]


@pytest.mark.parametrize(("metric", "options", "said"), [
    ("bleu", "{tokenize: 14a}", "option tokenize '14a' is not one of sacrebleu's: none, zh, 13a, intl"),
    ("bleu", "{smooth_method: expp}", "option smooth_method 'expp' is not one of sacrebleu's: none, floor, add-k, exp"),
    ("bleu", "{smooth_value: -1.0}", "option smooth_value must be a number of at least 0 (or left out), not -1.0"),
    ("chrf", "{char_order: 0}", "option char_order must be a whole number of at least 1, not 0"),
    ("chrf", "{word_order: -1}", "option word_order must be a whole number of at least 0, not -1"),
])
def test_a_metric_option_value_the_metric_cannot_use_is_refused_before_any_model_loads(tmp_path, metric, options, said):
    # These failed only after the model ran (exit 1, no record): sacrebleu asserts, or fails mid-score.
    _rows(tmp_path / "rows.jsonl", [{"id": "a", "en": "one", "de": "eins"}])
    task = tmp_path / "task.yaml"
    task.write_text(f"name: tr\nkind: translation\ndata: rows.jsonl\nfields: {{id: id, input: en, target: de}}\n"
                    f"metrics: {{{metric}: {options}}}\nprimary_metric: {metric}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["bench", "--model", "nano:translation-sample", "--task", str(task),
                                       "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    [line] = error_lines(result.stderr)
    assert line.startswith(f"error: {task}: field 'metrics.{metric}': {said}"), line
    assert not (tmp_path / "out").exists()


def test_rouge_alone_takes_any_number_of_references(tmp_path):
    (tmp_path / "data").mkdir()
    _rows(tmp_path / "data" / "test.jsonl", [{"id": "a", "text": "one", "sum": "x"},
                                             {"id": "b", "text": "two", "sum": ["y", "z"]}])
    task = tmp_path / "task.yaml"
    task.write_text("name: su\nkind: summarization\ndata: data/test.jsonl\nfields: {id: id, input: text, "
                    "target: sum}\n", encoding="utf-8")
    assert [e.target for e in task_from_file(task).load().examples] == ["x", ("y", "z")]


def test_too_many_demonstrations_are_refused_before_any_model_loads(tmp_path):
    train = [_row(i) for i in range(10, 13)]
    task = _mc_task(tmp_path, [_row(0), _row(1)], train=train)
    result = _bench(["--task", str(task), "--num-fewshot", "5", "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [
        f"error: task mc: num_fewshot 5 but split 'train' has only 3 other examples; lower --num-fewshot (or "
        f"'num_fewshot' in {task}) to at most 3"]
    fits = task_from_file(task).with_fewshot(3)
    fits.check_fewshot_pool(fits.load().examples)  # 3 fit


def test_the_example_itself_is_not_counted_among_its_demonstrations(tmp_path):
    task = _mc_task(tmp_path, [_row(0), _row(1)], train=[_row(0), _row(1), _row(2)])
    two = task_from_file(task).with_fewshot(2)
    two.check_fewshot_pool(two.load().examples)
    three = task_from_file(task).with_fewshot(3)
    with pytest.raises(DataError, match="has only 2 other examples"):
        three.check_fewshot_pool(three.load().examples)


def test_the_pool_is_checked_only_where_demonstrations_are_used(tmp_path):
    """A task file asking for more demonstrations than its train split holds still runs a classifier by
    logits, which takes none; a model that reads them is refused."""
    from llmos_hub.tasks import BUILTIN_DIR

    data = BUILTIN_DIR / "data" / "classification-sample"
    copy = tmp_path / "data" / "classification-sample"
    copy.mkdir(parents=True)
    for split in ("test", "validation"):
        (copy / f"{split}.jsonl").write_text((data / f"{split}.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    train = (data / "train.jsonl").read_text(encoding="utf-8").splitlines()[:3]
    (copy / "train.jsonl").write_text("\n".join(train) + "\n", encoding="utf-8")
    text = (BUILTIN_DIR / "classification-sample.yaml").read_text(encoding="utf-8")
    task = tmp_path / "task.yaml"
    task.write_text(text.replace("name: classification-sample", "name: cls5") + "num_fewshot: 5\n", encoding="utf-8")
    ok = CliRunner().invoke(main, ["bench", "--model", "nano:classification-sample", "--task", str(task), "--limit",
                                   "4", "--output-dir", str(tmp_path / "out")])
    assert ok.exit_code == 0, ok.output
    refused = CliRunner().invoke(main, ["bench", "--model", "nano:lm-sample", "--task", str(task), "--limit", "4",
                                        "--output-dir", str(tmp_path / "out2")])
    assert refused.exit_code == 2 and "num_fewshot 5 but split 'train' has only" in refused.stderr, refused.output


def test_a_few_shot_split_may_hold_any_number_of_references(tmp_path):
    """Only the scored split needs the same number of references in every row (for BLEU and chrF); the
    demonstrations' split is never scored."""
    (tmp_path / "data").mkdir()
    _rows(tmp_path / "data" / "test.jsonl", [{"id": "a", "en": "one", "de": "eins"}, {"id": "b", "en": "two", "de": "zwei"}])
    _rows(tmp_path / "data" / "train.jsonl", [{"id": "c", "en": "three", "de": ["drei", "3"]},
                                              {"id": "d", "en": "four", "de": "vier"}])
    task = tmp_path / "task.yaml"
    task.write_text("name: tr\nkind: translation\ndata: data\nsplits: {train: train.jsonl, test: test.jsonl}\n"
                    "fields: {id: id, input: en, target: de}\nnum_fewshot: 1\n", encoding="utf-8")
    declared = task_from_file(task)
    declared.check_fewshot_pool(declared.load().examples)


def test_num_fewshot_without_a_train_split_names_the_fix(tmp_path):
    task = _mc_task(tmp_path, [_row(0), _row(1)])
    result = _bench(["--task", str(task), "--num-fewshot", "1", "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [
        f"error: --num-fewshot 1: task mc has no 'train' split to draw demonstrations from; add one to 'splits' "
        f"or name another with 'fewshot_split' in {task}, or drop --num-fewshot"]


# -- answers a model gets wrong --------------------------------------------------------------------


def test_nan_log_likelihoods_name_the_example_and_the_model(tmp_path):
    task = task_from_file(_mc_task(tmp_path, [_row(0), _row(1)]))
    examples = task.load().examples
    good = [Loglikelihood(-1.0, 1)] * 4
    bad = [Loglikelihood(-1.0, 1), Loglikelihood(math.nan, 1), Loglikelihood(-2.0, 1), Loglikelihood(-3.0, 1)]
    with pytest.raises(LlmosHubError) as info:
        task.score(examples, [good, bad], formulation="loglikelihood")
    assert not isinstance(info.value, UsageError)  # the model's fault, not the user's: a failed run
    assert str(info.value) == ("task 'mc', example 'r1': the model gave log-likelihood nan for choice 1 ('c d'); "
                               "a model must not produce NaN: check its weights, or try --dtype float32")


def test_a_max_new_tokens_filling_the_window_is_refused_not_generated_from_nothing():
    from .test_decoding import CountingRunner

    runner = CountingRunner(max_length=8)
    with pytest.raises(UsageError) as info:
        runner.generate(["ab"], GenerationConfig(max_new_tokens=8))
    assert str(info.value) == ("generation.max_new_tokens 8 leaves no room for the prompt in fake:r's window of "
                               "8 tokens; set it below 8 in the task file")
    assert runner.generate(["ab"], GenerationConfig(max_new_tokens=7))[0].prompt_tokens == 1


def test_the_plan_check_names_task_value_window_and_fix():
    from llmos_hub.bench._checks import check_generation_window
    from llmos_hub.tasks import BUILTIN_DIR

    task = task_from_file(BUILTIN_DIR / "translation-sample.yaml")
    check_generation_window(task, "nano:lm-sample", 256)  # 64 fits
    check_generation_window(task, "nano:lm-sample", None)  # window unknown: nothing to check
    with pytest.raises(UsageError) as info:
        check_generation_window(task, "nano:lm-sample", 64)
    assert str(info.value) == (
        f"task translation-sample: generation.max_new_tokens 64 leaves no room for the prompt in nano:lm-sample's "
        f"window of 64 tokens; set it below 64 (e.g. 16) in {task.spec.file}")


def test_the_bench_refuses_a_causal_lm_whose_window_the_generation_fills_before_loading(tmp_path):
    """The plan knows the window from the family's ``inspect`` (``ModelInfo.max_length``): a causal LM is
    refused in one line, exit 2, before any model loads; a seq2seq model on the same task still runs."""
    import shutil

    from llmos_hub.tasks import BUILTIN_DIR

    shutil.copytree(BUILTIN_DIR / "data" / "translation-sample", tmp_path / "data" / "translation-sample")
    text = (BUILTIN_DIR / "translation-sample.yaml").read_text(encoding="utf-8")
    task = tmp_path / "big.yaml"
    task.write_text(text.replace("max_new_tokens: 64", "max_new_tokens: 100000000").replace(
        "name: translation-sample", "name: trbig"), encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["bench", "--model", "nano:lm-sample", "--task", str(task), "--limit", "4",
                                       "--output-dir", str(out)])
    assert result.exit_code == 2, result.output
    [line] = error_lines(result.stderr)
    assert line == (f"error: task trbig: generation.max_new_tokens 100000000 leaves no room for the prompt in "
                    f"nano:lm-sample's window of 256 tokens; set it below 256 (e.g. 64) in {task}")
    assert not out.exists()
    result = CliRunner().invoke(main, ["bench", "--model", "nano:lm-sample", "--model", "nano:translation-sample",
                                       "--task", str(task), "--limit", "4", "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.json"))) == 1 and "leaves no room" in result.stderr


# -- llmos-hub new ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "problem"), [
    ("a", "is too short"),
    ("9lives", "must start with a letter"),
    ("ab-", "must end with a letter or digit"),
    ("My_task", "may hold only lowercase letters, digits and '-'"),
])
def test_new_says_which_naming_rule_a_name_breaks(name, problem, tmp_path):
    result = CliRunner().invoke(main, ["new", "task", name, "--output", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [
        f"error: plugin name {name!r} {problem}; a name has at least 2 characters, lowercase letters, digits and "
        "'-', starts with a letter and ends with a letter or digit (e.g. my-task)"]
    assert not (tmp_path / "out").exists()
