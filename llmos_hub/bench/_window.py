"""Examples longer than the model's window: cut as lm-evaluation-harness cuts them, said, and counted.

The shared engine (:class:`~llmos_hub.decoding.StepRunner`) fits every request into the model's
``max_length`` tokens. Log-likelihood contexts and causal prompts are cut the way lm-evaluation-harness's
``HFLM`` cuts them: they keep their end (``(context + continuation)[-(max_length + 1):][:-1]`` for a causal
model, the context's last ``max_length`` tokens for a seq2seq one, and a generation prompt its last
``max_length - max_new_tokens`` tokens). A seq2seq model's generation source and a classified text keep
their start instead (a text's lead carries its gist; lm-evaluation-harness keeps a source's end), and the
warning says which rule cut. A rolling log-likelihood is split into windows that score every token once,
so it is never cut. That
cut used to be silent. :func:`fit_to_window` runs after the model loads and before any request is
answered, and finds each example that will be cut and by how many tokens; :func:`report_truncated`
prints one warning line per run naming the task and those examples, and the record keeps them
(``task.truncated_examples``). An example whose *scored* tokens alone do not fit (a continuation
longer than the window, as lm-evaluation-harness asserts) cannot be cut into a meaningful score and
is refused, naming it.

Hostile sizes never get here: a data field longer than ``LLMOS_HUB_MAX_EXAMPLE_CHARS`` characters is
refused when the task's data is read, before any tokenizer sees it (:mod:`llmos_hub.tasks._examples`).
Texts too short to exceed the window (fewer UTF-8 bytes than the window has tokens, with room for the
few special tokens a tokenizer adds) are not tokenized here at all.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from .._model import Capability, LoadedModel
from .._requests import ClassifyRequest, GenerateRequest, LoglikelihoodRequest, Request
from .._windows import encode_pair
from ..errors import DataError

__all__ = ["cut_rule", "fit_to_window", "report_truncated", "truncated_summary"]

#: How each kind of request is cut, as the warning line says it.
KEEP_END = "each keeping its end, as lm-evaluation-harness cuts them"
KEEP_START = "each keeping its start (lm-evaluation-harness keeps a source's end)"

#: Tokens a tokenizer may add beyond one per byte (BOS, a leading-space marker, a task prefix's end).
_SLACK = 16
#: Example ids named in the warning line and kept in the record.
_NAMED = 5
_KEPT = 100


def _bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def fit_to_window(model: LoadedModel, task_name: str, example_ids: Sequence[str],
                  per_example: Sequence[Sequence[Request]], indices: Sequence[int] | None = None) -> dict[str, int]:
    """``{example id: tokens cut}`` for the examples (``indices``, default all) that exceed the window.

    Raises :class:`DataError` naming the first example whose scored tokens alone exceed the window.
    """
    limit = int(getattr(model, "max_length", 0) or 0)
    tokenizer = getattr(model, "tokenizer", None)
    if limit < 2 or tokenizer is None:
        return {}
    seq2seq = model.supports(Capability.SEQ2SEQ)
    cut: dict[str, int] = {}
    for i in (range(len(per_example)) if indices is None else indices):
        worst = 0
        for request in per_example[i]:
            worst = max(worst, _tokens_cut(request, model, tokenizer, limit, seq2seq, task_name, example_ids[i]))
        if worst > 0:
            cut[str(example_ids[i])] = worst
    return cut


def cut_rule(model: LoadedModel, per_example: Sequence[Sequence[Request]]) -> str:
    """The words the warning uses for how this run's requests are cut (see the module docstring)."""
    start = any(isinstance(r, ClassifyRequest) or (isinstance(r, GenerateRequest) and model.supports(Capability.SEQ2SEQ))
                for requests in per_example[:1] for r in requests)
    return KEEP_START if start else KEEP_END


def _encoder(tokenizer: Any, name: str) -> Any:
    return getattr(tokenizer, name, None) or tokenizer.encode


def _tokens_cut(request: Request, model: LoadedModel, tokenizer: Any, limit: int, seq2seq: bool, task: str,
                example: str) -> int:
    if isinstance(request, GenerateRequest):
        if seq2seq:
            if _bytes(request.text) + _SLACK <= limit:
                return 0
            return max(0, len(_encoder(tokenizer, "encode_source")(request.text)) - limit)
        keep = limit - min(request.config.max_new_tokens, limit - 1)
        if _bytes(request.text) + _SLACK <= keep:
            return 0
        return max(0, len(tokenizer.encode(request.text)) - keep)
    if isinstance(request, LoglikelihoodRequest):
        context, continuation = request.context, request.continuation
        if seq2seq:
            target = 0 if _bytes(continuation) + _SLACK <= limit - 1 else len(
                _encoder(tokenizer, "encode_target")(continuation))
            if target > limit - 1:
                raise _refused(task, example, model, target, limit - 1)
            if _bytes(context) + _SLACK <= limit:
                return 0
            return max(0, len(_encoder(tokenizer, "encode_source")(context)) - limit)
        if _bytes(context) + _bytes(continuation) + _SLACK <= limit:
            return 0
        if context:
            ctx, cont = encode_pair(tokenizer.encode, context, continuation)
        else:
            ctx, cont = [0], list(tokenizer.encode(continuation))
        if len(cont) > limit:
            raise _refused(task, example, model, len(cont), limit)
        return max(0, len(ctx) + len(cont) - (limit + 1))
    if isinstance(request, ClassifyRequest):
        if _bytes(request.text) + _SLACK <= limit:
            return 0
        return max(0, len(tokenizer.encode(request.text)) - limit)
    return 0  # rolling log-likelihood: split into windows, every token scored once, nothing cut


def _refused(task: str, example: str, model: LoadedModel, tokens: int, limit: int) -> DataError:
    return DataError(f"task {task}, example {example}: the part to score is {tokens} tokens, more than "
                     f"{model.name}'s window of {limit}; cutting it would change what is scored, so it is "
                     "refused: shorten or drop the example, or use a model with a longer window")


def report_truncated(task: str, model: str, limit: int, cut: Mapping[str, int], rule: str = KEEP_END) -> None:
    """One warning line on stderr for a run that cut examples (nothing when none was cut); ``rule``:
    :func:`cut_rule`'s words for how they were cut."""
    if not cut:
        return
    named = ", ".join(f"{ex} (-{n})" for ex, n in list(cut.items())[:_NAMED])
    more = f" and {len(cut) - _NAMED} more" if len(cut) > _NAMED else ""
    sys.stderr.write(f"warning: task {task} on {model}: {len(cut)} example(s) longer than the model's window of "
                     f"{limit} tokens were cut to fit, {rule} (tokens cut): "
                     f"{named}{more}; the record counts them in task.truncated_examples\n")
    sys.stderr.flush()


def truncated_summary(cut: Mapping[str, int]) -> dict[str, Any]:
    """The record's ``task.truncated_examples``: how many, tokens cut in all, and the first ids with theirs."""
    return {"count": len(cut), "tokens_cut": int(sum(cut.values())),
            "examples": {str(k): int(v) for k, v in list(cut.items())[:_KEPT]}}
