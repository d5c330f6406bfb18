"""Issue 13, class 7 continued: an example longer than the model's window is cut as lm-eval cuts it,
said in one warning line and counted in the record, or refused naming it when cutting would change
what is scored.

A random ``nano`` checkpoint with a 32-token window stands in for a model; the tokens cut are checked
against the model's own tokenizer and lm-evaluation-harness's rule for log-likelihood requests,
``(context + continuation)[-(max_length + 1):]``: ``len(context) + len(continuation) - (max_length + 1)``.
"""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

pytest.importorskip("llmos_hub_nano")
pytest.importorskip("llmos_hub_pytorch")

from llmos_hub import GenerateRequest, GenerationConfig, load_record  # noqa: E402
from llmos_hub.cli import main  # noqa: E402

from ._hardening import error_lines  # noqa: E402

WINDOW = 32
LONG = ("Packages provide libraries, tools and documentation for the system, and a model predicts the "
        "next piece of text from the pieces before it. ") * 3


@pytest.fixture(scope="module")
def nano(tmp_path_factory):
    from llmos_hub_nano.tiny import random_checkpoint

    return random_checkpoint(tmp_path_factory.mktemp("window") / "nano", max_length=WINDOW)


def _task(folder, rows):
    (folder / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    path = folder / "task.yaml"
    path.write_text(yaml.safe_dump({
        "name": "mc-long", "kind": "multiple-choice", "data": "rows.jsonl",
        "fields": {"id": "id", "input": "context", "choices": "choices", "target": "label"},
        "prompt": "{input}", "target_delimiter": " ", "metrics": {"multiple_choice": {}}, "primary_metric": "acc"}),
        encoding="utf-8")
    return path


def _expected_cut(nano, context, choices):
    from llmos_hub._windows import encode_pair
    from llmos_hub_nano.family import NanoFamily

    tokenizer = NanoFamily().load(str(nano)).tokenizer
    worst = 0
    for choice in choices:
        ctx, cont = encode_pair(tokenizer.encode, context, " " + choice)
        worst = max(worst, len(ctx) + len(cont) - (WINDOW + 1))
    return worst


def _bench(args, out):
    return CliRunner().invoke(main, ["bench", *args, "--backend", "pytorch", "--output-dir", str(out)])


def test_an_over_long_example_is_cut_with_one_warning_and_counted_in_the_record(nano, tmp_path):
    choices = ["the doc.", "a path.", "a ref.", "it."]
    path = _task(tmp_path, [
        {"id": "short", "context": "Begin by", "choices": choices, "label": 0},
        {"id": "long-one", "context": LONG, "choices": choices, "label": 1},
    ])
    cut = _expected_cut(nano, LONG, choices)
    assert cut > 0
    out = tmp_path / "out"
    result = _bench(["--task", str(path), "--task", "lm-sample", "--limit", "2", "--model", f"nano:{nano}"], out)
    assert result.exit_code == 0, result.output
    warnings = [line for line in error_lines(result.stderr) if line.startswith("warning:")]
    assert warnings == [
        f"warning: task mc-long on nano:{nano}: 1 example(s) longer than the model's window of {WINDOW} tokens were "
        f"cut to fit, each keeping its end, as lm-evaluation-harness cuts them (tokens cut): long-one (-{cut}); the "
        "record counts them in task.truncated_examples"]
    records = {load_record(p).task: load_record(p) for p in out.glob("*.json")}
    assert records["mc-long"].data["task"]["truncated_examples"] == {
        "count": 1, "tokens_cut": cut, "examples": {"long-one": cut}}
    # lm-sample's paragraphs are longer than the window too, but rolling windows score every token: no cut
    assert "truncated_examples" not in records["lm-sample"].data["task"]
    assert records["lm-sample"].data["speed"]["prompt_tokens_per_second"] > 0


def test_an_example_whose_continuation_alone_exceeds_the_window_is_refused_naming_it(nano, tmp_path):
    choices = ["the doc.", LONG, "a ref.", "it."]
    path = _task(tmp_path, [
        {"id": "short", "context": "Begin by", "choices": ["the doc.", "a path.", "a ref.", "it."], "label": 0},
        {"id": "huge-choice", "context": "Begin by", "choices": choices, "label": 0},
    ])
    from llmos_hub._windows import encode_pair
    from llmos_hub_nano.family import NanoFamily

    _, scored = encode_pair(NanoFamily().load(str(nano)).tokenizer.encode, "Begin by", " " + LONG)
    tokens = len(scored)
    out = tmp_path / "out"
    result = _bench(["--task", str(path), "--model", f"nano:{nano}"], out)
    assert result.exit_code == 1, result.output
    lines = error_lines(result.stderr)
    assert lines[0] == (
        f"failed nano:{nano} · mc-long · pytorch: task mc-long, example huge-choice: the part to score is {tokens} "
        f"tokens, more than nano:{nano}'s window of {WINDOW}; cutting it would change what is scored, so it is "
        "refused: shorten or drop the example, or use a model with a longer window")
    assert not list(out.glob("*.json"))


def test_generation_cuts_follow_the_engine_and_short_prompts_skip_the_tokenizer(nano):
    """Generation keeps the prompt's last ``window - max_new_tokens`` tokens; nothing short is tokenized."""
    from llmos_hub.bench._window import fit_to_window
    from llmos_hub_nano.family import NanoFamily

    model = NanoFamily().load(str(nano))
    seen = []
    real = model.tokenizer.encode

    class Counting:
        def __getattr__(self, name):
            return getattr(model.tokenizer, name)

        def encode(self, text):
            seen.append(text)
            return real(text)

    model.tokenizer = Counting()
    config = GenerationConfig(max_new_tokens=8)
    requests = [[GenerateRequest("short", config)], [GenerateRequest(LONG, config)]]
    cut = fit_to_window(model, "gen", ["a", "b"], requests)
    assert cut == {"b": len(real(LONG)) - (WINDOW - 8)}
    assert seen == [LONG]  # the short prompt never reached the tokenizer


def test_a_seq2seq_context_keeps_its_end_as_lm_eval_cuts_it_and_a_generation_source_its_start(tmp_path):
    """lm-evaluation-harness scores a seq2seq continuation after ``context_enc[-max_length:]``: with few-shot
    demonstrations first, keeping the start would cut off the example's own question. A seq2seq generation
    source keeps its lead instead, and the warning says which rule cut."""
    from llmos_hub import load_plugins
    from llmos_hub.bench._window import KEEP_END, KEEP_START, cut_rule
    from llmos_hub_nano.family import NanoFamily
    from llmos_hub_nano.tiny import random_checkpoint

    model = NanoFamily().load(str(random_checkpoint(tmp_path / "s2s", "seq2seq", max_length=WINDOW)))
    runner = load_plugins().get("backends", "pytorch").prepare(model, options={"threads": 1})
    seen = []
    real = runner._score
    runner._score = lambda batch, targets: (seen.append(batch), real(batch, targets))[1]
    runner.loglikelihood([(LONG, " it.")])
    source = model.tokenizer.encode(LONG)  # nano encodes a source as any text
    assert len(source) > WINDOW
    assert list(seen[0].input_ids[0]) == source[-WINDOW:]
    from llmos_hub import LoglikelihoodRequest

    config = GenerationConfig(max_new_tokens=4)
    assert cut_rule(model, [[LoglikelihoodRequest(LONG, " it.")]]) == KEEP_END
    assert cut_rule(model, [[GenerateRequest(LONG, config)]]) == KEEP_START
