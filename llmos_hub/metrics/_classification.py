"""Accuracy and macro-F1 over labels of any hashable type.

Labels are mapped to integer ids (by Python equality) before they reach the ``evaluate`` modules,
so ``"1"`` and ``1`` stay different labels and no string form is guessed. Accuracy's standard error
is analytic, sqrt(p(1-p)/n); macro-F1 has no closed form, so it is bootstrapped: per-label counts
of references, predictions and agreements are resampled and F1 = 2·TP/(R+P) is recomputed per label,
averaged over the labels present in the resample.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from .._metric import Score
from ..errors import UsageError
from ._base import EvaluateMetric, score
from ._stderr import bootstrap_stderr, proportion_stderr


class _LabelMetric(EvaluateMetric):
    options: Mapping[str, Any] = {}

    def _encode(
        self, predictions: Sequence[Any], references: Sequence[Any]
    ) -> tuple[list[int], list[int], int]:
        """Both label lists as integer ids, and the number of distinct labels."""
        ids: dict[Hashable, int] = {}
        encoded: list[list[int]] = [[], []]
        for out, values, what in (
            (encoded[0], predictions, "predictions"),
            (encoded[1], references, "references"),
        ):
            for i, label in enumerate(values):
                try:
                    hash(label)
                except TypeError:
                    label = None  # reported below
                if label is None or isinstance(label, float) and math.isnan(label):
                    raise UsageError(
                        f"metric {self.name!r} needs hashable, non-missing labels; "
                        f"{what} item {i} is {values[i]!r}"
                    )
                out.append(ids.setdefault(label, len(ids)))
        return encoded[0], encoded[1], len(ids)


class Accuracy(_LabelMetric):
    """Fraction of exact label matches (0-1), standard error sqrt(p(1-p)/n)."""

    name = "accuracy"
    score_keys = ("accuracy",)
    module_name = "accuracy"

    def compute(
        self,
        predictions: Sequence[Any],
        references: Sequence[Any],
        *,
        seed: int = 0,
        **options: Any,
    ) -> Mapping[str, Score]:
        self._options(options)
        n = self._check_lengths(predictions, references)
        preds, refs, _ = self._encode(predictions, references)
        value = self._evaluate(predictions=preds, references=refs)["accuracy"]
        return {"accuracy": score(value, proportion_stderr(value, n))}

    def per_example(self, prediction: Any, reference: Any, **options: Any) -> dict[str, float]:
        """1.0 when the label is right, else 0.0."""
        self._options(options)
        return {"correct": float(prediction == reference)}


class MacroF1(_LabelMetric):
    """Macro-averaged F1 (0-1) over the labels seen in references or predictions; bootstrapped stderr."""

    name = "f1"
    score_keys = ("macro_f1",)
    module_name = "f1"

    def compute(
        self,
        predictions: Sequence[Any],
        references: Sequence[Any],
        *,
        seed: int = 0,
        **options: Any,
    ) -> Mapping[str, Score]:
        self._options(options)
        self._check_lengths(predictions, references)
        preds, refs, num_labels = self._encode(predictions, references)
        value = self._evaluate(predictions=preds, references=refs)["macro_f1"]
        stderr = bootstrap_stderr(
            label_statistics(preds, refs, num_labels), macro_f1_of_sums, seed=seed, resamples=self.resamples
        )
        return {"macro_f1": score(value, stderr)}

    def per_example(self, prediction: Any, reference: Any, **options: Any) -> dict[str, float]:
        """F1 is not defined per example; the example's correctness is what feeds it."""
        self._options(options)
        return {"correct": float(prediction == reference)}


def label_statistics(predictions: Sequence[int], references: Sequence[int], num_labels: int) -> np.ndarray:
    """Per example, one-hot rows [reference is l | prediction is l | both are l] over labels l."""
    n = len(predictions)
    refs = np.zeros((n, num_labels))
    preds = np.zeros((n, num_labels))
    refs[np.arange(n), references] = 1.0
    preds[np.arange(n), predictions] = 1.0
    return np.hstack([refs, preds, refs * preds])


def macro_f1_of_sums(sums: np.ndarray) -> np.ndarray:
    """Macro-F1 per row of summed :func:`label_statistics`; labels absent from a row are left out."""
    refs, preds, both = np.split(sums, 3, axis=1)
    present = (refs + preds) > 0
    f1 = np.where(present, 2.0 * both / np.where(present, refs + preds, 1.0), 0.0)
    return f1.sum(axis=1) / present.sum(axis=1)
