"""Default threads and worker spinning: every core with sleeping workers for large models on the CPU."""

from __future__ import annotations

import pytest
from ort_tiny_models import tiny_classifier

from llmos_hub import _threads
from llmos_hub.decoding import OMP_THREADS_ENV, THREADS_ENV
from llmos_hub_onnxruntime import threads as plan
from llmos_hub_onnxruntime.backend import OnnxRuntimeBackend
from llmos_hub_onnxruntime.threads import SPINNING, plan_threads

LARGE = plan.ALL_CORES_MIN_PARAMETERS
SMALL = 500_000


@pytest.fixture
def four_cores(monkeypatch):
    for name in (THREADS_ENV, OMP_THREADS_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(plan, "usable_cores", lambda: 4)
    monkeypatch.setattr(_threads, "usable_cores", lambda: 4)


def test_a_large_model_gets_every_core_with_sleeping_workers(four_cores):
    chosen = plan_threads(None, num_parameters=LARGE, device_kind="cpu")
    assert chosen.threads == 4 and "every core" in chosen.source
    assert chosen.session_config == {SPINNING: "0"}


def test_a_small_model_keeps_one_core_free_and_onnxruntimes_spinning(four_cores):
    chosen = plan_threads(None, num_parameters=SMALL, device_kind="cpu")
    assert (chosen.threads, chosen.source, chosen.session_config) == (3, "default", {})


def test_one_thread_sets_no_spinning_entry(four_cores, monkeypatch):
    monkeypatch.setattr(plan, "usable_cores", lambda: 1)
    monkeypatch.setattr(_threads, "usable_cores", lambda: 1)
    chosen = plan_threads(None, num_parameters=LARGE, device_kind="cpu")
    assert (chosen.threads, chosen.source, chosen.session_config) == (1, "default", {})


def test_the_option_the_environment_and_the_users_config_win(four_cores, monkeypatch):
    chosen = plan_threads(2, num_parameters=LARGE, device_kind="cpu", session_config={SPINNING: 1})
    assert (chosen.threads, chosen.source, chosen.session_config) == (2, "option", {SPINNING: "1"})
    chosen = plan_threads(2, num_parameters=LARGE, device_kind="cpu")  # the option's threads sleep too
    assert (chosen.threads, chosen.source, chosen.session_config) == (2, "option", {SPINNING: "0"})
    monkeypatch.setenv(OMP_THREADS_ENV, "1")  # what Ray sets in a task granted one CPU
    chosen = plan_threads(None, num_parameters=LARGE, device_kind="cpu")
    assert (chosen.threads, chosen.source, chosen.session_config) == (1, "$OMP_NUM_THREADS", {})
    monkeypatch.setenv(THREADS_ENV, "2")  # ours wins over OpenMP's
    chosen = plan_threads(None, num_parameters=LARGE, device_kind="cpu")
    assert (chosen.threads, chosen.source) == (2, "$LLMOS_HUB_THREADS")


def test_cuda_sessions_keep_the_sdk_default(four_cores):
    chosen = plan_threads(None, num_parameters=LARGE, device_kind="cuda")
    assert (chosen.threads, chosen.source) == (3, "default")


def test_every_session_of_the_runner_gets_the_plan(four_cores, monkeypatch, ort_cache):
    monkeypatch.setattr(plan, "ALL_CORES_MIN_PARAMETERS", 1)  # the tiny classifier counts as large
    # An entry about the model's file reaches the model's sessions, not the scorer's in-memory graph.
    files = {"session.use_ort_model_bytes_directly": "1"}
    runner = OnnxRuntimeBackend().prepare(tiny_classifier(), options={"exporter": "torchscript", "cache_dir": str(ort_cache),
                                                                      "session_config": files})
    sessions = [graph.session for graph in runner.graphs.values()] + [runner.scorer.session]
    for session in sessions:
        options = session.get_session_options()
        assert options.intra_op_num_threads == 4
        assert options.get_session_config_entry(SPINNING) == "0"
    model_options = next(iter(runner.graphs.values())).session.get_session_options()
    assert model_options.get_session_config_entry("session.use_ort_model_bytes_directly") == "1"
    with pytest.raises(RuntimeError, match="does not have configuration"):
        runner.scorer.session.get_session_options().get_session_config_entry("session.use_ort_model_bytes_directly")
    facts = runner.describe()
    assert facts["threads"] == 4 and "every core" in facts["threads_source"]
    assert facts["session_config"] == {**files, SPINNING: "0"}
