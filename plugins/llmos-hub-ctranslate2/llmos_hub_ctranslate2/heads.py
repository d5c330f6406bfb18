"""Sequence-classification heads, applied in numpy to the output of ``ctranslate2.Encoder``.

CTranslate2's converter keeps an encoder (and BERT's pooler) but drops the classification head, so
the head's weights are read from the checkpoint's safetensors files and applied here, in float32,
exactly as transformers applies them at inference (dropout off):

- ``bert``: ``logits = classifier(pooler_output)`` (the pooler is a tanh layer on the first token);
- ``distilbert``: ``classifier(relu(pre_classifier(h[:, 0])))``;
- ``roberta`` (also XLM-R, CamemBERT): ``out_proj(tanh(dense(h[:, 0])))``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from llmos_hub import DataError

__all__ = ["classifier_head"]

_TENSORS = {
    "bert": ("classifier.weight", "classifier.bias"),
    "distilbert": ("pre_classifier.weight", "pre_classifier.bias", "classifier.weight", "classifier.bias"),
    "roberta": ("classifier.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight", "classifier.out_proj.bias"),
}


def _read(weights: Sequence[Path], names: Sequence[str], where: str) -> dict[str, Any]:
    from safetensors import safe_open

    found: dict[str, Any] = {}
    for path in weights:
        with safe_open(str(path), framework="pt") as handle:
            for name in set(names) & set(handle.keys()):
                found[name] = handle.get_tensor(name).float().numpy()
    missing = [n for n in names if n not in found]
    if missing:
        raise DataError(f"{where}: the classification head's tensor {missing[0]} is not in the weights")
    return found


def classifier_head(kind: str, weights: Sequence[Path], where: str) -> Callable[[Any, Any], Any]:
    """``head(last_hidden_state, pooler_output) -> logits`` for a head of ``kind``."""
    import numpy as np

    t = _read(weights, _TENSORS[kind], where)

    def linear(x: Any, prefix: str) -> Any:
        return x @ t[f"{prefix}.weight"].T + t[f"{prefix}.bias"]

    if kind == "bert":
        def bert(hidden: Any, pooled: Any) -> Any:
            if pooled is None:
                raise DataError(f"{where}: the converted encoder has no pooler output, which a BERT head needs")
            return linear(pooled, "classifier")
        return bert
    if kind == "distilbert":
        return lambda hidden, pooled: linear(np.maximum(linear(hidden[:, 0], "pre_classifier"), 0.0), "classifier")
    return lambda hidden, pooled: linear(np.tanh(linear(hidden[:, 0], "classifier.dense")), "classifier.out_proj")
