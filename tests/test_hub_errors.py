"""Every Hub failure a user can meet, produced by the server, shown as one line (never the token)."""

from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner

from llmos_hub.cli import main
from llmos_hub.hub import ConflictError, HubError, ServerError, fetch_records, publish

from ._records import make_record

TOKEN = "hf_llmosSECRETtoken_errors_71be"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and TOKEN not in text
    return text


def test_unreachable_hub_is_one_line_naming_the_endpoint():
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(HubError) as info:
        publish([make_record()], repo="team/results", endpoint=endpoint, token=TOKEN)
    text = _one_line(info.value)
    assert text.startswith(f"cannot reach the Hub at {endpoint}")
    assert info.value.kind == "unreachable"


@pytest.mark.parametrize(
    ("how", "source"),
    [("flag", "the token from --token"), ("env", "the token from HF_TOKEN"),
     ("login", "the token from the saved login (hf auth login)")],
)
def test_a_refused_token_names_where_it_came_from(hub, monkeypatch, tmp_path, how, source):
    from huggingface_hub import constants

    hub.tokens = {"the-right-token"}
    kwargs = {}
    if how == "flag":
        kwargs["token"] = TOKEN
    elif how == "env":
        monkeypatch.setenv("HF_TOKEN", TOKEN)
    else:
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN)
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(token_file))
    with pytest.raises(HubError) as info:
        publish([make_record()], repo="team/results", endpoint=hub.url, **kwargs)
    text = _one_line(info.value)
    assert f"refused {source} (401)" in text
    assert info.value.kind == "auth"
    assert any(TOKEN in h for h in hub.auth_headers)  # the server did see that token


def test_no_token_at_all_says_how_to_get_one(hub):
    hub.tokens = {"the-right-token"}
    with pytest.raises(HubError, match=r"refused the request without a token \(401\) while trying to read team/results; "
                       r"pass a valid token with --token, set HF_TOKEN or run `hf auth login`"):
        publish([make_record()], repo="team/results", endpoint=hub.url)
    assert set(hub.auth_headers) == {""}  # nothing was sent


def test_a_read_only_token_gets_a_403_naming_its_source(hub):
    hub.read_only_tokens = {TOKEN}
    hub.create_repo("team/results")
    with pytest.raises(HubError) as info:
        publish([make_record()], repo="team/results", endpoint=hub.url, token=TOKEN)
    text = _one_line(info.value)
    assert text.startswith("the token from --token may not commit to dataset repo team/results")
    assert "(403 forbidden; the Hub said: You don't have the rights to write to this repo (read-only token))" in text
    assert info.value.kind == "forbidden"


def test_a_missing_repo_is_named(hub):
    with pytest.raises(HubError) as info:
        fetch_records("team/nowhere", endpoint=hub.url)
    assert _one_line(info.value) == (f"dataset repo team/nowhere at {hub.url} does not exist (or it is private: "
                                     "pass --token, set HF_TOKEN or run `hf auth login`); check the name")
    assert info.value.kind == "missing"


def test_a_missing_revision_is_named(hub):
    hub.create_repo("team/results")
    with pytest.raises(HubError, match="no such revision"):
        fetch_records("team/results", revision="v9", endpoint=hub.url)


@pytest.mark.parametrize("status", [409, 412])
def test_a_conflict_is_retried_after_re_reading_the_repo(hub, status):
    hub.create_repo("team/results")
    hub.inject(status, method="POST", path_contains="/commit/", times=1, message="conflict")
    waits: list[float] = []
    result = publish([make_record()], repo="team/results", endpoint=hub.url, sleep=waits.append)
    assert result.attempts == 2 and _jittered(waits, [1.0])
    reads = [p for m, p in hub.requests if m == "GET" and p == "/api/datasets/team/results"]
    assert len(reads) == 2  # the state was read again before the second try
    assert len(hub.history("team/results")) == 2


def test_conflicts_that_never_stop_are_given_up(hub):
    hub.create_repo("team/results")
    hub.inject(412, method="POST", path_contains="/commit/", times=99)
    waits: list[float] = []
    with pytest.raises(ConflictError, match=r"changed while trying to commit to it \(412\); run the command again \(gave up after 3 attempts\)"):
        publish([make_record()], repo="team/results", endpoint=hub.url, max_attempts=3, sleep=waits.append)
    assert _jittered(waits, [1.0, 2.0])


def test_a_transient_5xx_is_retried_with_backoff(hub):
    hub.inject(503, method="GET", path_contains="/api/datasets/team/results", times=2)
    waits: list[float] = []
    result = publish([make_record()], repo="team/results", endpoint=hub.url, sleep=waits.append)
    assert result.commit_url is not None and result.attempts == 3 and _jittered(waits, [1.0, 2.0])


def test_a_5xx_that_persists_is_given_up_with_one_line(hub):
    hub.create_repo("team/results")
    hub.inject(500, method="POST", path_contains="/commit/", times=99)
    waits: list[float] = []
    with pytest.raises(ServerError) as info:
        publish([make_record()], repo="team/results", endpoint=hub.url, token=TOKEN, max_attempts=4,
                sleep=waits.append)
    text = _one_line(info.value)
    assert text == (f"the Hub at {hub.url} failed with 500 while trying to commit to team/results; "
                    "try again later (gave up after 4 attempts)")
    assert _jittered(waits, [1.0, 2.0, 4.0])
    assert len(hub.history("team/results")) == 1


def _cli(*args: str):
    return CliRunner().invoke(main, ["publish", *args])


def _assert_cli_error(out, *needles: str, code: int = 1) -> None:
    assert out.exit_code == code, out.output
    assert "Traceback" not in out.output and out.exception is None or isinstance(out.exception, SystemExit)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    for needle in needles:
        assert needle in lines[0]
    assert TOKEN not in out.output


def test_cli_unreachable_hub(tmp_path):
    record = make_record().save(tmp_path)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    out = _cli(str(record), "--repo", "team/results", "--endpoint", endpoint, "--token", TOKEN)
    _assert_cli_error(out, f"cannot reach the Hub at {endpoint}", code=2)  # the user's endpoint, not the Hub's fault


def test_cli_refused_token(hub, tmp_path):
    hub.tokens = {"the-right-token"}
    record = make_record().save(tmp_path)
    out = _cli(str(record), "--repo", "team/results", "--endpoint", hub.url, "--token", TOKEN)
    _assert_cli_error(out, "refused the token from --token (401)", code=2)


def test_cli_invalid_record(hub, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "llmos-hub/result/1"}))
    out = _cli(str(bad), "--repo", "team/results", "--endpoint", hub.url)
    _assert_cli_error(out, str(bad), "invalid result record", code=2)
    assert hub.requests == []


def test_cli_bad_repo_id(tmp_path):
    out = _cli(str(make_record().save(tmp_path)), "--repo", "results")
    _assert_cli_error(out, "--repo 'results' is not a repo id; write it as NAMESPACE/NAME", code=2)


def _jittered(waits: list[float], caps: list[float]) -> bool:
    """Full jitter: one wait per retry, each a random share (at least 0.1 s) of its backoff cap."""
    return len(waits) == len(caps) and all(0.1 <= w <= c for w, c in zip(waits, caps))
