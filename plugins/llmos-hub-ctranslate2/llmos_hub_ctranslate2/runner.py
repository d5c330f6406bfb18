"""The CTranslate2 runner: CTranslate2 decodes and scores; llmos-hub only tokenizes and truncates.

Requests become token ids exactly as the shared engine makes them (this runner extends
:class:`llmos_hub.decoding.StepRunner` for that: the same truncation, left padding, rolling windows
and context/continuation split), so two backends see the same tokens. What runs them differs:

- ``generate``: ``Generator.generate_batch`` (causal LM, prompt fed once with
  ``include_prompt_in_result=False``; one-token prompts in a batch of their own, as CTranslate2
  answers a batch mixing them with longer prompts wrongly) or ``Translator.translate_batch`` (seq2seq), greedy
  (``beam_size=1``) or beam search with the request's ``length_penalty``; CTranslate2's own search,
  not the engine's. Stop strings are applied to the finished text (the token that completes a stop
  string is kept, as the engine does), so a stopped sequence may have cost a few extra tokens.
- log-likelihoods: ``score_batch`` (the log-probability of each target token); CTranslate2 does not
  say whether a token was the argmax, so ``is_greedy`` is ``None``.
- ``classify``: ``Encoder.forward_batch`` and the checkpoint's classification head, applied here in
  float32 numpy (the converter keeps the encoder and pooler, not the head).

CTranslate2 speaks token *strings*; ids map to strings through the vocabulary file the converter
wrote, which lists the tokenizer's vocabulary in id order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from llmos_hub import Capability, Generation, GenerationConfig, LoadedModel, Loglikelihood, UsageError
from llmos_hub.decoding import Batch, StepRunner, cut_at_stop

__all__ = ["CTranslate2Runner", "Vocabulary"]


class Vocabulary:
    """Token strings by id, and ids by string, of one side of a converted model."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self.tokens = list(tokens)
        self.ids: dict[str, int] = {}
        for i, token in enumerate(self.tokens):
            self.ids.setdefault(token, i)

    def strings(self, ids: Sequence[int]) -> list[str]:
        try:
            return [self.tokens[i] for i in ids]
        except IndexError:
            raise UsageError(f"token id {max(ids)} is outside the converted vocabulary ({len(self.tokens)} tokens)") from None

    def numbers(self, tokens: Sequence[str]) -> list[int]:
        return [self.ids[t] for t in tokens]


def _unpad(batch: Batch) -> list[list[int]]:
    return [[t for t, m in zip(ids, mask) if m] for ids, mask in zip(batch.input_ids, batch.attention_mask)]


class CTranslate2Runner(StepRunner):
    """Answers requests with a ``ctranslate2.Generator``, ``Translator`` or ``Encoder``."""

    #: The converted model's folder (set by the backend; not in :meth:`describe`, cache paths are local).
    converted_path: Any = None

    def __init__(
        self,
        model: LoadedModel,
        engine: Any,
        kind: str,
        *,
        source: Vocabulary | None,
        target: Vocabulary | None,
        head: Any = None,
        device: str = "cpu",
        dtype: str = "float32",
        facts: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(model)
        self.engine = engine
        self.kind = kind
        self.source = source
        self.target = target
        self.head = head
        self.device = device
        self.dtype = dtype
        self._facts = dict(facts or {})

    # -- generation: CTranslate2's own search ------------------------------------------------------
    def generate(self, prompts: Sequence[str], config: GenerationConfig) -> list[Generation]:
        if not prompts:
            return []
        if self.kind == "encoder":
            self._require(Capability.CAUSAL_LM, "generate text")
        tok = self.model.tokenizer
        max_length = int(self.model.max_length)
        max_new = min(config.max_new_tokens, max_length - 1)
        if self.kind == "translator":
            prompt_ids = [self._encode_source(p)[:max_length] or [tok.eos_id] for p in prompts]
            outputs = self._translate(prompt_ids, config, max_new)
        else:
            keep = max_length - max_new
            prompt_ids = [(self._encode(p) or [self._start_token()])[-keep:] for p in prompts]
            outputs = self._generate(prompt_ids, config, max_new)
        generations = []
        for ids, prompt in zip(outputs, prompt_ids):
            ids = self._cut_ids(ids, config.stop)
            text = cut_at_stop(tok.decode(ids), config.stop)
            generations.append(Generation(text=text, token_ids=tuple(ids), prompt_tokens=len(prompt)))
        return generations

    def greedy_ids(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, *, eos_id: int | None) -> list[list[int]]:
        """Greedy continuations of token-id prompts; ``eos_id=None`` generates exactly ``max_new_tokens``
        (what :func:`llmos_hub.decoding.greedy_search` does with ``eos_id=None``, for benchmarks)."""
        if max_new_tokens <= 0:
            return [[] for _ in prompts]
        assert self.source is not None and self.target is not None
        end: dict[str, Any] = {"end_token": [int(eos_id)]} if eos_id is not None else {}
        fixed = max_new_tokens if eos_id is None else 0
        if self.kind == "translator":
            results = self.engine.translate_batch(
                [self.source.strings(p) for p in prompts], beam_size=1, max_decoding_length=max_new_tokens,
                min_decoding_length=fixed, max_input_length=0, **end,
            )
            return [self.target.numbers(r.hypotheses[0]) for r in results]
        return self._generate_batch(
            prompts, beam_size=1, sampling_topk=1, max_length=max_new_tokens, min_length=fixed, **end,
        )

    def _generate_batch(self, prompts: Sequence[Sequence[int]], **options: Any) -> list[list[int]]:
        """``Generator.generate_batch`` (prompt left out of the result) on ``prompts``: the best sequence of each.

        CTranslate2 4.x mishandles ``include_prompt_in_result=False`` in a batch whose shortest prompt
        has one token and whose others are longer: the longer prompts come back as their own tokens
        instead of a continuation. One-token prompts therefore run as a batch of their own; a batch of
        one-token prompts only, or of prompts of two tokens or more, is answered correctly.
        """
        assert self.target is not None
        out: list[list[int]] = [[] for _ in prompts]
        for single in (True, False):
            todo = [i for i, p in enumerate(prompts) if (len(p) == 1) == single]
            if not todo:
                continue
            results = self.engine.generate_batch(
                [self.target.strings(prompts[i]) for i in todo], include_prompt_in_result=False, **options,
            )
            for i, result in zip(todo, results):
                out[i] = list(result.sequences_ids[0])
        return out

    def _search_options(self, config: GenerationConfig) -> dict[str, Any]:
        return {
            "beam_size": max(1, int(config.num_beams)),
            "length_penalty": float(config.length_penalty),
            "end_token": [int(self.model.tokenizer.eos_id)],
            "return_end_token": False,
        }

    def _generate(self, prompts: list[list[int]], config: GenerationConfig, max_new: int) -> list[list[int]]:
        if max_new <= 0:
            return [[] for _ in prompts]
        return self._generate_batch(prompts, max_length=max_new, min_length=0, sampling_topk=1,
                                    **self._search_options(config))

    def _translate(self, sources: list[list[int]], config: GenerationConfig, max_new: int) -> list[list[int]]:
        if max_new <= 0:
            return [[] for _ in sources]
        assert self.source is not None and self.target is not None
        results = self.engine.translate_batch(
            [self.source.strings(s) for s in sources],
            max_decoding_length=max_new,
            min_decoding_length=0,
            max_input_length=0,
            sampling_topk=1,
            **self._search_options(config),
        )
        return [self.target.numbers(r.hypotheses[0]) for r in results]

    def _cut_ids(self, ids: list[int], stops: Sequence[str]) -> list[int]:
        """``ids`` up to the token that completes the first stop string (the engine's rule)."""
        stops = [s for s in stops if s]
        if not stops or not any(s in self.model.tokenizer.decode(ids) for s in stops):
            return ids
        for end in range(1, len(ids) + 1):
            text = self.model.tokenizer.decode(ids[:end])
            if any(s in text for s in stops):
                return ids[:end]
        return ids

    # -- scoring: CTranslate2's score_batch --------------------------------------------------------
    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[Loglikelihood]:
        # CTranslate2 scores without telling which tokens were the argmax.
        return [dataclasses.replace(r, is_greedy=None) for r in super().loglikelihood(requests)]

    def sequence_logprobs(self, batch: Batch, targets: list[list[int]]) -> list[tuple[float, bool]]:
        rows = _unpad(batch)
        out: list[tuple[float, bool]] = [(0.0, False)] * len(rows)
        if self.kind == "translator":
            assert self.source is not None and self.target is not None
            todo = [i for i, t in enumerate(targets) if t]
            results = self.engine.score_batch(
                [self.source.strings(rows[i]) for i in todo], [self.target.strings(targets[i]) for i in todo],
                max_input_length=0,
            )
            for i, result in zip(todo, results):
                # The scores cover the target tokens and then the end token CTranslate2 appends.
                out[i] = (float(sum(result.log_probs[: len(targets[i])])), False)
            return out
        assert self.target is not None
        todo = [i for i, t in enumerate(targets) if t]
        # The input holds the context and all but the last target; the whole sequence is input + last target.
        results = self.engine.score_batch([self.target.strings(rows[i] + targets[i][-1:]) for i in todo],
                                          max_input_length=0)
        for i, result in zip(todo, results):
            out[i] = (float(sum(result.log_probs[len(result.log_probs) - len(targets[i]):])), False)
        return out

    # -- classification: the encoder, then the checkpoint's head -----------------------------------
    def classifier_logits(self, batch: Batch) -> list[list[float]]:
        import numpy as np

        rows = _unpad(batch)
        output = self.engine.forward_batch(rows)
        if self.device.startswith("cuda"):
            import ctranslate2

            to_cpu = lambda view: np.array(ctranslate2.StorageView.to_device(view, ctranslate2.Device.cpu))  # noqa: E731
        else:
            to_cpu = np.array
        hidden = to_cpu(output.last_hidden_state).astype(np.float32)
        pooled = to_cpu(output.pooler_output).astype(np.float32) if output.pooler_output is not None else None
        return self.head(hidden, pooled).tolist()

    # -- the rest -------------------------------------------------------------------------------
    def describe(self) -> Mapping[str, Any]:
        return dict(self._facts)

    def close(self) -> None:
        self.engine = None
