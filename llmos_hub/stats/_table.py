"""The per-example table a record keeps, so two runs on the same examples can be compared pair by pair.

Built once per run from the task's :meth:`~llmos_hub.Task.example_statistics` and the runner's outputs,
and stored compactly under the record's ``per_example`` field::

    {"ids": [...],                                 # example ids, in the run's (dataset) order
     "outputs": ["3f0a…", ...],                    # a 16-hex digest of each example's answer
     "loglikelihoods": [[-12.5], ...],             # each example's summed log-probabilities, if any
     "scores": {"accuracy": {"kind": "binary", "values": [1, 0, ...]},
                "rougeL": {"kind": "mean", "values": [0.4, ...]},
                "chrf": {"kind": "corpus", "metric": "chrf", "options": {}, "statistics": "chrf"}},
     "statistics": {"chrf": [[...], ...]}}         # corpus statistics, shared by the keys that use them

Digests make backend parity countable (identical answers have identical digests) without keeping the
texts; the samples file (``--log-samples``) keeps the texts themselves.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .._result import values_problem
from ..errors import LlmosHubError

__all__ = ["example_table", "output_digest", "output_loglikelihoods"]


def _plain(output: Any, labels: Sequence[str] | None) -> Any:
    """What an answer *is*, as JSON: generated text and tokens, a predicted label, a log-likelihood."""
    if isinstance(output, (list, tuple)) and output and all(isinstance(v, (int, float)) for v in output):
        best = max(range(len(output)), key=output.__getitem__)  # classifier logits: the predicted label
        return {"label": labels[best] if labels and len(labels) == len(output) else best}
    if isinstance(output, (list, tuple)):
        return [_plain(o, labels) for o in output]
    if hasattr(output, "text") and hasattr(output, "token_ids"):
        return {"text": output.text, "tokens": list(output.token_ids)}
    if hasattr(output, "logprob") and hasattr(output, "num_tokens"):
        # Log-likelihoods are compared to 6 significant digits; their exact gap is in "loglikelihoods".
        return {"logprob": f"{float(output.logprob):.5e}", "tokens": int(output.num_tokens),
                "greedy": getattr(output, "is_greedy", None)}
    if isinstance(output, str):
        return {"text": output}
    return {"repr": repr(output)}


def output_digest(output: Any, labels: Sequence[str] | None = None) -> str:
    """A 16-hex-digit digest of one example's answer (equal answers, equal digests)."""
    text = json.dumps(_plain(output, labels), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def output_loglikelihoods(output: Any) -> list[float]:
    """The summed log-probabilities in one example's answer (several for a multiple-choice example)."""
    if isinstance(output, (list, tuple)):
        return [v for o in output for v in output_loglikelihoods(o)]
    logprob = getattr(output, "logprob", None)
    return [float(logprob)] if isinstance(logprob, (int, float)) and math.isfinite(logprob) else []


def example_table(
    task: Any,
    examples: Sequence[Any],
    outputs: Sequence[Any],
    *,
    formulation: str,
    labels: Sequence[str] | None = None,
) -> dict[str, Any] | None:
    """The ``per_example`` field of a run's record, or None when there are no examples.

    ``outputs`` holds each example's answers (a list per example, as the bench collects them).
    """
    n = len(examples)
    try:
        entries = dict(task.example_statistics(examples, outputs, formulation=formulation, labels=labels))
    except (LlmosHubError, NotImplementedError, AttributeError):
        entries = {}
    table: dict[str, Any] = {
        "ids": [str(ex.id) for ex in examples],
        "outputs": [output_digest(o, labels) for o in outputs],
    }
    lls = [output_loglikelihoods(o) for o in outputs]
    if any(lls):
        table["loglikelihoods"] = lls
    scores: dict[str, Any] = {}
    statistics: dict[str, list[Any]] = {}
    for key, entry in sorted(entries.items()):
        kind, values = entry.get("kind"), list(entry.get("values", []))
        if kind not in ("binary", "mean", "corpus") or len(values) != n or values_problem(kind, values):
            continue  # malformed or non-finite data is left out rather than stored (a read would refuse it)
        if kind != "corpus":
            scores[key] = {"kind": kind, "values": values}
            continue
        if not entry.get("metric"):
            continue
        name = str(entry["metric"])
        if name in statistics and statistics[name] != values:
            name = key
        statistics[name] = values
        scores[key] = {"kind": "corpus", "metric": str(entry["metric"]), "options": dict(entry.get("options") or {}),
                       "statistics": name}
    table["scores"] = scores
    if statistics:
        table["statistics"] = statistics
    return table if n else None


def table_of(record_data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A record's per-example table, if it has one."""
    table = record_data.get("per_example")
    return table if isinstance(table, Mapping) else None
