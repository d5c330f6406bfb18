"""hf checkpoints that are incomplete, linked from elsewhere or malformed are refused in one line.

Each case is a tiny transformers checkpoint with one defect. The family refuses it while planning
(``inspect``, before any weights load) where it can; a checkpoint missing a weight is refused by
every backend that loads it with transformers: the pytorch model and CTranslate2's converter.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llmos_hub import DataError

pytest.importorskip("transformers")

from llmos_hub_transformers.family import HFFamily  # noqa: E402

DROPPED = "transformer.h.1.mlp.c_fc.weight"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    from llmos_hub_transformers.tiny import save_tiny

    root = tmp_path_factory.mktemp("hf")
    return {kind: save_tiny(kind, root / kind) for kind in ("gpt2", "llama")}


def _copy(folder: Path, dest: Path) -> Path:
    shutil.copytree(folder, dest)
    return dest


def _edit_weights(folder: Path, edit) -> Path:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(folder / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def _edit_config(folder: Path, **changes) -> Path:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _prepare_ctranslate2(folder: Path, cache: Path):
    pytest.importorskip("ctranslate2")
    from llmos_hub_ctranslate2.backend import CTranslate2Backend

    return CTranslate2Backend().prepare(HFFamily().load(str(folder)), options={"cache_dir": str(cache)})


def test_ctranslate2_refuses_a_checkpoint_missing_a_weight_as_pytorch_does(tiny, tmp_path):
    folder = _edit_weights(_copy(tiny["gpt2"], tmp_path / "missing"), lambda t: t.pop(DROPPED))
    expected = f"the checkpoint has no weights for 1 parameter(s) of GPT2LMHeadModel ({DROPPED}); transformers"
    with pytest.raises(DataError) as ctranslate2:
        _prepare_ctranslate2(folder, tmp_path / "cache")
    with pytest.raises(DataError) as pytorch:
        HFFamily().load(str(folder)).modules  # noqa: B018  (builds the torch model)
    for error in (ctranslate2, pytorch):
        assert expected in str(error.value) and "\n" not in str(error.value)
    assert not any((tmp_path / "cache").rglob("model.bin"))  # nothing converted, nothing cached


def test_ctranslate2_names_a_wrongly_shaped_weight_and_both_shapes(tiny, tmp_path):
    import torch

    def widen(tensors):
        rows, cols = tensors[DROPPED].shape
        tensors[DROPPED] = torch.zeros(rows, cols + 1)

    folder = _edit_weights(_copy(tiny["gpt2"], tmp_path / "shape"), widen)
    with pytest.raises(DataError) as error:
        _prepare_ctranslate2(folder, tmp_path / "cache")
    message = str(error.value)
    assert f"{DROPPED} is (32, 129), the config says (32, 128)" in message, message
    assert "above report" not in message and "\n" not in message


def test_a_complete_checkpoint_still_converts(tiny, tmp_path):
    runner = _prepare_ctranslate2(tiny["llama"], tmp_path / "cache")
    assert runner.converted_path.is_dir()


@pytest.mark.parametrize("name", ["tokenizer.json", "config.json", "tokenizer_config.json"])
def test_a_side_file_linked_from_another_checkpoint_is_refused_while_planning(tiny, tmp_path, name):
    folder = _copy(tiny["gpt2"], tmp_path / "linked")
    (folder / name).unlink()
    (folder / name).symlink_to(tiny["llama"] / name)
    family = HFFamily()
    for call in (family.capabilities, family.inspect, family.load):
        with pytest.raises(DataError, match=f"refusing {name}: it leads outside the model's folder"):
            call(str(folder))


def test_a_config_field_transformers_refuses_names_config_json_and_the_field(tiny, tmp_path):
    folder = _edit_config(_copy(tiny["gpt2"], tmp_path / "typed"), n_layer="two")
    with pytest.raises(DataError) as error:
        HFFamily().inspect(str(folder))
    message = str(error.value)
    assert f"{folder / 'config.json'}: transformers refuses it" in message
    assert "'n_layer' expected int, got str" in message and "\n" not in message


def test_architectures_as_a_string_is_refused_not_read_letter_by_letter(tiny, tmp_path):
    folder = _edit_config(_copy(tiny["gpt2"], tmp_path / "string"), architectures="GPT2LMHeadModel")
    with pytest.raises(DataError, match=r'"architectures" must be a list of class names.*\["GPT2LMHeadModel"\]'):
        HFFamily().capabilities(str(folder))


def test_missing_tokenizer_files_are_named_while_planning(tiny, tmp_path):
    folder = _copy(tiny["gpt2"], tmp_path / "no-tokenizer")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(DataError) as error:
        HFFamily().inspect(str(folder))
    message = str(error.value)
    assert "has no tokenizer files transformers can build the tokenizer from (found: tokenizer_config.json)" in message
    assert "copy tokenizer.json" in message and "\n" not in message
