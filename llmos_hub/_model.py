"""The model interface: an architecture family that turns a reference into a :class:`LoadedModel`.

A family (``nano``, ``hf``) knows how to find weights and a tokenizer for a reference and build the
torch modules a backend runs. What crosses from a family to a backend is a :class:`LoadedModel`: its
capabilities, its tokenizer, its provenance and its modules, each with a fixed calling convention
(documented on :class:`LoadedModel`) so that any backend can run or export any architecture.
"""

from __future__ import annotations

import enum
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["Artifacts", "Capability", "LoadedModel", "ModelFamily", "ModelInfo", "Provenance", "Tokenizer"]


class Capability(str, enum.Enum):
    """What a model can do; a task names the capability it needs."""

    CAUSAL_LM = "causal-lm"
    SEQ2SEQ = "seq2seq"
    CLASSIFIER = "classifier"

    def __str__(self) -> str:
        return self.value


@runtime_checkable
class Tokenizer(Protocol):
    """The few tokenizer operations backends and tasks need.

    Example::

        ids = tok.encode("Hello")          # no special tokens added
        text = tok.decode(ids)             # special tokens skipped
    """

    eos_id: int
    pad_id: int
    bos_id: int | None

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, with no special tokens added (a task adds BOS/EOS where it means to)."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``, special tokens (EOS, padding) skipped."""
        ...


@dataclass(frozen=True)
class Provenance:
    """Where a model's weights came from, enough to tell two runs apart.

    ``weights_sha256`` is the hash of the weight file(s) exactly as loaded; ``extra`` holds what a
    family knows beyond that (training data and script for ``nano``, the config class for ``hf``).
    """

    source: str
    revision: str | None
    weights_sha256: str
    num_parameters: int
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record's ``model.provenance`` object (JSON types only)."""
        return {
            "source": self.source,
            "revision": self.revision,
            "weights_sha256": self.weights_sha256,
            "num_parameters": self.num_parameters,
            "extra": dict(self.extra),
        }


@dataclass(frozen=True)
class Artifacts:
    """A model's files on this machine, for backends that read files instead of torch modules.

    ``folder`` is the resolved folder (a local folder or a Hub snapshot); every other path is inside
    it. ``layout`` names the on-disk convention a converter understands: ``"transformers"`` (a
    ``config.json`` with ``architectures`` and transformers' weight and tokenizer files) or a family's
    own (``"nano"``). ``weights_format`` is ``"safetensors"``: no family hands out pickle files.
    """

    folder: Path
    layout: str
    weights: tuple[Path, ...]
    weights_format: str = "safetensors"
    tokenizer_files: tuple[Path, ...] = ()
    config_file: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON types only; files by name (every one is inside ``folder``)."""
        return {
            "folder": str(self.folder),
            "layout": self.layout,
            "weights": [p.name for p in self.weights],
            "weights_format": self.weights_format,
            "tokenizer_files": [p.name for p in self.tokenizer_files],
            "config_file": self.config_file.name if self.config_file else None,
        }


@dataclass(frozen=True)
class ModelInfo:
    """What a family can tell about a reference before building it (see :meth:`ModelFamily.inspect`).

    ``weights_sha256`` identifies the exact weights (it is part of a run's configuration hash, so
    retraining a checkpoint in place makes a new configuration); ``labels`` are a classifier's output
    names; ``artifacts`` are the files a files-consuming backend would read.
    """

    capabilities: frozenset[Capability]
    weights_sha256: str | None = None
    labels: tuple[str, ...] | None = None
    artifacts: Artifacts | None = None
    #: When set, the only backends that can run the model (one with neither torch modules nor files,
    #: such as ``baseline:...``); the first is its default when the user names no backend.
    backends: tuple[str, ...] = ()
    #: The longest sequence (prompt and generated tokens) the model takes, when the family knows it before
    #: building the model; the plan then refuses a task whose ``max_new_tokens`` leaves a causal LM's
    #: window no room for the prompt. ``None``: not known until loaded (checked then).
    max_length: int | None = None


class LoadedModel:
    """A model ready to be handed to a backend.

    ``modules`` maps a role to a ``torch.nn.Module`` with a fixed calling convention (version 2, see
    docs/decisions.md "Decoding at real sizes"). The self-attention cache is a buffer the *caller*
    preallocates for a whole generation, ``cache [layers, 2, batch, heads, capacity, head_dim]``; slot
    ``t`` holds the keys/values of the ``t``-th column of the (left-padded) sequence, and
    ``cache_position [new]`` (int64, consecutive) names the slots of the ``new`` tokens of a call:

    - ``"causal_lm"``: ``(input_ids, attention_mask, cache, cache_position, logits_index) -> (logits,
      new_kv)``. ``input_ids`` is ``[batch, new]`` (int64); ``attention_mask`` is ``[batch, capacity]``
      (int64, 0 on left padding; slots after the newest token may hold anything, causality hides
      them); ``logits_index [kept]`` picks the positions (among the ``new``) whose logits are
      computed, so a prefill projects one position onto the vocabulary; ``logits`` is
      ``[batch, kept, vocab]`` and ``new_kv`` ``[layers, 2, batch, heads, new, head_dim]`` holds the new
      tokens' keys/values. The module attends over all ``capacity`` slots with the new keys/values in
      theirs; an eager PyTorch module writes them into ``cache`` in place (no copy), an exported graph
      cannot, so its runner writes ``new_kv`` itself (unless the backend lowers
      :func:`llmos_hub.attention.cache_attention` to a kernel that writes in place: onnxruntime on the CPU). Positions are derived from the mask, so left
      padding is exact. ``cache``/``cache_position``/``logits_index`` may be ``None`` (training,
      whole-sequence scoring): the call then covers the whole sequence, slots ``0..new-1``. A module
      that also accepts ``cache`` (or ``cross_kv``) as a sequence of per-layer ``(keys, values)``
      pairs lists it in its ``per_layer_inputs`` attribute; an exporter then makes each layer's keys
      and values a graph input of its own, read in place (ONNX Runtime, docs/decisions.md). A module
      may also offer ``fuse_projections(release) -> int``: join the linear layers that read the same
      input (query/key/value) into one, in place, handing each tensor it replaces to ``release(tensor)``
      at once (to give its memory back) and returning how many; a backend calls it only on modules it
      owns (:meth:`own_modules`), e.g. before packing weights.
    - ``"encoder"``: ``(input_ids, attention_mask) -> encoder_states [batch, src, d_model]``.
    - ``"cross_kv"``: ``(encoder_states) -> cross_kv [layers, 2, batch, heads, src, head_dim]``, every
      decoder layer's cross-attention keys/values, computed once per source.
    - ``"decoder"``: ``(decoder_input_ids, encoder_states, encoder_mask, cross_kv, cache,
      cache_position) -> (logits, new_kv)`` with the self-attention cache as for ``causal_lm``;
      every row of a batch has the same decoder length (decoding starts from ``decoder_start_id``),
      so positions are the slots and no decoder mask is needed. ``cross_kv=None`` computes them from
      ``encoder_states``; ``cache=None`` covers the whole sequence.
    - ``"classifier"``: ``(input_ids, attention_mask) -> logits [batch, num_labels]``.

    ``max_length`` is the longest sequence the model was built for (its context window);
    ``labels`` names the classifier's outputs in order; ``decoder_start_id`` starts seq2seq decoding.

    Modules are built on demand: a family passes ``build_modules`` (a zero-argument callable) instead
    of ``modules``, and the first read of :attr:`modules` builds them once. A backend that reads
    :attr:`artifacts` (the model's files) never touches :attr:`modules`, so no torch module is built
    for it (:attr:`modules_built` tells).
    """

    def __init__(
        self,
        *,
        family: str,
        ref: str,
        capabilities: frozenset[Capability],
        tokenizer: Tokenizer,
        provenance: Provenance,
        max_length: int,
        modules: Mapping[str, Any] | None = None,
        build_modules: Callable[[], Mapping[str, Any]] | None = None,
        artifacts: Artifacts | None = None,
        config: Mapping[str, Any] | None = None,
        labels: Sequence[str] | None = None,
        decoder_start_id: int | None = None,
    ) -> None:
        self.family = family
        self.ref = ref
        self.capabilities = frozenset(capabilities)
        self.tokenizer = tokenizer
        self.provenance = provenance
        self.max_length = max_length
        self.artifacts = artifacts
        self.config: Mapping[str, Any] = dict(config or {})
        # The config as loaded, for build_digest: a family's builder may add to ``config`` what it learns
        # by building (the hf family adds the cache geometry), which must not change the digest.
        self._loaded_config = json.loads(json.dumps(self.config, default=str, skipkeys=True))
        self.labels = labels
        self.decoder_start_id = decoder_start_id
        self._modules: Mapping[str, Any] | None = modules
        self._build_modules = build_modules
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LoadedModel({self.name!r}, capabilities={sorted(map(str, self.capabilities))})"

    @property
    def modules(self) -> Mapping[str, Any]:
        """The torch modules by role, built on first use (empty when the family has none)."""
        if self._modules is None:
            with self._lock:
                if self._modules is None:
                    self._modules = dict(self._build_modules()) if self._build_modules is not None else {}
        return self._modules

    @modules.setter
    def modules(self, value: Mapping[str, Any]) -> None:
        self._modules = value

    def own_modules(self) -> dict[str, Any]:
        """A private set of the model's modules, for a backend that transforms them (device, dtype, packed
        weights) without touching :attr:`modules`, which other backends in the process share.

        Built afresh by the family when it builds lazily (so a backend that is the model's only user holds
        one copy of the weights, not two); otherwise a deep copy of :attr:`modules`.
        """
        import copy

        if self._build_modules is not None:
            return dict(self._build_modules())
        return copy.deepcopy(dict(self.modules))

    @property
    def modules_built(self) -> bool:
        """Whether :attr:`modules` exist yet (a files-consuming backend leaves them unbuilt)."""
        return self._modules is not None

    @property
    def build_digest(self) -> str | None:
        """A sha256 of what :attr:`modules` would be built from, without building them; ``None`` once built.

        It hashes the weight files' hash, the family, the capabilities, the config and context length as
        loaded, and every ``.py`` file of the package whose code builds the modules (the family's
        ``build_modules``). A backend that turns modules into another format keys its cache on this when
        nothing is built yet, so finding a cached conversion costs no torch model at all (for a
        GPT-2-small export, ~3.5 s and ~450 MiB of peak memory). Once :attr:`modules` exist they may have
        been changed in memory, so only hashing the tensors identifies them: ``None`` then, and also
        when the family handed over built modules. The versions of the libraries the code calls
        (torch, transformers) are the caller's to add to its key.
        """
        if self._modules is not None or self._build_modules is None:
            return None
        code = _package_digest(self._build_modules)
        if code is None:
            return None
        import hashlib

        parts = {
            "family": self.family,
            "weights_sha256": self.provenance.weights_sha256,
            "capabilities": sorted(str(c) for c in self.capabilities),
            "config": self._loaded_config,
            "max_length": self.max_length,
            "decoder_start_id": self.decoder_start_id,
            "labels": list(self.labels) if self.labels is not None else None,
            "code_sha256": code,
        }
        blob = json.dumps(parts, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    @property
    def name(self) -> str:
        """The model's reference as a user writes it, ``family:ref``."""
        return f"{self.family}:{self.ref}"

    def supports(self, capability: Capability | str) -> bool:
        """Whether the model has ``capability`` (``"causal-lm"``, ``Capability.SEQ2SEQ``, ...)."""
        return Capability(capability) in self.capabilities

    def cache_geometry(self, role: str, module: Any = None) -> tuple[int, int, int]:
        """``(layers, heads, head_dim)`` of the KV cache of module ``role`` (``causal_lm`` or ``decoder``).

        A module may state it (``module.cache_geometry = (layers, kv_heads, head_dim)``), which is exact
        for grouped-query heads; otherwise it is read from :attr:`config` under the usual names
        (``n_layer``/``num_layers``, ``n_head``, ``d_model``/``hidden_size``, optional ``head_dim``; for
        a decoder ``decoder_layers``/``n_decoder_layers`` first). Backends use it to preallocate the cache.
        ``module``: the backend's own copy of the role's module (:meth:`own_modules`), read instead of
        building :attr:`modules`.
        """
        from .errors import UsageError

        stated = getattr(module if module is not None else self.modules[role], "cache_geometry", None)
        if stated is not None:
            stated_layers, stated_heads, stated_dim = (int(v) for v in stated)
            return stated_layers, stated_heads, stated_dim
        config = dict(self.config)
        if role == "decoder" and isinstance(config.get("decoder"), Mapping):  # nested decoder settings
            config = {**config, **config["decoder"]}
        layer_keys: tuple[str, ...] = _LAYER_KEYS
        if role == "decoder":
            layer_keys = ("decoder_layers", "n_decoder_layer", "n_decoder_layers", "num_decoder_layers", *_LAYER_KEYS)
        layers = _first_int(config, layer_keys)
        heads = _first_int(config, _HEAD_KEYS)
        head_dim = _first_int(config, ("head_dim",))
        if head_dim is None and heads:
            width = _first_int(config, _WIDTH_KEYS)
            head_dim = width // heads if width else None
        if not (layers and heads and head_dim):
            raise UsageError(
                f"the cache shape of {self.name} module {role!r} is unknown; set module.cache_geometry = "
                "(layers, heads, head_dim) or put n_layers/n_heads/d_model in the model's config"
            )
        return layers, heads, head_dim


def _package_digest(builder: Callable[..., Any]) -> str | None:
    """A sha256 of every ``.py`` file of the top-level package defining ``builder`` (``None`` if unknown)."""
    import functools
    import hashlib
    import sys

    while isinstance(builder, functools.partial):
        builder = builder.func
    module = sys.modules.get(getattr(builder, "__module__", None) or "")
    package = sys.modules.get(module.__name__.split(".")[0]) if module is not None else None
    where = getattr(package, "__file__", None)
    if not where:
        return None
    root = Path(where).parent if Path(where).name == "__init__.py" else Path(where)
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
    h = hashlib.sha256()
    try:
        for path in files:
            h.update(f"{path.relative_to(root.parent).as_posix()}\n".encode())
            h.update(path.read_bytes())
    except OSError:  # code not in plain files (a zip import): unknown, so no digest
        return None
    return h.hexdigest()


_LAYER_KEYS = ("n_layer", "n_layers", "num_layers", "num_hidden_layers")
_HEAD_KEYS = ("n_head", "n_heads", "num_heads", "num_attention_heads")
_WIDTH_KEYS = ("d_model", "n_embd", "hidden_size", "dim")


def _first_int(config: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int):
            return value
    return None


class ModelFamily(ABC):
    """An architecture family: resolves references to loaded models.

    Example::

        class MyFamily(ModelFamily):
            name = "mine"
            def load(self, ref, *, revision=None):
                ...  # read safetensors + tokenizer.json, build modules
                return LoadedModel(...)
    """

    #: The family name, the part before ``:`` in ``family:ref``.
    name: str = ""

    @abstractmethod
    def load(self, ref: str, *, revision: str | None = None) -> LoadedModel:
        """Load ``ref`` (a shipped name, a local folder, or a Hub id) at ``revision``."""

    def capabilities(self, ref: str) -> frozenset[Capability] | None:
        """The capabilities of ``ref`` if known without loading weights (used to refuse early).

        Returning ``None`` means "unknown until loaded"; the bench then checks after loading.
        """
        return None

    def inspect(self, ref: str, *, revision: str | None = None) -> ModelInfo | None:
        """What is known of ``ref`` without building it: capabilities, weights hash, labels, files.

        The bench calls this while planning, before any model loads: capabilities and labels pick a
        task's formulation, the weights hash enters the configuration hash, the files let a backend
        refuse a layout it cannot read. The default knows only :meth:`capabilities`.
        """
        caps = self.capabilities(ref)
        return ModelInfo(capabilities=caps) if caps is not None else None

    def available(self) -> Sequence[str]:
        """References this family can load with no download (shipped checkpoints)."""
        return ()
