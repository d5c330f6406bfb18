"""What every built-in metric wrapper shares: loading its local ``evaluate`` module and checking input.

The wrapper is the :class:`llmos_hub.Metric` the registry hands out; the number itself comes from
the ``evaluate`` module in ``modules/<name>/``, loaded by its folder path (a bare name would reach
the Hub) on first use, so building a wrapper costs nothing and ``import evaluate`` (seconds) is paid
only by a process that scores.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._metric import Metric, Score
from ..errors import UsageError

MODULES_DIR = Path(__file__).resolve().parent / "modules"

_LOAD_LOCK = threading.Lock()


def module_path(folder: str) -> Path:
    """The folder of the built-in ``evaluate`` module called ``folder``."""
    return MODULES_DIR / folder


class EvaluateMetric(Metric):
    """A :class:`Metric` computed by a local ``evaluate`` module.

    Subclasses set ``name``, ``module_name`` (the folder under ``modules/``) and ``options`` (the
    options they accept, with their defaults), and implement ``compute`` and ``per_example``.
    """

    module_name: str = ""
    options: Mapping[str, Any] = {}
    #: Bootstrap resamples for metrics whose standard error is bootstrapped.
    resamples: int = 1000

    def __init__(self) -> None:
        self._module: Any = None

    @property
    def module(self) -> Any:
        """The ``evaluate.EvaluationModule``, loaded from its local folder on first use."""
        if self._module is None:
            with _LOAD_LOCK:
                if self._module is None:
                    import evaluate

                    self._module = evaluate.load(str(module_path(self.module_name)), keep_in_memory=True)
        return self._module

    def _evaluate(self, **inputs: Any) -> dict[str, Any]:
        """Run the evaluate module; errors raised by the reference library become UsageErrors."""
        try:
            return dict(self.module.compute(**inputs))
        except (ValueError, TypeError, KeyError, NotImplementedError) as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise UsageError(f"metric {self.name!r} cannot score this input: {message}") from exc

    def _options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` over the defaults; an unknown name is a UsageError naming the known ones."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise UsageError(
                f"metric {self.name!r} has no option {', '.join(map(repr, unknown))}; options: {known}"
            )
        return {**self.options, **options}

    def _check_lengths(self, predictions: Sequence[Any], references: Sequence[Any]) -> int:
        """The number of examples; a length mismatch or an empty corpus is a UsageError."""
        if len(predictions) != len(references):
            raise UsageError(
                f"metric {self.name!r} got {len(predictions)} predictions and {len(references)} "
                "references; pass one prediction per reference"
            )
        if not predictions:
            raise UsageError(f"metric {self.name!r} got an empty corpus; pass at least one example")
        return len(predictions)

    def _check_strings(self, values: Sequence[Any], what: str) -> list[str]:
        for i, value in enumerate(values):
            if not isinstance(value, str):
                raise UsageError(
                    f"metric {self.name!r} needs {what} as strings; item {i} is {type(value).__name__}"
                )
        return list(values)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} from {module_path(self.module_name)}>"


def score(
    value: float,
    stderr: float | None,
    *,
    signature: str | None = None,
    higher_is_better: bool = True,
) -> Score:
    """A :class:`Score` with plain Python floats (never numpy scalars, which JSON rejects)."""
    return Score(
        value=float(value),
        stderr=None if stderr is None else float(stderr),
        signature=signature,
        higher_is_better=higher_is_better,
    )
