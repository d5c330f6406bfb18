"""Where an ``hf:`` reference's files are: a local folder, or a Hub snapshot downloaded at a pinned commit.

``hf:/path/to/folder`` (or ``./folder``, ``~/folder``, any existing folder) is read in place;
``hf:namespace/name[@revision]`` is resolved on the Hub (``HF_ENDPOINT``/``HF_TOKEN`` read when the
model is loaded, not when ``huggingface_hub`` was imported) to a commit sha, and only the files a
model needs are downloaded at that sha: config, safetensors weights, tokenizer files. A checkpoint
whose weights are only pickles (``pytorch_model.bin``) is never unpickled: unpickling runs arbitrary
code, and llmos-hub loads weights with safetensors only. A Hub repo's pull request that adds a
safetensors conversion (``refs/pr/N``, see :mod:`.pull_requests`) is used instead and recorded;
without one the repo is refused before anything is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from llmos_hub import DataError, UsageError, check_inside, check_safetensors, file_sha256

__all__ = [
    "Resolved",
    "Source",
    "check_json_side_files",
    "check_side_files",
    "parse_ref",
    "read_config",
    "resolve",
    "safetensors_parameters",
    "tokenizer_files",
    "weight_files",
    "weights_sha256",
]

#: The files a model needs, as ``snapshot_download`` patterns; nothing else is fetched.
NEEDED = [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*-of-*.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "*.spm",
    "*.model",
    "*.tiktoken",
    "chat_template.jinja",  # the tokenizer's chat templates, which transformers 5 keeps beside its config
    "chat_template.json",
    "additional_chat_templates/*.jinja",
]
_PICKLES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


@dataclass(frozen=True)
class Source:
    """A parsed reference: a ``folder`` or a Hub ``repo_id`` (with an optional ``revision``)."""

    folder: Path | None = None
    repo_id: str | None = None
    revision: str | None = None


@dataclass(frozen=True)
class Resolved:
    """A source's files on this machine; for a Hub source, the commit they were taken from."""

    folder: Path
    source: str
    revision: str | None
    extra: Mapping[str, Any] = field(default_factory=dict)


def _looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", ".", "~")) or "\\" in ref or Path(ref).expanduser().is_dir()


def parse_ref(ref: str, revision: str | None = None) -> Source:
    """``ref`` (the part after ``hf:``) as a folder or a Hub id; ``revision`` may come from ``@rev`` or the caller."""
    ref = ref.strip()
    if not ref:
        raise UsageError("empty hf reference; give hf:/path/to/folder or hf:namespace/name[@revision]")
    if _looks_like_path(ref):
        if revision is not None:
            raise UsageError(f"hf:{ref} is a local folder and has no revisions; drop --revision")
        return Source(folder=Path(ref).expanduser())
    repo_id, at, pinned = ref.partition("@")
    if at and not pinned:
        raise UsageError(f"hf:{ref}: empty revision after '@'; give hf:{repo_id}@<branch, tag or commit>")
    if pinned and revision is not None and pinned != revision:
        raise UsageError(f"hf:{ref} pins revision {pinned!r} but --revision says {revision!r}; give one")
    if not _HUB_ID.match(repo_id):
        raise UsageError(
            f"hf:{ref} is neither an existing folder nor a Hub id; give hf:/path/to/folder or hf:namespace/name[@revision]"
        )
    return Source(repo_id=repo_id, revision=pinned or revision)


def _refuse_pickles(where: str, names: Iterable[str]) -> None:
    """A one-line :class:`DataError` for a checkpoint with no safetensors weights."""
    names = sorted(names)
    pickles = [n for n in names if n.endswith(_PICKLES)]
    if pickles:
        raise DataError(
            f"{where} has only pickle weights ({pickles[0]}), which llmos-hub never loads; "
            "convert them to safetensors (transformers' save_pretrained writes model.safetensors)"
        )
    raise DataError(f"{where} has no model.safetensors (or sharded model-*.safetensors); is it a transformers checkpoint?")


def _has_safetensors(names: Iterable[str]) -> bool:
    top = {n for n in names if "/" not in n}
    return "model.safetensors" in top or "model.safetensors.index.json" in top


#: A distributed (DCP) checkpoint's shard name; where one is present transformers loads every
#: ``*.safetensors`` file of the folder (``transformers.distributed.checkpoint.is_sharded_checkpoint``).
_DISTRIBUTED_SHARD = re.compile(r"^shard-[0-9]{5}-model-[0-9]{5}-of-[0-9]{5}\.safetensors$")


def _config_fields(folder: Path) -> dict[str, Any]:
    """``folder/config.json`` as a dict, or ``{}`` (:func:`read_config` names a broken one)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _shards(folder: Path, index_name: str) -> list[Path]:
    index = folder / index_name
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
        raise DataError(f"{index}: not a safetensors index ({exc}); re-save the checkpoint") from None
    if not shards or not all(isinstance(s, str) for s in shards):
        raise DataError(f"{index}: weight_map names no shard files; re-save the checkpoint")
    return [check_safetensors(s, folder=folder) for s in shards]


def _class_extra_files(model_type: Any) -> tuple[str, ...]:
    """The extra weight files the config class of ``model_type`` has transformers load (``extra_files``)."""
    if not isinstance(model_type, str):
        return ()
    try:
        from transformers import CONFIG_MAPPING

        return tuple(getattr(CONFIG_MAPPING[model_type], "extra_files", ()) or ())
    except (ImportError, KeyError, AttributeError):
        return ()


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files ``from_pretrained(folder, use_safetensors=True)`` loads, in transformers' order.

    transformers 5 (``modeling_utils._get_resolved_checkpoint_files``) takes: every ``*.safetensors``
    file of a distributed checkpoint (a ``shard-NNNNN-model-NNNNN-of-NNNNN.safetensors`` present);
    else the file ``config.json``'s ``transformers_weights`` names; else ``model.safetensors``, even
    when a ``model.safetensors.index.json`` is there too; else the index's shards. The files its config
    class lists (``extra_files``) come on top. These are the files hashed and recorded, so a record
    names the weights that were scored.

    Every file is checked before anything opens it (:func:`llmos_hub.check_safetensors`): a ``.safetensors``
    file inside the folder (or its Hub cache entry), whole. An index naming ``pytorch_model.bin`` or
    ``../elsewhere.safetensors``, or a ``model.safetensors`` linked out of the folder, is refused, naming the file.
    """
    names = sorted(p.name for p in folder.iterdir())
    if any(_DISTRIBUTED_SHARD.match(n) for n in names):
        return [check_safetensors(n, folder=folder) for n in names if n.endswith(".safetensors")]
    config = _config_fields(folder)
    explicit = config.get("transformers_weights")
    if explicit is not None:
        if not isinstance(explicit, str) or not explicit:
            raise DataError(f"{folder / 'config.json'}: \"transformers_weights\" must name a .safetensors file or "
                            "index in the folder; fix it, or remove the field")
        files = _shards(folder, explicit) if explicit.endswith(".safetensors.index.json") else \
            [check_safetensors(explicit, folder=folder)]
    elif os.path.lexists(folder / "model.safetensors"):  # transformers prefers it to an index
        files = [check_safetensors("model.safetensors", folder=folder)]
    elif (folder / "model.safetensors.index.json").is_file():
        files = _shards(folder, "model.safetensors.index.json")
    else:
        _refuse_pickles(str(folder), (p.name for p in folder.iterdir() if p.is_file()))
        raise AssertionError("unreachable")
    for extra in _class_extra_files(config.get("model_type")):
        if os.path.lexists(folder / extra):
            path = check_safetensors(extra, folder=folder)
            if path not in files:
                files.append(path)
    return files


def safetensors_parameters(files: Iterable[Path]) -> int:
    """The number of values stored in safetensors ``files``, read from their headers (no tensor is loaded).

    A safetensors file starts with an 8-byte little-endian header length and a JSON header mapping
    each tensor name to its ``shape``; tied weights are stored once, as ``model.parameters()`` counts them.
    """
    total = 0
    for path in files:
        try:
            with path.open("rb") as handle:
                size = int.from_bytes(handle.read(8), "little")
                header = json.loads(handle.read(size)) if 0 < size < (1 << 28) else None
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a safetensors file ({exc})") from None
        if not isinstance(header, dict):
            raise DataError(f"{path}: not a safetensors file (no JSON header); re-save the checkpoint")
        for name, entry in header.items():
            if name != "__metadata__" and isinstance(entry, dict):
                total += math.prod(int(d) for d in entry.get("shape", []))
    return total


#: Tokenizer files transformers reads, in the layouts real checkpoints are published in.
_TOKENIZER_NAMES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                    "vocab.json", "vocab.txt", "merges.txt")
_TOKENIZER_SUFFIXES = (".spm", ".model", ".tiktoken")


def tokenizer_files(folder: Path) -> list[Path]:
    """The tokenizer files present in ``folder`` (``tokenizer.json``, ``vocab.txt``, ``*.spm``, ...)."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and (p.name in _TOKENIZER_NAMES or p.name.endswith(_TOKENIZER_SUFFIXES))
    )


def weights_sha256(files: list[Path]) -> tuple[str, dict[str, str]]:
    """The weights' hash and each file's: one file's own sha256, or for shards the sha256 of the
    ``"<sha256>  <name>\\n"`` lines (``sha256sum``'s format) of all shards sorted by name."""
    each = {p.name: file_sha256(p) for p in sorted(files, key=lambda p: p.name)}
    if len(each) == 1:
        return next(iter(each.values())), each
    manifest = "".join(f"{sha}  {name}\n" for name, sha in each.items())
    return hashlib.sha256(manifest.encode()).hexdigest(), each


#: What transformers may read from a checkpoint folder besides the weights (which
#: :func:`weight_files` checks): config, generation config, tokenizer files, chat templates.
_SIDE_PATTERNS = (*(p for p in NEEDED if not p.endswith(".safetensors")), "*.json", "*.jinja")


#: The sub-folder whose ``*.jinja`` files transformers' tokenizer loading reads as named chat templates
#: (``transformers.utils.hub.CHAT_TEMPLATE_DIR``).
CHAT_TEMPLATE_DIR = "additional_chat_templates"

#: JSON side files transformers parses; each must be a JSON object (a broken one is named at plan time).
_JSON_SIDE_FILES = ("generation_config.json", "tokenizer_config.json", "tokenizer.json", "special_tokens_map.json",
                    "added_tokens.json")


def check_side_files(folder: Path) -> None:
    """Refuse, in one line, a config or tokenizer file of ``folder`` that leads out of it.

    Weights are confined by :func:`llmos_hub.check_safetensors`; a ``tokenizer.json`` or
    ``config.json`` linked from another checkpoint would as silently score the model with the wrong
    tokenizer or shapes, or read any file on the machine. Checked: the top-level side files, the
    ``additional_chat_templates/`` folder and its ``*.jinja`` templates (the tokenizer reads them all),
    and the versioned tokenizer files ``tokenizer_config.json``'s ``fast_tokenizer_files`` names. A Hub
    snapshot's links into its own cache folder are inside.
    """
    for entry in sorted(folder.iterdir()):
        if any(fnmatch(entry.name, pattern) for pattern in _SIDE_PATTERNS):
            check_inside(entry.name, folder=folder)
    templates = folder / CHAT_TEMPLATE_DIR
    if os.path.lexists(templates):
        check_inside(CHAT_TEMPLATE_DIR, folder=folder)
        if templates.is_dir():
            for entry in sorted(templates.iterdir()):
                if entry.name.endswith(".jinja"):
                    check_inside(f"{CHAT_TEMPLATE_DIR}/{entry.name}", folder=folder)
    tokenizer_config = _json_file(folder / "tokenizer_config.json", quiet=True)
    versioned = tokenizer_config.get("fast_tokenizer_files") if isinstance(tokenizer_config, dict) else None
    if isinstance(versioned, list):
        for name in versioned:
            if isinstance(name, str) and name:
                check_inside(name, folder=folder)


def _json_file(path: Path, *, quiet: bool = False) -> Any:
    """The JSON in ``path`` (``None`` if there is no such file); a one-line :class:`DataError` if it is broken
    (``quiet``: ``None`` instead)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        if quiet:
            return None
        raise DataError(f"{path}: not valid JSON ({' '.join(str(exc).split())}); fix it, or copy {path.name} from "
                        "the checkpoint these weights were saved with") from None


#: JSON side files already found whole, by (resolved path, size, mtime): a large tokenizer.json is
#: parsed once per process however often the bench reads the config.
_JSON_OK: set[tuple[str, int, int]] = set()


def check_json_side_files(folder: Path) -> None:
    """Refuse, in one line naming the file, a JSON side file transformers would fail on after loading started.

    ``generation_config.json``, ``tokenizer_config.json``, ``tokenizer.json``, ``special_tokens_map.json``
    and ``added_tokens.json`` must each be a JSON object where present (transformers' own errors name no
    file: ``Unterminated string starting at: line 110 column 7``, ``'list' object is not a mapping``).
    """
    for name in _JSON_SIDE_FILES:
        path = folder / name
        if not path.is_file():
            continue
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key in _JSON_OK:
            continue
        value = _json_file(path)
        if not isinstance(value, dict):
            kind = "null" if value is None else type(value).__name__
            raise DataError(f"{path}: expected a JSON object, not {kind}; fix it, or copy {name} from the "
                            "checkpoint these weights were saved with")
        _JSON_OK.add(key)


def read_config(folder: Path) -> dict[str, Any]:
    """``folder/config.json`` as a dict, or a one-line :class:`DataError`.

    Every side file transformers reads from the folder is checked first (:func:`check_side_files`),
    so whatever asks for the config (planning, loading) refuses a link out of the folder; a broken
    JSON side file is named (:func:`check_json_side_files`).
    """
    path = folder / "config.json"
    if not folder.is_dir():
        raise DataError(f"no folder {folder}; give hf:/path/to/a/transformers/checkpoint")
    check_side_files(folder)
    if not path.is_file():
        raise DataError(f"{folder} has no config.json; is it a transformers checkpoint?")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not valid JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(config, dict):
        raise DataError(f"{path}: expected a JSON object")
    check_json_side_files(folder)
    return config


def _hub():
    """``(auth, api)`` for the Hub named by ``HF_ENDPOINT``/``HF_TOKEN`` now (not at import)."""
    from huggingface_hub import HfApi

    from llmos_hub.hub import resolve_auth

    auth = resolve_auth()
    return auth, HfApi(endpoint=auth.endpoint, token=auth.token)


def hub_config(repo_id: str, revision: str | None) -> dict[str, Any]:
    """A Hub repo's ``config.json`` (only that file is downloaded)."""
    from llmos_hub.hub import hub_call_retried

    from huggingface_hub import hf_hub_download

    auth, _ = _hub()
    path = hub_call_retried(auth, repo_id, "model", "read config.json of", lambda: hf_hub_download(
        repo_id, "config.json", revision=revision, endpoint=auth.endpoint, token=auth.token,
    ))
    return read_config(Path(path).parent)


def _offline() -> bool:
    """``HF_HUB_OFFLINE`` as set now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE")
    if value is None:
        return bool(constants.HF_HUB_OFFLINE)
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _from_cache(repo_id: str, revision: str | None) -> Resolved:
    """Offline: the snapshot already in the Hub cache (the commit is its folder's name)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    where = f"hf:{repo_id}" + (f"@{revision}" if revision else "")
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=NEEDED, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        raise DataError(f"{where} is not in the Hub cache and HF_HUB_OFFLINE is set; load it once online") from None
    if not _has_safetensors(p.name for p in folder.iterdir()):
        _refuse_pickles(where, (p.name for p in folder.iterdir()))
    return Resolved(folder=folder, source=repo_id, revision=folder.name, extra={"offline": True})


def resolve(source: Source) -> Resolved:
    """The local files of ``source``: the folder itself, or a Hub snapshot at the resolved commit."""
    if source.folder is not None:
        folder = source.folder
        read_config(folder)  # a clear error for a wrong path before anything else
        return Resolved(folder=folder, source=str(folder.resolve()), revision=None)
    repo_id = str(source.repo_id)
    if _offline():
        return _from_cache(repo_id, source.revision)
    from llmos_hub.hub import hub_deadline

    with hub_deadline():  # the model info, any pull request lookup and the download share one deadline
        return _download(source, repo_id)


def _download(source: Source, repo_id: str) -> Resolved:
    """:func:`resolve` for a Hub repo: its file list, then a snapshot of the files a model needs.

    Each Hub call is retried in llmos-hub's one retry layer (5xx and dropped connections), the
    ``huggingface_hub`` retries underneath are off, and all of it ends by the command's deadline.
    """
    from llmos_hub.hub import hub_call_retried

    auth, api = _hub()
    info = hub_call_retried(auth, repo_id, "model", "read", lambda: api.model_info(repo_id, revision=source.revision))
    names = [s.rfilename for s in (info.siblings or [])]
    where = f"hf:{repo_id}" + (f"@{source.revision}" if source.revision else "")
    if "config.json" not in names:
        raise DataError(f"{where} has no config.json; is it a transformers model repo?")
    revision, extra = source.revision, {"endpoint": auth.endpoint}
    if not _has_safetensors(names):
        from .pull_requests import CONVERT_HINT, find_conversion

        conversion = hub_call_retried(auth, repo_id, "model", "look for a safetensors pull request of",
                                      lambda: find_conversion(auth, api, repo_id, source.revision, _has_safetensors))
        if conversion is None:
            if any(n.endswith(_PICKLES) for n in names):
                pickle = sorted(n for n in names if n.endswith(_PICKLES))[0]
                raise DataError(f"{where} has only pickle weights ({pickle}), which llmos-hub never loads, and no pull "
                                f"request offers a safetensors conversion; {CONVERT_HINT}")
            _refuse_pickles(where, names)
        assert conversion is not None
        revision = conversion.commit
        extra.update(safetensors_from=conversion.ref, requested_revision=source.revision or "main")
    from huggingface_hub import snapshot_download

    # Download by the name asked for (so the cache remembers the branch for offline use); the
    # snapshot's folder is named by the commit actually downloaded, which is what provenance records.
    folder = Path(hub_call_retried(auth, repo_id, "model", "download", lambda: snapshot_download(
        repo_id, revision=revision, allow_patterns=NEEDED, endpoint=auth.endpoint, token=auth.token,
    )))
    return Resolved(folder=folder, source=repo_id, revision=folder.name, extra=extra)
