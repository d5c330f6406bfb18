"""Default CPU threads: ours, then the scheduler's grant (OMP_NUM_THREADS, set by Ray), then cores - 1."""

from __future__ import annotations

import pytest

from llmos_hub import _threads
from llmos_hub.decoding import OMP_THREADS_ENV, THREADS_ENV, default_threads, environment_threads, threads_source


@pytest.fixture
def eight_cores(monkeypatch):
    for name in (THREADS_ENV, OMP_THREADS_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_threads, "usable_cores", lambda: 8)


def test_without_the_environment_one_core_is_left_free(eight_cores):
    assert (default_threads(), environment_threads(), threads_source()) == (7, None, "default")


def test_a_schedulers_grant_is_honoured(eight_cores, monkeypatch):
    monkeypatch.setenv(OMP_THREADS_ENV, "2")
    assert (default_threads(), threads_source()) == (2, "$OMP_NUM_THREADS")
    monkeypatch.setenv(THREADS_ENV, "3")
    assert (default_threads(), threads_source()) == (3, "$LLMOS_HUB_THREADS")
    assert threads_source(4) == "option"


@pytest.mark.parametrize("value", ["", "0", "-2", "many", ",4"])
def test_values_that_are_not_a_positive_count_are_ignored(eight_cores, monkeypatch, value):
    monkeypatch.setenv(OMP_THREADS_ENV, value)
    assert (default_threads(), threads_source()) == (7, "default")


@pytest.mark.parametrize(("value", "count"), [("4,2", 4), (" 3 ", 3), ("16", 8)])
def test_openmps_first_level_counts_and_never_more_than_the_cores(eight_cores, monkeypatch, value, count):
    monkeypatch.setenv(OMP_THREADS_ENV, value)
    assert default_threads() == count
    monkeypatch.setenv(THREADS_ENV, "16")  # ours is taken as given
    assert default_threads() == 16


def test_the_pytorch_runner_records_where_its_count_came_from(eight_cores, monkeypatch):
    torch = pytest.importorskip("torch")
    from llmos_hub import load_plugins

    host = load_plugins()  # a fresh host: other tests register fakes on the default one
    monkeypatch.setenv(OMP_THREADS_ENV, "1")
    before = torch.get_num_threads()
    try:
        model = host.get("models", "nano").load("lm-sample")
        runner = host.get("backends", "pytorch").prepare(model)
        facts = runner.describe()
        assert (facts["threads"], facts["threads_source"]) == (1, "$OMP_NUM_THREADS")
    finally:
        torch.set_num_threads(before)
