"""Issue 13, class 9 continued: ``hf:`` model downloads retry in our one layer, within the deadline.

Faults are injected in the loopback Hub (``tests/hubserver.py``) on the weights' download
(``GET .../resolve/<commit>/model.safetensors``): 503s and dropped connections. The number of GETs the
server saw is the number of attempts: ours only, none of ``huggingface_hub``'s underneath.
"""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
pytest.importorskip("llmos_hub_transformers")

from llmos_hub.hub import HubError  # noqa: E402

from .test_hardening_hub import _within, fast_retries  # noqa: E402,F401 - the fixture


def _outcome(seconds: float, fn):
    """``fn()``'s value or exception, from a thread the test gives up on (instead of hanging) after ``seconds``."""
    def caught():
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            return exc

    return _within(seconds, caught)

WEIGHTS = "/model.safetensors"


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    from llmos_hub_transformers.tiny import save_tiny

    return save_tiny("gpt2", tmp_path_factory.mktemp("hf-dl") / "gpt2")


def _upload(hub, folder) -> None:
    hub.create_repo("team/tiny-gpt2", repo_type="model", files={p.name: p.read_bytes() for p in folder.iterdir()})


def _weight_gets(hub) -> int:
    return sum(1 for method, path in hub.requests if method == "GET" and "/resolve/" in path and path.endswith(WEIGHTS))


@pytest.mark.parametrize("action,status", [("status", 503), ("drop", 0)], ids=["503", "dropped connection"])
def test_a_transient_failure_of_a_weight_download_is_retried_once_per_attempt(hub, tiny_gpt2, monkeypatch, action,
                                                                             status):
    import llmos_hub.hub._deadline as deadline
    from llmos_hub_transformers.family import HFFamily

    waits = []  # our retry layer's waits (10 ms each here): one per failed attempt
    monkeypatch.setattr(deadline, "backoff", lambda attempt, rng=None: waits.append(attempt) or 0.01)
    _upload(hub, tiny_gpt2)
    hub.inject(status, action=action, method="GET", path_contains=WEIGHTS, times=2)
    model = _within(120, lambda: HFFamily().load("team/tiny-gpt2"))
    assert model.provenance.source == "team/tiny-gpt2"
    assert _weight_gets(hub) == 3  # two failed attempts of ours, the third downloads; nothing retried underneath
    assert waits == [1, 2]


@pytest.mark.parametrize("action,status,said", [
    ("status", 503, "failed with 503 while trying to download team/tiny-gpt2; try again later"),
    ("drop", 0, "dropped the connection while trying to download team/tiny-gpt2; try again later"),
], ids=["503", "dropped connection"])
def test_a_weight_download_failing_every_time_gives_up_after_five_attempts_in_one_line(hub, tiny_gpt2, fast_retries,
                                                                                      action, status, said):
    from llmos_hub_transformers.family import HFFamily

    _upload(hub, tiny_gpt2)
    hub.inject(status, action=action, method="GET", path_contains=WEIGHTS, times=99)
    error = _outcome(120, lambda: HFFamily().load("team/tiny-gpt2"))
    assert isinstance(error, HubError)
    assert str(error) == f"the Hub at {hub.url} {said} (gave up after 5 attempts)"
    assert _weight_gets(hub) == 5


def test_the_bench_command_ends_in_our_one_line_when_the_weights_never_download(hub, tiny_gpt2, fast_retries, tmp_path):
    from click.testing import CliRunner

    from llmos_hub.cli import main

    _upload(hub, tiny_gpt2)
    hub.inject(503, method="GET", path_contains=WEIGHTS, times=99)
    out = tmp_path / "out"
    result = _within(180, lambda: CliRunner().invoke(main, [
        "bench", "--model", "hf:team/tiny-gpt2", "--backend", "pytorch", "--task", "lm-sample", "--limit", "2",
        "--output-dir", str(out)]))
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert any(line.endswith(f"the Hub at {hub.url} failed with 503 while trying to download team/tiny-gpt2; "
                             "try again later (gave up after 5 attempts)") for line in lines), lines
    assert _weight_gets(hub) == 5
    assert not list(out.glob("*.json")) if out.exists() else True
