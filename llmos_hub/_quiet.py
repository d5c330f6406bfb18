"""Library noise stays out of our output: ``datasets``' progress bars and log lines, scoped to our calls.

``datasets.load_dataset`` draws "Generating test split: 100%|...|" and download bars on stderr, and
logs warnings, before anything we print, so a task that fails to load would show them above our
one-line error (and every ``bench`` would show them above its own progress). :func:`quiet_datasets`
turns them off around our call and puts the previous settings back afterwards, so a program that
imports llmos-hub as a library keeps its own. ``LLMOS_HUB_DEBUG`` (``--debug``) keeps everything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["quiet_datasets"]


@contextmanager
def quiet_datasets() -> Iterator[None]:
    """No progress bars or warnings from ``datasets`` (and the ``huggingface_hub`` downloads under it) inside."""
    if os.environ.get("LLMOS_HUB_DEBUG"):
        yield
        return
    import datasets
    from datasets.utils import logging as ds_logging
    from huggingface_hub import utils as hub_utils

    bars = not datasets.are_progress_bars_disabled()
    hub_bars = not hub_utils.are_progress_bars_disabled()
    verbosity = ds_logging.get_verbosity()
    datasets.disable_progress_bars()
    hub_utils.disable_progress_bars()
    ds_logging.set_verbosity_error()
    try:
        yield
    finally:
        ds_logging.set_verbosity(verbosity)
        if bars:
            datasets.enable_progress_bars()
        if hub_bars:
            hub_utils.enable_progress_bars()
