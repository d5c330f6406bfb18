"""The ``nano`` model family: ``nano:NAME`` (a checkpoint shipped in this package) or ``nano:/path``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from llmos_hub import Capability, LoadedModel, ModelFamily, Provenance, UsageError
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


class NanoFamily(ModelFamily):
    """Loads nano checkpoints; answers capabilities from ``config.json`` alone."""

    name = "nano"

    def load(self, ref: str, *, revision: str | None = None) -> LoadedModel:
        if revision is not None:
            raise UsageError("nano checkpoints have no revisions; drop --revision")
        from .checkpoint import load_checkpoint
        from .modeling import roles

        folder = resolve(ref)
        config, model, tokenizer, sha256, _ = load_checkpoint(folder)
        num_parameters = sum(p.numel() for p in model.parameters())
        provenance = Provenance(
            source=f"nano:{ref}" if not _is_path(ref) else str(folder.resolve()),
            revision=None,
            weights_sha256=sha256,
            num_parameters=num_parameters,
            extra={"architecture": config.architecture, "training": dict(config.training)},
        )
        return LoadedModel(
            family=self.name,
            ref=ref,
            capabilities=frozenset({config.capability}),
            tokenizer=tokenizer,
            modules=roles(model),
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
        return frozenset({config.capability})

    def available(self) -> Sequence[str]:
        return shipped()
