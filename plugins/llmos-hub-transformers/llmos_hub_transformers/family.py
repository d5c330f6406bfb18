"""The ``hf`` model family: ``hf:/path/to/folder`` or ``hf:namespace/name[@revision]``.

A checkpoint's capability comes from its ``config.json`` alone (``architectures``, else
``model_type``), so the bench can refuse a model/task mismatch before any weights move. Loading
picks the matching auto class (causal LM, seq2seq LM, sequence classifier), loads safetensors
weights in float32 (the backend casts) with ``trust_remote_code`` off, and wraps the model in the
modules of :mod:`llmos_hub_transformers.modules`.

Loading is split in two: the tokenizer, provenance (weights hash, parameter count from the
safetensors headers) and the model's files (:class:`~llmos_hub.Artifacts`, layout ``transformers``)
come at once; the torch model is built only when a backend reads ``LoadedModel.modules``. A backend
that reads files (CTranslate2) therefore never builds a torch model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmos_hub import Artifacts, Capability, DataError, LoadedModel, ModelFamily, ModelInfo, Provenance

from .source import (
    Resolved,
    hub_config,
    parse_ref,
    read_config,
    resolve,
    safetensors_parameters,
    tokenizer_files,
    weight_files,
    weights_sha256,
)

__all__ = ["HFFamily", "capability_of", "refuse_incomplete", "task_prefix"]

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
    listed = config.get("architectures")
    if listed is not None and not (isinstance(listed, list) and all(isinstance(a, str) for a in listed)):
        # A bare string would be read letter by letter (here, and by converters reading architectures[0]).
        raise DataError(f"{where}: config.json's \"architectures\" must be a list of class names, not "
                        f"{json.dumps(listed)[:80]}; write it as e.g. [\"GPT2LMHeadModel\"]")
    architectures = list(listed or [])
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


def _config_labels(config: Mapping[str, Any]) -> tuple[str, ...]:
    """A classifier's label names from ``config.json``'s ``id2label`` (``LABEL_i`` where unnamed)."""
    id2label = config.get("id2label") or {}
    count = config.get("num_labels")
    if not isinstance(count, int):
        count = len(id2label) or 2  # transformers' default
    return tuple(str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(count))


def task_prefix(config: Mapping[str, Any]) -> str | None:
    """The source prefix a T5-style checkpoint expects, from ``task_specific_params``, if it names one.

    T5 checkpoints list several tasks (``summarization``, ``translation_en_to_de``, ...), each with a
    ``prefix`` such as ``"summarize: "``. With exactly one distinct prefix it is the model's; with
    several the family cannot tell which the user wants and adds none (the record says so).
    """
    params = config.get("task_specific_params")
    if not isinstance(params, Mapping):
        return None
    prefixes = {str(v["prefix"]) for v in params.values() if isinstance(v, Mapping) and v.get("prefix")}
    return next(iter(prefixes)) if len(prefixes) == 1 else None


def _decoder_start(config: Any, folder: Path, where: str) -> int:
    """The token seq2seq decoding starts from: config.json's, else generation_config.json's."""
    import json

    values: list[Any] = [getattr(config, "decoder_start_token_id", None)]
    generation = folder / "generation_config.json"
    if generation.is_file():
        try:
            values.append(json.loads(generation.read_text(encoding="utf-8")).get("decoder_start_token_id"))
        except (OSError, ValueError, AttributeError):
            pass
    for value in values:
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
            if any(p.name.startswith(("model", "pytorch_model")) for p in source.folder.iterdir()):
                weight_files(source.folder)  # pickle-only, outside or truncated weights: refused before loading
        else:
            with _quiet_transformers():
                config = hub_config(str(source.repo_id), source.revision)
        return frozenset({capability_of(config, f"hf:{ref}")})

    def inspect(self, ref: str, *, revision: str | None = None) -> ModelInfo:
        """Capabilities, labels, weights hash and files of ``ref``; a Hub id is resolved (and its files
        downloaded once) at the commit ``revision`` names, so the hash is that commit's weights."""
        with _quiet_transformers():  # no download progress bars of huggingface_hub's
            resolved = resolve(parse_ref(ref, revision))
        config = read_config(resolved.folder)
        capability = capability_of(config, f"hf:{ref}")
        files = weight_files(resolved.folder)
        # A config transformers refuses or tokenizer files it cannot build from: refused while planning.
        checked, tokenizer = _load_config_and_tokenizer(resolved.folder, config, f"hf:{ref}")
        sha256, _ = weights_sha256(files)
        return ModelInfo(
            capabilities=frozenset({capability}),
            weights_sha256=sha256,
            labels=_config_labels(config) if capability is Capability.CLASSIFIER else None,
            artifacts=_artifacts(resolved, files),
            max_length=_max_length(checked.get_text_config(), tokenizer.backend),
        )

    def load(self, ref: str, *, revision: str | None = None) -> LoadedModel:
        """The tokenizer, provenance and files now; the torch model when a backend reads ``modules``."""
        source = parse_ref(ref, revision)
        with _quiet_transformers():  # no download progress bars of huggingface_hub's
            resolved = resolve(source)
        where = f"hf:{ref}"
        raw = read_config(resolved.folder)
        capability = capability_of(raw, where)
        files = weight_files(resolved.folder)
        sha256, per_file = weights_sha256(files)
        config, tokenizer = _load_config_and_tokenizer(resolved.folder, raw, where)
        summary: dict[str, Any] = {
            "model_type": config.model_type,
            "architecture": (raw.get("architectures") or [type(config).__name__])[0],
            "vocab_size": int(getattr(config.get_text_config(), "vocab_size", None) or len(tokenizer.backend)),
        }
        prefix = task_prefix(raw) if capability is Capability.SEQ2SEQ else None
        if prefix:
            summary["source_prefix"] = prefix

        def build_modules() -> dict[str, Any]:
            model = _build_model(resolved.folder, capability, where, tokenizer)
            modules, geometry = _modules(model, capability, tokenizer)
            loaded.config.update(geometry)  # type: ignore[attr-defined]  # known once the model exists
            return modules

        import transformers

        provenance = Provenance(
            source=resolved.source,
            revision=resolved.revision,
            weights_sha256=sha256,
            num_parameters=safetensors_parameters(files),
            extra={
                **resolved.extra,
                "config_class": type(config).__name__,
                "architecture": summary["architecture"],
                "weights": per_file,
                "transformers": transformers.__version__,
                **({"source_prefix": prefix} if prefix else {}),
            },
        )
        loaded = LoadedModel(
            family=self.name,
            ref=ref,
            capabilities=frozenset({capability}),
            tokenizer=tokenizer,
            build_modules=build_modules,
            artifacts=_artifacts(resolved, files),
            provenance=provenance,
            max_length=_max_length(config.get_text_config(), tokenizer.backend),
            config=summary,
            labels=_labels(config) if capability is Capability.CLASSIFIER else None,
            decoder_start_id=_decoder_start(config, resolved.folder, where) if capability is Capability.SEQ2SEQ else None,
        )
        return loaded


def _artifacts(resolved: Resolved, weights: list[Path]) -> Artifacts:
    """The checkpoint's files by their names in the folder (a Hub snapshot's files are links to blobs
    named by hash; a converter must see ``config.json``, not the blob it points to)."""
    folder = resolved.folder.resolve()
    return Artifacts(
        folder=folder,
        layout="transformers",
        weights=tuple(folder / p.name for p in weights),
        tokenizer_files=tuple(folder / p.name for p in tokenizer_files(resolved.folder)),
        config_file=folder / "config.json",
    )


def _quiet_transformers():
    """A context in which transformers and huggingface_hub draw no progress bars and log no reports.

    The bench draws its own progress, and what a load report says that matters (weights missing from
    the checkpoint) becomes our own one-line error (:func:`_build_model`), so nothing of theirs comes
    before it ("Loading weights: ... it/s", "... LOAD REPORT", "Fetching 5 files"). Scoped: the
    previous verbosity and progress-bar settings come back on exit, so a program importing llmos-hub
    keeps its own. ``LLMOS_HUB_DEBUG`` (``--debug``) keeps everything.
    """
    import os
    from contextlib import contextmanager, nullcontext

    if os.environ.get("LLMOS_HUB_DEBUG"):
        return nullcontext()
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    @contextmanager
    def quiet():
        import warnings

        bars = hf_logging.is_progress_bar_enabled()
        verbosity = hf_logging.get_verbosity()
        hub_bars = not hub_utils.are_progress_bars_disabled()
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        hub_utils.disable_progress_bars()
        try:
            with warnings.catch_warnings():
                # MarianTokenizer's, on every load without the optional sacremoses (then it skips Moses punctuation
                # normalization; install sacremoses for opus-mt's exact preprocessing)
                warnings.filterwarnings("ignore", message="Recommended: pip install sacremoses")
                yield
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
            if hub_bars:
                hub_utils.enable_progress_bars()

    return quiet()


_LOAD_ERRORS = (OSError, ValueError, KeyError, RuntimeError, ImportError, TypeError, AttributeError)


_LIMIT = 300


def _clip(text: str, limit: int = _LIMIT) -> str:
    """``text`` if it fits in ``limit`` characters; else its whole sentences that fit, else its whole words
    that fit and an ellipsis: never cut mid-word (``pip install --upgrade transfo``)."""
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    sentence = head.rfind(". ")
    if sentence >= limit // 3:
        return head[:sentence]
    return head[: head.rfind(" ")].rstrip(" ,;:") + " …" if " " in head else head[:limit] + "…"


def _first_line(exc: BaseException) -> str:
    return _clip(next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__))


def _one_line(exc: BaseException) -> str:
    """All of ``exc``'s message on one line (transformers puts the field a config fails on on line two)."""
    return _clip(" ".join(str(exc).split())) or type(exc).__name__


def _no_tokenizer(folder: Path, where: str) -> DataError:
    """The error for a folder whose tokenizer files transformers cannot build a tokenizer from."""
    found = ", ".join(p.name for p in tokenizer_files(folder)) or "none"
    return DataError(f"{where}: {folder} has no tokenizer files transformers can build the tokenizer from (found: "
                     f"{found}); copy tokenizer.json (or vocab.json and merges.txt, vocab.txt, or the sentencepiece "
                     "*.model) from the checkpoint these weights were saved with")


def _load_config_and_tokenizer(folder: Path, raw: Mapping[str, Any], where: str) -> tuple[Any, Any]:
    """transformers' config object and the tokenizer, from the folder alone (no weights read).

    Each failure is one line naming the file to fix: a config field transformers' validation
    refuses (``"n_layer": "two"``), or tokenizer files it cannot build a tokenizer from.
    """
    import transformers
    from huggingface_hub.errors import StrictDataclassError

    from .tokenizer import HFTokenizer

    try:
        with _quiet_transformers():
            config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=False, local_files_only=True)
    except (*_LOAD_ERRORS, StrictDataclassError) as exc:
        model_type = raw.get("model_type")
        if isinstance(model_type, str) and model_type not in transformers.CONFIG_MAPPING:
            raise DataError(f"{where}: {folder / 'config.json'}: model_type {model_type!r} is not one transformers "
                            f"{transformers.__version__} knows; if the model is newer, upgrade it (pip install "
                            "--upgrade transformers), else fix model_type") from None
        raise DataError(f"{where}: {folder / 'config.json'}: transformers refuses it: {_one_line(exc)}; fix it, or use "
                        "the config.json saved with these weights") from None
    try:
        with _quiet_transformers():
            hf_tokenizer = transformers.AutoTokenizer.from_pretrained(
                folder, trust_remote_code=False, local_files_only=True,
            )
    except _LOAD_ERRORS as exc:
        if "instantiate the backend tokenizer" in str(exc):  # its message lists no file, over five lines
            raise _no_tokenizer(folder, where) from None
        raise DataError(f"{where}: transformers cannot load its tokenizer: {_one_line(exc)}") from None
    if len(hf_tokenizer) < 2:  # transformers builds an empty tokenizer when the files are missing
        raise _no_tokenizer(folder, where)
    _refuse_oversized_tokenizer(config, len(hf_tokenizer), folder, where)
    prefix = task_prefix(raw) if raw.get("is_encoder_decoder") else None
    tokenizer = HFTokenizer(hf_tokenizer, config, where=where, source_prefix=prefix)
    return config, tokenizer


def _refuse_oversized_tokenizer(config: Any, tokens: int, folder: Path, where: str) -> None:
    """A one-line :class:`DataError` if the tokenizer has ids the model's embedding has no row for.

    A model may have more embedding rows than tokens (``vocab_size`` padded to a multiple of 64, T5's
    32128 for 32100 tokens); a tokenizer with more tokens than ``vocab_size`` makes ids the model fails
    on (``IndexError: index out of range in self``) after loading, so it is refused while planning.
    """
    vocab = getattr(config.get_text_config(), "vocab_size", None)
    if isinstance(vocab, int) and not isinstance(vocab, bool) and 0 < vocab < tokens:
        raise DataError(f"{where}: the tokenizer has {tokens} tokens but {folder / 'config.json'} has vocab_size "
                        f"{vocab}, so ids {vocab} to {tokens - 1} have no embedding; use the tokenizer files saved "
                        "with these weights")


def _build_model(folder: Path, capability: Capability, where: str, tokenizer: Any) -> Any:
    """The torch model, in float32 from safetensors, with ``trust_remote_code`` off."""
    import torch

    try:
        with _quiet_transformers():
            model, info = _auto_class(capability).from_pretrained(
                folder, dtype=torch.float32, use_safetensors=True, trust_remote_code=False, local_files_only=True,
                output_loading_info=True, ignore_mismatched_sizes=True,  # refused below, naming the tensors
            )
    except _LOAD_ERRORS as exc:
        raise DataError(f"{where}: transformers cannot load it: {_first_line(exc)}") from None
    refuse_incomplete(model, info, where)
    model.eval()
    if capability is Capability.CLASSIFIER and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_id  # decoder classifiers find a row's end by its pads
    return model


def refuse_incomplete(model: Any, info: Mapping[str, Any], where: str) -> None:
    """A one-line :class:`DataError` if ``from_pretrained`` filled any of ``model``'s weights itself.

    ``info`` is the loading info of ``from_pretrained(..., output_loading_info=True,
    ignore_mismatched_sizes=True)``: transformers then initializes missing and wrongly shaped weights
    randomly, so every score would be noise. Every path that loads a checkpoint with transformers
    (this family's torch model, CTranslate2's converter) calls this, so no backend scores such a model.
    """
    mismatched = sorted(info.get("mismatched_keys") or (), key=lambda m: m[0])
    if mismatched:
        named = ", ".join(f"{key} is {tuple(got)}, the config says {tuple(want)}" for key, got, want in mismatched[:2])
        raise DataError(f"{where}: {len(mismatched)} weight(s) in the checkpoint do not fit the model's config "
                        f"({named}{', ...' if len(mismatched) > 2 else ''}); use the config.json saved with "
                        "these weights")
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        named = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise DataError(f"{where}: the checkpoint has no weights for {len(missing)} parameter(s) of "
                        f"{type(model).__name__} ({named}); transformers would initialize them randomly, so its "
                        "scores would mean nothing; download or save the checkpoint again")


def _modules(model: Any, capability: Capability, tokenizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The wrapped modules of ``model`` by role, and its cache geometry for ``LoadedModel.config``."""
    from .modules import HFCausalLM, HFClassifier, HFCrossKV, HFDecoder, HFEncoder

    if capability is Capability.CLASSIFIER:
        return {"classifier": HFClassifier(model)}, {}
    layers, heads, head_dim = _cache_geometry(model, capability, tokenizer)
    # Backends size the cache from these keys: n_heads are key/value heads.
    geometry: dict[str, Any] = {"n_layers": layers, "n_heads": heads, "head_dim": head_dim, "d_model": heads * head_dim}
    from .native import native_causal_lm, native_cross_kv, native_decoder

    if capability is Capability.SEQ2SEQ:
        geometry["n_decoder_layers"] = layers
        return {
            "encoder": HFEncoder(model),
            "cross_kv": native_cross_kv(model) or HFCrossKV(model),
            "decoder": native_decoder(model, (layers, heads, head_dim)) or HFDecoder(model, (layers, heads, head_dim)),
        }, geometry

    # A lean module for covered architectures (same weights, same numbers), transformers' forward otherwise.
    return {"causal_lm": native_causal_lm(model, (layers, heads, head_dim)) or HFCausalLM(model, (layers, heads, head_dim))}, geometry
