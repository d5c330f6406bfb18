"""Class 9 of issue 13: every Hub command is bounded in time, retries in one layer, ends in one line.

Faults are injected in the loopback Hub (``tests/hubserver.py``): a stalled answer, 503s, a dropped
connection, a 4xx with a reason, a failing model card after the records were committed.
"""

from __future__ import annotations

import json
import logging
import threading

import pytest
from click.testing import CliRunner

from llmos_hub.cli import main
from llmos_hub.hub import HubError, publish

from ._hardening import error_lines
from ._records import make_record

TOKEN = "hf_writer"


def _within(seconds: float, fn):
    """``fn()`` in a thread; the test fails (instead of hanging) if it has not ended after ``seconds``."""
    box = {}
    worker = threading.Thread(target=lambda: box.setdefault("value", fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s: a Hub call hangs"
    return box["value"]


@pytest.fixture
def fast_retries(monkeypatch):
    """Retries wait 10 ms instead of seconds (the jitter itself is tested in test_hub_errors)."""
    import llmos_hub.hub._deadline as deadline

    monkeypatch.setattr(deadline, "backoff", lambda attempt, rng=None: 0.01)


def _record_file(tmp_path, **kw):
    record = make_record(**kw)
    path = tmp_path / record.filename()
    path.write_text(record.to_json())
    return path


def test_a_stalled_hub_ends_at_the_deadline_in_one_line(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOS_HUB_HUB_DEADLINE", "2")
    hub.inject(0, action="stall", method="GET", path_contains="/api/datasets/team/results", times=99)
    path = _record_file(tmp_path)
    result = _within(60, lambda: CliRunner().invoke(main, ["publish", str(path), "--repo", "team/results",
                                                           "--endpoint", hub.url]))
    assert result.exit_code == 1, result.output
    assert error_lines(result.stderr) == [
        f"error: the Hub at {hub.url} did not answer within 2 s while trying to read team/results; check the "
        "network, or set LLMOS_HUB_HUB_DEADLINE to wait longer"]
    assert result.stdout == ""


def test_a_503_on_downloads_is_retried_in_one_layer_without_library_noise(hub, tmp_path, caplog, fast_retries):
    publish([make_record()], repo="team/results", endpoint=hub.url)
    hub.inject(503, method="GET", path_contains="/resolve/", times=99)
    before = len(hub.requests)
    with caplog.at_level(logging.DEBUG, logger="huggingface_hub"):
        result = _within(60, lambda: CliRunner().invoke(main, ["leaderboard", "--from-hub", "team/results",
                                                               "--endpoint", hub.url, "--format", "json"]))
    assert result.exit_code == 1, result.output
    assert error_lines(result.stderr) == [
        f"error: the Hub at {hub.url} failed with 503 while trying to download records from team/results; "
        "try again later (gave up after 5 attempts)"]
    downloads = [p for m, p in hub.requests[before:] if m == "GET" and "/resolve/" in p]
    assert len(downloads) == 5  # 5 attempts of ours, no retries of huggingface_hub's underneath
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("huggingface_hub")]


def test_a_dropped_connection_is_retried_like_a_5xx(hub, tmp_path, fast_retries):
    hub.inject(0, action="drop", method="POST", path_contains="/commit/", times=1)
    result = publish([make_record()], repo="team/results", endpoint=hub.url)
    assert result.attempts == 2 and result.commit_url is not None
    assert any(p.startswith("records/") for p in hub.files("team/results"))


def test_a_connection_dropped_every_time_ends_in_one_line(hub, tmp_path, fast_retries):
    hub.inject(0, action="drop", method="POST", path_contains="/commit/", times=99)
    with pytest.raises(HubError) as info:
        publish([make_record()], repo="team/results", endpoint=hub.url)
    assert str(info.value) == (f"the Hub at {hub.url} dropped the connection while trying to commit to "
                               "team/results; try again later (gave up after 5 attempts)")
    assert "records/" not in " ".join(hub.files("team/results"))


def test_the_servers_reason_is_kept_in_a_4xx_message(hub):
    hub.inject(400, method="POST", path_contains="/commit/", message="commit description is too long")
    with pytest.raises(HubError) as info:
        publish([make_record()], repo="team/results", endpoint=hub.url)
    assert str(info.value) == (f"the Hub at {hub.url} refused to commit to team/results (400): "
                               "commit description is too long")


def test_a_model_card_failure_after_the_dataset_commit_says_how_to_finish(hub, tmp_path, fast_retries):
    hub.create_repo("team/tiny-model", "model", {"README.md": b"---\nlicense: mit\n---\n# tiny\n"})
    hub.inject(500, method="POST", path_contains="/api/models/team/tiny-model/commit/", times=99)
    path = _record_file(tmp_path, model="nano:tiny")
    result = CliRunner().invoke(main, ["publish", str(path), "--repo", "team/results", "--endpoint", hub.url,
                                       "--model-card", "team/tiny-model"])
    assert result.exit_code == 1, result.output
    [line] = error_lines(result.stderr)
    head = hub.refs("team/results")["main"]
    assert line.startswith(f"error: the records are committed to team/results ({hub.url}/datasets/team/results/commit/{head}), "
                           "but the model card step failed: ")
    assert line.endswith(f"; finish the card with: llmos-hub publish {path} --repo team/results --endpoint {hub.url} "
                         "--model-card team/tiny-model")
    assert hub.files("team/results")[f"records/{path.name}"] == path.read_bytes()  # the records are there
    assert hub.files("team/tiny-model", "model")["README.md"] == b"---\nlicense: mit\n---\n# tiny\n"
    hub.injections.clear()
    again = CliRunner().invoke(main, line.split("finish the card with: llmos-hub ", 1)[1].split())
    assert again.exit_code == 0, again.output
    assert b"model-index" in hub.files("team/tiny-model", "model")["README.md"]


def test_an_interrupted_publish_does_not_suggest_resume(hub, tmp_path, monkeypatch):
    import llmos_hub.hub as hubpkg

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(hubpkg, "publish", interrupted)
    result = CliRunner().invoke(main, ["publish", str(_record_file(tmp_path)), "--repo", "team/results",
                                       "--endpoint", hub.url])
    assert result.exit_code == 130
    assert error_lines(result.stderr) == ["error: interrupted; publish stopped before it finished"]


def test_model_index_keeps_the_newest_record_of_a_slot_not_the_last_file_name(hub):
    from llmos_hub.hub._model_card import merge_model_index

    newer = make_record(model="nano:tiny", scores={"bleu": 30.0}, extra={"finished_at": "2026-11-24T10:00:00Z"})
    older = make_record(model="nano:tiny", scores={"bleu": 10.0}, seed=1,
                        extra={"finished_at": "2026-11-20T10:00:00Z"})
    pairs = sorted([(newer, "https://x/newer"), (older, "https://x/older")], key=lambda p: p[0].filename())
    assert pairs[-1][0] is older or pairs[-1][0] is newer
    for order in (pairs, pairs[::-1]):
        text = merge_model_index(None, order, model_repo="team/tiny-model")
        assert "value: 30.0" in text and "value: 10.0" not in text, text


def test_a_request_timeout_at_the_deadline_is_the_deadline():
    """A request's read timeout is capped at what is left of the deadline, so both fire together; whichever
    the scheduler wakes first, a timeout within the smallest request timeout of the deadline reads as the
    deadline (it once read as "stopped answering (ReadTimeout)", failing a test by timing alone)."""
    import requests

    from llmos_hub.hub._deadline import DeadlineExceeded, bounded, deadline

    def times_out() -> None:
        raise requests.exceptions.ReadTimeout("read timed out")

    bounded(lambda: None)  # the client's set-up once, so the calls below end in milliseconds
    with deadline(0.4), pytest.raises(DeadlineExceeded):  # less left than any request timeout
        bounded(times_out)
    with deadline(30), pytest.raises(requests.exceptions.ReadTimeout):  # time left: the request's own timeout
        bounded(times_out)
