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
        """The record's form of a score (JSON types only)."""
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
    #: The options a task file may set (``metrics: {name: {option: value}}``) with their defaults,
    #: e.g. ``{"strip": True}``. Declared, they are checked when a bench plans, before any model
    #: loads: an unknown name (a typo that would silently change nothing) or a value of another type
    #: than the default's is refused. ``None``: not declared, options reach :meth:`compute` unchecked.
    options: Mapping[str, Any] | None = None

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

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Refuse option values :meth:`compute` could not use, before any model loads.

        A bench calls it while it plans, with a task file's ``metrics: {name: {...}}`` once their names
        and types passed the check against :attr:`options`: a tokenizer name sacrebleu lacks would
        otherwise fail only after the model ran. Raise :class:`~llmos_hub.UsageError` naming the option
        and the values it takes. The default accepts every value.
        """

    def example_statistics(
        self, predictions: Sequence[Any], references: Sequence[Any], **options: Any
    ) -> Mapping[str, Mapping[str, Any]]:
        """Per-example data that paired significance tests need, per score key (may be empty).

        Each entry is ``{"kind": K, "values": [...]}`` with one value per example, in order:

        - ``"binary"``: 0/1 per example; the score is their mean (accuracy). Compared with the exact
          McNemar test.
        - ``"mean"``: a number per example; the score is their mean (ROUGE). Compared with a paired
          sign-flip permutation test.
        - ``"corpus"``: a row of sufficient statistics per example; the score is
          :meth:`score_from_statistics` of their column sums (BLEU, chrF, perplexity). Compared with a
          paired bootstrap over examples.
        """
        return {}

    def score_from_statistics(self, key: str, sums: Any, **options: Any) -> Any:
        """Score ``key`` for each row of summed ``"corpus"`` statistics (a resamples × k array)."""
        raise NotImplementedError(f"metric {self.name!r} does not score from statistics")
