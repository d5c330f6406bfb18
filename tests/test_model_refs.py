"""``--model family:ref[@revision]`` parsing: a revision after '@', and an empty one refused in one line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from llmos_hub.bench import parse_model_ref
from llmos_hub.cli import main
from llmos_hub.errors import UsageError

from ._hardening import error_lines


@pytest.mark.parametrize(("text", "parsed"), [
    ("nano:lm-sample", ("nano", "lm-sample", None)),
    ("hf:gpt2@main", ("hf", "gpt2", "main")),
    ("hf:org/name@v1.0", ("hf", "org/name", "v1.0")),
    ("hf:/models/a@b/c", ("hf", "/models/a@b/c", None)),  # an '@' inside a path is part of the path
])
def test_a_model_ref_splits_into_family_ref_and_revision(text, parsed):
    assert parse_model_ref(text) == parsed


@pytest.mark.parametrize("text", ["hf:gpt2@", "hf:org/name@", "nano:lm-sample@", "hf:gpt2@ "])
def test_an_empty_revision_after_at_is_a_usage_error_naming_the_fix(text):
    family, rest = text.split(":", 1)
    with pytest.raises(UsageError) as error:
        parse_model_ref(text)
    ref = rest.rsplit("@", 1)[0]
    assert str(error.value) == (f"model {text!r} has an empty revision after '@'; give {family}:{ref}@<branch, tag "
                                "or commit>, or drop the '@' for the default revision")


def test_bench_with_an_empty_revision_exits_2_in_one_line_before_anything_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # were it read as no revision, nothing would be fetched either
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(main, ["bench", "--model", "hf:gpt2@", "--task", "lm-sample",
                                       "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [
        "error: model 'hf:gpt2@' has an empty revision after '@'; give hf:gpt2@<branch, tag or commit>, or drop "
        "the '@' for the default revision"]
    assert not (tmp_path / "out").exists()
