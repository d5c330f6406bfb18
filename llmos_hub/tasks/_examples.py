"""Raw rows → validated :class:`~llmos_hub.Example` s, the seeded subsample and the data fingerprint.

Every row of a split is checked (not only the sampled ones), so whether a file is accepted never
depends on ``limit`` or ``seed``. A bad value fails with ``WHERE: problem with 'field'``, where
``WHERE`` is ``file:line`` or ``file row N``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

from .._task import Example
from ..errors import DataError, UsageError
from ._sources import Row, SplitSource
from ._spec import TaskSpec

__all__ = ["fingerprint", "read_examples", "subsample"]


def read_examples(source: SplitSource, *, scored: bool = True) -> list[Example]:
    """All examples of one split, validated against the task's fields and labels.

    ``scored``: the split is the one a run scores (not a split of few-shot demonstrations), so what only
    its metrics need is checked too (the same number of references in every row, for BLEU and chrF)."""
    spec = source.spec
    columns, rows = source.read()
    if columns is not None:
        _check_columns(source, spec, columns)
    examples: list[Example] = []
    first_seen: dict[str, str] = {}
    readings: dict[GoldReading, str] = {}
    same_count = _same_reference_count(spec) if scored else None
    references: tuple[int, str] | None = None  # the first row's number of references, and where it is
    for index, row in enumerate(rows):
        example = _to_example(spec, row, index, readings)
        if example.id in first_seen:
            raise DataError(f"{row.where}: duplicate id {example.id!r} in field {spec.id_field!r} "
                            f"(first at {first_seen[example.id]})")
        first_seen[example.id] = row.where
        if same_count:
            count = len(example.target) if isinstance(example.target, tuple) else 1
            references = references or (count, row.where)
            if count != references[0]:
                raise DataError(f"{row.where}: field {spec.target_field!r} has {count} reference(s), the row at "
                                f"{references[1]} has {references[0]}; metric {same_count!r} needs the same "
                                "number in every row, so give every row as many")
        examples.append(example)
    if not examples:
        raise DataError(f"{source.label}: empty, no examples in split {source.split!r} of task {spec.name!r}")
    return examples


#: Built-in metrics that score with sacrebleu, whose corpus score needs as many references for every example.
_SACREBLEU_METRICS = ("bleu", "chrf")


def _same_reference_count(spec: TaskSpec) -> str | None:
    """The task's first metric that needs every row to have the same number of references (else ``None``),
    so a row that differs is named when the data is read, not found by the metric after the model ran."""
    if not spec.kind.generates:
        return None
    return next((name for name in spec.metrics if name in _SACREBLEU_METRICS), None)


def _wanted_fields(spec: TaskSpec) -> list[str]:
    fields = [spec.input_field]
    for name in (spec.target_field, spec.id_field, spec.choices_field, *spec.prompt_fields):
        if name is not None and name not in fields:
            fields.append(name)
    return fields


def _check_columns(source: SplitSource, spec: TaskSpec, columns: list[str]) -> None:
    where = f"{source.label}:1" if source.format in ("csv", "tsv") else source.label
    if not columns:
        raise DataError(f"{where}: empty, no header and no examples")
    for name in _wanted_fields(spec):
        if name not in columns:
            raise _missing_field(spec, where, name, columns)


def _missing_field(spec: TaskSpec, where: str, name: str, present: Sequence[object] | None) -> DataError:
    """A data file without a field the task file names: the error says which setting names it, what the
    data has (``present``: the header's columns or the first row's fields) and what to change. A later
    row missing it (``present`` None) is that row's fault, not the setting's: the line says only where."""
    if present is None:
        return DataError(f"{where}: missing field {name!r}; the rows before it have it, so add it or remove this row")
    has = f"; the data has fields {', '.join(map(str, present)) or 'none'}"
    role = next((r for r in ("input", "target", "id", "choices") if getattr(spec, f"{r}_field") == name), None)
    if role is not None:
        named, fix = f"fields.{role}: {name!r}", f"set fields.{role} to the data's name for it"
    elif name in spec.prompt_fields:
        named, fix = f"placeholder {{{name}}} in the prompt", f"rename the placeholder {{{name}}} to a field the data has"
    else:
        return DataError(f"{where}: missing field {name!r}{has}")
    return DataError(f"{where}: missing field {name!r} ({named} in {_shown_path(spec.file)}){has}; {fix}")


def _shown_path(path: Path) -> str:
    """``path`` as the user finds it from the working folder: relative to it when inside it, else absolute."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(Path(path).resolve())
    return str(Path(path).resolve()) if relative.startswith("..") else relative


def _text(row: Row, name: str, *, role: str, spec: TaskSpec | None = None, first: bool = False) -> str:
    if name in row.values and row.values[name] is None and spec is not None:
        raise DataError(f"{row.where}: field {name!r} has no value; give it one or remove this row")
    if name not in row.values or row.values[name] is None:
        if spec is not None:
            raise _missing_field(spec, row.where, name, list(row.values) if first else None)
        raise DataError(f"{row.where}: missing field {name!r}")
    value = row.values[name]
    if role in ("id", "label") and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise DataError(f"{row.where}: field {name!r} must be text, not {type(value).__name__}")
    if not value.strip():
        raise DataError(f"{row.where}: empty field {name!r}")
    from ._sources import max_example_chars

    if len(value) > max_example_chars():  # refused here, long before a tokenizer would choke on it
        raise DataError(f"{row.where}: field {name!r} has {len(value)} characters, more than an example may have "
                        f"({max_example_chars()}); shorten the example or set LLMOS_HUB_MAX_EXAMPLE_CHARS")
    return value


def _texts(row: Row, name: str, *, at_least: int) -> tuple[str, ...]:
    """A list-valued field (choices, several references): non-empty strings, at least ``at_least``.

    A plain string is refused rather than read as one entry: ``choices: "abcd"`` is a mistake for
    ``["a", "b", "c", "d"]``, never a one-choice question.
    """
    value = row.values.get(name)
    if hasattr(value, "tolist"):  # a parquet/arrow list arrives as a numpy array
        value = getattr(value, "tolist")()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        got = ("text" if isinstance(value, str) else "null" if value is None
               else "a list with an empty or non-text entry" if isinstance(value, (list, tuple))
               else type(value).__name__)
        raise DataError(f"{row.where}: field {name!r} must be a list of non-empty strings, not {got}; "
                        f"write it as a JSON list, e.g. [\"first\", \"second\"]")
    if len(value) < at_least:
        raise DataError(f"{row.where}: field {name!r} needs at least {at_least} entries, it has {len(value)}")
    return tuple(value)


def _choices(row: Row, name: str, num_choices: int | None) -> tuple[str, ...]:
    """A multiple-choice row's choices: at least two, and ``num_choices`` of them when the task's
    ``multiple_choice`` metric sets that option (else the metric would refuse the run after the model ran).
    Repeated choices are allowed ("None of the above" twice in scraped data); a gold that repeats an
    earlier choice is not (:func:`_gold_index`)."""
    choices = _texts(row, name, at_least=2)
    if num_choices is not None and len(choices) != num_choices:
        raise DataError(f"{row.where}: field {name!r} has {len(choices)} choices, but the task's metric "
                        f"'multiple_choice' sets num_choices: {num_choices}; give this row {num_choices} "
                        "choices or remove it")
    return choices


#: How a gold written as digits was read: as a choice's text, or as an index (see :func:`_gold_index`).
GoldReading = str


def _gold_index(row: Row, name: str, choices: Sequence[str]) -> tuple[int, GoldReading | None]:
    """A multiple-choice target: the gold choice's index, and how digits were read.

    A number is an index. Text is the choice with that text; text of digits that names no choice is an
    index (CSV makes every label text). The second value is ``"text"`` or ``"index"`` for a gold written
    as digits, ``None`` otherwise: a split must read all its digit golds one way
    (:func:`_check_gold_readings`), or ``"1"`` would mean choice 2 in one row (choices ``["3", "2", "1",
    "0"]``) and choice 1 in the next.

    A gold that repeats an earlier choice's text is refused: equal texts get equal log-likelihoods and a
    tie goes to the first, so it could never be scored right.
    """
    value = row.values.get(name)
    digits = isinstance(value, str) and value.strip().isdecimal()
    reading: GoldReading | None = None
    if isinstance(value, str) and value in choices:
        index, reading = choices.index(value), ("text" if digits else None)
    elif digits:
        index, reading = int(str(value)), "index"
    elif isinstance(value, bool) or not isinstance(value, int):
        index = -1
    else:
        index = value
    if not 0 <= index < len(choices):
        raise DataError(f"{row.where}: field {name!r} must be the gold choice's index (0 to {len(choices) - 1}) "
                        f"or its text, not {value!r}")
    first = choices.index(choices[index])
    if first != index:
        raise DataError(f"{row.where}: the gold, choice {index}, has the same text as choice {first} "
                        f"({choices[index][:60]!r}); a tie goes to the first, so it could never be scored "
                        "right: make the choices distinct")
    return index, reading


def _check_gold_readings(readings: dict[GoldReading, str], name: str) -> None:
    """Refuse a split whose digit golds were read both ways (see :func:`_gold_index`)."""
    if "text" in readings and "index" in readings:
        raise DataError(f"{readings['index']}: field {name!r} is digits that name no choice, so they were read as "
                        f"an index, while at {readings['text']} digits name a choice's text; one split must "
                        "read its golds one way: write gold indices as numbers, or every gold as its choice's text")


def _num_choices(spec: TaskSpec) -> int | None:
    """The ``num_choices`` option of the task's ``multiple_choice`` metric (checked by ``parse_spec``)."""
    value = spec.metrics.get("multiple_choice", {}).get("num_choices")
    return value if isinstance(value, int) else None


def _to_example(spec: TaskSpec, row: Row, index: int, readings: dict[GoldReading, str] | None = None) -> Example:
    first = index == 0
    text = _text(row, spec.input_field, role="input", spec=spec, first=first)
    extra: dict[str, object] = {}
    target: object
    if spec.choices_field is not None:
        choices = _choices(row, spec.choices_field, _num_choices(spec))
        extra["choices"] = choices
        target, reading = _gold_index(row, str(spec.target_field), choices)
        if reading is not None and readings is not None:
            readings.setdefault(reading, row.where)
            _check_gold_readings(readings, str(spec.target_field))
    elif spec.target_field is None:
        target = text  # language modelling scores the text itself
    elif spec.kind.generates and isinstance(row.values.get(spec.target_field), (list, tuple)):
        target = _texts(row, spec.target_field, at_least=1)  # several references
    else:
        target = _text(row, spec.target_field, role="label" if spec.labels is not None else "target", spec=spec,
                       first=first)
        if spec.labels is not None and target not in spec.labels:
            raise DataError(f"{row.where}: unknown label {target!r} in field {spec.target_field!r}; "
                            f"the task's labels: {', '.join(spec.labels)}")
    example_id = _text(row, spec.id_field, role="id", spec=spec, first=first) if spec.id_field is not None else str(index)
    extra.update({name: _text(row, name, role="prompt", spec=spec, first=first) for name in spec.prompt_fields})
    return Example(id=example_id, input=text, target=target, extra=extra)


def subsample(examples: Sequence[Example], limit: int | None, seed: int) -> list[Example]:
    """``limit`` examples drawn with ``seed``, kept in their file order (all of them if ``limit`` is None)."""
    if limit is None:
        return list(examples)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise UsageError(f"limit must be a positive integer, not {limit!r}")
    if limit >= len(examples):
        return list(examples)
    chosen = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[i] for i in chosen]


def _canonical(examples: Sequence[Example]) -> Iterator[bytes]:
    yield b"["
    for i, ex in enumerate(examples):
        item: dict[str, object] = {"id": ex.id, "input": ex.input, "target": ex.target}
        if "choices" in ex.extra:  # only when present, so older fingerprints stay as they were
            item["choices"] = list(ex.extra["choices"])
        yield (b"," if i else b"") + json.dumps(
            item, sort_keys=True, ensure_ascii=False, separators=(",", ":")
        ).encode("utf-8")
    yield b"]"


def fingerprint(examples: Sequence[Example]) -> str:
    """sha256 of the canonical JSON list of ``{"id", "input", "target"}`` of exactly these examples, in order.

    Equal to ``sha256(json.dumps([...], sort_keys=True, ensure_ascii=False, separators=(",", ":")))``.
    """
    digest = hashlib.sha256()
    for chunk in _canonical(examples):
        digest.update(chunk)
    return digest.hexdigest()
