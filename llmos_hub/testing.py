"""Conformance checks every plugin runs on itself, shipped as a pytest plugin (entry point ``pytest11``).

A plugin's tests call these functions on what it registers; each raises ``AssertionError`` with a
message that says which part of the contract is broken. The checks use only the public SDK, so a
plugin that passes them works in ``llmos-hub bench`` like the bundled ones.

Example (``tests/test_conformance.py`` of a plugin)::

    from llmos_hub.testing import check_plugin, check_task
    import my_plugin.plugin

    def test_plugin_loads():
        host = check_plugin(my_plugin.plugin)
        check_task(host.get("tasks", "my-task"))

The ``llmos_hub_host`` fixture gives a host loaded from the environment (built-ins and installed plugins).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ._backend import Backend
from ._requests import Generation, GenerationConfig, Loglikelihood
from ._model import Capability, LoadedModel, ModelFamily
from ._plugins import PluginHost, load_plugins
from ._task import Task, TaskKind

__all__ = ["check_backend", "check_model_family", "check_plugin", "check_task", "check_task_kind", "llmos_hub_host"]


def check_plugin(plugin: object, *, name: str = "plugin-under-test") -> PluginHost:
    """Load ``plugin`` (a module or object with hook implementations) beside the built-ins.

    Asserts it loads without error, registers at least one thing, and that every factory it registered
    builds an object of the right interface. Returns the host for further checks.
    """
    host = load_plugins(autoload=False, extra=[(name, plugin)], strict=False, disabled=())
    info = next(p for p in host.plugins if p.name == name)
    assert info.status == "ok", f"plugin failed to load: {info.error}"
    assert info.registers, "plugin registers nothing: implement at least one register_* hook"
    for kind, names in info.registers.items():
        for entry_name in names:
            host.get(kind, entry_name)  # raises PluginError naming the plugin if the factory misbehaves
    assert not host.registry.conflicts(), [str(c) for c in host.registry.conflicts()]
    return host


def check_task(task: Task, *, limit: int = 5, seed: int = 0) -> None:
    """A task loads deterministically and turns examples into requests its capability can answer."""
    assert isinstance(task, Task), f"{task!r} is not a llmos_hub.Task"
    assert re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", task.name), f"bad task name {task.name!r}"
    assert str(task.version), "a task needs a version (bump it when data or scoring changes)"
    assert task.primary_metric, "a task needs a primary metric"
    first = task.load(limit=limit, seed=seed)
    again = task.load(limit=limit, seed=seed)
    assert first.examples, "the task loaded no examples"
    assert len(first.examples) <= limit
    assert first.fingerprint == again.fingerprint, "the same limit and seed must give the same examples"
    assert re.fullmatch(r"[0-9a-f]{64}", first.fingerprint), "the fingerprint must be a sha256 hex digest"
    forms = list(task.formulations())
    assert forms, "a task offers at least one formulation"
    assert len({f.name for f in forms}) == len(forms), "formulation names must be distinct"
    for form in forms:
        for example in first.examples:
            requests = task.requests(example, formulation=form.name, seed=seed)
            assert requests, f"formulation {form.name} made no request for example {example.id}"
            for request in requests:
                assert request.type in form.request_types, (
                    f"formulation {form.name} made a {request.type} request; it declares "
                    f"{', '.join(sorted(map(str, form.request_types)))}")
            assert requests == task.requests(example, formulation=form.name, seed=seed), \
                "requests must be deterministic for a seed"


def check_task_kind(kind: TaskKind, task_file: str | Path, *, limit: int = 5, seed: int = 0) -> None:
    """A task kind declares distinct formulations, default metrics and a primary score, and a task file
    of that kind parses and passes :func:`check_task` (every formulation makes requests of its declared
    types, deterministically)."""
    from .tasks import task_from_file

    assert isinstance(kind, TaskKind), f"{kind!r} is not a llmos_hub.TaskKind"
    assert re.match(r"^[a-z0-9][a-z0-9-]*$", kind.name), f"bad task kind name {kind.name!r}"
    forms = list(kind.formulations())
    assert forms and len({f.name for f in forms}) == len(forms), "distinct, non-empty formulations"
    assert kind.default_metrics and kind.default_primary, "a kind names default metrics and a primary score"
    task = task_from_file(task_file)
    assert task.spec.kind is kind or task.spec.kind.name == kind.name, "the task file is not of this kind"
    check_task(task, limit=limit, seed=seed)


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


def check_backend(backend: Backend, model: LoadedModel, *, texts: Sequence[str] | None = None, atol: float = 1e-5) -> None:
    """A backend's answers for a batch equal its answers one request at a time (batch independence)."""
    assert isinstance(backend, Backend)
    texts = list(texts or ["A short one.", "A somewhat longer sentence to pad against.", "Mid length text here."])
    runner = backend.prepare(model)
    try:
        if Capability.CLASSIFIER in model.capabilities:
            _same_lists(runner.classify(texts), [runner.classify([t])[0] for t in texts], atol)
        if Capability.CAUSAL_LM in model.capabilities:
            batch = runner.loglikelihood_rolling(texts)
            alone = [runner.loglikelihood_rolling([t])[0] for t in texts]
            for b, a in zip(batch, alone):
                assert isinstance(b, Loglikelihood) and b.num_tokens == a.num_tokens
                assert math.isclose(b.logprob, a.logprob, abs_tol=atol * max(1, b.num_tokens)), (b, a)
        if model.capabilities & {Capability.CAUSAL_LM, Capability.SEQ2SEQ}:
            config = GenerationConfig(max_new_tokens=6)
            batch_g = runner.generate(texts, config)
            alone_g = [runner.generate([t], config)[0] for t in texts]
            for b, a in zip(batch_g, alone_g):
                assert isinstance(b, Generation)
                assert b.token_ids == a.token_ids, f"batched generation differs: {b.text!r} vs {a.text!r}"
    finally:
        runner.close()


def _same_lists(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], atol: float) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert len(x) == len(y)
        assert all(abs(p - q) <= atol for p, q in zip(x, y)), (x, y)


@pytest.fixture
def llmos_hub_host() -> Any:
    """A plugin host loaded from the environment: built-ins plus installed plugins."""
    return load_plugins()

