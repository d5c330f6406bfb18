"""Hub commands refuse what the user got wrong up front, in one line, with exit status 2.

Against the loopback Hub (``tests/hubserver.py``): malformed repo ids and endpoints are refused before
any request (they used to raise ``HFValidationError`` tracebacks, or say the Hub "refused" a request it
never saw); a refused token, an unreachable Hub, a missing repo or revision exit 2 in every command
(``publish`` and ``leaderboard --from-hub`` used to exit 1, ``bench --task hf:`` 2); ``bench
--push-to-hub`` and ``publish --model-card`` find their mistakes before the compute or the commit.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmos_hub.cli import main
from llmos_hub.hub import publish

from ._hardening import error_lines
from ._records import make_record
from .test_hub_tasks import BUILTIN, _fake_cli_host

TOKEN = "hf_hardening_token_1234"
BAD_IDS = ["me/a..b", "me/a--b", "-bad/name", "me/" + "a" * 100, "hf:me/results"]


def _closed() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _record(tmp_path: Path, **kw) -> Path:
    record = make_record(**kw)
    path = tmp_path / record.filename()
    path.write_text(record.to_json())
    return path


def _one_error(result, code: int = 2) -> str:
    """The one ``error:`` line of a command that failed with ``code``: no traceback, nothing else."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (ValueError, AttributeError))
    [line] = error_lines(result.stderr)
    assert line.startswith("error: ") and TOKEN not in result.output
    return line


def _bench(tmp_path: Path, *args: str) -> list[str]:
    return ["bench", "--model", "fake:upper", "--backend", "fake", "--output-dir", str(tmp_path / "out"), *args]


# ------------------------------------------------------------------ 1. repo ids
@pytest.mark.parametrize("bad", BAD_IDS)
def test_an_invalid_repo_id_is_one_line_before_any_request_in_every_command(hub, tmp_path, monkeypatch, bad):
    _fake_cli_host(monkeypatch)
    record = str(_record(tmp_path))
    commands = {
        "--repo": ["publish", record, "--repo", bad],
        "--model-card": ["publish", record, "--repo", "me/results", "--model-card", bad],
        "--repo ": ["publish-task", str(BUILTIN), "--repo", bad],
        "--from-hub": ["leaderboard", "--from-hub", bad],
        "--push-to-hub": _bench(tmp_path, "--task", "upper", "--push-to-hub", bad),
    }
    for flag, args in commands.items():
        line = _one_error(CliRunner().invoke(main, [*args, "--endpoint", hub.url]))
        assert line.startswith(f"error: {flag.strip()} {bad!r} is not a repo id; write it as NAMESPACE/NAME ("), line
    if not bad.startswith("hf:"):
        line = _one_error(CliRunner().invoke(main, _bench(tmp_path, "--task", f"hf:{bad}", "--endpoint", hub.url)))
        assert line.startswith(f"error: task 'hf:{bad}' is not a Hub task id; write it as hf:NAMESPACE/NAME"), line
    assert hub.requests == []
    assert not (tmp_path / "out").exists()  # --push-to-hub refused before the bench ran


# ------------------------------------------------------------------ 2. stale cache
def test_a_hub_task_is_never_run_from_a_stale_cache_when_the_hub_cannot_be_read(hub, tmp_path, monkeypatch):
    """After the task moved on the Hub, an unreachable Hub or a refused token is an error, not the old copy."""
    from huggingface_hub import constants

    from llmos_hub.hub import publish_task

    first = publish_task(BUILTIN, repo="me/task", endpoint=hub.url).revision
    _fake_cli_host(monkeypatch)
    args = _bench(tmp_path, "--task", "hf:me/task", "--limit", "3", "--json")
    assert CliRunner().invoke(main, [*args, "--endpoint", hub.url]).exit_code == 0  # the cache holds `first`
    moved = tmp_path / "moved"  # the task changes on the Hub (published from elsewhere)
    shutil.copytree(BUILTIN.parent / "data" / "translation-sample", moved / "data" / "translation-sample")
    (moved / BUILTIN.name).write_text(BUILTIN.read_text().replace("\ndescription:", "\ndescription: B", 1))
    second = publish_task(moved / BUILTIN.name, repo="me/task", endpoint=hub.url).revision
    assert second != first

    closed = _closed()
    line = _one_error(CliRunner().invoke(main, [*args, "--endpoint", closed]))
    assert line.startswith(f"error: cannot reach the Hub at {closed} (") and line.endswith(
        f"; hf:me/task was read before (commit {first[:12]} is in the local cache): set HF_HUB_OFFLINE=1 to run "
        "that copy"), line
    hub.tokens = {"the-right-token"}
    line = _one_error(CliRunner().invoke(main, [*args, "--endpoint", hub.url, "--token", TOKEN]))
    assert "refused the token from --token (401) while trying to read the task me/task" in line
    assert len(list((tmp_path / "out").glob("*.json"))) == 1  # no new record

    hub.tokens = None
    online = CliRunner().invoke(main, [*args, "--endpoint", hub.url])
    assert online.exit_code == 0 and f"@{second}/" in online.stdout
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # offline is explicit, and reads what was last seen
    offline = CliRunner().invoke(main, [*args, "--endpoint", closed])
    assert offline.exit_code == 0 and f"@{second}/" in offline.stdout, offline.output


# ------------------------------------------------------------------ 3. exit codes and endpoints
def test_hub_user_errors_exit_2_in_publish_and_leaderboard(hub, tmp_path):
    record = str(_record(tmp_path))
    assert publish([record], repo="me/results", endpoint=hub.url).commit_url
    closed = _closed()
    cases = {
        "unreachable": (["publish", record, "--repo", "me/results", "--endpoint", closed], "cannot reach the Hub"),
        "unreachable read": (["leaderboard", "--from-hub", "me/results", "--endpoint", closed], "cannot reach"),
        "missing": (["leaderboard", "--from-hub", "me/ghost", "--endpoint", hub.url], "does not exist"),
        "no revision": (["leaderboard", "--from-hub", "me/results@nosuchrev", "--endpoint", hub.url],
                        "no such revision"),
        "401 read": (["leaderboard", "--from-hub", "me/results", "--endpoint", hub.url, "--token", TOKEN], "(401)"),
        "401 write": (["publish", record, "--repo", "me/other", "--endpoint", hub.url, "--token", TOKEN], "(401)"),
    }
    for name, (args, needle) in cases.items():
        if name.startswith("401"):
            hub.tokens = {"the-right-token"}
        assert needle in _one_error(CliRunner().invoke(main, args)), name


def test_a_read_only_token_is_refused_in_one_lowercase_line_exit_2(hub, tmp_path):
    hub.read_only_tokens = {TOKEN}
    line = _one_error(CliRunner().invoke(main, ["publish", str(_record(tmp_path)), "--repo", "me/results",
                                                "--endpoint", hub.url, "--token", TOKEN]))
    assert line.startswith("error: the token from --token may not create dataset repo me/results"), line


def test_a_failing_hub_stays_exit_1(hub, tmp_path, monkeypatch):
    import llmos_hub.hub._deadline as deadline

    monkeypatch.setattr(deadline, "backoff", lambda attempt, rng=None: 0.01)
    hub.inject(503, times=99)
    line = _one_error(CliRunner().invoke(main, ["leaderboard", "--from-hub", "me/results", "--endpoint", hub.url]),
                      code=1)
    assert "failed with 503" in line and "gave up after 5 attempts" in line


@pytest.mark.parametrize("endpoint", ["127.0.0.1:9", "ftp://example.org", "not a url", "http://", "http://h:port"])
def test_a_malformed_endpoint_is_refused_before_any_request(hub, tmp_path, monkeypatch, endpoint):
    _fake_cli_host(monkeypatch)
    record = str(_record(tmp_path))
    for args in (["publish", record, "--repo", "me/results"], ["leaderboard", "--from-hub", "me/results"],
                 ["publish-task", str(BUILTIN), "--repo", "me/task"], _bench(tmp_path, "--task", "hf:me/task"),
                 _bench(tmp_path, "--task", "upper")):
        line = _one_error(CliRunner().invoke(main, [*args, "--endpoint", endpoint]))
        assert line.startswith(f"error: --endpoint {endpoint!r} is not a Hub URL; write it as http(s)://HOST"), line
        assert "refused" not in line
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    line = _one_error(CliRunner().invoke(main, ["leaderboard", "--from-hub", "me/results"]))
    assert line.startswith(f"error: HF_ENDPOINT {endpoint!r} is not a Hub URL"), line
    assert hub.requests == [] and not (tmp_path / "out").exists()


# ------------------------------------------------------------------ 4. progress bars
def test_hub_downloads_draw_no_progress_bars_on_stderr(hub, tmp_path, monkeypatch):
    """conftest turns the bars off for every test; this one turns them back on, as a user's shell has them."""
    import importlib

    from llmos_hub.hub import publish_task

    hub_tqdm = importlib.import_module("huggingface_hub.utils.tqdm")
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    monkeypatch.setattr(hub_tqdm, "HF_HUB_DISABLE_PROGRESS_BARS", None)
    monkeypatch.setattr(hub_tqdm, "progress_bar_states", {})
    assert not hub_tqdm.are_progress_bars_disabled()
    publish_task(BUILTIN, repo="me/task", endpoint=hub.url)
    _fake_cli_host(monkeypatch)
    result = CliRunner().invoke(main, _bench(tmp_path, "-q", "--task", "hf:me/task", "--limit", "3",
                                             "--endpoint", hub.url))
    assert result.exit_code == 0, result.output
    assert "Fetching" not in result.stderr and "it/s" not in result.stderr, result.stderr
    assert not hub_tqdm.are_progress_bars_disabled()  # the library's setting is put back


# ------------------------------------------------------------------ 5. --push-to-hub and --model-card up front
def test_push_to_hub_checks_the_token_and_the_hub_before_the_bench_runs(hub, tmp_path, monkeypatch):
    _fake_cli_host(monkeypatch)
    hub.tokens = {"the-right-token"}
    line = _one_error(CliRunner().invoke(main, _bench(tmp_path, "--task", "upper", "--push-to-hub", "me/results",
                                                      "--endpoint", hub.url, "--token", TOKEN)))
    assert "refused the token from --token (401) while trying to publish to me/results" in line
    closed = _closed()
    line = _one_error(CliRunner().invoke(main, _bench(tmp_path, "--task", "upper", "--push-to-hub", "me/results",
                                                      "--endpoint", closed, "--token", TOKEN)))
    assert line.startswith(f"error: cannot reach the Hub at {closed} (")
    assert not (tmp_path / "out").exists()  # nothing ran
    hub.read_only_tokens = {"a-read-only-token"}
    line = _one_error(CliRunner().invoke(main, _bench(tmp_path, "--task", "upper", "--push-to-hub", "me/results",
                                                      "--endpoint", hub.url, "--token", "a-read-only-token")))
    assert line == (f"error: the token from --token is a read-only token, so it cannot publish to dataset repo "
                    f"me/results at {hub.url}; use a token with write access")
    assert not (tmp_path / "out").exists()  # nothing ran
    ok = CliRunner().invoke(main, _bench(tmp_path, "--task", "upper", "--push-to-hub", "me/results",
                                         "--endpoint", hub.url, "--token", "the-right-token"))
    assert ok.exit_code == 0, ok.output
    assert any(p.startswith("records/") for p in hub.files("me/results"))


def test_a_missing_model_repo_is_found_before_the_records_are_committed(hub, tmp_path):
    result = CliRunner().invoke(main, ["publish", str(_record(tmp_path)), "--repo", "me/results",
                                       "--model-card", "me/ghost", "--endpoint", hub.url])
    line = _one_error(result)
    assert line.startswith(f"error: model repo me/ghost at {hub.url} does not exist"), line
    assert ("dataset", "me/results") not in hub.repos  # nothing created, nothing committed


# ------------------------------------------------------------------ 6. the run line
def test_publish_task_prints_a_run_line_with_the_endpoint_it_was_given(hub, monkeypatch):
    monkeypatch.delenv("HF_ENDPOINT")
    result = CliRunner().invoke(main, ["publish-task", str(BUILTIN), "--repo", "me/task", "--endpoint", hub.url])
    assert result.exit_code == 0, result.output
    line = result.stdout.strip().splitlines()[-1]
    head = hub.refs("me/task")["main"]
    assert line == f"run it with: llmos-hub bench --task hf:me/task@{head} --endpoint {hub.url}"


def test_a_repo_id_the_client_refuses_is_a_usage_error_in_any_hub_call(hub):
    """A safety net for ids that reach the client another way (a plugin's ``hf:`` model through ``hub_call``)."""
    from llmos_hub import UsageError
    from llmos_hub.hub import hub_call, resolve_auth
    from llmos_hub.hub._repo import make_api

    auth = resolve_auth(hub.url)
    api = make_api(auth)
    with pytest.raises(UsageError, match=r"^'me/a\.\.b' is not a model repo id the Hub accepts \(Cannot have -- or "):
        hub_call(auth, "me/a..b", "model", "read", lambda: api.model_info("me/a..b"))
    assert hub.requests == []
