"""Exceptions that the CLI turns into one-line messages.

Every error a user can cause (a wrong name, a malformed file, a broken plugin, an unreachable Hub)
is raised as a :class:`LlmosHubError` subclass whose ``str()`` is a complete, one-line message that
names the problem and the fix. The CLI prints it and exits with :attr:`LlmosHubError.exit_code`;
anything else is a bug and shows a traceback only with ``--debug``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "DataError",
    "LlmosHubError",
    "PluginError",
    "UnknownNameError",
    "UsageError",
    "close_matches",
]


class LlmosHubError(Exception):
    """Base class of the errors shown to a user as one line; ``exit_code`` is the process status."""

    exit_code: int = 1


class UsageError(LlmosHubError):
    """A wrong flag, a wrong combination of options, a request that cannot be met."""

    exit_code = 2


class UnknownNameError(UsageError):
    """A model family, task, backend or metric name that no plugin registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        message = f"unknown {kind} {name!r}"
        matches = close_matches(name, self.known)
        if matches:
            message += f"; did you mean {' or '.join(repr(m) for m in matches)}?"
        elif self.known:
            message += f"; known: {', '.join(self.known)}"
        else:
            message += "; none is installed (see `llmos-hub plugins`)"
        super().__init__(message)


class PluginError(LlmosHubError):
    """A plugin that failed to load, broke the hook contract, or collided with another plugin."""


class DataError(LlmosHubError):
    """A dataset or task file that cannot be used; the message names file, line and field."""

    exit_code = 2


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The candidates that look like ``name``, best first (for "did you mean" hints).

    A candidate that ``name`` begins (``onnx`` → ``onnxruntime``, ``translation`` →
    ``translation-sample``) comes first, whatever its length; then difflib's close matches (typos), only
    those within 0.1 of the closest one's similarity.
    """
    pool = list(dict.fromkeys(candidates))
    folded = name.casefold()
    prefixed = [c for c in pool if len(folded) >= 2 and c.casefold().startswith(folded) and c != name]
    similar = difflib.get_close_matches(name, pool, n=n, cutoff=0.6)
    if similar:  # keep the typos about as close as the closest: `transaltion-sample` has one answer, not three
        ratio = {c: difflib.SequenceMatcher(None, name, c).ratio() for c in similar}
        similar = [c for c in similar if ratio[c] >= ratio[similar[0]] - 0.1]
    return list(dict.fromkeys([*sorted(prefixed, key=len), *similar]))[:n]
