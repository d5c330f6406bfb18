"""Issue 13, class 5 continued: a ``--log-samples`` file that cannot be written is never lost either.

It goes to the fallback folder with its record (the record names it by a relative file name), the one
error line counts it and moves it back, and its bytes equal those of a run whose output folder worked.
The fault is injected as in ``test_hardening_output.py``: the OS error at ``tempfile.mkstemp``.
"""

from __future__ import annotations

import errno
import json
import subprocess
from pathlib import Path

from llmos_hub import load_record

from ._hardening import error_lines, fake_cli
from .test_hardening_output import fail_writes  # noqa: F401 - the fixture

ARGS = ["bench", "--task", "upper", "--model", "fake:upper", "--backend", "fake", "--log-samples"]


def _reference_samples(monkeypatch, tmp_path: Path) -> bytes:
    good = tmp_path / "good"
    result = fake_cli(monkeypatch, [*ARGS, "--output-dir", str(good)])
    assert result.exit_code == 0, result.output
    [samples] = list(good.glob("*.samples.jsonl"))
    return samples.read_bytes()


def test_a_samples_file_that_cannot_be_written_goes_to_the_fallback_with_its_record(monkeypatch, tmp_path, fail_writes):  # noqa: F811
    expected = _reference_samples(monkeypatch, tmp_path)
    out = tmp_path / "results"
    fallback = tmp_path / "fallback"
    monkeypatch.setenv("LLMOS_HUB_FALLBACK_DIR", str(fallback))
    fail_writes(out, errno.ENOSPC, probe_too=False)  # the probe passes; the samples write finds the disk full
    result = fake_cli(monkeypatch, [*ARGS, "--output-dir", str(out), "--json"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    [record_file] = list(fallback.glob("*/*.json"))
    [samples_file] = list(fallback.glob("*/*.samples.jsonl"))
    folder = record_file.parent
    assert samples_file.parent == folder  # the same folder as its record
    assert json.loads(record_file.read_text())["samples_file"] == samples_file.name
    assert samples_file.read_bytes() == expected  # byte for byte what a working folder gets
    assert not out.exists() or not any(out.iterdir())
    [line] = error_lines(result.stderr)
    assert line == (f"error: could not write 1 record(s) and 1 samples file(s) to {out} (No space left on device); "
                    f"they are saved in {folder}; move them back with: mkdir -p {out} && "
                    f"mv {folder}/*.json {folder}/*.samples.jsonl {out}/")
    monkeypatch.undo()  # room again: the printed command restores both files, byte for byte
    record_bytes = record_file.read_bytes()
    subprocess.run(line.split("move them back with: ", 1)[1], shell=True, check=True)
    assert (out / record_file.name).read_bytes() == record_bytes
    assert (out / samples_file.name).read_bytes() == expected
    assert load_record(out / record_file.name).data["samples_file"] == samples_file.name


def test_the_ray_driver_sends_an_arrived_samples_file_to_the_fallback_too(monkeypatch, tmp_path, fail_writes):  # noqa: F811
    """The driver's ``_write`` (records and samples arriving from Ray workers) takes the same path."""
    from types import SimpleNamespace

    from llmos_hub.bench import BenchReport
    from llmos_hub.bench._ray import _Sweep, _write

    expected = _reference_samples(monkeypatch, tmp_path)
    [record_path] = list((tmp_path / "good").glob("*.json"))
    data = json.loads(record_path.read_text())
    out = tmp_path / "results"
    fallback = tmp_path / "fallback"
    monkeypatch.setenv("LLMOS_HUB_FALLBACK_DIR", str(fallback))
    fail_writes(out, errno.EROFS)
    report = BenchReport()
    run = SimpleNamespace(spec=None)
    _write(out, run, data, expected.decode("utf-8"), report, None, _Sweep(total_runs=1))
    assert report.failed == [] and report.write_problems == ["Read-only file system"]
    [(path, record)] = report.written
    assert path.parent == report.fallback[0]
    assert path.read_bytes() == record_path.read_bytes()
    assert (path.parent / record.data["samples_file"]).read_bytes() == expected
