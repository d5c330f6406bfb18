"""Class 7 of issue 13 (and the YAML/UTF-8 parts of class 8): bounded memory on hostile task files.

Every case is a file a hostile or careless author could hand over; each is refused with one line
naming the file (and line) before any model loads, within a small, fixed amount of work.
"""

from __future__ import annotations

import json
import resource

import pytest

from llmos_hub import DataError
from llmos_hub.tasks import task_from_file

from ._hardening import error_lines, fake_cli

HEAD = """name: hostile
kind: classification
data: rows.jsonl
fields: {input: text, target: label}
"""


def _task(tmp_path, body: str, rows=({"text": "ab", "label": "even"}, {"text": "abc", "label": "odd"})):
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "task.yaml"
    path.write_text(HEAD + body)
    return path


def _bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "anchors:\n" + "\n".join("  " + line for line in lines) + f"\nlabels: *a{levels - 1}\n"


def test_an_alias_bomb_in_the_labels_is_refused_before_it_expands(monkeypatch, tmp_path):
    path = _task(tmp_path, _bomb(9))  # ~700 bytes that expand to 10**9 strings
    assert path.stat().st_size < 1000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = fake_cli(monkeypatch, ["bench", "--task", str(path), "--model", "fake:clf", "--backend", "fake",
                                    "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    [line] = error_lines(result.stderr)
    assert line.startswith(f"error: {path}:") and "YAML expands to more than 100000 values" in line
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: well under 200 MB
    assert not (tmp_path / "out").exists()


def test_a_small_alias_bomb_is_refused_and_plain_aliases_are_fine(tmp_path):
    with pytest.raises(DataError, match=r"task.yaml:\d+: YAML expands to more than 100000 values"):
        task_from_file(_task(tmp_path, _bomb(6)))
    task = task_from_file(_task(tmp_path, "labels: &l [even, odd]\ndescription: &d plain\nsource: *d\n"))
    assert task.labels == ("even", "odd") and task.spec.source == "plain"


@pytest.mark.parametrize("prompt", ["{input:>2000000000}", "{input:.5}", "{input!r}", "{input:{width}}"])
def test_prompt_format_specs_are_refused(tmp_path, prompt):
    with pytest.raises(DataError) as info:
        task_from_file(_task(tmp_path, f"labels: [even, odd]\nprompt: {json.dumps(prompt)}\n"))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'task.yaml'}: field 'prompt': placeholder {{input}} has a format spec")
    assert message.endswith("write it plainly as {input}")


def test_deep_nesting_is_refused(tmp_path):
    with pytest.raises(DataError, match="nested"):
        task_from_file(_task(tmp_path, "labels: [even, odd]\nsource: " + "[" * 5000 + "]" * 5000 + "\n"))


def test_an_oversized_task_file_is_refused_without_parsing(tmp_path):
    path = _task(tmp_path, "labels: [even, odd]\ndescription: \"" + "x" * 1_100_000 + "\"\n")
    with pytest.raises(DataError, match=r"task.yaml: \d+ bytes; a task file is at most 1000000 bytes"):
        task_from_file(path)


def test_duplicate_keys_are_an_error_naming_the_line(tmp_path):
    with pytest.raises(DataError) as info:
        task_from_file(_task(tmp_path, "labels: [even, odd]\nkind: translation\n"))
    assert str(info.value) == f"{tmp_path / 'task.yaml'}:6: duplicate key 'kind' (first at line 2); keep one"


def test_invalid_utf8_in_a_task_file_names_the_line(tmp_path):
    path = _task(tmp_path, "labels: [even, odd]\n")
    path.write_bytes(path.read_bytes() + b"description: caf\xe9\n")
    with pytest.raises(DataError, match=r"task.yaml:6: not UTF-8 text"):
        task_from_file(path)


def test_invalid_utf8_in_a_data_file_names_the_line(tmp_path):
    path = _task(tmp_path, "labels: [even, odd]\n")
    (tmp_path / "rows.jsonl").write_bytes(b'{"text": "ab", "label": "even"}\n{"text": "caf\xe9", "label": "odd"}\n')
    with pytest.raises(DataError, match=r"rows.jsonl:2: not UTF-8 text \(byte 14 of the line\)"):
        task_from_file(path).load()


def test_an_over_long_example_is_refused_naming_it_before_any_tokenizer(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMOS_HUB_MAX_EXAMPLE_CHARS", "1000")
    rows = [{"text": "ab", "label": "even"}, {"text": "x" * 1001, "label": "odd"}]
    path = _task(tmp_path, "labels: [even, odd]\n", rows=rows)
    result = fake_cli(monkeypatch, ["bench", "--task", str(path), "--model", "fake:clf", "--backend", "fake",
                                    "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [
        f"error: {tmp_path / 'rows.jsonl'}:2: field 'text' has 1001 characters, more than an example may have (1000); "
        "shorten the example or set LLMOS_HUB_MAX_EXAMPLE_CHARS"]
    assert not (tmp_path / "out").exists()


def test_a_giant_line_is_refused_before_it_is_parsed(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMOS_HUB_MAX_EXAMPLE_CHARS", "100")
    path = _task(tmp_path, "labels: [even, odd]\n", rows=[{"text": "y" * 5000, "label": "odd"}])
    with pytest.raises(DataError, match=r"rows.jsonl:1: line of 50\d\d bytes, longer than an example may be"):
        task_from_file(path).load()
