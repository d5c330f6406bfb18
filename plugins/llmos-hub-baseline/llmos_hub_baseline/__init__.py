"""llmos-hub-baseline: the trivial floor of every task, as a model family any board can show."""

from .strategies import STRATEGIES, Baseline, fit_baseline

__all__ = ["STRATEGIES", "Baseline", "fit_baseline"]
