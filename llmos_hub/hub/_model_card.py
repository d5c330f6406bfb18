"""Scores on a model's page, on both surfaces the Hub reads.

* The card's ``model-index`` (``README.md`` front matter, via :class:`huggingface_hub.ModelCard` and
  :class:`~huggingface_hub.EvalResult`): one entry per metric of each record. Entries already on the
  card are kept; an entry for the same task, split, metric and backend is updated in place.
* The newer ``.eval_results/*.yaml`` files (:class:`~huggingface_hub.EvalResultEntry`,
  :func:`~huggingface_hub.eval_result_entries_to_yaml`): one file per record, holding its primary
  score, so other tools' files in that folder are never touched.

Every entry carries a ``source`` URL pointing back to the full record in the results dataset repo,
pinned to the commit that holds it. Which dataset an entry names depends on where the task came from:

* a task read from the Hub (``--task hf:NS/NAME``; its record's data source is
  ``hf://datasets/NS/NAME@<commit>/...``): the task's own dataset repo and that commit
  (``.eval_results``: ``dataset.id``/``dataset.revision``; model-index: ``dataset.type``/``dataset.revision``);
* a local task: the results repo, which is the only Hub dataset the record is in (``task_id`` / the
  dataset name say which task). Publishing the task first (``llmos-hub publish-task``) and benching
  it by its ``hf:`` id makes the entries point at the task itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from .._result import ResultRecord
from ._errors import HubError

__all__ = ["EMPTY_CARD", "TaskDataset", "eval_results_files", "merge_model_index", "task_dataset"]

#: A card with an empty metadata block. ``"---\n---\n"`` would not parse as front matter.
EMPTY_CARD = "---\n{{}}\n---\n# {name}\n"

EVAL_RESULTS_DIR = ".eval_results"

#: ``hf://datasets/NS/NAME@<40-hex commit>/<file>``: the data source a Hub task's record keeps.
_HUB_SOURCE_RE = re.compile(r"^hf://datasets/([^/@\s]+/[^/@\s]+)@([0-9a-f]{40})/")


@dataclass(frozen=True)
class TaskDataset:
    """The Hub dataset an entry names: its id, its revision (``None`` for a results repo), whether it is the task's."""

    id: str
    revision: str | None
    from_hub: bool


def task_dataset(record: ResultRecord, results_repo: str) -> TaskDataset:
    """Where ``record``'s task lives on the Hub, or the results repo for a local task.

    Read from the task's description in the record (``task.definition.hub``, written by a task loaded
    with ``--task hf:...``), else from its data source ``hf://datasets/NS/NAME@<commit>/...``.
    """
    task = record.data["task"]
    hub = task.get("hub")
    for key in ("definition", "description"):  # the task's description as the record keeps it
        described = task.get(key)
        if not hub and isinstance(described, dict):
            hub = described.get("hub")
    if isinstance(hub, dict) and isinstance(hub.get("repo"), str) and isinstance(hub.get("revision"), str):
        return TaskDataset(hub["repo"], hub["revision"], True)
    match = _HUB_SOURCE_RE.match(str(task.get("source") or ""))
    if match is not None:
        return TaskDataset(match.group(1), match.group(2), True)
    return TaskDataset(results_repo, None, False)


_TASK_TYPES = {
    "causal-lm": "text-generation",
    "seq2seq": "text2text-generation",
    "classifier": "text-classification",
}


#: Hub task types of our task kinds (records before the kind was recorded name a capability).
_KIND_TYPES = {
    "classification": "text-classification",
    "translation": "translation",
    "summarization": "summarization",
    "language-modelling": "text-generation",
    "multiple-choice": "multiple-choice",
}


def _task_type(task: dict[str, object]) -> str:
    kind = str(task.get("kind") or "")
    if kind:
        return _KIND_TYPES.get(kind, kind)
    capability = str(task.get("capability") or "text-generation")
    return _TASK_TYPES.get(capability, capability)


def _eval_results(record: ResultRecord, source_url: str, results_repo: str) -> list[object]:
    from huggingface_hub import EvalResult

    task = record.data["task"]
    backend = record.data["backend"]
    setting = f"{backend['name']}/{backend['device']}/{backend['dtype']}"
    dataset = task_dataset(record, results_repo)
    return [
        EvalResult(
            task_type=_task_type(task),
            task_name=record.task,
            dataset_type=dataset.id,
            dataset_name=f"{record.task} ({task['split']})",
            dataset_config="default" if dataset.from_hub else None,
            dataset_revision=dataset.revision,
            dataset_split=task["split"],
            metric_type=metric,
            metric_value=score["value"],
            metric_name=f"{metric} ({setting})",
            metric_config=setting,
            source_name="llmos-hub record",
            source_url=source_url,
        )
        for metric, score in sorted(record.scores.items())
    ]


def _same_slot(old: object, new: object) -> bool:
    """Two entries describe the same measurement (value, source and dataset revision may differ).

    An entry written before entries named a dataset id (``dataset.type`` = the task name) is the
    same slot as its successor, so republishing replaces it instead of adding a twin.
    """
    keys = ("task_type", "task_name", "dataset_split", "metric_type", "metric_config")
    if not all(getattr(old, k, None) == getattr(new, k, None) for k in keys):
        return False
    return getattr(old, "dataset_type", None) in (getattr(new, "dataset_type", None), getattr(new, "task_name", None))


def merge_model_index(
    readme: str | None, records: Sequence[tuple[ResultRecord, str]], *, model_repo: str, results_repo: str = ""
) -> str:
    """The model card text with ``records``' scores merged into its ``model-index``.

    ``readme`` is the current ``README.md`` (``None`` when the repo has none); ``records`` pairs
    each record with the URL of its file in the results repo (``results_repo``, the dataset a local
    task's entries name).
    """
    import yaml as _yaml
    from huggingface_hub import ModelCard

    try:
        card = ModelCard(readme if readme is not None else EMPTY_CARD.format(name=model_repo.split("/")[-1]))
    except (_yaml.YAMLError, ValueError) as exc:
        # Never rewrite a card we cannot read: that would drop what its author wrote.
        reason = " ".join(str(exc).split())[:160]
        raise HubError(f"the card (README.md) of model repo {model_repo} has front matter that does not parse "
                       f"({reason}); fix it on the Hub, then publish again") from None
    data: Any = card.data  # a ModelCardData; the base CardData type lacks its fields
    existing = list(data.eval_results or [])
    # Oldest first, so where two records fill one slot the newest (by finished_at) is the one kept,
    # whatever their file names.
    for record, url in sorted(records, key=lambda pair: str(pair[0].data.get("finished_at", ""))):
        for new in _eval_results(record, url, results_repo):
            for i, old in enumerate(existing):
                if _same_slot(old, new):
                    existing[i] = new
                    break
            else:
                existing.append(new)
    data.eval_results = existing
    if not data.model_name:
        data.model_name = model_repo.split("/")[-1]
    return str(card)


def eval_results_files(
    records: Sequence[tuple[ResultRecord, str]], *, dataset_repo: str
) -> dict[str, bytes]:
    """``.eval_results/llmos-hub__<record>.yaml`` for each ``(record, source_url)``."""
    from huggingface_hub import EvalResultEntry, eval_result_entries_to_yaml

    files: dict[str, bytes] = {}
    for record, url in records:
        task = record.data["task"]
        backend = record.data["backend"]
        primary = record.primary_metric
        dataset = task_dataset(record, dataset_repo)
        entry = EvalResultEntry(
            dataset_id=dataset.id,
            dataset_revision=dataset.revision,
            task_id=record.task,
            value=record.scores[primary]["value"],
            date=record.data["finished_at"],
            source_url=url,
            source_name="llmos-hub record",
            notes=(
                f"{primary} on the {task['split']} split ({task['num_examples']} examples); "
                f"backend {backend['name']} on {backend['device']} ({backend['dtype']})"
            ),
        )
        stem = record.filename().removesuffix(".json")
        text = yaml.safe_dump(eval_result_entries_to_yaml([entry]), sort_keys=False, allow_unicode=True)
        files[f"{EVAL_RESULTS_DIR}/llmos-hub__{stem}.yaml"] = text.encode("utf-8")
    return files
