"""The ``hf`` family hashes, checks and records exactly the files transformers reads, and names a broken one.

Each case is a tiny checkpoint with one defect, refused while planning (``capabilities``/``inspect``,
before any weights load) in one line naming the file and the fix; or, for a layout transformers
resolves in its own order, loaded and recorded as transformers loads it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from llmos_hub import DataError
from llmos_hub_pytorch.backend import TorchBackend

from llmos_hub_transformers.family import HFFamily, _clip, _quiet_transformers
from llmos_hub_transformers.source import weight_files
from llmos_hub_transformers.tiny import save_tiny


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf-files")
    return {
        "gpt2": save_tiny("gpt2", root / "gpt2"),
        "gpt2-seed1": save_tiny("gpt2", root / "gpt2-seed1", seed=1),
        "gpt2-seed1-sharded": save_tiny("gpt2", root / "gpt2-seed1-sharded", seed=1, max_shard_size="50KB"),
    }


def _copy(folder: Path, dest: Path) -> Path:
    shutil.copytree(folder, dest, symlinks=True)
    return dest


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _planning_refuses(folder: Path, match: str) -> None:
    family = HFFamily()
    for call in (family.capabilities, family.inspect, family.load):
        with pytest.raises(DataError, match=match) as error:
            call(str(folder))
        assert "\n" not in str(error.value)


# -- 1. the weights transformers loads are the weights hashed, checked and recorded -----------------------------


def test_a_folder_with_a_single_file_and_an_index_records_the_single_file_transformers_loads(tiny, tmp_path):
    # The shards (and index) of the seed-1 model next to the seed-0 model.safetensors: transformers 5
    # loads model.safetensors, so that is the file hashed, recorded and scored.
    folder = _copy(tiny["gpt2-seed1-sharded"], tmp_path / "both")
    shutil.copy(tiny["gpt2"] / "model.safetensors", folder / "model.safetensors")
    assert len(list(folder.glob("model-*-of-*.safetensors"))) > 1
    model = HFFamily().load(str(folder))
    assert model.provenance.weights_sha256 == _sha256(tiny["gpt2"] / "model.safetensors")
    assert model.provenance.extra["weights"] == {"model.safetensors": _sha256(folder / "model.safetensors")}
    assert [p.name for p in model.artifacts.weights] == ["model.safetensors"]
    assert HFFamily().inspect(str(folder)).weights_sha256 == model.provenance.weights_sha256
    # ... and the record's hash names the weights really scored: the seed-0 model's numbers, not the shards'.
    prompts = ["This License", "The GNU General Public License is a free, copyleft license"]
    got = TorchBackend().prepare(model).loglikelihood_rolling(prompts)
    assert got == TorchBackend().prepare(HFFamily().load(str(tiny["gpt2"]))).loglikelihood_rolling(prompts)
    assert got != TorchBackend().prepare(HFFamily().load(str(tiny["gpt2-seed1"]))).loglikelihood_rolling(prompts)


def test_a_single_file_linked_out_of_a_sharded_folder_is_refused_while_planning(tiny, tmp_path):
    folder = _copy(tiny["gpt2-seed1-sharded"], tmp_path / "both-link")
    (folder / "model.safetensors").symlink_to(tiny["gpt2"] / "model.safetensors")
    _planning_refuses(folder, "refusing weight file model.safetensors: it is outside the model's folder")


def test_transformers_weights_in_config_json_is_the_file_hashed_and_checked(tiny, tmp_path):
    folder = _copy(tiny["gpt2-seed1"], tmp_path / "explicit")
    shutil.copy(tiny["gpt2"] / "model.safetensors", folder / "chosen.safetensors")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "transformers_weights": "chosen.safetensors"}))
    assert [p.name for p in weight_files(folder)] == ["chosen.safetensors"]
    assert HFFamily().inspect(str(folder)).weights_sha256 == _sha256(tiny["gpt2"] / "model.safetensors")
    (folder / "chosen.safetensors").unlink()
    (folder / "chosen.safetensors").symlink_to(tiny["gpt2"] / "model.safetensors")
    _planning_refuses(folder, "refusing weight file chosen.safetensors: it is outside the model's folder")


def test_a_distributed_checkpoint_hashes_every_safetensors_file_transformers_reads(tiny, tmp_path):
    folder = _copy(tiny["gpt2"], tmp_path / "dcp")
    shutil.copy(tiny["gpt2-seed1"] / "model.safetensors", folder / "shard-00001-model-00001-of-00001.safetensors")
    assert [p.name for p in weight_files(folder)] == ["model.safetensors", "shard-00001-model-00001-of-00001.safetensors"]
    (folder / "outside.safetensors").symlink_to(tiny["gpt2-seed1"] / "model.safetensors")
    with pytest.raises(DataError, match="refusing weight file outside.safetensors: it is outside"):
        weight_files(folder)


# -- 2. side files in sub-folders -------------------------------------------------------------------------------


def test_a_chat_template_linked_out_of_additional_chat_templates_is_refused(tiny, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:secret\n")
    folder = _copy(tiny["gpt2"], tmp_path / "ct-dir")
    (folder / "additional_chat_templates").mkdir()
    (folder / "additional_chat_templates" / "ok.jinja").write_text("{{ messages }}")
    assert HFFamily().inspect(str(folder)).weights_sha256  # a template inside the folder is read as before
    (folder / "additional_chat_templates" / "x.jinja").symlink_to(secret)
    _planning_refuses(folder, "refusing additional_chat_templates/x.jinja: it leads outside the model's folder")


def test_an_additional_chat_templates_folder_linked_out_is_refused(tiny, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.jinja").write_text("{{ messages }}")
    folder = _copy(tiny["gpt2"], tmp_path / "ct-link-dir")
    (folder / "additional_chat_templates").symlink_to(elsewhere, target_is_directory=True)
    _planning_refuses(folder, "refusing additional_chat_templates: it leads outside the model's folder")


def test_a_versioned_tokenizer_file_outside_the_folder_is_refused(tiny, tmp_path):
    outside = tmp_path / "tokenizer.4.0.0.json"
    shutil.copy(tiny["gpt2"] / "tokenizer.json", outside)
    folder = _copy(tiny["gpt2"], tmp_path / "versioned")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["fast_tokenizer_files"] = ["../tokenizer.4.0.0.json"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    _planning_refuses(folder, r"refusing \.\./tokenizer\.4\.0\.0\.json: it leads outside the model's folder")


# -- 3. a tokenizer with ids the model has no embedding for ------------------------------------------------------


def _save_gpt2_with_vocab(folder: Path, vocab: int) -> Path:
    import transformers as tf

    from llmos_hub_transformers.tiny import tiny_tokenizer

    torch.manual_seed(0)
    config = tf.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=128, pad_token_id=0,
                           eos_token_id=1, bos_token_id=2)
    tf.GPT2LMHeadModel(config).eval().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)  # 300 tokens
    return folder


def test_a_tokenizer_larger_than_the_vocab_is_refused_naming_both_sizes(tmp_path):
    folder = _save_gpt2_with_vocab(tmp_path / "small-vocab", 100)
    with pytest.raises(DataError) as error:
        HFFamily().inspect(str(folder))
    message = str(error.value)
    assert f"the tokenizer has 300 tokens but {folder / 'config.json'} has vocab_size 100" in message, message
    assert "use the tokenizer files saved with these weights" in message and "\n" not in message


def test_a_vocab_padded_past_the_tokenizer_still_loads(tmp_path):
    folder = _save_gpt2_with_vocab(tmp_path / "padded-vocab", 320)  # as T5's 32128 rows for 32100 tokens
    model = HFFamily().load(str(folder))
    assert model.config["vocab_size"] == 320 and len(model.tokenizer.backend) == 300


# -- 4. broken JSON side files are named while planning ---------------------------------------------------------


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("tokenizer.json", lambda text: text[: len(text) // 2], "not valid JSON"),
    ("tokenizer_config.json", lambda text: text + "}", "not valid JSON"),
    ("generation_config.json", lambda text: "[1, 2]", "expected a JSON object, not list"),
    ("special_tokens_map.json", lambda text: '"pad"', "expected a JSON object, not str"),
])
def test_a_broken_json_side_file_is_named_with_the_fix_while_planning(tiny, tmp_path, name, content, problem):
    folder = _copy(tiny["gpt2"], tmp_path / "broken")
    path = folder / name
    path.write_text(content(path.read_text() if path.exists() else "{}"))
    with pytest.raises(DataError) as error:
        HFFamily().inspect(str(folder))
    message = str(error.value)
    assert message.startswith(f"{path}: {problem}"), message
    assert f"fix it, or copy {name} from the checkpoint these weights were saved with" in message
    assert "\n" not in message


# -- 6. messages: never cut mid-word; Marian's sacremoses warning quieted ----------------------------------------


def test_an_unknown_model_type_names_it_and_the_fix_in_whole_words(tiny, tmp_path):
    folder = _copy(tiny["gpt2"], tmp_path / "unknown")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "foo", "architectures": ["FooForCausalLM"]}))
    with pytest.raises(DataError) as error:
        HFFamily().inspect(str(folder))
    message = str(error.value)
    assert f"{folder / 'config.json'}: model_type 'foo' is not one transformers" in message, message
    assert "pip install --upgrade transformers" in message and "\n" not in message


def test_long_messages_are_cut_at_a_sentence_or_word_never_mid_word():
    text = ("The checkpoint you are trying to load has model type `foo` but Transformers does not recognize this "
            "architecture. This could be because of an issue with the checkpoint, or because your version of "
            "Transformers is out of date. You can update Transformers with the command `pip install --upgrade "
            "transformers`. If this does not work, install it from source.")
    assert _clip(text) == text[: text.index(". You can")]
    words = " ".join(f"word{i}" for i in range(100))
    clipped = _clip(words)
    assert clipped.endswith(" …") and len(clipped) <= 302
    assert clipped[:-2].split(" ") == words.split(" ")[: len(clipped[:-2].split(" "))]
    assert _clip("short") == "short"


def test_marians_sacremoses_warning_is_quiet_unless_debugging(monkeypatch):
    transformers = pytest.importorskip("transformers")
    try:
        import sacremoses  # noqa: F401
        pytest.skip("sacremoses is installed: MarianTokenizer does not warn")
    except ImportError:
        pass
    marian = type("Marian", (), {"source_lang": "en"})()  # what _setup_normalizer reads

    def setup(quiet: bool) -> list[str]:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            if quiet:
                with _quiet_transformers():
                    transformers.MarianTokenizer._setup_normalizer(marian)
            else:
                transformers.MarianTokenizer._setup_normalizer(marian)
        return [str(w.message) for w in seen]

    monkeypatch.delenv("LLMOS_HUB_DEBUG", raising=False)
    assert setup(quiet=False) == ["Recommended: pip install sacremoses."]  # transformers' own, unquieted
    assert setup(quiet=True) == []
    monkeypatch.setenv("LLMOS_HUB_DEBUG", "1")
    assert setup(quiet=True) == ["Recommended: pip install sacremoses."]
