"""Class 5 of issue 13: output that cannot be written never loses a computed result.

Tests run as any user (root ignores file modes), so a read-only or full disk is injected at the one
place every write goes through, ``tempfile.mkstemp`` in a folder, as the errno the OS would give.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from llmos_hub import load_record

from ._fakes import FakeFamily
from ._hardening import error_lines, fake_cli


@pytest.fixture
def fail_writes(monkeypatch):
    """``fail_writes(folder, errno, probe_too)``: writes of files into ``folder`` fail with ``errno``."""
    real = tempfile.mkstemp

    def install(folder: Path, code: int, *, probe_too: bool = True):
        root = os.path.realpath(folder)

        def mkstemp(*args, **kwargs):
            where = os.path.realpath(kwargs.get("dir") or (args[2] if len(args) > 2 else tempfile.gettempdir()))
            is_probe = str(kwargs.get("prefix", "")).startswith(".llmos-hub-probe.")
            if (where == root or where.startswith(root + os.sep)) and (probe_too or not is_probe):
                raise OSError(code, os.strerror(code))
            return real(*args, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)

    return install


ARGS = ["bench", "--task", "upper", "--model", "fake:upper", "--backend", "fake"]


def test_a_read_only_output_dir_is_refused_before_anything_loads(monkeypatch, tmp_path, fail_writes):
    out = tmp_path / "ro"
    out.mkdir()
    fail_writes(out, errno.EROFS)
    FakeFamily.loads = 0
    result = fake_cli(monkeypatch, [*ARGS, "--output-dir", str(out)])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [
        f"error: cannot write result records to {out} (Read-only file system); choose a writable --output-dir"]
    assert FakeFamily.loads == 0 and list(out.iterdir()) == []


def test_a_disk_that_fills_mid_bench_sends_the_record_to_a_fallback(monkeypatch, tmp_path, fail_writes):
    out = tmp_path / "results"
    fallback = tmp_path / "fallback"
    monkeypatch.setenv("LLMOS_HUB_FALLBACK_DIR", str(fallback))
    fail_writes(out, errno.ENOSPC, probe_too=False)  # the probe passes; the record write finds the disk full
    result = fake_cli(monkeypatch, [*ARGS, "--output-dir", str(out), "--json"])
    assert result.exit_code == 1, result.output
    [saved] = list(fallback.glob("*/*.json"))
    [line] = error_lines(result.stderr)
    prefix = f"error: could not write 1 record(s) to {out} (No space left on device); they are saved in {saved.parent}; "
    assert line.startswith(prefix)
    assert line.endswith(f"move them back with: mkdir -p {out} && mv {saved.parent}/*.json {out}/")
    printed = json.loads(result.stdout)
    assert printed == [json.loads(saved.read_text())]  # also on stdout with --json
    monkeypatch.undo()  # the disk has room again: the printed command moves the record back, byte for byte
    data = saved.read_bytes()
    subprocess.run(line.split("move them back with: ", 1)[1], shell=True, check=True)
    moved = out / saved.name
    assert moved.read_bytes() == data
    assert load_record(moved).scores["exact"]["value"] == 1.0


def test_leaderboard_to_an_unwritable_path_is_one_line(monkeypatch, tmp_path, fail_writes):
    from click.testing import CliRunner

    from llmos_hub.cli import main

    from ._records import make_record

    make_record().save(tmp_path / "results")  # a board with a row: an empty one is refused before writing
    fail_writes(tmp_path / "ro", errno.EROFS)
    target = tmp_path / "ro" / "board.md"
    result = CliRunner().invoke(main, ["leaderboard", str(tmp_path / "results"), "--format", "markdown",
                                       "-o", str(target)])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [
        f"error: cannot write {target} (Read-only file system); choose a writable path with -o"]


def test_temp_files_of_a_killed_write_are_cleaned_by_the_next_write(monkeypatch, tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    stale = out / ".x__upper__fake__0123456789ab.json.k2j4h1ab.tmp"
    fresh = out / ".y.json.zz9as8d7.tmp"
    stale.write_text('{"half": ')
    fresh.write_text('{"writing": ')
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    result = fake_cli(monkeypatch, [*ARGS, "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert not stale.exists()
    assert fresh.exists()  # another process may still be writing it
    assert len(list(out.glob("*.json"))) == 1


def test_leaderboard_into_a_folder_that_is_a_file_names_the_file(tmp_path, monkeypatch):
    """``-o afile/board.html`` where ``afile`` is a file: the line names it (mkdir said only "File exists")."""
    from click.testing import CliRunner

    from llmos_hub.cli import main

    from ._records import make_record

    make_record().save(tmp_path / "results")
    (tmp_path / "afile").write_text("not a folder", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["leaderboard", "results", "-o", "afile/sub/board.html"])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [
        "error: cannot write afile/sub/board.html (afile is a file, not a folder); choose a writable path with -o"]
    assert (tmp_path / "afile").read_text(encoding="utf-8") == "not a folder"
