"""nano checkpoints with a malformed config.json or a file linked from elsewhere are refused in one line.

Every case is refused while planning (``capabilities``/``inspect``, before torch builds anything),
naming the file and the fix; one case runs the real CLI for the exit status.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llmos_hub import DataError
from llmos_hub_nano.family import NanoFamily

from ._hardening import error_lines, run_cli

NANO = Path(__file__).resolve().parents[1] / "plugins" / "llmos-hub-nano" / "llmos_hub_nano" / "checkpoints"


def _copy(tmp_path: Path, name: str = "lm-sample") -> Path:
    return Path(shutil.copytree(NANO / name, tmp_path / "nano"))


def _edit_config(folder: Path, edit) -> Path:
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.slow
def test_a_tokenizer_linked_from_another_checkpoint_exits_2_naming_it(tmp_path):
    folder = _copy(tmp_path)
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.json").symlink_to(NANO / "translation-sample" / "tokenizer.json")
    out = tmp_path / "out"
    result = run_cli(["bench", "--model", f"nano:{folder}", "--task", "multiple-choice-sample", "--limit", "3",
                      "--output-dir", str(out), "--quiet"])
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = error_lines(result.stderr)
    assert line == (f"error: {folder}: refusing tokenizer.json: it leads outside the model's folder; put the file "
                    "itself in the folder (not a link to, or a path into, another folder)")
    assert not out.exists() or not any(out.iterdir())


def test_a_linked_config_is_refused_and_so_is_a_tokenizer_at_load(tmp_path):
    folder = _copy(tmp_path)
    (folder / "config.json").unlink()
    (folder / "config.json").symlink_to(NANO / "lm-sample" / "config.json")
    with pytest.raises(DataError, match="refusing config.json: it leads outside"):
        NanoFamily().inspect(str(folder))
    (folder / "config.json").unlink()
    shutil.copy(NANO / "lm-sample" / "config.json", folder / "config.json")
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.json").symlink_to(NANO / "lm-sample" / "tokenizer.json")  # the same file, still elsewhere
    for call in (NanoFamily().capabilities, NanoFamily().inspect, NanoFamily().load):
        with pytest.raises(DataError, match="refusing tokenizer.json: it leads outside"):
            call(str(folder))


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda c: c.update(max_length=10**12), "field 'max_length': must be an integer from 1 to 65536, not 1000000000000"),
    (lambda c: c.update(max_length="lots"), "field 'max_length': must be an integer from 1 to 65536, not 'lots'"),
    (lambda c: c.pop("n_layers"), "missing field(s) 'n_layers'; add them to config.json"),
    (lambda c: c.update(architecture="rnn"), "unknown architecture 'rnn'; use one of causal-lm, seq2seq, classifier"),
    (lambda c: c.update(d_model=97), "d_model 97 is not divisible by n_heads 4"),
    (lambda c: c.update(d_model=8192, d_ff=65536, n_layers=64),
     "make a model of about 8.59e+10 parameters, more than the 2.15e+09"),  # each size within its limit
], ids=["max_length-huge", "max_length-text", "n_layers-missing", "architecture", "d_model", "too-many-parameters"])
def test_a_bad_config_names_the_file_and_the_field_before_anything_loads(tmp_path, edit, expected):
    folder = _edit_config(_copy(tmp_path), edit)
    for call in (NanoFamily().capabilities, NanoFamily().inspect):
        with pytest.raises(DataError) as error:
            call(str(folder))
        message = str(error.value)
        assert message.startswith(f"{folder / 'config.json'}: "), message
        assert expected in message and "\n" not in message, message


def test_the_shipped_checkpoints_pass_the_checks():
    for name in ("lm-sample", "translation-sample", "classification-sample", "summarization-sample"):
        assert NanoFamily().inspect(name) is not None
