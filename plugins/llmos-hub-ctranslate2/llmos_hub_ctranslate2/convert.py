"""Convert a transformers checkpoint with CTranslate2's own converter, once per content hash.

The converter (``ctranslate2.converters.TransformersConverter``) reads a checkpoint folder with
transformers and writes ``model.bin``, ``config.json`` and the vocabulary. Two precautions wrap it:

- it reads a *staging* folder holding links to exactly the model's :class:`~llmos_hub.Artifacts`
  (config, safetensors weights, tokenizer files, ``generation_config.json``), and is told to load
  safetensors with ``trust_remote_code`` off, so a pickle lying next to the weights is never read;
- the weights are written in float32 (``quantization="float32"``); the runner quantizes at load time
  (``compute_type``), so one conversion serves float32 and int8.

The result is kept in :class:`llmos_hub.FolderCache` (``$LLMOS_HUB_CACHE/ctranslate2``) under a key
that hashes the weights (their sha256, as the family recorded it), the config and tokenizer files,
and the versions of ctranslate2, transformers and this plugin: a changed file or tool converts anew.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmos_hub import Artifacts, DataError, FolderCache, LoadedModel, cache_root, file_sha256

__all__ = ["Converted", "converted", "conversion_key", "default_cache_dir", "discard"]

#: Bumped when the layout of an entry or the meaning of a key changes. 2: conversions are refused
#: when transformers fills a weight itself (missing or wrongly shaped), so an entry converted from an
#: incomplete checkpoint before that is not served again. 3: untied T5/mT5 (``tie_word_embeddings:
#: false``) no longer get their decoder output scaled by d_model**-0.5.
FORMAT_VERSION = 3


#: Config classes CTranslate2's T5 loader (and its MT5/UMT5 subclasses) converts.
_T5_CONFIGS = ("T5Config", "MT5Config", "UMT5Config")


def default_cache_dir() -> Path:
    """``$LLMOS_HUB_CACHE/ctranslate2``, or ``~/.cache/llmos-hub/ctranslate2``."""
    return cache_root("ctranslate2")


class ConversionCache(FolderCache):
    what = "CTranslate2 conversion cache"


@dataclass(frozen=True)
class Converted:
    """A converted model's folder, its cache key, and whether the cache already held it."""

    folder: Path
    key: str
    cache_hit: bool
    seconds: float


def _side_files(artifacts: Artifacts) -> list[Path]:
    """Every file the converter reads besides the weights: config, tokenizer, generation config, index."""
    folder = artifacts.folder
    files = [p for p in (artifacts.config_file, *artifacts.tokenizer_files) if p is not None]
    for name in ("generation_config.json", "model.safetensors.index.json"):
        if (folder / name).is_file():
            files.append(folder / name)
    return sorted(set(files), key=lambda p: p.name)


def conversion_key(model: LoadedModel, artifacts: Artifacts) -> tuple[str, dict[str, Any]]:
    """The cache key of ``model``'s conversion, and what it was made of."""
    import ctranslate2
    import transformers

    from . import __version__

    parts = {
        "format": FORMAT_VERSION,
        "weights_sha256": model.provenance.weights_sha256,
        "files_sha256": {p.name: file_sha256(p) for p in _side_files(artifacts)},
        "quantization": "float32",
        "versions": {"ctranslate2": ctranslate2.__version__, "transformers": transformers.__version__,
                     "llmos-hub-ctranslate2": __version__},
    }
    blob = json.dumps(parts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:32], parts


def converted(model: LoadedModel, cache_dir: str | Path | None = None) -> Converted:
    """The CTranslate2 folder of ``model`` (a transformers-layout checkpoint), converting on a cache miss."""
    artifacts = model.artifacts
    if artifacts is None:
        raise DataError(f"{model.name} has no files to convert (its family hands out none)")
    started = time.perf_counter()
    key, parts = conversion_key(model, artifacts)

    def build(folder: Path) -> dict[str, Any]:
        _convert(artifacts, folder, where=model.name)
        return {"model": model.name, "key_parts": parts, "files": sorted(p.name for p in folder.iterdir())}

    cache = ConversionCache(Path(cache_dir) if cache_dir is not None else default_cache_dir())
    entry = cache.get_or_build(key, build)
    return Converted(entry.path, key, entry.hit, time.perf_counter() - started)


def discard(conversion: Converted, reason: str) -> None:
    """Drop ``conversion``'s cache entry (one CTranslate2 could not load), so the next :func:`converted`
    converts anew; warns on stderr in one line, as for a corrupt entry."""
    ConversionCache(conversion.folder.parent).discard(conversion.key, reason)


def _convert(artifacts: Artifacts, output: Path, *, where: str) -> None:
    """Run CTranslate2's transformers converter on a staging folder of ``artifacts`` into ``output``."""
    from ctranslate2.converters import TransformersConverter
    from llmos_hub_transformers.family import refuse_incomplete
    from transformers.utils import logging as hf_logging

    class SafeConverter(TransformersConverter):
        """CTranslate2's converter, loading safetensors only, with shims for what transformers 5 changed.

        It refuses a checkpoint transformers would complete with random weights (missing or wrongly
        shaped tensors) with the hf family's own one-line error: converted, it would score noise.
        """

        def load_model(self, model_class, model_name_or_path, **kwargs):  # type: ignore[no-untyped-def]
            config = kwargs.get("config")
            if type(config).__name__ == "BartConfig" and not hasattr(config, "normalize_before"):
                config.normalize_before = False  # BART is post-norm; transformers 5 dropped the attribute
            if type(config).__name__ == "BertConfig" and not hasattr(config, "position_embedding_type"):
                config.position_embedding_type = "absolute"  # the only kind transformers 5 implements
            kwargs.pop("trust_remote_code", None)
            model, info = model_class.from_pretrained(
                model_name_or_path, use_safetensors=True, trust_remote_code=False, output_loading_info=True,
                ignore_mismatched_sizes=True, **kwargs,  # wrong shapes are refused below, naming the tensors
            )
            refuse_incomplete(model, info, where)
            scaled = getattr(model.config, "scale_decoder_outputs", None)
            if type(config).__name__ in _T5_CONFIGS and scaled is not None:
                # transformers 5 reads a legacy ``tie_word_embeddings: false`` (t5-v1.1, flan-t5, mT5) as
                # ``scale_decoder_outputs=False`` and sets ``tie_word_embeddings=True``; CTranslate2's T5
                # loader still decides from ``tie_word_embeddings`` whether to scale the decoder output by
                # d_model**-0.5. Give it the flag that means what transformers computes.
                model.config.tie_word_embeddings = bool(scaled)
            return model

    with tempfile.TemporaryDirectory(prefix="llmos-hub-ct2-stage-") as stage:
        for path in (*artifacts.weights, *_side_files(artifacts)):
            os.symlink(path, Path(stage) / path.name)
        bars, verbosity, tqdm = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity(), os.environ.get("TQDM_DISABLE")
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()  # the base model loaded from a head checkpoint reports "unexpected" head keys
        os.environ["TQDM_DISABLE"] = "1"  # the converter's "Writing model shards" bar
        try:
            with warnings.catch_warnings():
                if not os.environ.get("LLMOS_HUB_DEBUG"):  # Marian's "Recommended: pip install sacremoses"
                    warnings.filterwarnings("ignore", message="Recommended: pip install sacremoses")
                SafeConverter(stage, low_cpu_mem_usage=True).convert(str(output), quantization="float32", force=True)
        except (ValueError, KeyError, AttributeError, OSError, RuntimeError, NotImplementedError, AssertionError) as exc:
            first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise DataError(f"{where}: CTranslate2's converter failed: {first[:300]}") from None
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
            if tqdm is None:
                os.environ.pop("TQDM_DISABLE", None)
            else:
                os.environ["TQDM_DISABLE"] = tqdm
