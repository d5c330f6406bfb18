"""Paired significance for runs on the same examples: the per-example table, the tests, Holm's correction.

``compare`` and the leaderboard use this package; it needs only numpy (scipy and statsmodels are the
reference implementations in the tests, never imported here).
"""

from ._paired import DEFAULT_ALPHA, Arm, Difference, compare_metric, pairing_problem
from ._table import example_table, output_digest, output_loglikelihoods
from ._tests import (
    bootstrap_indices,
    bootstrap_scores,
    holm,
    mcnemar_exact,
    paired_bootstrap,
    percentile_interval,
    sign_flip_permutation,
    unpaired_z_test,
)

__all__ = [
    "DEFAULT_ALPHA",
    "Arm",
    "Difference",
    "bootstrap_indices",
    "bootstrap_scores",
    "compare_metric",
    "example_table",
    "holm",
    "mcnemar_exact",
    "output_digest",
    "output_loglikelihoods",
    "paired_bootstrap",
    "pairing_problem",
    "percentile_interval",
    "sign_flip_permutation",
    "unpaired_z_test",
]
