"""A run is a unit of work: one (model, task, backend, settings) tuple as small JSON-able data.

The spec's canonical-JSON sha256 is the record's configuration hash: ``--resume`` skips a spec whose
record exists, and a leaderboard row names the hash so anyone can tell two rows apart. A spec holds
everything that can change a number: the weights' sha256 (not only the model's name), the sha256 of
the task's full resolved description (prompts, fields, labels and verbalizers, few-shot settings,
metric options, generation settings), the formulation and the dataset fingerprint. Retraining a
checkpoint in place, editing a prompt or a metric option is a new configuration, never a silent reuse.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .._result import config_hash


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a run's numbers (nothing that only affects how it is shown)."""

    model: str
    revision: str | None
    task: str
    task_version: str
    dataset_fingerprint: str
    backend: str
    device: str
    dtype: str
    batch_size: int
    limit: int | None
    seed: int
    generation: dict[str, Any] | None
    backend_options: dict[str, Any] | None = None
    weights_sha256: str | None = None
    task_sha256: str | None = None
    formulation: str | None = None
    #: A split other than the task's default (``--split``); omitted from the dict when ``None``, so
    #: the hashes of configurations made before the field existed do not change.
    split: str | None = None

    @property
    def family(self) -> str:
        return self.model.split(":", 1)[0]

    @property
    def ref(self) -> str:
        return self.model.split(":", 1)[1]

    def to_dict(self) -> dict[str, Any]:
        spec = asdict(self)
        if spec["split"] is None:
            del spec["split"]
        return spec

    @property
    def hash(self) -> str:
        return config_hash(self.to_dict())

    @property
    def label(self) -> str:
        return f"{self.model} · {self.task} · {self.backend}"


def parse_model_ref(text: str) -> tuple[str, str, str | None]:
    """``family:ref[@revision]`` → ``(family, ref, revision)``; a one-line error if malformed."""
    from ..errors import UsageError

    if ":" not in text:
        raise UsageError(f"model {text!r} must be written family:ref (for example nano:lm-sample)")
    family, rest = text.split(":", 1)
    revision = None
    # A revision is the part after the last '@' unless it looks like part of a local path.
    if "@" in rest and not rest.rsplit("@", 1)[1].count("/"):
        rest, revision = rest.rsplit("@", 1)
    if not family or not rest:
        raise UsageError(f"model {text!r} must be written family:ref (for example nano:lm-sample)")
    if revision is not None and not revision.strip():
        raise UsageError(f"model {text!r} has an empty revision after '@'; give {family}:{rest}@<branch, tag or "
                         f"commit>, or drop the '@' for the default revision")
    return family, rest, revision
