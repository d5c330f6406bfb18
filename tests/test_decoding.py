"""The decoding engine against a fake backend: no torch, exact expectations worked out by hand or by
exhaustive search."""

from __future__ import annotations

import itertools
import math
import random
import sys
from collections.abc import Callable, Sequence

import pytest

from llmos_hub import Capability, GenerationConfig, LoadedModel, Provenance
from llmos_hub._windows import encode_pair, rolling_windows
from llmos_hub.decoding import (
    Batch,
    StepRunner,
    beam_search,
    cut_at_stop,
    generate_ids,
    greedy_search,
    pad_left,
    stop_checker,
)

EOS = 0
PAD = 9

Table = Callable[[tuple[int, ...]], dict[int, float]]


class FakeStepper:
    """A "model" given as a function from a row's tokens (prompt + generated) to next-token log-probs.

    It counts calls and the rows it was asked to run, so tests can check that finished rows leave.
    """

    def __init__(self, table: Table) -> None:
        self.table = table
        self.rows_per_step: list[int] = []

    def _out(self, state: list[tuple[int, ...]]) -> list[dict[int, float]]:
        self.rows_per_step.append(len(state))
        return [self.table(seq) for seq in state]

    def prefill(self, batch: Batch):
        state = [
            tuple(t for t, m in zip(ids, mask) if m) for ids, mask in zip(batch.input_ids, batch.attention_mask)
        ]
        return state, self._out(state)

    def step(self, state, next_ids):
        assert len(next_ids) == len(state)
        state = [seq + (t,) for seq, t in zip(state, next_ids)]
        return state, self._out(state)

    def reorder(self, state, indices):
        return [state[i] for i in indices]

    def argmax(self, out):
        return [max(sorted(d), key=lambda t: d[t]) for d in out]

    def topk_logprobs(self, out, k):
        values, indices = [], []
        for d in out:
            ranked = sorted(d, key=lambda t: (-d[t], t))[:k]
            values.append([d[t] for t in ranked])
            indices.append(ranked)
        return values, indices


def random_table(vocab: int, seed: int) -> Table:
    """A deterministic random distribution for every prefix (log-softmax of seeded scores)."""

    def table(seq: tuple[int, ...]) -> dict[int, float]:
        rng = random.Random(hash((seed, seq)))
        scores = [rng.gauss(0, 2) for _ in range(vocab)]
        norm = math.log(sum(math.exp(s) for s in scores))
        return {t: s - norm for t, s in enumerate(scores)}

    return table


# -- padding ----------------------------------------------------------------------------------------
def test_pad_left_aligns_ends_and_masks_padding():
    batch = pad_left([[5, 6, 7], [8]], PAD)
    assert batch.input_ids == [[5, 6, 7], [PAD, PAD, 8]]
    assert batch.attention_mask == [[1, 1, 1], [0, 0, 1]]
    with pytest.raises(ValueError):
        pad_left([[1], []], PAD)


# -- greedy -----------------------------------------------------------------------------------------
def test_greedy_follows_argmax_stops_at_eos_and_drops_finished_rows():
    # Row "1" goes 1 -> 3 -> EOS; row "2" goes 2 -> 4 -> 4 -> 4 ... until max_new_tokens.
    def table(seq):
        nxt = {1: 3, 3: EOS, 2: 4, 4: 4}[seq[-1]]
        return {t: (0.0 if t == nxt else -5.0) for t in range(5)}

    stepper = FakeStepper(table)
    out = greedy_search(stepper, pad_left([[1], [2]], PAD), max_new_tokens=4, eos_id=EOS)
    assert out == [[3], [4, 4, 4, 4]]
    # prefill (2 rows), step with 2 rows (row 1 emitted 3), then row 1 hit EOS and left: 1 row after.
    assert stepper.rows_per_step == [2, 2, 1, 1]


def test_greedy_without_eos_runs_max_new_tokens_and_zero_tokens_runs_nothing():
    stepper = FakeStepper(lambda seq: {EOS: 0.0, 1: -1.0})
    assert greedy_search(stepper, pad_left([[1]], PAD), max_new_tokens=3, eos_id=None) == [[EOS, EOS, EOS]]
    stepper = FakeStepper(lambda seq: {EOS: 0.0})
    assert greedy_search(stepper, pad_left([[1]], PAD), max_new_tokens=0, eos_id=EOS) == [[]]
    assert stepper.rows_per_step == []


def test_greedy_batch_equals_one_by_one():
    table = random_table(6, seed=3)
    prompts = [[1, 2, 3], [4], [5, 5], [2, 1, 4, 3, 2]]
    together = greedy_search(FakeStepper(table), pad_left(prompts, PAD), max_new_tokens=6, eos_id=EOS)
    alone = [greedy_search(FakeStepper(table), pad_left([p], PAD), max_new_tokens=6, eos_id=EOS)[0] for p in prompts]
    assert together == alone
    assert any(len(x) < 6 for x in together), "the seed should make some row end early at EOS"


def test_stop_check_ends_a_row_and_keeps_the_completing_token():
    text = {1: "a", 2: "b", 3: "\n", 4: "c"}
    decode = lambda ids: "".join(text[i] for i in ids)  # noqa: E731
    order = [1, 2, 3, 4, 4]

    def table(seq):
        nxt = order[min(len(seq) - 1, len(order) - 1)]
        return {t: (0.0 if t == nxt else -9.0) for t in range(5)}

    is_stopped = stop_checker(decode, ["\n"])
    out = greedy_search(FakeStepper(table), pad_left([[4]], PAD), max_new_tokens=10, eos_id=EOS, is_stopped=is_stopped)
    assert out == [[1, 2, 3]]
    assert cut_at_stop(decode(out[0]), ["\n"]) == "ab"
    assert cut_at_stop("one. two\nthree", ["\n", "."]) == "one"
    assert stop_checker(decode, []) is None


# -- beam search ------------------------------------------------------------------------------------
def test_one_beam_without_length_penalty_is_greedy():
    for seed in range(5):
        table = random_table(7, seed)
        prompts = [[1, 2], [3], [4, 5, 6]]
        greedy = greedy_search(FakeStepper(table), pad_left(prompts, PAD), max_new_tokens=8, eos_id=EOS)
        beam = beam_search(
            FakeStepper(table), pad_left(prompts, PAD), num_beams=1, max_new_tokens=8, eos_id=EOS, length_penalty=0.0
        )
        assert beam == greedy


def _tree(paths: dict[tuple[int, ...], float]) -> Table:
    """A table from explicit (prefix -> token) log-probs; everything else is very unlikely."""

    def table(seq):
        gen = seq[1:]  # the prompt is one token
        dist = {t: -20.0 for t in range(6)}
        for path, lp in paths.items():
            if path[:-1] == gen:
                dist[path[-1]] = lp
        return dist

    return table


def test_length_penalty_decides_between_short_and_long_hypotheses():
    # short: A(1) EOS   = -0.5 - 1.0             = -1.5 over 2 tokens (-0.75 per token)
    # long:  B(2) C D EOS = -1.2 - 0.2 - 0.2 - 0.2 = -1.8 over 4 tokens (-0.45 per token)
    table = _tree({
        (1,): -0.5, (1, EOS): -1.0,
        (2,): -1.2, (2, 3): -0.2, (2, 3, 4): -0.2, (2, 3, 4, EOS): -0.2,
    })
    batch = pad_left([[5]], PAD)
    def run(lp):
        return beam_search(FakeStepper(table), batch, num_beams=2, max_new_tokens=6, eos_id=EOS, length_penalty=lp)[0]

    assert run(0.0) == [1]  # raw log-prob: the short one
    assert run(1.0) == [2, 3, 4]  # per-token average: the long one
    assert greedy_search(FakeStepper(table), batch, max_new_tokens=6, eos_id=EOS)[0] == [1]


def _brute_force(table: Table, prompt: tuple[int, ...], vocab: int, max_new: int, lp: float) -> list[int]:
    """The best-scoring hypothesis over every sequence: ends at EOS or at ``max_new`` tokens."""
    best, best_seq = -math.inf, None
    for n in range(1, max_new + 1):
        for seq in itertools.product(range(vocab), repeat=n):
            if EOS in seq[:-1]:
                continue
            if seq[-1] != EOS and n < max_new:
                continue
            total = sum(table(prompt + seq[:i])[seq[i]] for i in range(n))
            score = total / n**lp
            if score > best:
                best, best_seq = score, [t for t in seq if t != EOS]
    return best_seq


@pytest.mark.parametrize("lp", [0.0, 1.0, 2.0, -0.5])
def test_wide_beam_finds_the_best_sequence_exhaustively(lp):
    vocab, max_new = 3, 4
    for seed in range(4):
        table = random_table(vocab, seed)
        found = beam_search(
            FakeStepper(table), pad_left([[1, 2]], PAD), num_beams=vocab**max_new, max_new_tokens=max_new,
            eos_id=EOS, length_penalty=lp,
        )[0]
        assert found == _brute_force(table, (1, 2), vocab, max_new, lp)


def test_beam_batch_equals_one_by_one_and_done_rows_leave():
    table = random_table(5, seed=11)
    prompts = [[1], [2, 3], [4, 4, 4]]
    stepper = FakeStepper(table)
    together = beam_search(stepper, pad_left(prompts, PAD), num_beams=3, max_new_tokens=12, eos_id=EOS, length_penalty=0.0)
    alone = [
        beam_search(FakeStepper(table), pad_left([p], PAD), num_beams=3, max_new_tokens=12, eos_id=EOS, length_penalty=0.0)[0]
        for p in prompts
    ]
    assert together == alone
    assert stepper.rows_per_step[0] == 3
    assert max(stepper.rows_per_step) <= 9
    assert stepper.rows_per_step[-1] < 9, "finished examples should leave the state"


def test_generate_ids_picks_the_search_from_the_config():
    table = random_table(6, seed=5)
    batch = pad_left([[1, 2]], PAD)
    greedy = greedy_search(FakeStepper(table), batch, max_new_tokens=5, eos_id=EOS)
    assert generate_ids(FakeStepper(table), batch, GenerationConfig(max_new_tokens=5), eos_id=EOS) == greedy
    beams = beam_search(FakeStepper(table), batch, num_beams=4, max_new_tokens=5, eos_id=EOS, length_penalty=1.0)
    config = GenerationConfig(max_new_tokens=5, num_beams=4, length_penalty=1.0)
    assert generate_ids(FakeStepper(table), batch, config, eos_id=EOS) == beams


# -- windows ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,max_length", [(1, 4), (4, 4), (5, 4), (17, 4), (30, 7), (3, 1)])
def test_rolling_windows_score_every_token_once_and_fit_the_context(n, max_length):
    tokens = list(range(100, 100 + n))
    windows = rolling_windows(tokens, max_length, prefix_token=EOS)
    scored = [t for _, cont in windows for t in cont]
    assert scored == tokens
    first_ctx, first_cont = windows[0]
    assert first_ctx == [EOS] and first_cont == tokens[:max_length]
    for context, continuation in windows:
        inputs = (context + continuation)[:-1]
        assert 1 <= len(inputs) <= max_length
        # each scored token is predicted from the tokens just before it in the text
        full = [EOS] + tokens
        start = full.index(continuation[0]) if continuation[0] != EOS else 0
        assert (context + continuation) == full[start - len(context) : start + len(continuation)]
    assert rolling_windows([], 4, EOS) == []


def test_rolling_windows_match_lm_eval_example():
    # lm-evaluation-harness's docstring example (tokens 0..9, max_seq_len 4, context_len 1): inputs
    # [-1 0 1 2] -> [0 1 2 3], [3 4 5 6] -> [4 5 6 7], [5 6 7 8] -> [8 9], after make_disjoint_window.
    windows = rolling_windows(list(range(10)), 4, prefix_token=-1)
    assert windows == [([-1], [0, 1, 2, 3]), ([3], [4, 5, 6, 7]), ([5, 6, 7], [8, 9])]


def test_encode_pair_moves_trailing_space_to_the_continuation():
    encode = lambda s: [ord(c) for c in s]  # noqa: E731
    assert encode_pair(encode, "a b ", "c") == ([ord("a"), ord(" "), ord("b")], [ord(" "), ord("c")])


# -- the base runner --------------------------------------------------------------------------------
class CharTokenizer:
    """One token per character (ids >= 3); 0 pad, 1 eos, 2 bos."""

    pad_id, eos_id, bos_id = 0, 1, 2

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids if i > 2)


class CountingRunner(StepRunner):
    """Generates "xy\\nz..." by a fixed script and scores token t with log-prob -t/100."""

    script = "xy\nzzzz"

    def __init__(self, max_length=8):
        model = LoadedModel(
            family="fake", ref="r", capabilities=frozenset({Capability.CAUSAL_LM}), tokenizer=CharTokenizer(),
            modules={}, provenance=Provenance("fake", None, "0" * 64, 0), max_length=max_length,
        )
        super().__init__(model)
        self.scored: list[tuple[list[int], list[int]]] = []
        self.stepper = FakeStepper(self._table)

    def _table(self, seq):
        n = len(seq) - self.prompt_len
        nxt = ord(self.script[n]) if n < len(self.script) else 1
        return {t: (0.0 if t == nxt else -9.0) for t in range(128)}

    def prefill(self, batch):
        self.prompt_len = sum(batch.attention_mask[0])
        return self.stepper.prefill(batch)

    def step(self, state, next_ids):
        return self.stepper.step(state, next_ids)

    def reorder(self, state, indices):
        return self.stepper.reorder(state, indices)

    def argmax(self, out):
        return self.stepper.argmax(out)

    def topk_logprobs(self, out, k):
        return self.stepper.topk_logprobs(out, k)

    def sequence_logprobs(self, batch, targets):
        results = []
        for ids, mask, tgt in zip(batch.input_ids, batch.attention_mask, targets):
            real = [t for t, m in zip(ids, mask) if m]
            assert len(real) <= self.model.max_length
            self.scored.append((real, tgt))
            results.append((sum(-t / 100 for t in tgt), False))
        return results


def test_step_runner_generate_cuts_at_stop_strings():
    runner = CountingRunner()
    [gen] = runner.generate(["ab"], GenerationConfig(max_new_tokens=5, stop=("\n",)))
    assert gen.text == "xy"
    assert gen.token_ids == (ord("x"), ord("y"), ord("\n"))
    assert gen.prompt_tokens == 2
    [gen] = runner.generate(["ab"], GenerationConfig(max_new_tokens=5))
    assert gen.text == "xy\nzz"


def test_step_runner_rolling_scores_each_token_once_in_windows():
    runner = CountingRunner(max_length=4)
    text = "abcdefghij"
    [ll] = runner.loglikelihood_rolling([text])
    assert ll.num_tokens == len(text)
    assert ll.logprob == pytest.approx(sum(-ord(c) / 100 for c in text))
    scored = [t for _, tgt in runner.scored for t in tgt]
    assert scored == [ord(c) for c in text]
    assert runner.scored[0][0] == [2, ord("a"), ord("b"), ord("c")]  # [BOS] + tokens[:3]


def test_step_runner_rolling_starts_from_bos_and_from_eos_only_without_one():
    # lm-evaluation-harness's prefix token (HFLM.prefix_token_id): BOS when the tokenizer has one (Llama's
    # <s>), else EOS (GPT-2's <|endoftext|>); the same token an empty context is scored after.
    runner = CountingRunner(max_length=4)
    runner.loglikelihood_rolling(["abc"])
    runner.loglikelihood([("", "abc")])
    assert [ctx[0] for ctx, _ in runner.scored] == [2, 2]
    runner = CountingRunner(max_length=4)
    runner.model.tokenizer.bos_id = None
    runner.loglikelihood_rolling(["abc"])
    runner.loglikelihood([("", "abc")])
    assert [ctx[0] for ctx, _ in runner.scored] == [1, 1]


def test_step_runner_loglikelihood_truncates_context_from_the_left():
    runner = CountingRunner(max_length=4)
    [ll] = runner.loglikelihood([("abcdefg", "hi")])
    assert ll.num_tokens == 2 and ll.logprob == pytest.approx(-(ord("h") + ord("i")) / 100)
    inputs, targets = runner.scored[-1]
    assert inputs == [ord(c) for c in "efgh"] and targets == [ord("h"), ord("i")]


def test_step_runner_refuses_what_the_model_cannot_do():
    from llmos_hub import UsageError

    with pytest.raises(UsageError, match="cannot classify"):
        CountingRunner().classify(["x"])


def test_engine_imports_no_torch():
    import subprocess

    code = "import sys, llmos_hub.decoding; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
