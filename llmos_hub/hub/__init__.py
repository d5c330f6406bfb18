"""Publishing result records to the Hugging Face Hub, and reading them back.

A results repo is a *dataset* repo: ``records/*.json`` (one full record per run, the source of
truth), ``data/results.jsonl`` (one flat row per record, what ``datasets.load_dataset`` reads) and a
``README.md`` whose body is the leaderboard of all records. :func:`publish` adds records in one
commit per repo (optionally also putting the scores on a model's card), :func:`fetch_records` reads
them back for ``llmos-hub leaderboard --from-hub``. :func:`publish_task` puts a task (its YAML, data
and a loadable dataset card) in a dataset repo of its own, which ``--task hf:NS/NAME`` then reads.
Everything goes through ``HfApi(endpoint=..., token=...)`` methods, so ``--endpoint`` is always
honoured; the token is never printed, logged or written. Importing this package does not import ``huggingface_hub``.
"""

from ._auth import HubAuth, hub_flags, resolve_auth
from ._errors import ConflictError, HubError, ServerError, hub_call
from ._fetch import fetch_records
from ._publish import PublishResult, check_push_target, publish, retry_command
from ._retried import hub_call_retried, hub_deadline
from ._tasks import TaskPublishResult, publish_task

__all__ = [
    "ConflictError",
    "HubAuth",
    "HubError",
    "PublishResult",
    "ServerError",
    "TaskPublishResult",
    "check_push_target",
    "fetch_records",
    "hub_call",
    "hub_call_retried",
    "hub_deadline",
    "hub_flags",
    "publish",
    "publish_task",
    "resolve_auth",
    "retry_command",
]
