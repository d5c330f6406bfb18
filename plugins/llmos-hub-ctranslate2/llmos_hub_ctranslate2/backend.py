"""The ``ctranslate2`` backend: convert (cached), load a Generator, Translator or Encoder, return a runner.

It consumes the model's files in the transformers layout (``consumes = ("files:transformers",)``),
never its torch modules, so the family does not build a torch model for it. Models it cannot run are
refused before anything loads (:meth:`CTranslate2Backend.check_model`, one line).

Options (``Backend.prepare(..., options={...})``, all optional):

``threads``
    CTranslate2 intra-op threads (``intra_threads``; default: ``$LLMOS_HUB_THREADS`` or
    ``$OMP_NUM_THREADS`` when set, as Ray sets it to a run's CPUs, else CTranslate2's choice, 4 or the
    cores).
``cache_dir``
    Where converted models are kept (default ``$LLMOS_HUB_CACHE/ctranslate2``).
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from llmos_hub import Backend, Capability, LoadedModel, ModelInfo, UsageError
from llmos_hub.decoding import environment_threads, threads_source

from .support import CLASSIFIER_HEADS, engine_kind, read_config, refusal

__all__ = ["CTranslate2Backend"]


def check_device(device: str) -> tuple[str, int]:
    """``("cpu", 0)`` or ``("cuda", N)``; ``auto`` is CUDA when CTranslate2 sees a GPU."""
    import ctranslate2

    name, _, index = device.partition(":")
    if name == "auto":
        name = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if name == "cpu" and not index:
        return "cpu", 0
    if name == "cuda" and (not index or index.isdigit()):
        count = ctranslate2.get_cuda_device_count()
        if int(index or 0) >= count:
            raise UsageError(f"device {device!r}: CTranslate2 sees {count} CUDA device(s); use device='cpu'")
        return "cuda", int(index or 0)
    raise UsageError(f"backend 'ctranslate2' cannot run on device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'")


def _vocabularies(folder: Path, kind: str) -> tuple[Any, Any]:
    """``(source, target)`` vocabularies of a converted model (one shared list where there is one)."""
    from .runner import Vocabulary

    def read(stem: str) -> Vocabulary | None:
        path = folder / f"{stem}.json"
        if path.is_file():
            return Vocabulary(json.loads(path.read_text(encoding="utf-8")))
        text = folder / f"{stem}.txt"
        if text.is_file():
            return Vocabulary(text.read_text(encoding="utf-8").split("\n")[:-1])
        return None

    if kind == "translator":
        shared = read("shared_vocabulary")
        return (shared, shared) if shared is not None else (read("source_vocabulary"), read("target_vocabulary"))
    vocabulary = read("vocabulary")
    return vocabulary, vocabulary


class CTranslate2Backend(Backend):
    """Runs transformers checkpoints with CTranslate2, converted once by its own converter."""

    name = "ctranslate2"
    devices = ("cpu", "cuda", "auto")
    dtypes = ("float32", "int8")
    consumes: ClassVar[tuple[str, ...]] = ("files:transformers",)
    #: Checked while planning, before any model loads: ``threads=abc`` or ``threads=-1`` is refused there,
    #: and an unscoped option this backend does not know (``use_cache``) goes only to the backends that do.
    option_schema: ClassVar[Mapping[str, Mapping[str, Any]] | None] = {
        "threads": {"type": "integer", "minimum": 1},
        "cache_dir": {"type": "string", "minLength": 1},
    }

    def check_model(self, info: ModelInfo) -> str | None:
        return refusal(info)

    def prepare(
        self,
        model: LoadedModel,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        options: Mapping[str, Any] | None = None,
    ) -> Any:
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.option_schema or {}))
        if unknown:
            raise UsageError(f"backend 'ctranslate2' has no option {', '.join(unknown)}; known: {', '.join(self.option_schema or {})}")
        if dtype not in self.dtypes:
            raise UsageError(f"backend 'ctranslate2' runs float32 or int8, not {dtype!r}")
        option_threads = _threads_option(options.get("threads"))
        reason = refusal(ModelInfo(capabilities=model.capabilities, artifacts=model.artifacts))
        if reason is not None:
            raise UsageError(reason)
        kind_device, index = check_device(device)
        import ctranslate2

        from .convert import converted, discard
        from .heads import classifier_head
        from .runner import CTranslate2Runner

        assert model.artifacts is not None and model.artifacts.config_file is not None
        config = read_config(model.artifacts.config_file)
        kind = str(engine_kind(config))
        conversion = converted(model, options.get("cache_dir"))
        # The option, else the environment's count ($LLMOS_HUB_THREADS, or Ray's grant in $OMP_NUM_THREADS),
        # else 0: CTranslate2's own choice.
        found = environment_threads()
        threads = option_threads or (found[0] if found else 0)
        engine_class = {"generator": ctranslate2.Generator, "translator": ctranslate2.Translator,
                        "encoder": ctranslate2.Encoder}[kind]

        def load() -> tuple[Any, str | None]:
            try:
                return engine_class(str(conversion.folder), device=kind_device, device_index=index,
                                    compute_type=dtype, intra_threads=threads, inter_threads=1), None
            except (RuntimeError, ValueError) as exc:
                first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
                return None, first[:300]

        engine, problem = load()
        if problem is not None and conversion.cache_hit:
            # A cached entry CTranslate2 cannot read (damaged where the cache's checks do not look, or
            # written by another CTranslate2): convert once more rather than fail on every later run.
            discard(conversion, f"CTranslate2 cannot load it: {problem}")
            conversion = converted(model, options.get("cache_dir"))
            engine, problem = load()
        if problem is not None:
            raise UsageError(f"CTranslate2 cannot load {model.name} as {dtype} on {kind_device} from its conversion "
                             f"cache entry {conversion.folder}: {problem}; delete that folder to convert again, or "
                             f"run the model with --backend pytorch") from None
        source, target = _vocabularies(conversion.folder, kind)
        head = None
        if model.supports(Capability.CLASSIFIER):
            architecture = str((config.get("architectures") or ["?"])[0])
            head = classifier_head(CLASSIFIER_HEADS[architecture], model.artifacts.weights, model.name)
        facts = {
            "backend": self.name,
            "device": f"cuda:{index}" if kind_device == "cuda" else "cpu",
            "device_name": _cpu_name() if kind_device == "cpu" else f"CUDA device {index}",
            "engine": engine_class.__name__,
            "compute_type": dtype,
            "threads": threads or None,  # None: CTranslate2's default
            "threads_source": threads_source(options.get("threads")) if threads else "ctranslate2 default",
            "conversion": {"key": conversion.key, "cache_hit": conversion.cache_hit,
                           "seconds": round(conversion.seconds, 3)},
        }
        runner = CTranslate2Runner(model, engine, kind, source=source, target=target, head=head,
                                   device=facts["device"], dtype=dtype, facts=facts)
        runner.converted_path = conversion.folder  # not in describe(): records may be published, cache paths are local
        return runner

    def versions(self) -> Mapping[str, str]:
        import ctranslate2

        return {"ctranslate2": ctranslate2.__version__}


def _threads_option(value: Any) -> int | None:
    """The ``threads`` option as a count of at least 1 (``None``: not given)."""
    if value is None:
        return None
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise UsageError(f"backend 'ctranslate2' option threads must be a whole number of at least 1, not {value!r}; "
                         "e.g. threads=2")
    return int(text)


def _cpu_name() -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux), for the record."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()
