"""The built-in metrics: ``evaluate`` modules shipped in ``modules/`` and their llmos-hub wrappers.

``BUILTIN_METRICS`` names every metric and says what it computes; ``load_metric(name)`` returns the
:class:`llmos_hub.Metric` that the ``llmos_hub.builtins.metrics`` plugin registers. Nothing here
imports ``evaluate`` (seconds) or numpy: the wrappers load lazily, and each loads its ``evaluate``
module from its local folder on first ``compute``, so ``llmos-hub list metrics`` stays fast.

Score keys: ``bleu``; ``chrf``; ``rouge1``/``rouge2``/``rougeL``/``rougeLsum``; ``accuracy``;
``macro_f1``; ``acc``/``acc_norm``/``acc_bytes`` (multiple choice);
``token_perplexity``/``word_perplexity``/``byte_perplexity``/``bits_per_byte``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import UnknownNameError

if TYPE_CHECKING:
    from .._metric import Metric

__all__ = ["BUILTIN_METRICS", "load_metric"]

BUILTIN_METRICS: dict[str, str] = {
    "accuracy": "fraction of exact label matches; stderr sqrt(p(1-p)/n)",
    "bleu": "corpus BLEU equal to sacrebleu.corpus_bleu, with its signature; bootstrap stderr",
    "chrf": "corpus chrF (chrF++ with the option word_order: 2) equal to sacrebleu.corpus_chrf; bootstrap stderr",
    "f1": "macro-F1 over labels seen in references or predictions; bootstrap stderr",
    "multiple_choice": "acc / acc_norm / acc_bytes of per-choice log-likelihoods as lm-evaluation-harness; "
    "stderr of the mean",
    "perplexity": "token/word/byte perplexity and bits per byte as lm-evaluation-harness; bootstrap stderr",
    "rouge": "ROUGE-1/2/L/Lsum mean F-measure from rouge_score; stderr of the mean",
}

#: name -> (private module, class) implementing it.
_CLASSES: dict[str, tuple[str, str]] = {
    "accuracy": ("._classification", "Accuracy"),
    "bleu": ("._translation", "Bleu"),
    "chrf": ("._translation", "Chrf"),
    "f1": ("._classification", "MacroF1"),
    "multiple_choice": ("._multiple_choice", "MultipleChoice"),
    "perplexity": ("._perplexity", "Perplexity"),
    "rouge": ("._rouge", "Rouge"),
}


def load_metric(name: str) -> Metric:
    """A new wrapper for the built-in metric ``name`` (cheap: its evaluate module loads on first use)."""
    if name not in _CLASSES:
        raise UnknownNameError("metric", name, BUILTIN_METRICS)
    module_name, class_name = _CLASSES[name]
    cls = getattr(importlib.import_module(module_name, __name__), class_name)
    metric: Metric = cls()
    return metric
