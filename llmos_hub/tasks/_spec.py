"""Read and validate a task file: every mistake is one line naming the file and the field.

A task file is YAML a user writes without Python::

    name: my-translation
    kind: translation                 # classification | translation | summarization | language-modelling
                                      # | multiple-choice | a kind a plugin registers
    description: English→German UI messages
    source: "where the data comes from and its licence"
    data: data/my-translation         # a file or folder relative to this file; or {dataset: org/name}
    splits: {train: train.jsonl, test: test.jsonl}
    default_split: test
    fields: {id: id, input: en, target: de}
    prompt: "{input}"                 # what a seq2seq model, classifier or rolling LM reads
    lm_prompt: "English: {input}\nGerman:"   # what a causal LM continues (default: prompt)
    target_delimiter: " "             # between a prompt and its answer (lm-eval's default)
    num_fewshot: 0                    # demonstrations from fewshot_split, joined by fewshot_delimiter
    generation: {max_new_tokens: 64, num_beams: 1, length_penalty: 1.0, stop: []}
    metrics: {chrf: {}, bleu: {tokenize: "13a"}}
    primary_metric: chrf

Everything but ``name``, ``kind``, ``data`` and ``fields`` has a default (``metrics`` and
``primary_metric`` default per kind, see :mod:`llmos_hub.tasks._kinds`). Classification may map labels
to the words a language model scores (``verbalizers: {net: networking}``); multiple choice reads a
``choices`` field (a list) and a ``target`` that is the gold index (or the gold choice's text);
translation and summarization accept a list of references in ``target``. ``data`` that is a single
file is the ``default_split``; a folder maps each split to a file (or, for a ``datasets`` folder or
id, to the dataset's split; without ``splits`` the split of the same name). The full format is
documented in ``docs/data.md``.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._requests import GenerationConfig
from .._task import TaskKind
from ..errors import DataError, close_matches

__all__ = ["DataSpec", "TaskSpec", "parse_spec", "read_yaml"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TOP_KEYS = (
    "name", "version", "kind", "description", "source", "data", "splits", "default_split",
    "fields", "labels", "verbalizers", "prompt", "lm_prompt", "target_delimiter", "fewshot_delimiter",
    "num_fewshot", "fewshot_split", "generation", "metrics", "primary_metric",
)
_DATA_KEYS = ("path", "dataset", "format", "config", "revision")
FORMATS = ("jsonl", "csv", "tsv", "parquet", "datasets")
#: File name endings read as one split each (anything else is a folder or a datasets folder).
FILE_SUFFIXES = {".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
_GENERATION_KEYS = ("max_new_tokens", "num_beams", "length_penalty", "stop")


@dataclass(frozen=True)
class DataSpec:
    """Where the examples are: a local ``path`` (file or folder) or a ``datasets`` id."""

    path: Path | None = None
    dataset: str | None = None
    format: str | None = None
    config: str | None = None
    revision: str | None = None
    declared: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path" if self.path is not None else "dataset": self.declared}
        for key in ("format", "config", "revision"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


@dataclass(frozen=True)
class TaskSpec:
    """A validated task file."""

    file: Path
    name: str
    version: str
    kind: TaskKind
    description: str
    source: str
    data: DataSpec
    splits: Mapping[str, str]
    default_split: str
    input_field: str
    target_field: str | None
    id_field: str | None
    labels: tuple[str, ...] | None
    prompt: str
    prompt_fields: tuple[str, ...]
    generation: GenerationConfig | None
    metrics: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    primary_metric: str = ""
    choices_field: str | None = None
    lm_prompt: str = "{input}"
    verbalizers: Mapping[str, str] = field(default_factory=dict)
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    num_fewshot: int = 0
    fewshot_split: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The declaration as data (what :meth:`Task.describe` returns and a record keeps)."""
        fields_ = {"input": self.input_field}
        if self.target_field is not None:
            fields_["target"] = self.target_field
        if self.choices_field is not None:
            fields_["choices"] = self.choices_field
        if self.id_field is not None:
            fields_["id"] = self.id_field
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind.name,
            "description": self.description,
            "source": self.source,
            "data": self.data.to_dict(),
            "splits": dict(self.splits),
            "default_split": self.default_split,
            "fields": fields_,
            "labels": list(self.labels) if self.labels is not None else None,
            "verbalizers": dict(self.verbalizers),
            "prompt": self.prompt,
            "lm_prompt": self.lm_prompt,
            "target_delimiter": self.target_delimiter,
            "fewshot_delimiter": self.fewshot_delimiter,
            "num_fewshot": self.num_fewshot,
            "fewshot_split": self.fewshot_split,
            "generation": self.generation.to_dict() if self.generation is not None else None,
            "metrics": {k: dict(v) for k, v in self.metrics.items()},
            "primary_metric": self.primary_metric,
        }


def read_yaml(path: Path) -> dict[str, Any]:
    """The task file as a mapping, or a one-line :class:`DataError` (parsed with :func:`llmos_hub._yaml.load_yaml`)."""
    from .._yaml import load_yaml

    data = load_yaml(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: a task file must be a mapping with at least 'name', 'kind', 'data' and 'fields'")
    return data


class _Checker:
    """Field checks that all fail with ``FILE: field 'X': problem``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, name: str, problem: str) -> DataError:
        return DataError(f"{self.path}: field {name!r}: {problem}")

    def text(self, raw: Mapping[str, Any], key: str, name: str | None = None, *, default: str | None = None,
             allow_empty: bool = False) -> str:
        name = name or key
        value = raw.get(key, default)
        if value is None:
            raise DataError(f"{self.path}: missing field {name!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise self.fail(name, f"must be text, not {_type(value)}")
        if not allow_empty and not value.strip():
            raise self.fail(name, "must not be empty")
        return value

    def mapping(self, raw: Mapping[str, Any], key: str, name: str | None = None) -> Mapping[str, Any]:
        value = raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(name or key, f"must be a mapping, not {_type(value)}")
        return value

    def known_keys(self, raw: Mapping[str, Any], allowed: tuple[str, ...], prefix: str = "") -> None:
        for key in raw:
            if key not in allowed:
                hint = close_matches(str(key), allowed)
                fix = f"did you mean {hint[0]!r}?" if hint else f"known fields: {', '.join(allowed)}"
                raise DataError(f"{self.path}: unknown field {prefix + str(key)!r}; {fix}")


def _type(value: Any) -> str:
    return "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else type(value).__name__


def _parse_kind(check: _Checker, raw: Mapping[str, Any]) -> TaskKind:
    from .._plugins import default_host

    kind = check.text(raw, "kind")
    host = default_host()
    known = host.registry.names("task_kinds")
    if kind not in known:
        hint = close_matches(kind, known)
        fix = f"did you mean {hint[0]!r}?" if hint else f"one of {', '.join(known)}"
        raise check.fail("kind", f"unknown kind {kind!r}; {fix}")
    value: TaskKind = host.get("task_kinds", kind)
    return value


def _parse_data(check: _Checker, raw: Mapping[str, Any]) -> DataSpec:
    value = raw.get("data")
    if value is None:
        raise DataError(f"{check.path}: missing field 'data' (a file or folder path, or {{dataset: ID}})")
    if isinstance(value, str):
        value = {"path": value}
    if not isinstance(value, dict):
        raise check.fail("data", f"must be a path or a mapping, not {_type(value)}")
    check.known_keys(value, _DATA_KEYS, "data.")
    if ("path" in value) == ("dataset" in value):
        raise check.fail("data", "give exactly one of 'path' (a local file or folder) and 'dataset' (a datasets id)")
    fmt = value.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise check.fail("data.format", f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    options: dict[str, Any] = {k: check.text(value, k, f"data.{k}") for k in ("config", "revision") if k in value}
    if "path" in value:
        declared = check.text(value, "path", "data.path")
        if options:
            raise check.fail("data", f"{', '.join(options)} only apply to a 'dataset' id")
        path = Path(declared).expanduser()
        if not path.is_absolute():
            path = check.path.parent / path
        from ._confine import check_data_path

        check_data_path(check.path, path, declared)
        return DataSpec(path=path, format=fmt, declared=declared)
    if fmt not in (None, "datasets"):
        raise check.fail("data.format", "a 'dataset' id is always read with the datasets library")
    declared = check.text(value, "dataset", "data.dataset")
    if declared.startswith(("/", ".", "~")) or "\\" in declared or ".." in declared.split("/"):
        raise check.fail("data.dataset", f"{declared!r} is a path, not a datasets id; name a local folder with 'path'")
    return DataSpec(dataset=declared, format="datasets", declared=declared, **options)


def _parse_splits(check: _Checker, raw: Mapping[str, Any], data: DataSpec) -> tuple[dict[str, str], str]:
    default = check.text(raw, "default_split", default="test")
    splits_raw = check.mapping(raw, "splits")
    splits = {str(k): check.text(splits_raw, k, f"splits.{k}") for k in splits_raw}
    if data.path is not None and data.path.suffix in FILE_SUFFIXES:
        if splits:
            raise check.fail("splits", "'data' is a single file, which is one split; point 'data' at a "
                             "folder to name a file per split")
        splits = {default: ""}  # a single file is the default split
    elif not splits:
        splits = {default: default}  # a datasets folder or id: its split of the same name
    if default not in splits:
        raise check.fail("default_split", f"{default!r} is not one of the splits ({', '.join(splits)})")
    return splits, default


def _parse_fields(check: _Checker, raw: Mapping[str, Any], kind: TaskKind) -> dict[str, str | None]:
    """``{"input", "target", "id", "choices"}`` → the data's column names (``None`` when not used)."""
    if "fields" not in raw:
        raise DataError(f"{check.path}: missing field 'fields' (e.g. {{input: text, target: label}})")
    fields_ = check.mapping(raw, "fields")
    roles = ("input", "id", *kind.required_fields, *kind.optional_fields)
    if "target" in fields_ and "target" not in roles:
        raise check.fail("fields.target", f"a {kind.name} task takes no target: it scores the text the prompt makes "
                         "of fields.input and counts that text's words and bytes; remove fields.target (to score "
                         "another column, name it as fields.input)")
    check.known_keys(fields_, tuple(dict.fromkeys(roles)), "fields.")
    out: dict[str, str | None] = {"input": check.text(fields_, "input", "fields.input")}
    for role in ("target", "id", "choices"):
        required = role in kind.required_fields
        out[role] = check.text(fields_, role, f"fields.{role}") if (required or role in fields_) else None
    return out


def _parse_labels(check: _Checker, raw: Mapping[str, Any], kind: TaskKind) -> tuple[str, ...] | None:
    labels = raw.get("labels")
    if not kind.has_labels:
        if labels is not None:
            raise check.fail("labels", f"only classification tasks have labels, this one is {kind.name}")
        return None
    if not isinstance(labels, list) or len(labels) < 2:
        raise check.fail("labels", "a classification task declares its labels, a list of at least two")
    out = tuple(str(v) for v in labels)
    if any(not v.strip() for v in out) or len(set(out)) != len(out):
        raise check.fail("labels", "labels must be distinct and non-empty")
    return out


def _parse_prompt(check: _Checker, raw: Mapping[str, Any], name: str = "prompt") -> tuple[str, tuple[str, ...]]:
    prompt = check.text(raw, "prompt", name, default="{input}")
    try:
        parsed = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(prompt) if f is not None]
    except ValueError as exc:
        raise check.fail(name, f"not a valid template ({exc}); write literal braces as {{{{ }}}}") from exc
    for field_name, spec, conv in parsed:
        if spec or conv:  # "{input:>2000000000}" would pad to gigabytes; a prompt needs the text as it is
            raise check.fail(name, f"placeholder {{{field_name}}} has a format spec or conversion "
                             f"({(('!' + conv) if conv else '') + ((':' + spec[:20]) if spec else '')}); "
                             f"write it plainly as {{{field_name}}}")
    names = [field_name for field_name, _, _ in parsed]
    for field_name in names:
        if not field_name.isidentifier():
            raise check.fail(name, f"placeholder {{{field_name}}} must be a plain field name like {{input}}")
    if "input" not in names:
        raise check.fail(name, "the template must contain {input}")
    names = list(names)
    return prompt, tuple(dict.fromkeys(n for n in names if n != "input"))


def _parse_generation(check: _Checker, raw: Mapping[str, Any], kind: TaskKind) -> GenerationConfig | None:
    if not kind.generates:
        if "generation" in raw:
            raise check.fail("generation", f"only generating kinds (translation, summarization) take generation "
                             f"settings, this one is {kind.name}")
        return None
    gen = check.mapping(raw, "generation")
    check.known_keys(gen, _GENERATION_KEYS, "generation.")
    defaults = GenerationConfig()
    values: dict[str, Any] = {}
    for key in ("max_new_tokens", "num_beams"):
        value = gen.get(key, getattr(defaults, key))
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise check.fail(f"generation.{key}", f"must be a positive integer, not {value!r}")
        values[key] = value
    penalty = gen.get("length_penalty", defaults.length_penalty)
    if not isinstance(penalty, (int, float)) or isinstance(penalty, bool) or not math.isfinite(penalty):
        raise check.fail("generation.length_penalty", f"must be a finite number, not {penalty!r}")
    stop = gen.get("stop", [])
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise check.fail("generation.stop", "must be a list of non-empty strings")
    return GenerationConfig(length_penalty=float(penalty), stop=tuple(stop), **values)


def _parse_metrics(check: _Checker, raw: Mapping[str, Any], kind: TaskKind) -> tuple[dict[str, dict[str, Any]], str]:
    value = raw.get("metrics")
    if value is None:
        metrics = {k: dict(v) for k, v in kind.default_metrics.items()}
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        metrics = {v: {} for v in value}
    elif isinstance(value, dict):
        metrics = {}
        for name, options in value.items():
            if options is None:
                options = {}
            if not isinstance(options, dict):
                raise check.fail(f"metrics.{name}", f"options must be a mapping, not {_type(options)}")
            metrics[str(name)] = dict(options)
    else:
        raise check.fail("metrics", "must be a mapping of metric name to options, or a list of names")
    if not metrics:
        raise check.fail("metrics", "name at least one metric")
    default_primary = kind.default_primary if value is None else None
    primary = check.text(raw, "primary_metric", default=default_primary) if (
        "primary_metric" in raw or default_primary) else None
    if primary is None:
        raise DataError(f"{check.path}: missing field 'primary_metric' (a score key such as 'chrf' or 'accuracy')")
    keys = _score_keys(check, metrics)
    if keys is not None and primary not in keys:
        raise check.fail("primary_metric", f"{primary!r} is not a score of the metrics {', '.join(metrics)} "
                         f"(they give {', '.join(keys)})")
    return metrics, primary


def _score_keys(check: _Checker, metrics: Mapping[str, Any]) -> list[str] | None:
    """The score keys the named metrics give (from each metric's ``score_keys``), ``None`` if a metric
    does not declare them; an unknown metric name is an error naming the file."""
    from .._plugins import default_host

    host = default_host()
    known = host.registry.names("metrics")
    keys: list[str] = []
    complete = True
    for name in metrics:
        if name not in known:
            hint = close_matches(name, known)
            fix = f"did you mean {hint[0]!r}?" if hint else f"known metrics: {', '.join(known)}"
            raise check.fail(f"metrics.{name}", f"unknown metric {name!r}; {fix}")
        declared = tuple(getattr(host.get("metrics", name), "score_keys", ()) or ())
        complete = complete and bool(declared)
        keys.extend(declared)
    return keys if complete else None


def _check_choice_metrics(check: _Checker, metrics: Mapping[str, Mapping[str, Any]], kind: TaskKind) -> None:
    """Metrics that cannot score a multiple-choice task, found now instead of after the model ran.

    ``multiple_choice``'s ``num_choices`` must be a whole number (every row is then checked to have that
    many choices when the data is read). A multiple-choice prediction is a list of (log-likelihood,
    choice) pairs, which the other built-in metrics (labels, texts, perplexities) cannot score; a
    plugin's metric is left to say for itself.
    """
    count = metrics.get("multiple_choice", {}).get("num_choices")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 2):
        raise check.fail("metrics.multiple_choice.num_choices", f"must be a whole number of at least 2 (how many "
                         f"choices every row has), not {count!r}; or leave it out to allow any number")
    from ._kinds import MultipleChoiceKind

    if not isinstance(kind, MultipleChoiceKind):
        return
    from .._plugins import default_host

    for name in metrics:
        module = type(default_host().get("metrics", name)).__module__
        if name != "multiple_choice" and module.startswith("llmos_hub.metrics"):
            raise check.fail(f"metrics.{name}", f"{name!r} cannot score a multiple-choice task (its predictions "
                             "are each choice's log-likelihood); use multiple_choice (acc, acc_norm, acc_bytes)")


def _parse_lm_settings(check: _Checker, raw: Mapping[str, Any], kind: TaskKind, prompt: str,
                       splits: Mapping[str, str], default_split: str) -> dict[str, Any]:
    """``lm_prompt``, delimiters, few-shot settings and verbalizers."""
    lm_prompt, _ = _parse_prompt(check, {"prompt": raw.get("lm_prompt", prompt)}, name="lm_prompt")
    out: dict[str, Any] = {"lm_prompt": lm_prompt}
    for key, default in (("target_delimiter", " "), ("fewshot_delimiter", "\n\n")):
        value = raw.get(key, default)
        if not isinstance(value, str):
            raise check.fail(key, f"must be text, not {_type(value)}")
        out[key] = value
    shots = raw.get("num_fewshot", 0)
    if not isinstance(shots, int) or isinstance(shots, bool) or shots < 0:
        raise check.fail("num_fewshot", f"must be a non-negative integer, not {shots!r}")
    out["num_fewshot"] = shots
    fewshot_split = check.text(raw, "fewshot_split") if raw.get("fewshot_split") is not None else None
    if fewshot_split is None:
        fewshot_split = "train" if "train" in splits else None
    elif fewshot_split not in splits:
        raise check.fail("fewshot_split", f"{fewshot_split!r} is not one of the splits ({', '.join(splits)})")
    if shots and fewshot_split is None:
        raise check.fail("num_fewshot", "few-shot examples come from a 'train' split or the split named by "
                         "'fewshot_split'; this task has neither")
    out["fewshot_split"] = fewshot_split
    verbalizers = check.mapping(raw, "verbalizers")
    if verbalizers and not kind.has_labels:
        raise check.fail("verbalizers", f"only tasks with labels have verbalizers, this one is {kind.name}")
    out["verbalizers"] = {str(k): check.text(verbalizers, k, f"verbalizers.{k}") for k in verbalizers}
    return out


def parse_spec(path: str | Path) -> TaskSpec:
    """Read and validate a task file; raises :class:`DataError` with one line naming file and field."""
    path = Path(path)
    raw = read_yaml(path)
    check = _Checker(path)
    check.known_keys(raw, _TOP_KEYS)
    name = check.text(raw, "name")
    if not _NAME_RE.match(name):
        raise check.fail("name", f"{name!r} may hold only letters, digits, '.', '_' and '-'")
    kind = _parse_kind(check, raw)
    data = _parse_data(check, raw)
    splits, default_split = _parse_splits(check, raw, data)
    fields_ = _parse_fields(check, raw, kind)
    prompt, prompt_fields = _parse_prompt(check, raw)
    lm = _parse_lm_settings(check, raw, kind, prompt, splits, default_split)
    _, lm_fields = _parse_prompt(check, {"prompt": lm["lm_prompt"]}, name="lm_prompt")
    prompt_fields = tuple(dict.fromkeys((*prompt_fields, *lm_fields)))
    metrics, primary = _parse_metrics(check, raw, kind)
    _check_choice_metrics(check, metrics, kind)
    labels = _parse_labels(check, raw, kind)
    unknown = sorted(set(lm["verbalizers"]) - set(labels or ()))
    if unknown:
        raise check.fail("verbalizers", f"{unknown[0]!r} is not one of the labels ({', '.join(labels or ())})")
    return TaskSpec(
        file=path,
        name=name,
        version=check.text(raw, "version", default="1"),
        kind=kind,
        description=check.text(raw, "description", default="", allow_empty=True),
        source=check.text(raw, "source", default="", allow_empty=True),
        data=data,
        splits=splits,
        default_split=default_split,
        input_field=str(fields_["input"]),
        target_field=fields_["target"],
        id_field=fields_["id"],
        choices_field=fields_["choices"],
        labels=labels,
        prompt=prompt,
        prompt_fields=prompt_fields,
        generation=_parse_generation(check, raw, kind),
        metrics=metrics,
        primary_metric=primary,
        **lm,
    )
