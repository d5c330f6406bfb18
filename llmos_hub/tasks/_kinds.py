"""The four task kinds: what each needs from a model, asks of a runner and is scored with by default."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._model import Capability

__all__ = ["KINDS", "METRIC_KEYS", "Kind"]


@dataclass(frozen=True)
class Kind:
    """A task kind: the capability it needs, the request it makes and its default metrics."""

    name: str
    capability: Capability
    request_kind: str
    default_metrics: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    default_primary: str = ""

    @property
    def generates(self) -> bool:
        return self.request_kind == "generate"

    @property
    def has_labels(self) -> bool:
        return self.request_kind == "classify"


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("classification", Capability.CLASSIFIER, "classify", {"accuracy": {}, "f1": {}}, "accuracy"),
        Kind("translation", Capability.SEQ2SEQ, "generate", {"chrf": {}, "bleu": {}}, "chrf"),
        Kind("summarization", Capability.SEQ2SEQ, "generate", {"rouge": {"use_stemmer": True}}, "rougeL"),
        Kind(
            "language-modelling",
            Capability.CAUSAL_LM,
            "loglikelihood_rolling",
            {"perplexity": {}},
            "word_perplexity",
        ),
    )
}

#: The score keys each built-in metric returns, to check ``primary_metric`` when a file is read.
#: Metrics from plugins are not listed; a task using one is checked when it is scored.
METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy",),
    "f1": ("macro_f1",),
    "multiple_choice": ("acc", "acc_norm", "acc_bytes"),
    "bleu": ("bleu",),
    "chrf": ("chrf",),
    "rouge": ("rouge1", "rouge2", "rougeL", "rougeLsum"),
    "perplexity": ("token_perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte"),
}
