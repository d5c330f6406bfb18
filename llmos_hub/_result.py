"""Result records: one schema-versioned JSON file per (model, task, backend, settings) run.

A record is plain data (a dict that validates against ``schemas/result-1.json``) wrapped in
:class:`ResultRecord` for convenient access. It is validated on write and on read, so a leaderboard
built from records never shows a number it cannot account for. A record's ``id`` is derived from the
configuration hash, which is what ``--resume`` matches on.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import numbers
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._fileio import atomic_write
from .errors import DataError

__all__ = ["SCHEMA_ID", "SCORE_TOLERANCE", "ResultRecord", "config_hash", "iter_records", "load_record", "scores_equal"]

SCHEMA_ID = "llmos-hub/result/1"
_SCHEMA_FILE = Path(__file__).parent / "schemas" / "result-1.json"


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    schema = json.loads(_SCHEMA_FILE.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def schema() -> dict[str, Any]:
    """The JSON Schema of a result record (as shipped in the package)."""
    shipped: dict[str, Any] = json.loads(_SCHEMA_FILE.read_text(encoding="utf-8"))
    return shipped


def validation_error(data: Any, *, read: bool = False) -> str | None:
    """The first reason ``data`` is not a valid record, as one line, or ``None`` if it is valid.

    ``read``: ``data`` comes from a file or the Hub, not from this process's bench, so its scores are
    also checked against its per-example values (a hand edit leaves them apart). A record being made is
    never refused for that: the run's numbers are what its metric gave, and are kept."""
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if not errors:
        return _non_finite(data) or _inconsistent(data, scores=read)
    err = errors[0]
    where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
    return f"{where}: {err.message}"


def _non_finite(data: Any) -> str | None:
    """NaN and infinities are not scores: a record holding one is refused, so it is never ranked."""
    import math

    for name, score in sorted((data.get("scores") or {}).items()):
        for key in ("value", "stderr"):
            value = score.get(key) if isinstance(score, dict) else None
            if isinstance(value, float) and not math.isfinite(value):
                return f"scores/{name}/{key}: {value} is not a finite number; the run's metric failed, rerun it"
    return None


#: How far a ``binary``/``mean`` score may be from the mean of its per-example values: a metric that
#: computes in float32 lands within ~1e-7 of it; a hand-edited score is off by far more. The same
#: relative tolerance says when two records' scores are equal (:func:`scores_equal`): one model on two
#: backends gives perplexities ~1e-8 apart (float32 arithmetic in another order), which is no difference.
SCORE_TOLERANCE = 1e-6


def scores_equal(a: float, b: float) -> bool:
    """Whether two scores are equal within float rounding: :data:`SCORE_TOLERANCE` relative (1e-12 absolute
    near zero). The leaderboard ties such rows and ``compare`` does not test them."""
    import math

    return math.isclose(a, b, rel_tol=SCORE_TOLERANCE, abs_tol=1e-12)


def _inconsistent(data: Mapping[str, Any], *, scores: bool = True) -> str | None:
    """A record whose parts disagree: the schema cannot say it, and statistics over it would be wrong.

    The configuration hash is the hash of the spec beside it (``--resume`` and deduplication trust it);
    every per-example array has one entry per example id (paired tests index them together); with
    ``scores``, a score that is the mean of its per-example values (``binary``, ``mean``) equals that
    mean within :data:`SCORE_TOLERANCE` (relative). A record that fails was edited by hand or written by
    a metric that breaks its contract, and is refused like any invalid file.
    """
    config = data["config"]
    if config_hash(config["spec"]) != config["hash"]:
        return "config/hash: is not the hash of config/spec (the record was edited); rerun the configuration"
    per_example = data.get("per_example")
    if not per_example:
        return None
    n = len(per_example["ids"])
    arrays = {f"per_example/{key}": per_example[key] for key in ("outputs", "loglikelihoods") if key in per_example}
    arrays.update({f"per_example/statistics/{key}": rows for key, rows in (per_example.get("statistics") or {}).items()})
    for name, entry in per_example["scores"].items():
        if "values" in entry:
            arrays[f"per_example/scores/{name}/values"] = entry["values"]
    for where, values in arrays.items():
        if len(values) != n:
            return f"{where}: {len(values)} entries for {n} example ids; the record was edited or cut, rerun it"
    if scores:
        problem = _per_example_problem(per_example)
        if problem is not None:
            return problem
    for name, entry in per_example["scores"].items():
        score = data["scores"].get(name)
        if scores and entry["kind"] in ("binary", "mean") and n and isinstance(score, Mapping):
            mean = sum(entry["values"]) / n
            if abs(mean - score["value"]) > SCORE_TOLERANCE * max(1.0, abs(mean)):
                return (f"scores/{name}/value: {score['value']} is not the mean of its {n} per-example values "
                        f"({mean}); the record was edited (rerun it), or its metric's score breaks the "
                        "per-example contract")
        if entry["kind"] == "corpus" and entry["statistics"] not in (per_example.get("statistics") or {}):
            return f"per_example/scores/{name}: names statistics {entry['statistics']!r}, which the record lacks"
    return None


def _per_example_problem(per_example: Mapping[str, Any]) -> str | None:
    """Per-example data that paired tests cannot use, checked when a record is read: repeated example ids,
    values that are not finite numbers, statistics rows of unequal widths."""
    ids = per_example["ids"]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        return f"per_example/ids: example id {dup!r} appears more than once; the record was edited, rerun it"
    for name, entry in sorted(per_example["scores"].items()):
        problem = values_problem("mean", entry.get("values") or [], f"per_example/scores/{name}/values")
        if problem is not None:
            return problem
    for name, rows in sorted((per_example.get("statistics") or {}).items()):
        problem = values_problem("corpus", rows, f"per_example/statistics/{name}")
        if problem is not None:
            return problem
    for i, values in enumerate(per_example.get("loglikelihoods") or []):
        if not all(_finite(v) for v in values):
            return f"per_example/loglikelihoods/{i}: a value is not a finite number; the record was edited, rerun it"
    return None


def _finite(x: Any) -> bool:
    """A finite real number (numpy's too: a plugin metric may give them), not a bool."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def values_problem(kind: str, values: Sequence[Any], where: str = "values") -> str | None:
    """Why one per-example entry cannot be kept, or None: a ``binary``/``mean`` value that is not a finite
    number, or ``corpus`` statistics rows of unequal or zero width or holding such a value. The bench leaves
    such an entry out of a record it writes (:func:`llmos_hub.stats._table.example_table`); a record read
    with one is refused."""
    if kind != "corpus":
        for i, value in enumerate(values):
            if not _finite(value):
                return (f"{where}/{i}: {value} is not a finite number; the run's metric failed or the record was "
                        "edited, rerun it")
        return None
    if not all(isinstance(row, (list, tuple)) for row in values):
        return f"{where}: every example's statistics must be a row of numbers; the record was edited, rerun it"
    widths = {len(row) for row in values}
    if len(widths) > 1:
        return (f"{where}: rows of {min(widths)} to {max(widths)} numbers (every example's row must be as wide); "
                "the record was edited or its metric is broken, rerun it")
    if widths == {0}:
        return f"{where}: empty rows; the record was edited or its metric is broken, rerun it"
    for i, row in enumerate(values):
        bad = next((v for v in row if not _finite(v)), None)
        if bad is not None or not all(_finite(v) for v in row):
            return (f"{where}/{i}: {bad} is not a finite number; the run's metric failed or the record was edited, "
                    "rerun it")
    return None


def config_hash(spec: Mapping[str, Any]) -> str:
    """sha256 of a run's spec as canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def record_stem(task: str, model: str, backend: str, config_hash: str) -> str:
    """The file name stem shared by a record and its samples file."""
    def safe(s: str) -> str:
        return "".join(c if c.isalnum() or c in "-." else "-" for c in s)

    return f"{safe(task)}__{safe(model)}__{safe(backend)}__{config_hash[:12]}"


@dataclass(frozen=True)
class ResultRecord:
    """A validated result record; ``data`` is the JSON document itself.

    ``samples`` is the text of its ``--log-samples`` file (``data["samples_file"]``) until it is saved:
    :meth:`save` writes both into one folder, so a samples file goes wherever its record goes (the
    output folder, or the fallback folder when that cannot be written).
    """

    data: Mapping[str, Any]
    samples: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        reason = validation_error(self.data)
        if reason is not None:
            raise DataError(f"invalid result record: {reason}")

    # Convenience accessors used by the leaderboard, compare and publish.
    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def model(self) -> str:
        return str(self.data["model"]["ref"])

    @property
    def task(self) -> str:
        return str(self.data["task"]["name"])

    @property
    def backend(self) -> str:
        return str(self.data["backend"]["name"])

    @property
    def config_hash(self) -> str:
        return str(self.data["config"]["hash"])

    @property
    def primary_metric(self) -> str:
        return str(self.data["task"]["primary_metric"])

    @property
    def scores(self) -> Mapping[str, Mapping[str, Any]]:
        scores: Mapping[str, Mapping[str, Any]] = self.data["scores"]
        return scores

    def filename(self) -> str:
        """A stable, readable file name: ``task__model__backend__hash12.json``."""
        return record_stem(self.task, self.model, self.backend, self.config_hash) + ".json"

    def to_json(self) -> str:
        """Indented JSON, with arrays of plain values kept on one line (the per-example table stays compact)."""
        text = json.dumps(self.data, indent=2, sort_keys=True, ensure_ascii=False)
        return _FLAT_ARRAY.sub(_one_line, text) + "\n"

    def save(self, folder: str | Path) -> Path:
        """Write the record (its samples file first, so it never names a missing file) atomically into
        ``folder``; returns the record's path."""
        if self.samples is not None and self.data.get("samples_file"):
            atomic_write(Path(folder) / str(self.data["samples_file"]), self.samples)
        return atomic_write(Path(folder) / self.filename(), self.to_json())


#: An array holding no array or object. json.dumps escapes newlines inside strings, so every newline
#: in its output is layout and may be removed without changing the document.
_FLAT_ARRAY = re.compile(r"\[[^\[\]{}]*\]")


def _one_line(match: re.Match[str]) -> str:
    return re.sub(r"\n\s*", "", match.group(0)).replace(",", ", ") if "\n" in match.group(0) else match.group(0)


def load_record(path: str | Path) -> ResultRecord:
    """Read and validate one record; a bad file raises :class:`DataError` naming it and the reason."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}:{exc.lineno}: not JSON: {exc.msg}") from exc
    reason = validation_error(data, read=True)
    if reason is not None:
        raise DataError(f"{p}: invalid result record: {reason}")
    return ResultRecord(data)


def iter_records(
    paths: Iterable[str | Path], *, errors: list[str] | None = None
) -> Iterator[tuple[Path, ResultRecord]]:
    """Records from files and folders (``*.json``, recursively), sorted by path.

    Invalid files are skipped; their one-line reasons are appended to ``errors`` when given,
    otherwise the first one is raised.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.json") if not p.name.startswith(".")))
        elif path.exists():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    for file in files:
        try:
            yield file, load_record(file)
        except DataError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
