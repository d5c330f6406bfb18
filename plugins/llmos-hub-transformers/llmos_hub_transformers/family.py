"""The ``hf`` model family: ``hf:/path/to/folder`` or ``hf:namespace/name[@revision]``.

A checkpoint's capability comes from its ``config.json`` alone (``architectures``, else
``model_type``), so the bench can refuse a model/task mismatch before any weights move. Loading
picks the matching auto class (causal LM, seq2seq LM, sequence classifier), loads safetensors
weights in float32 (the backend casts) with ``trust_remote_code`` off, and wraps the model in the
modules of :mod:`llmos_hub_transformers.modules`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmos_hub import Capability, DataError, LoadedModel, ModelFamily, Provenance

from .source import Source, hub_config, parse_ref, read_config, resolve, weight_files, weights_sha256

__all__ = ["HFFamily", "capability_of"]

_FALLBACK_MAX_LENGTH = 1024
_SUFFIXES = (
    (Capability.CLASSIFIER, ("ForSequenceClassification",)),
    (Capability.SEQ2SEQ, ("ForConditionalGeneration",)),
    (Capability.CAUSAL_LM, ("ForCausalLM", "LMHeadModel")),
)


def _names(mapping: Mapping[str, Any]) -> set[str]:
    out: set[str] = set()
    for value in mapping.values():
        out.update(value if isinstance(value, (list, tuple)) else [value])
    return out


def _known_architectures() -> dict[Capability, tuple[set[str], set[str]]]:
    """For each capability, ``(class names, model types)`` transformers' auto classes map to it."""
    from transformers.models.auto import modeling_auto as auto

    tables = {
        Capability.CLASSIFIER: auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
        Capability.SEQ2SEQ: auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
        Capability.CAUSAL_LM: auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    }
    return {cap: (_names(table), set(table)) for cap, table in tables.items()}


def capability_of(config: Mapping[str, Any], where: str = "the model") -> Capability:
    """What a checkpoint with this ``config.json`` can do, from its architecture's class name."""
    known = _known_architectures()
    architectures = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    encoder_decoder = bool(config.get("is_encoder_decoder"))
    for arch in architectures:
        for capability, suffixes in _SUFFIXES:
            if capability is Capability.SEQ2SEQ and not encoder_decoder and arch not in known[capability][0]:
                continue  # vision-language "...ForConditionalGeneration" models are not seq2seq LMs
            if arch in known[capability][0] or arch.endswith(suffixes):
                return capability
    model_type = config.get("model_type")
    if not architectures:
        if encoder_decoder and model_type in known[Capability.SEQ2SEQ][1]:
            return Capability.SEQ2SEQ
        if model_type in known[Capability.CAUSAL_LM][1]:
            return Capability.CAUSAL_LM
        raise DataError(f"{where}: config.json names no architectures; add e.g. \"architectures\": [\"...ForCausalLM\"]")
    raise DataError(
        f"{where}: {', '.join(architectures)} is not a causal LM, seq2seq LM or sequence classifier; "
        "the hf family loads only those"
    )


def _auto_class(capability: Capability) -> Any:
    import transformers

    return {
        Capability.CAUSAL_LM: transformers.AutoModelForCausalLM,
        Capability.SEQ2SEQ: transformers.AutoModelForSeq2SeqLM,
        Capability.CLASSIFIER: transformers.AutoModelForSequenceClassification,
    }[capability]


def _cache_geometry(model: Any, capability: Capability, tokenizer: Any) -> tuple[int, int, int]:
    """``(layers, kv_heads, head_dim)`` of the model's self-attention cache, read off one probe step.

    Reading the cache the model really builds is exact where config names disagree (T5's ``d_kv``,
    grouped-query heads, an explicit ``head_dim``); it also refuses caches that are not one key and
    one value tensor per layer (linear attention, state-space layers), which one cache tensor
    cannot carry.
    """
    import torch
    from transformers import DynamicCache, EncoderDecoderCache

    one = torch.full((1, 1), int(tokenizer.pad_id), dtype=torch.long)
    with torch.inference_mode():
        if capability is Capability.SEQ2SEQ:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
            out = model(input_ids=one, attention_mask=torch.ones_like(one), decoder_input_ids=one,
                        past_key_values=cache, use_cache=True)
            layers = out.past_key_values.self_attention_cache.layers
        else:
            out = model(input_ids=one, attention_mask=torch.ones_like(one), past_key_values=DynamicCache(),
                        use_cache=True)
            layers = out.past_key_values.layers
    shapes = {tuple(getattr(layer, "keys", torch.empty(0)).shape) for layer in layers}
    if len(shapes) != 1 or len(next(iter(shapes))) != 4:
        raise DataError(
            f"{type(model).__name__}: its cache is not one key/value tensor per layer of one shape "
            "(hybrid, sliding or linear attention?), which the llmos-hub module convention cannot carry"
        )
    _, heads, _, head_dim = next(iter(shapes))
    return len(layers), int(heads), int(head_dim)


def _max_length(config: Any, tokenizer: Any) -> int:
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        return limit
    return _FALLBACK_MAX_LENGTH


def _labels(config: Any) -> list[str]:
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(int(config.num_labels))]


def _decoder_start(model: Any, tokenizer: Any, where: str) -> int:
    generation = getattr(model, "generation_config", None)
    for value in (getattr(model.config, "decoder_start_token_id", None),
                  getattr(generation, "decoder_start_token_id", None)):
        if isinstance(value, int):
            return value
    raise DataError(f"{where}: config.json has no decoder_start_token_id, needed to start seq2seq decoding")


class HFFamily(ModelFamily):
    """Loads ``transformers`` checkpoints (safetensors only); answers capabilities from ``config.json``."""

    name = "hf"

    def capabilities(self, ref: str) -> frozenset[Capability] | None:
        source = parse_ref(ref)
        if source.folder is not None:
            config = read_config(source.folder)
        else:
            config = hub_config(str(source.repo_id), source.revision)
        return frozenset({capability_of(config, f"hf:{ref}")})

    def load(self, ref: str, *, revision: str | None = None) -> LoadedModel:
        source = parse_ref(ref, revision)
        resolved = resolve(source)
        where = f"hf:{ref}"
        capability = capability_of(read_config(resolved.folder), where)
        files = weight_files(resolved.folder)
        sha256, per_file = weights_sha256(files)
        model, tokenizer = _load(resolved.folder, capability, where)
        return _loaded(self.name, ref, source, resolved, capability, model, tokenizer, sha256, per_file)


def _load(folder: Path, capability: Capability, where: str) -> tuple[Any, Any]:
    import torch
    import transformers

    from .tokenizer import HFTokenizer

    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the bench draws its own progress; a per-load bar is noise
    try:
        model = _auto_class(capability).from_pretrained(
            folder, dtype=torch.float32, use_safetensors=True, trust_remote_code=False, local_files_only=True,
        )
        hf_tokenizer = transformers.AutoTokenizer.from_pretrained(
            folder, trust_remote_code=False, local_files_only=True,
        )
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise DataError(f"{where}: transformers cannot load it: {first[:300]}") from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if len(hf_tokenizer) < 2:  # transformers builds an empty tokenizer when the files are missing
        raise DataError(f"{where}: {folder} has no tokenizer files (tokenizer.json, or vocab/merges/*.model); add them")
    model.eval()
    tokenizer = HFTokenizer(hf_tokenizer, model.config, where=where)
    if capability is Capability.CLASSIFIER and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_id  # decoder classifiers find a row's end by its pads
    return model, tokenizer


def _loaded(family: str, ref: str, source: Source, resolved: Any, capability: Capability, model: Any,
            tokenizer: Any, sha256: str, per_file: dict[str, str]) -> LoadedModel:
    import transformers

    from .modules import HFCausalLM, HFClassifier, HFCrossKV, HFDecoder, HFEncoder

    config = model.config
    where = f"hf:{ref}"
    summary: dict[str, Any] = {
        "model_type": config.model_type,
        "architecture": type(model).__name__,
        "vocab_size": int(getattr(config.get_text_config(), "vocab_size", None) or len(tokenizer.backend)),
    }
    if capability is Capability.CLASSIFIER:
        modules = {"classifier": HFClassifier(model)}
    else:
        layers, heads, head_dim = _cache_geometry(model, capability, tokenizer)
        # Backends size the cache from these keys: n_heads are key/value heads.
        summary.update(n_layers=layers, n_heads=heads, head_dim=head_dim, d_model=heads * head_dim)
        if capability is Capability.SEQ2SEQ:
            summary["n_decoder_layers"] = layers
            modules = {
                "encoder": HFEncoder(model),
                "cross_kv": HFCrossKV(model),
                "decoder": HFDecoder(model, (layers, heads, head_dim)),
            }
        else:
            modules = {"causal_lm": HFCausalLM(model, (layers, heads, head_dim))}
    provenance = Provenance(
        source=resolved.source,
        revision=resolved.revision,
        weights_sha256=sha256,
        num_parameters=sum(p.numel() for p in model.parameters()),
        extra={
            **resolved.extra,
            "config_class": type(config).__name__,
            "architecture": type(model).__name__,
            "weights": per_file,
            "transformers": transformers.__version__,
        },
    )
    return LoadedModel(
        family=family,
        ref=ref,
        capabilities=frozenset({capability}),
        tokenizer=tokenizer,
        modules=modules,
        provenance=provenance,
        max_length=_max_length(config.get_text_config(), tokenizer.backend),
        config=summary,
        labels=_labels(config) if capability is Capability.CLASSIFIER else None,
        decoder_start_id=_decoder_start(model, tokenizer, where) if capability is Capability.SEQ2SEQ else None,
    )
