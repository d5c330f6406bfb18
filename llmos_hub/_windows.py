"""How texts become the token windows a model scores, exactly as lm-evaluation-harness builds them.

Perplexities are only comparable with published numbers when every token is scored the same way, so
these helpers follow lm-evaluation-harness (``lm_eval.utils.get_rolling_token_windows``,
``make_disjoint_window`` and ``HFLM._encode_pair``) line for line. They are pure functions on lists of
token ids: no torch, no tokenizer state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["encode_pair", "rolling_windows"]


def rolling_windows(
    tokens: Sequence[int], max_length: int, prefix_token: int
) -> list[tuple[list[int], list[int]]]:
    """Split ``tokens`` into ``(context, continuation)`` windows that score every token exactly once.

    The first window is ``[prefix_token] + tokens[:max_length - 1]`` predicting ``tokens[:max_length]``;
    each later window predicts the next ``<= max_length`` tokens given as many preceding tokens as fit
    in a window of ``max_length`` inputs. ``context + continuation[:-1]`` is the model's input (at most
    ``max_length`` tokens) and the continuation is what is scored.

    Example::

        >>> rolling_windows([5, 6, 7], 2, 0)
        [([0], [5, 6]), ([6], [7])]
    """
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}")
    tokens = list(tokens)
    if not tokens:
        return []
    windows: list[tuple[list[int], list[int]]] = []
    first = min(max_length, len(tokens))
    windows.append(_disjoint([prefix_token] + tokens[: first - 1], tokens[:first]))
    predicted = first
    while predicted < len(tokens):
        pred_len = min(len(tokens) - predicted, max_length)
        end = predicted + pred_len
        windows.append(_disjoint(tokens[end - max_length - 1 : end - 1], tokens[end - pred_len : end]))
        predicted += pred_len
    return windows


def _disjoint(inputs: list[int], targets: list[int]) -> tuple[list[int], list[int]]:
    """``make_disjoint_window``: the inputs minus the part the targets already hold."""
    return inputs[: len(inputs) - (len(targets) - 1)], targets


def encode_pair(
    encode: Callable[[str], list[int]], context: str, continuation: str
) -> tuple[list[int], list[int]]:
    """Token ids of ``context`` and ``continuation`` as lm-evaluation-harness splits them.

    Trailing spaces of the context move to the continuation, the whole string is encoded once and the
    continuation is what follows the context's own encoding, so a BPE merge across the boundary does
    not change the continuation's tokens from what the model would see in running text.
    """
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = encode(context + continuation)
    context_ids = encode(context)
    return context_ids, whole[len(context_ids) :]
