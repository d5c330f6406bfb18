"""No ``huggingface_hub`` progress bars while our Hub calls run.

``snapshot_download`` and ``hf_hub_download`` draw "Fetching 1 files: 0%|…" on stderr, above our own
progress and under ``bench -q`` too, and in a CI log as lines of carriage returns. The tool reports
its own progress, so :func:`no_progress_bars` turns the library's off around each call (see
``hub_call``) and puts the previous setting back after, so a program using llmos-hub as a library keeps
its own. An explicit ``HF_HUB_DISABLE_PROGRESS_BARS`` (either way) and ``--debug`` are left alone.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["no_progress_bars"]

_LOCK = threading.Lock()
_DEPTH = 0
_SAVED: dict[str, bool] = {}


@contextmanager
def no_progress_bars() -> Iterator[None]:
    """``huggingface_hub``'s bars off inside; nested and concurrent uses restore the setting once, at the end."""
    hub_tqdm = importlib.import_module("huggingface_hub.utils.tqdm")  # the module; the package's `tqdm` is the class

    if os.environ.get("LLMOS_HUB_DEBUG") or hub_tqdm.HF_HUB_DISABLE_PROGRESS_BARS is not None:
        yield
        return
    global _DEPTH
    with _LOCK:
        if _DEPTH == 0:
            _SAVED.clear()
            _SAVED.update(hub_tqdm.progress_bar_states)
            hub_tqdm.disable_progress_bars()
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                hub_tqdm.progress_bar_states.clear()
                hub_tqdm.progress_bar_states.update(_SAVED)
