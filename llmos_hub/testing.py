"""Conformance checks every plugin runs on itself, shipped as a pytest plugin (entry point ``pytest11``).

A plugin's tests call these functions on what it registers; each raises ``AssertionError`` with a
message that says which part of the contract is broken. The checks use only the public SDK, so a
plugin that passes them works in ``llmos-hub bench`` like the bundled ones. What each one checks is
what CONTRIBUTING.md promises:

* :func:`check_plugin`: the plugin loads beside the built-ins, registers something, every factory
  builds an object of the right interface, no name collides, and importing and loading the plugin
  module in a fresh interpreter imports no heavy library (torch, onnxruntime, transformers, ...).
* :func:`check_backend`: unsupported dtypes are refused with a one-line error; answers do not depend
  on batch size; generation follows the engine's rules (EOS never in the output, text cut before a stop
  string, tokens stop there); greedy tokens equal the reference backend's and log-likelihoods and
  logits are within tolerance of it.
* :func:`check_task`: a name, a version and a primary metric; seeded, deterministic subsampling (a
  subset of the split, in file order); requests a model of the task's capability can answer; gold
  answers score perfectly.
* :func:`check_metric`: the same input gives the same scores, whatever the seed does to the standard
  error; values are finite and within the metric's range, standard errors finite and non-negative.
* :func:`check_model_family`: complete provenance and the modules the capabilities promise.

Example (``tests/test_conformance.py`` of a plugin)::

    from llmos_hub.testing import check_plugin, check_task
    import my_plugin.plugin

    def test_plugin_loads():
        host = check_plugin(my_plugin.plugin)
        check_task(host.get("tasks", "my-task"))

The ``llmos_hub_host`` fixture gives a host loaded from the environment (built-ins and installed plugins).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ._backend import Backend, Runner
from ._metric import Metric, Score
from ._model import Capability, LoadedModel, ModelFamily
from ._plugins import PluginHost, default_host, load_plugins
from ._result import SCORE_TOLERANCE
from ._requests import (
    ClassifyRequest,
    GenerateRequest,
    Generation,
    GenerationConfig,
    Loglikelihood,
    LoglikelihoodRequest,
    RequestType,
    RollingRequest,
)
from ._task import Example, Formulation, Task, TaskKind
from .errors import LlmosHubError

__all__ = [
    "HEAVY_MODULES",
    "PERFECT_SCORES",
    "check_backend",
    "check_light_import",
    "check_metric",
    "check_model_family",
    "check_plugin",
    "check_task",
    "check_task_kind",
    "llmos_hub_host",
]

#: Libraries a plugin module must not import at module level or while its hooks run: each costs seconds
#: (or gigabytes) that ``llmos-hub --help`` and ``llmos-hub list`` must not pay.
HEAVY_MODULES: tuple[str, ...] = (
    "torch", "onnx", "onnxruntime", "transformers", "datasets", "evaluate", "tensorflow", "jax",
    "ctranslate2", "accelerate", "vllm", "sklearn",
)

#: The score of a perfect answer for the score keys of the built-in metrics (and common plugin ones).
PERFECT_SCORES: dict[str, float] = {
    "accuracy": 1.0, "macro_f1": 1.0, "exact_match": 1.0, "bleu": 100.0, "chrf": 100.0,
    "acc": 1.0, "acc_norm": 1.0, "acc_bytes": 1.0,
    "rouge1": 1.0, "rougeL": 1.0, "rougeLsum": 1.0,
}


#: Dtypes tried, in order, to find one a backend does not claim (it must refuse it).
_CANDIDATE_DTYPES = ("float64", "int4", "float8_e4m3fn", "int8", "float16", "bfloat16")

_DEFAULT_TEXTS = ("A short one.", "A somewhat longer sentence to pad against the others.", "Mid length text here.")


# -- plugins -------------------------------------------------------------------------------------------
def check_light_import(module: str | ModuleType, *, heavy: Sequence[str] = HEAVY_MODULES) -> None:
    """Importing ``module`` and running its hooks in a fresh interpreter imports none of ``heavy``.

    A subprocess, because this interpreter has probably imported torch already (the test that called us
    did); it gets this interpreter's ``sys.path`` so it sees the same code.
    """
    name = module if isinstance(module, str) else module.__name__
    code = (
        "import json, sys, importlib\n"
        f"module = importlib.import_module({name!r})\n"
        "from llmos_hub import load_plugins\n"
        "host = load_plugins(autoload=False, extra=[('plugin-under-test', module)])\n"
        "info = [p for p in host.plugins if p.name == 'plugin-under-test'][0]\n"
        f"heavy = {list(heavy)!r}\n"
        "print(json.dumps({'status': info.status, 'error': info.error,"
        " 'heavy': sorted(m for m in heavy if m in sys.modules)}))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, f"importing {name} in a fresh interpreter failed:\n{done.stderr[-2000:]}"
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == "ok", f"plugin {name} failed to load: {report['error']}"
    assert not report["heavy"], (
        f"importing plugin module {name} and running its hooks imported {', '.join(report['heavy'])}; "
        "import heavy libraries inside the factory you register, not at the top of the module"
    )


def check_plugin(plugin: object, *, name: str = "plugin-under-test", check_imports: bool = True) -> PluginHost:
    """Load ``plugin`` (a module or object with hook implementations) beside the built-ins.

    Asserts it loads without error, registers at least one thing, that every factory it registered
    builds an object of the right interface, and (for a module, unless ``check_imports=False``) that
    importing it imports no heavy library (:func:`check_light_import`). Returns the host.
    """
    host = load_plugins(autoload=False, extra=[(name, plugin)], strict=False, disabled=())
    info = next(p for p in host.plugins if p.name == name)
    assert info.status == "ok", f"plugin failed to load: {info.error}"
    assert info.registers, "plugin registers nothing: implement at least one register_* hook"
    for kind, names in info.registers.items():
        for entry_name in names:
            host.get(kind, entry_name)  # raises PluginError naming the plugin if the factory misbehaves
    assert not host.registry.conflicts(), [str(c) for c in host.registry.conflicts()]
    if check_imports and isinstance(plugin, ModuleType):
        check_light_import(plugin)
    return host


# -- tasks ---------------------------------------------------------------------------------------------
def check_task(task: Task, *, limit: int = 5, seed: int = 0, labels: Sequence[str] | None = None) -> None:
    """A task subsamples deterministically, every formulation makes requests of its declared types
    (the same ones for the same seed), and gold answers score perfectly under every formulation that
    can be given gold answers.

    ``labels`` are a classification task's label names in a model's order (default: the task's own).
    """
    assert isinstance(task, Task), f"{task!r} is not a llmos_hub.Task"
    assert re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", task.name), f"bad task name {task.name!r}"
    assert str(task.version), "a task needs a version (bump it when data or scoring changes)"
    assert task.primary_metric, "a task needs a primary metric"
    _check_subsampling(task, limit=limit, seed=seed)
    data = task.load(limit=limit, seed=seed)
    forms = list(task.formulations())
    assert forms, "a task offers at least one formulation"
    assert len({f.name for f in forms}) == len(forms), "formulation names must be distinct"
    for form in forms:
        for example in data.examples:
            requests = task.requests(example, formulation=form.name, seed=seed)
            assert requests, f"formulation {form.name} made no request for example {example.id}"
            for request in requests:
                assert request.type in form.request_types, (
                    f"formulation {form.name} made a {request.type} request; it declares "
                    f"{', '.join(sorted(map(str, form.request_types)))}")
            assert requests == task.requests(example, formulation=form.name, seed=seed), \
                "requests must be deterministic for a seed"
        _check_gold(task, form, list(data.examples), labels=labels, seed=seed)


def check_task_kind(kind: TaskKind, task_file: str | Path, *, limit: int = 5, seed: int = 0) -> None:
    """A task kind declares distinct formulations, default metrics and a primary score, and a task file
    of that kind parses and passes :func:`check_task` (every formulation makes requests of its declared
    types, deterministically; gold answers score perfectly)."""
    from .tasks import task_from_file

    assert isinstance(kind, TaskKind), f"{kind!r} is not a llmos_hub.TaskKind"
    assert re.match(r"^[a-z0-9][a-z0-9-]*$", kind.name), f"bad task kind name {kind.name!r}"
    forms = list(kind.formulations())
    assert forms and len({f.name for f in forms}) == len(forms), "distinct, non-empty formulations"
    assert kind.default_metrics and kind.default_primary, "a kind names default metrics and a primary score"
    task = task_from_file(task_file)
    assert task.spec.kind is kind or task.spec.kind.name == kind.name, "the task file is not of this kind"
    check_task(task, limit=limit, seed=seed)


def _check_subsampling(task: Task, *, limit: int, seed: int) -> None:
    full = task.load(seed=seed)
    first = task.load(limit=limit, seed=seed)
    again = task.load(limit=limit, seed=seed)
    assert first.examples, "the task loaded no examples"
    assert len(first.examples) == min(limit, len(full.examples)), "limit must give min(limit, size) examples"
    ids = [e.id for e in first.examples]
    assert ids == [e.id for e in again.examples], "the same limit and seed must give the same examples"
    assert first.fingerprint == again.fingerprint, "the same limit and seed must give the same fingerprint"
    assert re.fullmatch(r"[0-9a-f]{64}", first.fingerprint), "the fingerprint must be a sha256 hex digest"
    order = {e.id: i for i, e in enumerate(full.examples)}
    assert all(i in order for i in ids), "a subsample must hold examples of the split"
    positions = [order[i] for i in ids]
    assert positions == sorted(positions), "a subsample keeps the split's order"
    if len(full.examples) > limit + 1:
        others = [[e.id for e in task.load(limit=limit, seed=s).examples] for s in range(seed + 1, seed + 4)]
        assert any(o != ids for o in others), "the seed must change the subsample"
    if len(full.examples) <= limit:
        assert first.fingerprint == full.fingerprint, "a limit at or above the size keeps every example"


def _reference_text(target: Any) -> str:
    return str(target[0]) if isinstance(target, (list, tuple)) and target else str(target)


def _candidate_answers(requests: Sequence[Any], example: Example, labels: Sequence[str]) -> list[list[Any]]:
    """Answer sets that could be the gold one: for log-likelihood requests, each request in turn the most
    likely; for generation, the reference text; for a classifier, the gold label's logit highest."""
    types = {r.type for r in requests}
    if types == {RequestType.GENERATE}:
        text = _reference_text(example.target)
        return [[Generation(text, tuple(range(len(text.split()))), 0) for _ in requests]]
    if types == {RequestType.CLASSIFY} and labels:
        return [[[10.0 if label == str(example.target) else 0.0 for label in labels] for _ in requests]]
    if types == {RequestType.LOGLIKELIHOOD}:
        return [[Loglikelihood(-1.0 if i == best else -50.0, 1, i == best) for i in range(len(requests))]
                for best in range(len(requests))]
    return []  # rolling log-likelihoods (language modelling) have no gold answer


def _gold_request(task: Task, kind: Any, form: Formulation, example: Example, candidates: list[list[Any]],
                  labels: Sequence[str]) -> int | None:
    """The index of the request a gold answer makes most likely (``None`` when it cannot be told)."""
    target = example.target
    if isinstance(target, int) and not isinstance(target, bool) and 0 <= target < len(candidates):
        return target  # multiple choice: the index of the right choice
    declared = list(getattr(task, "labels", None) or labels)
    if isinstance(target, str) and target in declared and len(declared) == len(candidates):
        return declared.index(target)  # classification by log-likelihood: one request per label, in order
    if kind is None:
        return None
    reference = kind.reference(task, example)
    matching = [i for i, c in enumerate(candidates) if kind.prediction(task, example, c, form.name, labels or None) == reference]
    assert matching, f"formulation {form.name}: no answer makes example {example.id}'s prediction its reference"
    return matching[0]


def _check_gold(task: Task, form: Formulation, examples: list[Example], *, labels: Sequence[str] | None, seed: int) -> None:
    labels = list(labels or getattr(task, "labels", None) or [])
    kind = getattr(getattr(task, "spec", None), "kind", None)
    gold: list[list[Any]] = []
    for example in examples:
        candidates = _candidate_answers(task.requests(example, formulation=form.name, seed=seed), example, labels)
        if not candidates:
            return
        if len(candidates) > 1:  # which request is the gold one: a choice index, a label, or the kind says
            best = _gold_request(task, kind, form, example, candidates, labels)
            if best is None:
                return
            candidates = [candidates[best]]
        gold.append(candidates[0])
    scores = task.score(examples, gold, formulation=form.name, labels=labels or None, seed=seed)
    primary = scores[task.primary_metric]
    perfect = PERFECT_SCORES.get(task.primary_metric)
    if perfect is not None:
        assert math.isclose(primary.value, perfect, rel_tol=1e-9, abs_tol=1e-9), (
            f"formulation {form.name}: gold answers score {task.primary_metric}={primary.value}, not the perfect {perfect}"
        )
    elif len(examples) > 1:  # a metric we do not know: gold must beat (or tie) shifted answers
        shifted = task.score(examples, gold[1:] + gold[:1], formulation=form.name, labels=labels or None,
                             seed=seed)[task.primary_metric]
        better = primary.value >= shifted.value if primary.higher_is_better else primary.value <= shifted.value
        assert better, f"gold answers score {primary.value}, worse than shifted answers ({shifted.value})"


# -- metrics -------------------------------------------------------------------------------------------
def check_metric(
    metric: Metric,
    predictions: Sequence[Any],
    references: Sequence[Any],
    *,
    value_range: tuple[float, float] | None = None,
    seed: int = 0,
    **options: Any,
) -> dict[str, Score]:
    """Deterministic, finite scores within ``value_range``; returns the scores of the first computation."""
    assert isinstance(metric, Metric), f"{metric!r} is not a llmos_hub.Metric"
    assert metric.name, "a metric needs a name"
    first = dict(metric.compute(predictions, references, seed=seed, **options))
    again = dict(metric.compute(predictions, references, seed=seed, **options))
    other_seed = dict(metric.compute(predictions, references, seed=seed + 1, **options))
    assert first, "compute returned no score"
    assert first.keys() == again.keys() == other_seed.keys(), "the score names must not change between calls"
    for key, score in first.items():
        assert isinstance(score, Score), f"{key}: {score!r} is not a llmos_hub.Score"
        assert score == again[key], f"{key}: two computations on the same input differ ({score} vs {again[key]})"
        assert score.value == other_seed[key].value, f"{key}: the value depends on the seed (only a bootstrap stderr may)"
        assert math.isfinite(score.value), f"{key}: value {score.value} is not finite"
        if value_range is not None:
            lo, hi = value_range
            assert lo <= score.value <= hi, f"{key}: value {score.value} outside {value_range}"
        if score.stderr is not None:
            assert math.isfinite(score.stderr) and score.stderr >= 0, f"{key}: stderr {score.stderr} must be finite and >= 0"
        assert isinstance(score.higher_is_better, bool), f"{key}: higher_is_better must be a bool"
    if predictions:
        row = metric.per_example(predictions[0], references[0], **options)
        assert all(isinstance(v, (int, float)) for v in row.values()), f"per_example must give numbers, got {row}"
    declared = metric.options
    assert declared is None or isinstance(declared, Mapping), "options must be a mapping of names to defaults, or None"
    if declared:  # a task file may set exactly these: compute must take them, and the defaults must mean no change
        defaults = dict(metric.compute(predictions, references, seed=seed, **{**declared, **options}))
        assert defaults == first, f"compute with the declared options' defaults {dict(declared)} differs from without them"
    check_options = getattr(metric, "check_options", None)
    if callable(check_options):  # the bench calls it on every task file's options: the defaults must pass
        check_options({**(declared or {}), **options})
    if metric.score_keys:
        assert set(first) <= set(metric.score_keys), f"compute returned {sorted(first)}, not among score_keys {metric.score_keys}"
    for key, entry in metric.example_statistics(predictions, references, **options).items():
        values = entry.get("values") or []
        if entry.get("kind") in ("binary", "mean") and key in first and values:
            mean = sum(values) / len(values)
            assert abs(mean - first[key].value) <= SCORE_TOLERANCE * max(1.0, abs(mean)), (
                f"{key}: compute gives {first[key].value}, the mean of its per-example values is {mean}; "
                f"a {entry['kind']!r} score must be that mean (records are refused on read otherwise)")
    return first


# -- models --------------------------------------------------------------------------------------------
def check_model_family(family: ModelFamily, ref: str) -> LoadedModel:
    """A family loads ``ref`` with complete provenance and the modules its capabilities promise."""
    assert isinstance(family, ModelFamily)
    model = family.load(ref)
    assert isinstance(model, LoadedModel)
    assert model.capabilities, "a model needs at least one capability"
    declared = family.capabilities(ref)
    assert declared is None or declared == model.capabilities, "capabilities() disagrees with the loaded model"
    assert re.fullmatch(r"[0-9a-f]{64}", model.provenance.weights_sha256), "weights_sha256 must be a sha256 hex digest"
    assert model.provenance.num_parameters > 0
    needs = {Capability.CAUSAL_LM: {"causal_lm"}, Capability.SEQ2SEQ: {"encoder", "decoder"}, Capability.CLASSIFIER: {"classifier"}}
    for capability in model.capabilities:
        missing = needs[capability] - set(model.modules)
        assert not missing, f"{capability} model lacks modules {sorted(missing)}"
    if Capability.CLASSIFIER in model.capabilities:
        assert model.labels, "a classifier must name its labels"
    ids = model.tokenizer.encode("Hello, world.")
    assert ids and all(isinstance(i, int) for i in ids)
    return model


# -- backends ------------------------------------------------------------------------------------------
def check_backend(
    backend: Backend,
    model: LoadedModel,
    *,
    reference: Backend | str | None = "pytorch",
    texts: Sequence[str] | None = None,
    atol: float = 1e-5,
    ll_atol: float = 1e-3,
    max_new_tokens: int = 12,
) -> None:
    """A backend refuses what it cannot do, is batch invariant, follows the engine's generation rules,
    and agrees with the ``reference`` backend (by name from the installed plugins, or an instance;
    ``None`` or the backend's own name skips the comparison).

    ``atol`` bounds batch-size differences (per number), ``ll_atol`` differences from the reference
    (per scored token, for a log-likelihood; per logit for a classifier).
    """
    assert isinstance(backend, Backend)
    texts = list(texts or _DEFAULT_TEXTS)
    _check_dtype_refused(backend, model)
    runner = backend.prepare(model)
    try:
        assert isinstance(runner, Runner), f"prepare returned {type(runner).__name__}, not a llmos_hub.Runner"
        types = runner.request_types
        answers = {t: _answers(runner, t, texts, max_new_tokens) for t in sorted(types, key=str)}
        for kind, batch in answers.items():
            alone = [_answers(runner, kind, [t], max_new_tokens)[0] for t in texts]
            _same(kind, batch, alone, atol, what="batched answers differ from one-at-a-time answers")
        if RequestType.GENERATE in answers:
            _check_generation_rules(runner, model, texts, answers[RequestType.GENERATE], max_new_tokens)
    finally:
        runner.close()
    ref = _reference_backend(reference, backend)
    if ref is None:
        return
    ref_runner = ref.prepare(model)
    try:
        for kind, mine in answers.items():
            if kind in ref_runner.request_types:
                theirs = _answers(ref_runner, kind, texts, max_new_tokens)
                _same(kind, mine, theirs, ll_atol, what=f"answers differ from the reference backend {ref.name}")
    finally:
        ref_runner.close()


def _reference_backend(reference: Backend | str | None, backend: Backend) -> Backend | None:
    if reference is None:
        return None
    if isinstance(reference, str):
        if reference == backend.name or reference not in default_host().registry.names("backends"):
            return None
        reference = default_host().get("backends", reference)
    assert isinstance(reference, Backend)
    return None if type(reference) is type(backend) and reference.name == backend.name else reference


def _check_dtype_refused(backend: Backend, model: LoadedModel) -> None:
    unsupported = next((d for d in _CANDIDATE_DTYPES if d not in backend.dtypes), None)
    if unsupported is None:
        return
    try:
        runner = backend.prepare(model, dtype=unsupported)
    except LlmosHubError as exc:
        assert "\n" not in str(exc), "the refusal must be one line"
        return
    runner.close()
    raise AssertionError(
        f"backend {backend.name} accepted dtype {unsupported!r}, which its dtypes {backend.dtypes} do not list; "
        "raise llmos_hub.UsageError naming the dtypes it supports"
    )


def _inputs(kind: RequestType, texts: Sequence[str]) -> list[Any]:
    if kind is RequestType.LOGLIKELIHOOD:
        return [(t, " and more.") for t in texts]
    return list(texts)


def _requests(kind: RequestType, texts: Sequence[str], max_new_tokens: int, stop: tuple[str, ...] = ()) -> list[Any]:
    if kind is RequestType.GENERATE:
        config = GenerationConfig(max_new_tokens=max_new_tokens, stop=stop)
        return [GenerateRequest(t, config) for t in texts]
    if kind is RequestType.LOGLIKELIHOOD:
        return [LoglikelihoodRequest(c, k) for c, k in _inputs(kind, texts)]
    if kind is RequestType.ROLLING:
        return [RollingRequest(t) for t in texts]
    return [ClassifyRequest(t) for t in texts]


def _answers(runner: Runner, kind: RequestType, texts: Sequence[str], max_new_tokens: int,
             *, stop: tuple[str, ...] = ()) -> list[Any]:
    requests = _requests(kind, texts, max_new_tokens, stop)
    answers = runner.answer(requests)
    assert len(answers) == len(requests), f"{kind}: {len(answers)} answers for {len(requests)} requests"
    return answers


def _same(kind: RequestType, a: Sequence[Any], b: Sequence[Any], tol: float, *, what: str) -> None:
    """Equal greedy tokens; log-likelihoods within ``tol`` per scored token; logits within ``tol``."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, Generation):
            assert isinstance(y, Generation)
            assert x.token_ids == y.token_ids, f"{what}: generated {x.text!r} vs {y.text!r}"
        elif isinstance(x, Loglikelihood):
            assert isinstance(y, Loglikelihood) and x.num_tokens == y.num_tokens, f"{what}: {x} vs {y}"
            # float32 sums: the tolerance grows with the tokens scored and with the size of the total.
            assert math.isclose(x.logprob, y.logprob, rel_tol=1e-6, abs_tol=tol * max(1, x.num_tokens)), \
                f"{what} ({kind}): {x.logprob} vs {y.logprob}"
        else:
            assert len(x) == len(y), f"{what}: {len(x)} vs {len(y)} logits"
            assert all(abs(p - q) <= tol for p, q in zip(x, y)), f"{what} ({kind}): {list(x)} vs {list(y)}"


def _stop_candidates(text: str) -> Iterator[str]:
    """Two-letter ASCII pieces of ``text`` that first occur after its start (stable under decoding)."""
    for i in range(1, len(text) - 1):
        piece = text[i : i + 2]
        if piece.isascii() and piece.isalpha() and text.find(piece) == i:
            yield piece


def _check_generation_rules(runner: Runner, model: LoadedModel, texts: Sequence[str],
                            generations: Sequence[Generation], max_new_tokens: int) -> None:
    eos = model.tokenizer.eos_id
    for g in generations:
        assert isinstance(g, Generation)
        assert eos not in g.token_ids, f"the EOS token ({eos}) must not be part of a generation: {g.token_ids}"
        assert len(g.token_ids) <= max_new_tokens, f"{len(g.token_ids)} tokens generated, max_new_tokens={max_new_tokens}"
    for text, g in zip(texts, generations):
        stop = next(_stop_candidates(g.text), None)
        if stop is None:
            continue
        (cut,) = _answers(runner, RequestType.GENERATE, [text], max_new_tokens, stop=(stop,))
        assert stop not in cut.text, f"stop string {stop!r} left in the output {cut.text!r}"
        assert cut.text == g.text[: g.text.find(stop)], (
            f"with stop {stop!r} the text must be the unstopped text cut before it: {cut.text!r} vs {g.text!r}"
        )
        assert tuple(g.token_ids[: len(cut.token_ids)]) == tuple(cut.token_ids) and len(cut.token_ids) < len(g.token_ids), (
            f"generation must end at the token that completes the stop string {stop!r}"
        )
        return  # one stop check per model is enough


@pytest.fixture
def llmos_hub_host() -> PluginHost:
    """A plugin host loaded from the environment: built-ins plus installed plugins."""
    return load_plugins()
