"""The metric interface: a named scorer whose numbers equal its reference implementation's.

Built-in metrics are ``evaluate`` modules shipped inside the package (loaded from their local path,
never from the Hub) wrapping sacrebleu, rouge_score and friends. A :class:`Metric` adds what the
leaderboard needs on top: a standard error for every score and a signature that says how it was
computed (sacrebleu's, for BLEU), so two numbers are only compared when they mean the same thing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Metric", "Score"]


@dataclass(frozen=True)
class Score:
    """One number with its standard error and, where the metric has one, its signature."""

    value: float
    stderr: float | None = None
    signature: str | None = None
    higher_is_better: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "stderr": self.stderr,
            "signature": self.signature,
            "higher_is_better": self.higher_is_better,
        }


class Metric(ABC):
    """Scores a corpus of predictions against references.

    ``compute`` returns one or more named scores (ROUGE gives ``rouge1``, ``rouge2``, ``rougeL``,
    ``rougeLsum``). What ``predictions`` and ``references`` hold depends on the metric: strings for
    BLEU, labels for accuracy, :class:`~llmos_hub.Loglikelihood`-like records for perplexity.

    Example::

        scores = metric.compute(["a cat"], ["a cat"], seed=0)
        scores["bleu"].value, scores["bleu"].stderr
    """

    name: str = ""
    #: The score keys :meth:`compute` returns (``("rouge1", "rouge2", ...)``), so a task file's
    #: ``primary_metric`` is checked when the file is read. Empty: checked when scored.
    score_keys: tuple[str, ...] = ()

    @abstractmethod
    def compute(
        self,
        predictions: Sequence[Any],
        references: Sequence[Any],
        *,
        seed: int = 0,
        **options: Any,
    ) -> Mapping[str, Score]:
        """Corpus-level scores with standard errors (bootstrap resampling uses ``seed``)."""

    def per_example(self, prediction: Any, reference: Any, **options: Any) -> Mapping[str, float]:
        """Scores of a single example, for ``--log-samples`` (may be empty)."""
        return {}
