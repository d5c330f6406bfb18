"""Default CPU thread counts that hold up when the machine is shared.

PyTorch's OpenMP workers and ONNX Runtime's intra-op threads wait for each other at every parallel
region. When a thread count equals the number of cores and other processes hold some of them, a
worker descheduled by the OS stalls all the others at the next barrier, and throughput collapses
instead of degrading: measured on our 2-core machines under load, classification ran at 62.8
examples/s with 2 threads against 511 with 1 (issue 14). So the default leaves one core free:
``cores - 1`` threads (at least 1), where ``cores`` is what this process may run on
(``os.sched_getaffinity``). ``LLMOS_HUB_THREADS`` overrides it, and a backend's ``threads`` option
overrides both; runners record the count they used in ``describe()``.
"""

from __future__ import annotations

import os

__all__ = ["THREADS_ENV", "default_threads", "usable_cores"]

#: Environment variable that sets the default thread count of every backend.
THREADS_ENV = "LLMOS_HUB_THREADS"


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """``$LLMOS_HUB_THREADS`` if set to a positive integer, else ``usable_cores() - 1`` (at least 1)."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, usable_cores() - 1)
