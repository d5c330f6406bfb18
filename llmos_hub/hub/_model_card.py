"""Scores on a model's page, on both surfaces the Hub reads.

* The card's ``model-index`` (``README.md`` front matter, via :class:`huggingface_hub.ModelCard` and
  :class:`~huggingface_hub.EvalResult`): one entry per metric of each record. Entries already on the
  card are kept; an entry for the same task, split, metric and backend is updated in place.
* The newer ``.eval_results/*.yaml`` files (:class:`~huggingface_hub.EvalResultEntry`,
  :func:`~huggingface_hub.eval_result_entries_to_yaml`): one file per record, holding its primary
  score, so other tools' files in that folder are never touched.

Every entry carries a ``source`` URL pointing back to the full record in the results dataset repo.
"""

from __future__ import annotations

from collections.abc import Sequence

import yaml

from .._result import ResultRecord
from ._errors import HubError

__all__ = ["EMPTY_CARD", "eval_results_files", "merge_model_index"]

#: A card with an empty metadata block. ``"---\n---\n"`` would not parse as front matter.
EMPTY_CARD = "---\n{{}}\n---\n# {name}\n"

EVAL_RESULTS_DIR = ".eval_results"

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


def _eval_results(record: ResultRecord, source_url: str) -> list[object]:
    from huggingface_hub import EvalResult

    task = record.data["task"]
    backend = record.data["backend"]
    setting = f"{backend['name']}/{backend['device']}/{backend['dtype']}"
    return [
        EvalResult(
            task_type=_task_type(task),
            task_name=record.task,
            dataset_type=record.task,
            dataset_name=f"{record.task} ({task['split']})",
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


def _same_slot(a: object, b: object) -> bool:
    """Two entries describe the same measurement (value and source may differ)."""
    keys = ("task_type", "dataset_type", "dataset_split", "metric_type", "metric_config")
    return all(getattr(a, k, None) == getattr(b, k, None) for k in keys)


def merge_model_index(
    readme: str | None, records: Sequence[tuple[ResultRecord, str]], *, model_repo: str
) -> str:
    """The model card text with ``records``' scores merged into its ``model-index``.

    ``readme`` is the current ``README.md`` (``None`` when the repo has none); ``records`` pairs
    each record with the URL of its file in the results repo.
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
    existing = list(card.data.eval_results or [])
    for record, url in records:
        for new in _eval_results(record, url):
            for i, old in enumerate(existing):
                if _same_slot(old, new):
                    existing[i] = new
                    break
            else:
                existing.append(new)
    card.data.eval_results = existing
    if not card.data.model_name:
        card.data.model_name = model_repo.split("/")[-1]
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
        entry = EvalResultEntry(
            dataset_id=dataset_repo,
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
