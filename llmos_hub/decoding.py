"""The one decoding engine: greedy and beam search, written once, driven by a backend's forward steps.

Every backend (``pytorch``, ``onnxruntime``, a contributed one) decodes with the same algorithm, so a
difference in output between two backends is a difference in their arithmetic, never in their search.
This module never imports torch or numpy: it only moves Python ints and floats. Tensors stay inside the
backend, which also does the two reductions the search needs on its own device, so a GPU backend copies
``B`` ints per step to the host for greedy and ``B x k`` floats and ints for beam search, never the
logits.

The step protocol (:class:`Stepper`)
------------------------------------
A backend supplies five functions. ``State`` and ``Out`` are opaque to the engine (tensors, OrtValues,
anything): the engine only passes them back.

``prefill(batch: Batch) -> (State, Out)``
    Run the prompts (causal LM) or encode the sources and run the decoder on ``decoder_start_id``
    (seq2seq). ``batch`` is left padded (:func:`pad_left`); positions come from its attention mask.
    ``Out`` holds, for each row, the scores of the next token (the logits at the last position).
``step(state, next_ids: list[int]) -> (State, Out)``
    Feed one new token per row (``len(next_ids)`` equals the number of rows of ``state``) and return
    the next-token scores. The attention mask grows by one column of ones.
``reorder(state, indices: list[int]) -> State``
    Keep rows ``indices`` of the state, in that order; an index may repeat. The engine uses it to
    expand prompts into beams, to follow the surviving beams, and to drop finished rows, so it is the
    only place a backend copies its cache (an index select on the device).
``argmax(out) -> list[int]``
    The best next token of each row.
``topk_logprobs(out, k) -> (values: list[list[float]], indices: list[list[int]])``
    The ``k`` best next tokens of each row by log-probability (log-softmax over the vocabulary), best
    first. ``k`` may exceed the vocabulary; then return the whole vocabulary, sorted.

One optional function: ``reserve(max_new_tokens: int) -> None``, called before ``prefill`` with the
most tokens the search will generate, so a backend can preallocate its self-attention cache for the
whole generation (see :func:`cache_capacity`) and write each step's keys and values into it in place
instead of growing it. A backend without it grows its cache as it likes.

The engine functions are :func:`greedy_search` and :func:`beam_search` (both return the generated
token ids of each prompt, EOS excluded) and :func:`generate_ids`, which picks one from a
:class:`~llmos_hub.GenerationConfig`. On top of them, :class:`StepRunner` is a complete
:class:`~llmos_hub.Runner` (``generate``, ``loglikelihood``, ``loglikelihood_rolling``, ``classify``)
for a backend that implements the :class:`Stepper` functions plus two whole-sequence functions:

``sequence_logprobs(batch: Batch, targets: list[list[int]]) -> list[tuple[float, bool]]``
    For each row, the summed log-probability of its ``targets`` and whether each target was the
    argmax. Causal LM: the targets of row ``i`` are the tokens after the last ``len(targets[i])``
    positions of the (left padded) input, so they end at the last column. Seq2seq: ``batch`` is the
    source and ``targets`` the decoder tokens that follow ``decoder_start_id``.
``classifier_logits(batch: Batch) -> list[list[float]]``
    The classifier's logits of each row.

Example (a backend reduced to its forward functions)::

    class MyRunner(StepRunner):
        def prefill(self, batch): ...
        def step(self, state, next_ids): ...
        def reorder(self, state, indices): ...
        def argmax(self, out): ...
        def topk_logprobs(self, out, k): ...
        def sequence_logprobs(self, batch, targets): ...
        def classifier_logits(self, batch): ...

    runner.generate(["Hello"], GenerationConfig(max_new_tokens=8))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from ._backend import Runner
from ._requests import Generation, GenerationConfig, Loglikelihood
from ._model import Capability, LoadedModel
from ._threads import OMP_THREADS_ENV, THREADS_ENV, default_threads, environment_threads, threads_source, usable_cores
from ._windows import encode_pair, rolling_windows
from .errors import UsageError

__all__ = [
    "Batch",
    "OMP_THREADS_ENV",
    "OutT",
    "StateT",
    "StepRunner",
    "Stepper",
    "THREADS_ENV",
    "beam_search",
    "cache_capacity",
    "cut_at_stop",
    "default_threads",
    "environment_threads",
    "generate_ids",
    "greedy_search",
    "pad_left",
    "stop_checker",
    "threads_source",
    "usable_cores",
]

#: Called with the tokens generated so far for one sequence; True when a stop string appeared.
StopCheck = Callable[[Sequence[int]], bool]


@dataclass(frozen=True)
class Batch:
    """A rectangular, left-padded batch of token ids and its attention mask (1 on real tokens).

    Left padding puts every row's last token in the last column, so the next-token scores of all
    rows are read from one column and a new token is appended to all rows at once.
    """

    input_ids: list[list[int]]
    attention_mask: list[list[int]]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def width(self) -> int:
        return len(self.input_ids[0]) if self.input_ids else 0


def pad_left(sequences: Sequence[Sequence[int]], pad_id: int) -> Batch:
    """Left-pad ``sequences`` with ``pad_id`` to the longest one; every sequence must be non-empty."""
    if not sequences:
        return Batch([], [])
    width = max(len(s) for s in sequences)
    if min(len(s) for s in sequences) == 0:
        raise ValueError("pad_left needs non-empty sequences (give an empty prompt a BOS or EOS token)")
    ids = [[pad_id] * (width - len(s)) + list(s) for s in sequences]
    mask = [[0] * (width - len(s)) + [1] * len(s) for s in sequences]
    return Batch(ids, mask)


#: What a backend carries between decoding steps (its KV cache, masks: tensors, OrtValues, ...).
StateT = TypeVar("StateT")
#: What a forward step returns for the engine's reductions (the next-token scores of each row).
OutT = TypeVar("OutT")


class Stepper(Protocol[StateT, OutT]):
    """The forward steps and array operations a backend supplies to the engine (see the module doc).

    ``StateT`` and ``OutT`` are the backend's own types; the engine only passes them back, so a
    backend is checked against its own types (``Stepper[TorchState, torch.Tensor]``).
    """

    def prefill(self, batch: Batch) -> tuple[StateT, OutT]: ...

    def step(self, state: StateT, next_ids: list[int]) -> tuple[StateT, OutT]: ...

    def reorder(self, state: StateT, indices: list[int]) -> StateT: ...

    def argmax(self, out: OutT) -> list[int]: ...

    def topk_logprobs(self, out: OutT, k: int) -> tuple[list[list[float]], list[list[int]]]: ...


def cache_capacity(width: int, max_new_tokens: int, *, seq2seq: bool = False) -> int:
    """The self-attention cache slots a generation needs: every token fed to the model.

    A causal LM feeds the ``width`` prompt columns and all generated tokens but the last; a seq2seq
    decoder feeds ``decoder_start_id`` and all generated tokens but the last.
    """
    fed = 1 if seq2seq else width
    return fed + max(max_new_tokens - 1, 0)


def _reserve(stepper: Stepper, max_new_tokens: int) -> None:
    reserve = getattr(stepper, "reserve", None)
    if reserve is not None:
        reserve(max_new_tokens)


# -- stop strings ---------------------------------------------------------------------------------
def stop_checker(decode: Callable[[Sequence[int]], str], stops: Sequence[str]) -> StopCheck | None:
    """A :data:`StopCheck` that decodes the tokens so far and looks for any of ``stops``.

    Returns ``None`` when there are no stop strings, so the engine skips decoding altogether.
    """
    stops = tuple(s for s in stops if s)
    if not stops:
        return None

    def is_stopped(token_ids: Sequence[int]) -> bool:
        text = decode(token_ids)
        return any(s in text for s in stops)

    return is_stopped


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """``text`` cut before the earliest occurrence of any stop string."""
    cut = len(text)
    for stop in stops:
        if stop:
            at = text.find(stop)
            if at != -1:
                cut = min(cut, at)
    return text[:cut]


# -- greedy ---------------------------------------------------------------------------------------
def greedy_search(
    stepper: Stepper[StateT, OutT],
    batch: Batch,
    *,
    max_new_tokens: int,
    eos_id: int | None,
    is_stopped: StopCheck | None = None,
) -> list[list[int]]:
    """The argmax continuation of each row of ``batch``, EOS excluded.

    A row ends at EOS, when ``is_stopped`` says so (the token that completed the stop string is kept),
    or after ``max_new_tokens``. Finished rows are dropped from the state with one ``reorder`` when
    they finish, so the remaining rows run as a smaller batch. ``eos_id=None`` never stops on EOS
    (benchmarks use it to generate a fixed number of tokens).
    """
    generated: list[list[int]] = [[] for _ in range(len(batch))]
    if max_new_tokens <= 0 or not len(batch):
        return generated
    _reserve(stepper, max_new_tokens)
    state, out = stepper.prefill(batch)
    active = list(range(len(batch)))  # state row r holds example active[r]
    for step in range(max_new_tokens):
        tokens = stepper.argmax(out)
        keep: list[int] = []
        for row, token in enumerate(tokens):
            if token == eos_id:
                continue
            seq = generated[active[row]]
            seq.append(token)
            if is_stopped is not None and is_stopped(seq):
                continue
            keep.append(row)
        if not keep or step == max_new_tokens - 1:
            break
        if len(keep) < len(tokens):
            state = stepper.reorder(state, keep)
            tokens = [tokens[r] for r in keep]
            active = [active[r] for r in keep]
        state, out = stepper.step(state, tokens)
    return generated


# -- beam search ----------------------------------------------------------------------------------
@dataclass
class _Hypotheses:
    """The finished hypotheses of one example: the ``num_beams`` best by length-normalised score."""

    num_beams: int
    length_penalty: float
    items: list[tuple[float, list[int]]]

    def add(self, sum_logprobs: float, tokens: list[int], length: int) -> None:
        score = sum_logprobs / (max(length, 1) ** self.length_penalty)
        self.items.append((score, tokens))
        self.items.sort(key=lambda item: -item[0])
        del self.items[self.num_beams :]

    def worst(self) -> float:
        return self.items[-1][0]

    def best(self) -> list[int]:
        return self.items[0][1]


def beam_search(
    stepper: Stepper[StateT, OutT],
    batch: Batch,
    *,
    num_beams: int,
    max_new_tokens: int,
    eos_id: int | None,
    length_penalty: float = 1.0,
    is_stopped: StopCheck | None = None,
) -> list[list[int]]:
    """Beam search: the best finished hypothesis of each row, EOS excluded.

    A hypothesis's score is its summed log-probability divided by ``length ** length_penalty``, where
    ``length`` counts the generated tokens including the EOS that ended it. Each step takes the
    ``2 * num_beams`` best tokens of every live beam; a candidate ending with EOS (or completing a
    stop string) becomes a finished hypothesis if it ranks among the ``num_beams`` best candidates,
    the others fill the live beams. An example is done when it holds ``num_beams`` finished
    hypotheses and no live beam can still beat the worst of them (an exact bound: log-probabilities
    only decrease, and with ``length_penalty > 0`` the bound uses the longest possible length), or
    after ``max_new_tokens``, when the live beams join the finished ones. Done examples leave the
    state at once. With one beam and ``length_penalty=0`` this is exactly greedy search.
    """
    if num_beams < 1:
        raise ValueError(f"num_beams must be at least 1, got {num_beams}")
    n = len(batch)
    results: list[list[int]] = [[] for _ in range(n)]
    if max_new_tokens <= 0 or not n:
        return results
    _reserve(stepper, max_new_tokens)
    state, out = stepper.prefill(batch)
    finished = [_Hypotheses(num_beams, length_penalty, []) for _ in range(n)]
    # Live beams of each active example, in state-row order: (sum of log-probs, tokens).
    live: dict[int, list[tuple[float, list[int]]]] = {ex: [(0.0, [])] for ex in range(n)}
    order = list(range(n))
    k = 2 * num_beams
    for step in range(max_new_tokens):
        length = step + 1
        last = step == max_new_tokens - 1
        values, indices = stepper.topk_logprobs(out, k)
        rows: list[int] = []
        tokens: list[int] = []
        next_order: list[int] = []
        row = 0
        for ex in order:
            beams = live[ex]
            candidates = []
            for b, (total, _) in enumerate(beams):
                for value, token in zip(values[row + b], indices[row + b]):
                    candidates.append((total + value, b, token))
            candidates.sort(key=lambda c: -c[0])
            hyps = finished[ex]
            new_beams: list[tuple[float, list[int]]] = []
            for rank, (total, b, token) in enumerate(candidates):
                seq = beams[b][1] + [token]
                if token == eos_id:
                    if rank < num_beams:
                        hyps.add(total, beams[b][1], length)
                    continue
                if is_stopped is not None and is_stopped(seq):
                    if rank < num_beams:
                        hyps.add(total, seq, length)
                    continue
                new_beams.append((total, seq))
                rows.append(row + b)
                tokens.append(token)
                if len(new_beams) == num_beams:
                    break
            row += len(beams)
            done = last or not new_beams or _cannot_improve(
                hyps, new_beams[0][0], length + 1, max_new_tokens, length_penalty
            )
            if done:
                for total, seq in new_beams:
                    hyps.add(total, seq, len(seq))
                del rows[len(rows) - len(new_beams) :]
                del tokens[len(tokens) - len(new_beams) :]
                results[ex] = hyps.best() if hyps.items else []
                del live[ex]
            else:
                live[ex] = new_beams
                next_order.append(ex)
        order = next_order
        if not order:
            break
        state = stepper.reorder(state, rows)
        state, out = stepper.step(state, tokens)
    return results


def _cannot_improve(
    hyps: _Hypotheses, best_live: float, min_length: int, max_length: int, length_penalty: float
) -> bool:
    """Whether no continuation of a live beam summing ``best_live`` can enter the finished set."""
    if len(hyps.items) < hyps.num_beams:
        return False
    length = max_length if length_penalty > 0 else min_length
    return hyps.worst() >= best_live / (max(length, 1) ** length_penalty)


def generate_ids(
    stepper: Stepper[StateT, OutT],
    batch: Batch,
    config: GenerationConfig,
    *,
    eos_id: int | None,
    decode: Callable[[Sequence[int]], str] | None = None,
    max_new_tokens: int | None = None,
) -> list[list[int]]:
    """Greedy search when ``config.num_beams == 1``, beam search otherwise.

    ``decode`` turns token ids into text for ``config.stop``; ``max_new_tokens`` overrides the
    config's (a runner caps it at what fits the model's context).
    """
    limit = config.max_new_tokens if max_new_tokens is None else max_new_tokens
    is_stopped = stop_checker(decode, config.stop) if decode is not None else None
    if config.num_beams <= 1:
        return greedy_search(stepper, batch, max_new_tokens=limit, eos_id=eos_id, is_stopped=is_stopped)
    return beam_search(
        stepper,
        batch,
        num_beams=config.num_beams,
        max_new_tokens=limit,
        eos_id=eos_id,
        length_penalty=config.length_penalty,
        is_stopped=is_stopped,
    )


# -- the base runner ------------------------------------------------------------------------------
class StepRunner(Runner, Generic[StateT, OutT]):
    """A complete :class:`~llmos_hub.Runner` built on a backend's forward functions.

    Subclasses implement the :class:`Stepper` functions, :meth:`sequence_logprobs` and
    :meth:`classifier_logits` (see the module docstring); this class tokenizes, truncates to the
    model's context, pads, builds rolling windows and calls the engine. Results do not depend on how
    requests are batched, because every row is padded on the left and positions come from the mask.
    """

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        #: The ``max_new_tokens`` of the generation under way (set by :meth:`reserve`), or ``None``.
        self.reserved_new_tokens: int | None = None

    # -- forward functions a backend supplies ------------------------------------------------------
    def reserve(self, max_new_tokens: int) -> None:
        """Remember how many tokens the coming generation may add (see :func:`cache_capacity`)."""
        self.reserved_new_tokens = int(max_new_tokens)

    def prefill(self, batch: Batch) -> tuple[StateT, OutT]:
        raise NotImplementedError

    def step(self, state: StateT, next_ids: list[int]) -> tuple[StateT, OutT]:
        raise NotImplementedError

    def reorder(self, state: StateT, indices: list[int]) -> StateT:
        raise NotImplementedError

    def argmax(self, out: OutT) -> list[int]:
        raise NotImplementedError

    def topk_logprobs(self, out: OutT, k: int) -> tuple[list[list[float]], list[list[int]]]:
        raise NotImplementedError

    def sequence_logprobs(self, batch: Batch, targets: list[list[int]]) -> list[tuple[float, bool]]:
        raise NotImplementedError

    def classifier_logits(self, batch: Batch) -> list[list[float]]:
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------------------
    @property
    def is_seq2seq(self) -> bool:
        return self.model.supports(Capability.SEQ2SEQ)

    def _require(self, capability: Capability, what: str) -> None:
        if not self.model.supports(capability):
            have = ", ".join(sorted(str(c) for c in self.model.capabilities)) or "nothing"
            raise UsageError(
                f"model {self.model.name} cannot {what} (it is {have}, this needs {capability}); "
                "pick a task that matches the model"
            )

    def _encode(self, text: str) -> list[int]:
        return list(self.model.tokenizer.encode(text))

    def _encode_source(self, text: str) -> list[int]:
        """A seq2seq source; a tokenizer may encode sources its own way (``encode_source``: a task prefix)."""
        encode = getattr(self.model.tokenizer, "encode_source", None)
        return list(encode(text)) if encode is not None else self._encode(text)

    def _encode_target(self, text: str) -> list[int]:
        """A seq2seq target; a tokenizer may encode targets its own way (``encode_target``: Marian's target model)."""
        encode = getattr(self.model.tokenizer, "encode_target", None)
        return list(encode(text)) if encode is not None else self._encode(text)

    def _start_token(self) -> int:
        tok = self.model.tokenizer
        return tok.bos_id if tok.bos_id is not None else tok.eos_id

    # -- Runner API ------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[str], config: GenerationConfig) -> list[Generation]:
        if not prompts:
            return []
        if not (self.model.supports(Capability.CAUSAL_LM) or self.is_seq2seq):
            self._require(Capability.CAUSAL_LM, "generate text")
        tok = self.model.tokenizer
        max_length = int(self.model.max_length)
        if self.is_seq2seq:
            # The encoder keeps the start of a long source: the lead of a text carries its gist.
            max_new = min(config.max_new_tokens, max_length - 1)
            prompt_ids = [self._encode_source(p)[:max_length] or [tok.eos_id] for p in prompts]
        else:
            # The prompt keeps its end, the part the continuation follows (lm-evaluation-harness), so
            # max_new_tokens must leave it at least one token: else every example is generated from nothing.
            if config.max_new_tokens >= max_length:
                raise UsageError(f"generation.max_new_tokens {config.max_new_tokens} leaves no room for the prompt "
                                 f"in {self.model.family}:{self.model.ref}'s window of {max_length} tokens; set it "
                                 f"below {max_length} in the task file")
            max_new = min(config.max_new_tokens, max_length - 1)
            keep = max_length - max_new
            prompt_ids = [(self._encode(p) or [self._start_token()])[-keep:] for p in prompts]
        batch = pad_left(prompt_ids, tok.pad_id)
        outputs = generate_ids(
            self, batch, config, eos_id=tok.eos_id, decode=tok.decode, max_new_tokens=max_new
        )
        generations = []
        for ids, prompt in zip(outputs, prompt_ids):
            text = cut_at_stop(tok.decode(ids), config.stop)
            generations.append(Generation(text=text, token_ids=tuple(ids), prompt_tokens=len(prompt)))
        return generations

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[Loglikelihood]:
        if not requests:
            return []
        tok = self.model.tokenizer
        if self.is_seq2seq:
            max_length = int(self.model.max_length)
            # A scored context keeps its end, as lm-evaluation-harness cuts it (``context_enc[-max_length:]``):
            # the end is what the continuation answers, and few-shot demonstrations come first.
            sources = [self._encode_source(c)[-max_length:] or [tok.eos_id] for c, _ in requests]
            targets = [self._encode_target(cont)[: max_length - 1] for _, cont in requests]
            return self._score(pad_left(sources, tok.pad_id), targets)
        self._require(Capability.CAUSAL_LM, "score continuations")
        pairs = []
        for context, continuation in requests:
            if context:
                ctx, cont = encode_pair(self._encode, context, continuation)
            else:
                ctx, cont = [self._start_token()], self._encode(continuation)
            pairs.append((ctx, cont))
        return self._score_pairs(pairs)

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[Loglikelihood]:
        self._require(Capability.CAUSAL_LM, "score texts")
        max_length = int(self.model.max_length)
        # The first token is predicted after BOS where the tokenizer has one, else EOS: lm-evaluation-
        # harness's prefix token (HFLM.prefix_token_id), so Llama-style models (BOS != EOS) score as there.
        prefix = self._start_token()
        pairs: list[tuple[list[int], list[int]]] = []
        owners: list[int] = []
        for i, text in enumerate(texts):
            for pair in rolling_windows(self._encode(text), max_length, prefix):
                pairs.append(pair)
                owners.append(i)
        totals = [0.0] * len(texts)
        counts = [0] * len(texts)
        chunk = max(len(texts), 1)  # windows go through in batches the size of the caller's batch
        for start in range(0, len(pairs), chunk):
            scored = self._score_pairs(pairs[start : start + chunk])
            for owner, result in zip(owners[start : start + chunk], scored):
                totals[owner] += result.logprob
                counts[owner] += result.num_tokens
        return [Loglikelihood(logprob=t, num_tokens=c) for t, c in zip(totals, counts)]

    def classify(self, texts: Sequence[str]) -> list[list[float]]:
        self._require(Capability.CLASSIFIER, "classify")
        if not texts:
            return []
        tok = self.model.tokenizer
        max_length = int(self.model.max_length)
        ids = [self._encode(t)[:max_length] or [tok.eos_id] for t in texts]
        return self.classifier_logits(pad_left(ids, tok.pad_id))

    def _score_pairs(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[Loglikelihood]:
        """Score causal ``(context, continuation)`` pairs: the input is ``(context + continuation)[:-1]``
        cut to the model's last ``max_length`` tokens, as lm-evaluation-harness feeds it."""
        max_length = int(self.model.max_length)
        inputs: list[list[int]] = []
        targets: list[list[int]] = []
        for context, continuation in pairs:
            if not continuation:  # nothing to score; any non-empty input will do
                inputs.append(list(context)[-max_length:])
                targets.append([])
                continue
            whole = (list(context) + list(continuation))[-(max_length + 1) :]
            inputs.append(whole[:-1])
            targets.append(list(continuation)[-(len(whole) - 1) :])
        return self._score(pad_left(inputs, self.model.tokenizer.pad_id), targets)

    def _score(self, batch: Batch, targets: list[list[int]]) -> list[Loglikelihood]:
        if not len(batch):
            return []
        results = self.sequence_logprobs(batch, targets)
        return [
            Loglikelihood(logprob=float(lp), num_tokens=len(t), is_greedy=bool(g))
            for (lp, g), t in zip(results, targets)
        ]
