"""Which checkpoints CTranslate2 can run, decided from ``config.json`` alone, before anything loads.

CTranslate2's transformers converter registers one loader per config class; each loader builds one of
three model kinds, run by one CTranslate2 class:

=============== ====================== ==========================================================
kind            CTranslate2 class      llmos-hub capability
=============== ====================== ==========================================================
``generator``   ``ctranslate2.Generator``  causal LM (generate, log-likelihood, rolling)
``translator``  ``ctranslate2.Translator`` seq2seq (generate, log-likelihood of a target)
``encoder``     ``ctranslate2.Encoder``    classifier, with the head applied here (the converter
                                           keeps the encoder and pooler only)
=============== ====================== ==========================================================

The table below mirrors the registry of ctranslate2 4.8 (``ctranslate2.converters.transformers``),
by ``model_type``; a test checks it against the installed converter. Importing the converter takes
seconds (it imports torch and transformers), which is why the bench's early check reads this table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmos_hub import Capability, ModelInfo

__all__ = ["CLASSIFIER_HEADS", "KINDS", "engine_kind", "refusal"]

_GENERATORS = (
    "bloom", "codegen", "falcon", "gemma", "gemma2", "gemma3", "gemma3_text", "gpt2", "gpt_bigcode", "gptj",
    "gpt_neox", "llama", "mistral", "opt", "phi", "phi3", "qwen2", "qwen3",
)
_TRANSLATORS = ("bart", "m2m_100", "marian", "mbart", "mt5", "pegasus", "t5", "umt5")
_ENCODERS = ("bert", "camembert", "distilbert", "roberta", "xlm-roberta")

#: ``model_type`` -> the CTranslate2 model kind its converter builds.
KINDS: dict[str, str] = {
    **{t: "generator" for t in _GENERATORS},
    **{t: "translator" for t in _TRANSLATORS},
    **{t: "encoder" for t in _ENCODERS},
}

#: Sequence-classification heads this backend applies on top of CTranslate2's encoder output, by
#: architecture: ``pooler`` (BERT: a linear layer on the pooled output) or ``first-token`` heads.
CLASSIFIER_HEADS: dict[str, str] = {
    "BertForSequenceClassification": "bert",
    "DistilBertForSequenceClassification": "distilbert",
    "RobertaForSequenceClassification": "roberta",
    "XLMRobertaForSequenceClassification": "roberta",
    "CamembertForSequenceClassification": "roberta",
}

_WANTS = {Capability.CAUSAL_LM: "generator", Capability.SEQ2SEQ: "translator", Capability.CLASSIFIER: "encoder"}


def engine_kind(config: Mapping[str, Any]) -> str | None:
    """The CTranslate2 kind for a checkpoint with this ``config.json`` (``None``: no converter)."""
    return KINDS.get(str(config.get("model_type")))


def read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def refusal(info: ModelInfo) -> str | None:
    """Why CTranslate2 cannot run the model ``info`` describes (one line), or ``None``."""
    artifacts = info.artifacts
    if artifacts is None or artifacts.layout != "transformers":
        layout = artifacts.layout if artifacts is not None else "unknown"
        if layout == "nano":
            return ("backend ctranslate2 converts transformers checkpoints (config.json + safetensors); a nano "
                    "checkpoint is in llmos-hub's own layout, which CTranslate2's converter does not read; "
                    "run nano models with --backend pytorch or onnxruntime")
        if info.backends:
            only = ", ".join(info.backends)
            return (f"backend ctranslate2 converts transformers checkpoints (config.json + safetensors); this model "
                    f"has no such files and runs only on backend {only}; use --backend {info.backends[0]}")
        if artifacts is None:
            return ("backend ctranslate2 converts transformers checkpoints (config.json + safetensors); this model's "
                    "family hands out no files to convert; use --backend pytorch")
        return (f"backend ctranslate2 converts transformers checkpoints (config.json + safetensors); this "
                f"model's files are in the {layout} layout; use --backend pytorch")
    if artifacts.weights_format != "safetensors":
        return f"backend ctranslate2 converts safetensors weights only, not {artifacts.weights_format}"
    config = read_config(artifacts.config_file) if artifacts.config_file is not None else {}
    model_type = config.get("model_type")
    kind = engine_kind(config)
    if kind is None:
        return (f"CTranslate2's converter has no loader for model_type {model_type!r}; it converts "
                f"{', '.join(sorted(KINDS))}; use --backend pytorch")
    architecture = str((config.get("architectures") or ["?"])[0])
    heads = (config.get("encoder_attention_heads"), config.get("decoder_attention_heads"))
    if kind == "translator" and None not in heads and heads[0] != heads[1]:
        return (f"CTranslate2's {model_type} converter gives the encoder and decoder one head count; this "
                f"checkpoint has {heads[0]} encoder and {heads[1]} decoder attention heads; use --backend pytorch")
    for capability in info.capabilities:
        wanted = _WANTS.get(capability)
        if wanted != kind:
            return (f"CTranslate2 converts {model_type} checkpoints to a {kind}, which cannot run {architecture} "
                    f"as a {capability} model; use --backend pytorch")
        if capability is Capability.CLASSIFIER and architecture not in CLASSIFIER_HEADS:
            return (f"backend ctranslate2 applies the classification heads of {', '.join(sorted(CLASSIFIER_HEADS))}, "
                    f"not {architecture}; use --backend pytorch")
    return None
