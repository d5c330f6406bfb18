"""Publishing result records to the Hugging Face Hub, and reading them back.

A results repo is a *dataset* repo: ``records/*.json`` (one full record per run, the source of
truth), ``data/results.jsonl`` (one flat row per record, what ``datasets.load_dataset`` reads) and a
``README.md`` whose body is the leaderboard of all records. :func:`publish` adds records in one
commit per repo (optionally also putting the scores on a model's card), :func:`fetch_records` reads
them back for ``llmos-hub leaderboard --from-hub``. Everything goes through
``HfApi(endpoint=..., token=...)`` methods, so ``--endpoint`` is always honoured; the token is
never printed, logged or written. Importing this package does not import ``huggingface_hub``.
"""

from ._auth import HubAuth, resolve_auth
from ._errors import ConflictError, HubError, ServerError, hub_call
from ._fetch import fetch_records
from ._publish import PublishResult, publish, retry_command

__all__ = [
    "ConflictError",
    "HubAuth",
    "HubError",
    "PublishResult",
    "ServerError",
    "fetch_records",
    "hub_call",
    "publish",
    "resolve_auth",
    "retry_command",
]
