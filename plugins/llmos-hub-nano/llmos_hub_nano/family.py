"""The ``nano`` model family: ``nano:NAME`` (a checkpoint shipped in this package) or ``nano:/path``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from llmos_hub import (
    Artifacts,
    Capability,
    DataError,
    LoadedModel,
    ModelFamily,
    ModelInfo,
    Provenance,
    UsageError,
    check_inside,
)
from llmos_hub.errors import close_matches

from .config import read_config

__all__ = ["CHECKPOINTS", "NanoFamily", "resolve"]

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


def _is_path(ref: str) -> bool:
    return "/" in ref or "\\" in ref or ref.startswith((".", "~"))


def shipped() -> list[str]:
    if not CHECKPOINTS.is_dir():
        return []
    return sorted(p.name for p in CHECKPOINTS.iterdir() if (p / "config.json").is_file())


def resolve(ref: str) -> Path:
    """The checkpoint folder ``ref`` names: a local path, or a shipped checkpoint's name."""
    if _is_path(ref):
        return Path(ref).expanduser()
    names = shipped()
    if ref not in names:
        hint = close_matches(ref, names)
        suggestion = f"did you mean {' or '.join(repr('nano:' + h) for h in hint)}?" if hint else (
            f"shipped: {', '.join('nano:' + n for n in names)}" if names else "none is shipped"
        )
        raise UsageError(f"no nano checkpoint {ref!r}; {suggestion} (or give nano:/path/to/folder)")
    return CHECKPOINTS / ref


def _folder(ref: str) -> Path:
    folder = resolve(ref)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; give nano:NAME of a shipped checkpoint or nano:/path/to/folder")
    return folder


def _artifacts(folder: Path, weights: Path) -> Artifacts:
    return Artifacts(
        folder=folder.resolve(),
        layout="nano",
        weights=(weights.resolve(),),
        tokenizer_files=((folder / "tokenizer.json").resolve(),),
        config_file=(folder / "config.json").resolve(),
    )


class NanoFamily(ModelFamily):
    """Loads nano checkpoints; answers capabilities from ``config.json`` alone."""

    name = "nano"

    def load(self, ref: str, *, revision: str | None = None) -> LoadedModel:
        """The checkpoint's tokenizer and provenance now; its torch modules when a backend asks."""
        if revision is not None:
            raise UsageError("nano checkpoints have no revisions; drop --revision")
        from .checkpoint import count_parameters, file_sha256, load_tokenizer, weights_path

        folder = _folder(ref)
        config = read_config(folder)
        weights = weights_path(folder)
        tokenizer = load_tokenizer(folder, config)
        sha256 = file_sha256(weights)

        def build_modules() -> dict[str, object]:
            from .checkpoint import load_checkpoint
            from .modeling import roles

            _, model, _, built_sha, _ = load_checkpoint(folder)
            if built_sha != sha256:
                raise DataError(f"{weights}: the weights changed on disk while the model was in use; run again")
            return roles(model)

        provenance = Provenance(
            source=f"nano:{ref}" if not _is_path(ref) else str(folder.resolve()),
            revision=None,
            weights_sha256=sha256,
            num_parameters=count_parameters(weights),
            extra={"architecture": config.architecture, "training": dict(config.training)},
        )
        return LoadedModel(
            family=self.name,
            ref=ref,
            capabilities=frozenset({config.capability}),
            tokenizer=tokenizer,
            build_modules=build_modules,
            artifacts=_artifacts(folder, weights),
            provenance=provenance,
            max_length=config.max_length,
            config=config.to_dict(),
            labels=list(config.labels) if config.labels else None,
            decoder_start_id=config.decoder_start_id,
        )

    def capabilities(self, ref: str) -> frozenset[Capability] | None:
        from .checkpoint import weights_path

        folder = resolve(ref)
        config = read_config(folder)
        if any(p.name.startswith(("model", "pytorch_model")) for p in folder.iterdir()):
            weights_path(folder)  # pickle-only, outside or truncated weights: refused before any model loads
        check_inside("tokenizer.json", folder=folder)  # another checkpoint's tokenizer: refused at plan time
        return frozenset({config.capability})

    def inspect(self, ref: str, *, revision: str | None = None) -> ModelInfo:
        from .checkpoint import file_sha256, weights_path

        folder = _folder(ref)
        config = read_config(folder)
        weights = weights_path(folder)
        check_inside("tokenizer.json", folder=folder)  # the artifacts hand it to backends that read files
        return ModelInfo(
            capabilities=frozenset({config.capability}),
            weights_sha256=file_sha256(weights),
            labels=tuple(config.labels) if config.labels else None,
            artifacts=_artifacts(folder, weights),
            max_length=config.max_length,
        )

    def available(self) -> Sequence[str]:
        return shipped()
