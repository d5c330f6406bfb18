"""The files a results dataset repo carries besides the records: its card and a flat summary.

The records (``records/<filename>.json``) are the source of truth, but nested JSON whose ``scores``
keys differ from task to task cannot be one Arrow table: ``datasets`` fails to cast a record with
``{bleu, chrf}`` scores to the schema of one with ``{accuracy, f1}``. So every publish also rewrites
``data/results.jsonl``, one row per record with a fixed set of columns (scores as a list of
``{metric, value, stderr, higher_is_better}``), and the card's YAML front matter declares that file as
the default config, which makes ``datasets.load_dataset(repo)`` work. The card's body is the markdown
leaderboard of all records in the repo, rebuilt from the records alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml

from .._result import ResultRecord

__all__ = ["RECORDS_DIR", "SUMMARY_PATH", "dataset_card", "summary_jsonl", "summary_row"]

RECORDS_DIR = "records"
SUMMARY_PATH = "data/results.jsonl"


def summary_row(record: ResultRecord, path: str) -> dict[str, Any]:
    """One flat row for ``record`` (stored at ``path`` in the repo); same keys for every record."""
    data = record.data
    speed = data["speed"]
    primary = record.primary_metric
    scores = [
        {
            "metric": name,
            "value": float(score["value"]),
            "stderr": None if score.get("stderr") is None else float(score["stderr"]),
            "higher_is_better": score.get("higher_is_better"),
        }
        for name, score in sorted(record.scores.items())
    ]
    primary_score = record.scores.get(primary, {})
    return {
        "id": record.id,
        "record": path,
        "model": record.model,
        "model_family": data["model"]["family"],
        "model_revision": data["model"]["revision"],
        "weights_sha256": data["model"]["weights_sha256"],
        "num_parameters": int(data["model"]["num_parameters"]),
        "task": record.task,
        "task_version": data["task"]["version"],
        "split": data["task"]["split"],
        "num_examples": int(data["task"]["num_examples"]),
        "dataset_fingerprint": data["task"]["dataset_fingerprint"],
        "backend": record.backend,
        "device": data["backend"]["device"],
        "dtype": data["backend"]["dtype"],
        "config_hash": record.config_hash,
        "primary_metric": primary,
        "primary_value": None if "value" not in primary_score else float(primary_score["value"]),
        "scores": scores,
        "examples_per_second": float(speed["examples_per_second"]),
        "generated_tokens_per_second": _float_or_none(speed.get("generated_tokens_per_second")),
        "latency_ms_p50": float(speed["latency_ms"]["p50"]),
        "peak_memory_bytes": speed.get("peak_memory_bytes"),
        "llmos_hub_version": data["environment"]["llmos_hub"],
        "finished_at": data["finished_at"],
    }


def summary_jsonl(records: Sequence[tuple[str, ResultRecord]]) -> str:
    """``data/results.jsonl``: one :func:`summary_row` per ``(path, record)``, sorted by path."""
    return "".join(
        json.dumps(summary_row(record, path), sort_keys=True, ensure_ascii=False) + "\n"
        for path, record in sorted(records, key=lambda pr: pr[0])
    )


def dataset_card(records: Sequence[tuple[str, ResultRecord]], *, repo: str) -> str:
    """The dataset card: loadable-config front matter plus the markdown leaderboard."""
    from ..leaderboard import render_markdown

    ordered = [record for _, record in sorted(records, key=lambda pr: pr[0])]
    tasks = sorted({r.task for r in ordered})
    models = sorted({r.model for r in ordered})
    front: dict[str, Any] = {
        "pretty_name": f"llmos-hub results: {repo}",
        "tags": ["llmos-hub", "evaluation", "leaderboard"],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": SUMMARY_PATH}],
            }
        ],
    }
    board = render_markdown(ordered).strip()
    body = [
        f"# llmos-hub results: {repo}",
        "",
        f"{len(ordered)} result record(s) for {len(models)} model(s) on {len(tasks)} task(s), "
        "published with llmos-hub. The leaderboard below is rebuilt "
        "from the records alone on every publish.",
        "",
        "## Files",
        "",
        f"- `{RECORDS_DIR}/*.json`: one full result record per run (schema `llmos-hub/result/1`: scores, "
        "speed, configuration, provenance).",
        f"- `{SUMMARY_PATH}`: one flat row per record (what `datasets.load_dataset` reads).",
        f"- `{RECORDS_DIR}/*.samples.jsonl`: every example's input, output and scores, for records published "
        "with `--with-samples` (the record's `samples_file`).",
        "",
        "```python",
        "from datasets import load_dataset",
        f'rows = load_dataset("{repo}", split="train")',
        "```",
        "",
        f"Rebuild the board locally: `llmos-hub leaderboard --from-hub {repo}`.",
        "",
        "## Leaderboard",
        "",
        board if board else "_No records yet._",
        "",
    ]
    return "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n\n" + "\n".join(body)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)
