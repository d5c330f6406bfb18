"""Class 2 of issue 13: a task file reads only its own folder (unless the user allows a path)."""

from __future__ import annotations

import json

import pytest

from llmos_hub import DataError
from llmos_hub.tasks import task_from_file

from ._hardening import error_lines, fake_cli

SECRET = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
TASK = """name: sneaky
kind: classification
data: {data}
fields: {{input: text, target: label}}
labels: [even, odd]
"""


def _layout(tmp_path, data: str):
    (tmp_path / "secret.csv").write_text(SECRET)
    (tmp_path / "inner").mkdir()
    task = tmp_path / "inner" / "task.yaml"
    task.write_text(TASK.format(data=data))
    return task


@pytest.mark.parametrize("data", ["../secret.csv", "{secret}", "./../inner/../secret.csv"])
def test_data_outside_the_task_folder_is_refused_without_echoing_it(monkeypatch, tmp_path, data):
    task = _layout(tmp_path, data.format(secret=tmp_path / "secret.csv"))
    out = tmp_path / "out"
    result = fake_cli(monkeypatch, ["bench", "--task", str(task), "--model", "fake:clf", "--backend", "fake",
                                    "--output-dir", str(out)])
    assert result.exit_code == 2, result.output
    [line] = error_lines(result.stderr)
    assert line.startswith(f"error: {task}: field 'data': ") and "outside the task file's folder" in line
    assert "--allow-path" in line
    assert "root:x" not in result.output and "daemon" not in result.output
    assert not out.exists()


def test_a_hub_task_reaching_out_of_its_repo_is_told_the_author_must_fix_it(tmp_path):
    # --allow-path cannot help a task from the Hub (its repo alone is read), so the line does not offer it.
    (tmp_path / "datasets--me--t" / "snapshots" / "abc").mkdir(parents=True)
    task = tmp_path / "datasets--me--t" / "snapshots" / "abc" / "task.yaml"
    task.write_text(TASK.format(data="../../secret.csv"))
    (tmp_path / "datasets--me--t" / "secret.csv").write_text(SECRET)
    with pytest.raises(DataError) as info:
        task_from_file(task)
    message = str(info.value)
    assert "outside the task file's folder" in message and "--allow-path" not in message
    assert message.endswith("a task from the Hub reads only the files of its own repo; its author must put the data "
                            "in the repo")


def test_a_symlink_out_of_the_task_folder_is_refused(tmp_path):
    task = _layout(tmp_path, "link.csv")
    (tmp_path / "inner" / "link.csv").symlink_to(tmp_path / "secret.csv")
    with pytest.raises(DataError, match="outside the task file's folder"):
        task_from_file(task)


def test_a_dataset_id_that_is_a_path_is_refused(tmp_path):
    task = tmp_path / "task.yaml"
    task.write_text(TASK.format(data="{dataset: ../../etc}"))
    with pytest.raises(DataError, match="is a path, not a datasets id"):
        task_from_file(task)


def test_allow_path_on_the_command_line_lets_the_user_name_outside_data(monkeypatch, tmp_path):
    rows = [{"en": "ab", "de": "AB"}, {"en": "abc", "de": "ABC"}]
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "inner").mkdir()
    task = tmp_path / "inner" / "task.yaml"
    task.write_text("name: shout\nkind: translation\ndata: ../shared/rows.jsonl\nfields: {input: en, target: de}\n")
    out = tmp_path / "out"
    args = ["bench", "--task", str(task), "--model", "fake:upper", "--backend", "fake", "--output-dir", str(out)]
    assert fake_cli(monkeypatch, args).exit_code == 2
    result = fake_cli(monkeypatch, [*args, "--allow-path", str(tmp_path / "shared")])
    assert result.exit_code == 0, result.output
    [record] = out.glob("*.json")
    assert json.loads(record.read_text())["scores"]["chrf"]["value"] == 100.0


@pytest.mark.parametrize("split", ["../../secret.csv", "{secret}", "link.csv"])
def test_a_split_file_outside_the_task_folder_is_refused_without_echoing_it(monkeypatch, tmp_path, split):
    """``splits:`` names files inside the data folder: ``../``, an absolute path or a link that leaves
    the task's folder is refused as ``data:`` is, before any model loads."""
    (tmp_path / "secret.csv").write_text(SECRET)
    folder = tmp_path / "inner" / "data"
    folder.mkdir(parents=True)
    (folder / "link.csv").symlink_to(tmp_path / "secret.csv")
    task = tmp_path / "inner" / "task.yaml"
    declared = split.format(secret=tmp_path / "secret.csv")
    task.write_text(TASK.format(data="{path: data, format: csv}") + f"splits: {{test: '{declared}'}}\n")
    out = tmp_path / "out"
    result = fake_cli(monkeypatch, ["bench", "--task", str(task), "--model", "fake:clf", "--backend", "fake",
                                    "--output-dir", str(out)])
    assert result.exit_code == 2, result.output
    [line] = error_lines(result.stderr)
    assert line.startswith(f"error: {task}: field 'splits.test': ") and "outside the task file's folder" in line
    assert "root:x" not in result.output and "daemon" not in result.output
    assert not out.exists()


def test_a_fifo_or_a_folder_as_a_task_or_data_file_is_named_never_opened(monkeypatch, tmp_path):
    """A FIFO would block the reader for ever; a folder is not a task file. Each is one line, exit 2."""
    import os

    os.mkfifo(tmp_path / "pipe.yaml")
    result = fake_cli(monkeypatch, ["bench", "--task", str(tmp_path / "pipe.yaml"), "--model", "fake:clf",
                                    "--backend", "fake", "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [f"error: task file {tmp_path / 'pipe.yaml'} is not a regular file; "
                                          "name the task's YAML file"]
    (tmp_path / "inner" / "data").mkdir(parents=True)
    os.mkfifo(tmp_path / "inner" / "data" / "test.csv")
    task = tmp_path / "inner" / "task.yaml"
    task.write_text(TASK.format(data="{path: data, format: csv}") + "splits: {test: test.csv}\n")
    result = fake_cli(monkeypatch, ["bench", "--task", str(task), "--model", "fake:clf", "--backend", "fake",
                                    "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    [line] = error_lines(result.stderr)
    assert "test.csv: not a regular file (split 'test' of" in line and line.endswith("; name a data file")
