"""Two records side by side: per-metric differences with a significance test, backend parity, speed ratios.

Two runs of the same task on the same examples are compared pair by pair (:mod:`llmos_hub.stats`):
the exact McNemar test for accuracy-type scores, a paired permutation test for per-example means
(ROUGE), a paired bootstrap over examples for corpus scores (BLEU, chrF, macro-F1, perplexities). Each
difference comes with its confidence interval, p-value and a verdict at ``alpha``. Without per-example
data, or on different examples of the same task, the comparison falls back to the unpaired z-test on
the two standard errors and says so. Two backends running one model also get a parity summary: how many
answers are identical, the largest log-likelihood gap, whether any score differs significantly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._result import ResultRecord
from .errors import UsageError
from .stats._paired import DEFAULT_ALPHA, DEFAULT_RESAMPLES, Arm, Difference, compare_metric

__all__ = ["Comparison", "Difference", "Parity", "compare_records", "pair_by_backend"]

#: ``prepare_seconds`` beside ``load_seconds``: a backend that converts the model (an ONNX export, packing)
#: spends its time there, and a comparison of load times alone would hide it.
_SPEED_KEYS = ("examples_per_second", "generated_tokens_per_second", "prompt_tokens_per_second", "load_seconds",
               "prepare_seconds")


@dataclass(frozen=True)
class Parity:
    """How closely two backends agree when running one model on the same examples."""

    examples: int
    identical_outputs: int | None
    max_loglikelihood_difference: float | None
    any_significant: bool | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "identical_outputs": self.identical_outputs,
            "max_loglikelihood_difference": self.max_loglikelihood_difference,
            "any_significant_difference": self.any_significant,
        }

    def summary(self) -> str:
        same = "-" if self.identical_outputs is None else f"{self.identical_outputs}/{self.examples}"
        ll = "" if self.max_loglikelihood_difference is None else f"; largest log-likelihood difference {self.max_loglikelihood_difference:.3g}"
        sig = {True: "a score differs significantly", False: "no score differs significantly", None: "significance unknown"}[self.any_significant]
        return f"backend parity: identical outputs {same}{ll}; {sig}"


@dataclass(frozen=True)
class Comparison:
    a: ResultRecord
    b: ResultRecord
    scores: list[Difference]
    speed: list[tuple[str, float | None, float | None]]
    comparable: bool
    note: str
    alpha: float = DEFAULT_ALPHA
    parity: Parity | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": {"id": self.a.id, "model": self.a.model, "backend": self.a.backend, "task": self.a.task},
            "b": {"id": self.b.id, "model": self.b.model, "backend": self.b.backend, "task": self.b.task},
            "comparable": self.comparable,
            "note": self.note,
            "alpha": self.alpha,
            "scores": [s.to_dict() for s in self.scores],
            "parity": self.parity.to_dict() if self.parity else None,
            "speed": [{"metric": k, "a": a, "b": b, "ratio_b_over_a": (b / a if a and b else None)} for k, a, b in self.speed],
        }


def _same_model(a: ResultRecord, b: ResultRecord) -> bool:
    ma, mb = a.data["model"], b.data["model"]
    return ma["ref"] == mb["ref"] and ma["weights_sha256"] == mb["weights_sha256"]


def _parity(a: Arm, b: Arm, scores: list[Difference]) -> Parity | None:
    if a.table is None or b.table is None or a.ids != b.ids:
        return None
    n = len(a.table["ids"])
    oa, ob = a.table.get("outputs"), b.table.get("outputs")
    identical = sum(x == y for x, y in zip(oa, ob)) if oa is not None and ob is not None else None
    la, lb = a.table.get("loglikelihoods"), b.table.get("loglikelihoods")
    gap = None
    if la is not None and lb is not None and all(len(x) == len(y) for x, y in zip(la, lb)):
        gaps = [abs(x - y) for xs, ys in zip(la, lb) for x, y in zip(xs, ys)]
        gap = max(gaps) if gaps else None
    tested = [s.significant for s in scores if s.significant is not None]
    return Parity(n, identical, gap, any(tested) if tested else None)


def _task_label(record: ResultRecord) -> str:
    task = record.data["task"]
    return f"{task['name']} v{task['version']}"


def _same_task(a: ResultRecord, b: ResultRecord) -> bool:
    """Whether two records scored the same task at the same version (their scores mean the same thing)."""
    ta, tb = a.data["task"], b.data["task"]
    return bool(ta["name"] == tb["name"] and ta["version"] == tb["version"])


def compare_records(
    a: ResultRecord,
    b: ResultRecord,
    *,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
    allow_different_tasks: bool = False,
) -> Comparison:
    """Every score of B against A, tested pair by pair where the records allow it.

    Records of different tasks or task versions are refused (:class:`~llmos_hub.errors.UsageError`):
    their scores measure different things, so a table of deltas would only mislead. Library callers that
    want the side-by-side anyway (speeds, untested scores) pass ``allow_different_tasks=True``.
    """
    da, db = a.data, b.data
    same_task = _same_task(a, b)
    if not same_task and not allow_different_tasks:
        raise UsageError(f"cannot compare records of different tasks or versions: A is {_task_label(a)}, "
                         f"B is {_task_label(b)}; compare two runs of the same task and version")
    same_data = same_task and da["task"]["dataset_fingerprint"] == db["task"]["dataset_fingerprint"]
    arm_a, arm_b = Arm(a), Arm(b)
    if same_data and arm_a.table is not None and arm_b.table is not None and arm_a.ids != arm_b.ids:
        same_data = False  # one fingerprint, yet other example ids: not pairs either
        note = "same task and data, different example ids: unpaired tests only"
    elif same_data:
        note = "same task, version and examples"
    elif same_task:
        note = "same task, different examples: unpaired tests only"
    else:
        note = "different task or version: scores are not comparable"
    metrics = sorted(set(da["scores"]) | set(db["scores"]))
    scores = []
    for m in metrics:
        diff = compare_metric(arm_a, arm_b, m, alpha=alpha, seed=seed, resamples=resamples)
        if not same_task:
            diff = Difference(**{**diff.__dict__, "method": "none", "paired": False, "ci": None, "p_value": None,
                                 "note": "different tasks are not compared",
                                 "equal_within_rounding": False})
        scores.append(diff)
    speed = [(k, da["speed"].get(k), db["speed"].get(k)) for k in _SPEED_KEYS]
    parity = _parity(arm_a, arm_b, scores) if same_data and _same_model(a, b) else None
    return Comparison(a, b, scores, speed, same_data, note, alpha, parity)


#: What tells two configurations of one backend apart, beside the fields :func:`pair_by_backend` keys on.
_SETTING_NAMES = {"dtype": "dtype", "device": "device", "formulation": "formulation",
                  "backend_options": "backend options", "num_fewshot": "few-shot", "split": "split"}


def _differing_settings(records: list[ResultRecord]) -> list[str]:
    """The spec fields (backend name aside) whose values differ among ``records``, readably named."""
    specs = [dict(r.data["config"]["spec"]) for r in records]
    keys = sorted({k for spec in specs for k in spec} - {"backend"})
    return [_SETTING_NAMES.get(k, k) for k in keys if len({repr(spec.get(k)) for spec in specs}) > 1]


def pair_by_backend(
    records: Iterable[ResultRecord], backend_a: str, backend_b: str, *, paths: Mapping[int, str] | None = None
) -> list[tuple[ResultRecord, ResultRecord]]:
    """Pairs of records that differ only in backend (same model, task and version, data, batch size, seed, limit).

    Reruns of one configuration (the same configuration hash) keep the newest record (by ``finished_at``),
    as the leaderboard does. When a backend name matches more than one configuration of a pair's
    model and task (another dtype, device, formulation, backend options or few-shot count), which of
    them to pair is the user's choice, not the file names' order: a :class:`UsageError` names the
    records (``paths`` maps ``id(record)`` to its file) and what differs, and says to pass the two files.
    """

    def key(r: ResultRecord) -> tuple[Any, ...]:
        d = r.data
        c = d["config"]
        task = d["task"]  # the version too: records of two versions are not a pair (compare_records refuses them)
        return (d["model"]["ref"], d["model"].get("revision"), task["name"], task["version"], task["dataset_fingerprint"],
                c["batch_size"], c["seed"], c["limit"])

    def name(r: ResultRecord) -> str:
        return (paths or {}).get(id(r)) or f"record {r.id}"

    sides: dict[str, dict[tuple[Any, ...], dict[str, ResultRecord]]] = {backend_a: {}, backend_b: {}}
    for r in records:
        if r.backend in sides:
            configs = sides[r.backend].setdefault(key(r), {})
            old = configs.get(r.config_hash)
            if old is None or r.data["finished_at"] >= old.data["finished_at"]:
                configs[r.config_hash] = r
    by_a, by_b = sides[backend_a], sides[backend_b]
    pairs = []
    for k in sorted(by_a, key=str):
        if k not in by_b:
            continue
        for backend, configs in ((backend_a, by_a[k]), (backend_b, by_b[k])):
            if len(configs) > 1:
                found = sorted(configs.values(), key=name)
                raise UsageError(
                    f"backend {backend} has {len(found)} configurations of {k[0]} on {k[2]} that differ in "
                    f"{', '.join(_differing_settings(found)) or 'settings'}: {', '.join(map(name, found))}; "
                    "compare the two record files you mean instead (llmos-hub compare A.json B.json)")
        pairs.append((next(iter(by_a[k].values())), next(iter(by_b[k].values()))))
    return pairs
