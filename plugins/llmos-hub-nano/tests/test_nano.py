"""The nano family: the calling conventions hold (cache, padding), checkpoints load safely, the
shipped checkpoints are there and say what they are, and the plugin imports no torch at start-up."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmos_hub import Capability, DataError, UsageError
from llmos_hub.testing import check_model_family, check_plugin
from llmos_hub_nano import plugin
from llmos_hub_nano.family import NanoFamily
from llmos_hub_nano.modeling import empty_cache
from llmos_hub_nano.tiny import random_checkpoint

SHIPPED = {"lm-sample", "classification-sample", "translation-sample", "summarization-sample"}
SHIPPED_CAPS = {
    "lm-sample": Capability.CAUSAL_LM,
    "classification-sample": Capability.CLASSIFIER,
    "translation-sample": Capability.SEQ2SEQ,
    "summarization-sample": Capability.SEQ2SEQ,
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("nano")
    folders = {arch: random_checkpoint(root / arch, arch, seed=1) for arch in ("causal-lm", "seq2seq", "classifier")}
    folders["seq2seq-copy"] = random_checkpoint(root / "seq2seq-copy", "seq2seq", seed=1, copy=True)
    return folders


@pytest.fixture(scope="module")
def lm(folders):
    return NanoFamily().load(str(folders["causal-lm"]))


# -- calling conventions ----------------------------------------------------------------------------
def test_causal_cache_gives_the_logits_of_full_recomputation(lm):
    """Prefill 7 tokens into a 16-slot cache, then one token per step: each step's logits and new
    keys/values equal those of the whole sequence run at once, and the slots hold them in place."""
    module, config = lm.modules["causal_lm"], lm.config
    torch.manual_seed(0)
    ids = torch.randint(3, 200, (2, 12))
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[0, :2] = 0  # left padding in row 0
    with torch.inference_mode():
        full, full_kv = module(ids, mask[:, :12])
        head_dim = config["d_model"] // config["n_heads"]
        assert full_kv.shape == (config["n_layers"], 2, 2, config["n_heads"], 12, head_dim)
        cache = empty_cache(_cfg(lm), 2, 16)
        first, new_kv = module(ids[:, :7], mask, cache, torch.arange(7), torch.arange(7))
        assert new_kv.shape[4] == 7
        step_logits = [first]
        for t in range(7, 12):
            logits, new_kv = module(ids[:, t : t + 1], mask, cache, torch.tensor([t]), torch.tensor([0]))
            step_logits.append(logits)
        last_only, _ = module(ids[:, :7], mask, empty_cache(_cfg(lm), 2, 16), torch.arange(7), torch.tensor([6]))
    torch.testing.assert_close(torch.cat(step_logits, dim=1), full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cache[..., :12, :], full_kv, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(new_kv, full_kv[..., 11:12, :], atol=1e-5, rtol=1e-5)
    assert not cache[..., 12:, :].any()  # slots not yet written are untouched
    torch.testing.assert_close(last_only, full[:, 6:7], atol=1e-5, rtol=1e-5)


def test_left_padding_is_exact(lm):
    module = lm.modules["causal_lm"]
    ids = torch.tensor([[5, 6, 7, 8]])
    padded = torch.tensor([[0, 0, 5, 6, 7, 8]])
    with torch.inference_mode():
        alone, _ = module(ids, torch.ones_like(ids))
        both, _ = module(padded, torch.tensor([[0, 0, 1, 1, 1, 1]]))
    assert torch.isfinite(both).all()
    torch.testing.assert_close(both[:, 2:], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["seq2seq", "seq2seq-copy"])
def test_seq2seq_decoder_cache_and_source_padding(folders, kind):
    model = NanoFamily().load(str(folders[kind]))
    enc, cross_kv, dec = model.modules["encoder"], model.modules["cross_kv"], model.modules["decoder"]
    cfg = _cfg(model)
    src = torch.tensor([[9, 10, 11]])
    src_pad = torch.tensor([[0, 9, 10, 11]])
    tgt = torch.tensor([[model.decoder_start_id, 20, 21, 22]])
    with torch.inference_mode():
        states = enc(src, torch.ones_like(src))
        states_pad = enc(src_pad, torch.tensor([[0, 1, 1, 1]]))
        torch.testing.assert_close(states_pad[:, 1:], states, atol=1e-5, rtol=1e-5)
        full, _ = dec(tgt, states, torch.ones_like(src))
        padded, _ = dec(tgt, states_pad, torch.tensor([[0, 1, 1, 1]]), cross_kv(states_pad))
        torch.testing.assert_close(padded, full, atol=1e-5, rtol=1e-5)
        cache, cross = empty_cache(cfg, 1, 6, decoder=True), cross_kv(states)
        steps = []
        for t in range(4):
            logits, _ = dec(tgt[:, t : t + 1], states, torch.ones_like(src), cross, cache, torch.tensor([t]))
            steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


# -- the copy (pointer-generator) decoder --------------------------------------------------------
def test_copy_decoder_returns_log_probabilities_and_source_ids_survive_half_precision(folders):
    model = NanoFamily().load(str(folders["seq2seq-copy"]))
    enc, dec, cfg = model.modules["encoder"], model.modules["decoder"], _cfg(model)
    src = torch.tensor([[0, 0, 9, 10, cfg.vocab_size - 1], [5, 6, 7, 8, 4]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    with torch.inference_mode():
        states = enc(src, mask)
        assert states.shape == (2, 5, cfg.d_model + cfg.copy_digits)
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            assert torch.equal(enc.source_ids.read(states.to(dtype)[..., cfg.d_model :]), src)
        logits, _ = dec(torch.tensor([[2, 20], [2, 21]]), states, mask)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits.logsumexp(-1), torch.zeros(2, 2), atol=1e-5, rtol=0)


def test_copy_decoder_that_always_copies_puts_all_mass_on_unpadded_source_tokens(folders):
    model = NanoFamily().load(str(folders["seq2seq-copy"]))
    enc, dec, cfg = model.modules["encoder"], model.modules["decoder"], _cfg(model)
    src = torch.tensor([[0, 0, 9, 10, 11], [5, 6, 7, 8, 5]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    with torch.inference_mode():
        dec.copy.gate.bias.fill_(-60.0)  # p_gen ~ 0: copy only
        try:
            logits, _ = dec(torch.tensor([[2], [2]]), enc(src, mask), mask)
        finally:
            dec.copy.gate.bias.zero_()
    probs = logits[:, 0].exp()
    assert probs[0, [9, 10, 11]].sum() == pytest.approx(1.0, abs=1e-4)
    assert probs[0, 0] < 1e-6  # the padded source position is never copied
    assert probs[1, [5, 6, 7, 8]].sum() == pytest.approx(1.0, abs=1e-4)
    assert set(logits[:, 0].argmax(-1).tolist()) <= {5, 6, 7, 8, 9, 10, 11}


def test_copy_decoder_can_continue_a_copied_span_with_or_without_the_cache(folders):
    model = NanoFamily().load(str(folders["seq2seq-copy"]))
    enc, dec, cfg = model.modules["encoder"], model.modules["decoder"], _cfg(model)
    src = torch.tensor([[0, 40, 41, 42, 43], [50, 51, 52, 53, 54]])
    mask = torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    tgt = torch.tensor([[2, 41, 42], [2, 52, 53]])
    with torch.inference_mode():
        dec.copy.gate.bias.fill_(-60.0)  # copy only
        dec.copy.follow.weight.zero_()
        dec.copy.repeat.weight.zero_()
        dec.copy.repeat.bias.zero_()
        dec.copy.follow.bias.fill_(60.0)  # always continue the span of the current input token
        states = enc(src, mask)
        full, _ = dec(tgt, states, mask)
        cache, cross, steps = empty_cache(cfg, 2, 3, decoder=True), model.modules["cross_kv"](states), []
        for t in range(3):
            logits, _ = dec(tgt[:, t : t + 1], states, mask, cross, cache, torch.tensor([t]))
            steps.append(logits)
    assert full[:, 1:].argmax(-1).tolist() == [[42, 43], [53, 54]]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_prefix_space_tokenizer_makes_a_first_word_copyable_and_round_trips(tmp_path):
    from llmos_hub_nano.tiny import SAMPLE_TEXT
    from llmos_hub_nano.tokenizer import NanoTokenizer, train_tokenizer

    plain = train_tokenizer([SAMPLE_TEXT], 300)
    spaced = train_tokenizer([SAMPLE_TEXT], 300, prefix_space=True)
    spaced.save(tmp_path / "tokenizer.json")
    spaced = NanoTokenizer.from_file(tmp_path / "tokenizer.json")
    first, inside = "model predicts the next piece", "a model predicts the next piece"
    assert spaced.encode(first) == spaced.encode(inside)[-len(spaced.encode(first)) :]
    assert plain.encode(first) != plain.encode(inside)[-len(plain.encode(first)) :]
    for text in (first, inside, "Usage: program [OPTION]... FILE."):
        assert spaced.decode(spaced.encode(text)) == text


def test_copy_is_refused_outside_seq2seq():
    from llmos_hub_nano.config import NanoConfig

    with pytest.raises(DataError, match="copy"):
        NanoConfig("causal-lm", 100, copy=True)


def test_classifier_ignores_padding(folders):
    model = NanoFamily().load(str(folders["classifier"]))
    clf = model.modules["classifier"]
    with torch.inference_mode():
        a = clf(torch.tensor([[7, 8, 9]]), torch.ones(1, 3, dtype=torch.long))
        b = clf(torch.tensor([[0, 0, 7, 8, 9]]), torch.tensor([[0, 0, 1, 1, 1]]))
    assert a.shape == (1, len(model.labels))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def _cfg(model):
    from llmos_hub_nano.config import NanoConfig

    return NanoConfig.from_dict(model.config)


# -- checkpoints ------------------------------------------------------------------------------------
def test_family_conformance_and_provenance(folders):
    for arch, folder in folders.items():
        model = check_model_family(NanoFamily(), str(folder))
        digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
        assert model.provenance.weights_sha256 == digest
        unique = {id(p): p for m in model.modules.values() for p in m.parameters()}  # seq2seq shares embeddings
        assert model.provenance.num_parameters == sum(p.numel() for p in unique.values()), arch


def test_capabilities_read_config_only(folders, tmp_path):
    copy = tmp_path / "cfg-only"
    copy.mkdir()
    shutil.copy(folders["seq2seq"] / "config.json", copy / "config.json")
    assert NanoFamily().capabilities(str(copy)) == frozenset({Capability.SEQ2SEQ})


def test_pickle_weights_are_refused_in_one_line(folders, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(folders["causal-lm"], folder)
    (folder / "model.safetensors").unlink()
    torch.save({"w": torch.zeros(1)}, folder / "pytorch_model.bin")
    with pytest.raises(DataError, match="refusing pickle weights pytorch_model.bin") as info:
        NanoFamily().load(str(folder))
    assert "\n" not in str(info.value)


def test_bad_references_fail_in_one_line(folders, tmp_path):
    with pytest.raises(UsageError, match="no nano checkpoint 'lm-sampel'; did you mean 'nano:lm-sample'"):
        NanoFamily().load("lm-sampel")
    with pytest.raises(DataError, match="not a folder"):
        NanoFamily().load(str(tmp_path / "missing"))
    broken = tmp_path / "broken"
    shutil.copytree(folders["causal-lm"], broken)
    config = json.loads((broken / "config.json").read_text())
    config["d_model"] = 64
    (broken / "config.json").write_text(json.dumps(config))
    lazy = NanoFamily().load(str(broken))  # modules are built when a backend asks for them
    assert not lazy.modules_built
    with pytest.raises(DataError, match="do not match config.json|cannot load"):
        lazy.modules
    with pytest.raises(UsageError, match="no revisions"):
        NanoFamily().load(str(folders["causal-lm"]), revision="main")


# -- shipped checkpoints ----------------------------------------------------------------------------
def test_shipped_checkpoints_are_listed_small_and_documented():
    family = NanoFamily()
    assert set(family.available()) == SHIPPED
    for name in SHIPPED:
        folder = Path(plugin.__file__).parent / "checkpoints" / name
        assert (folder / "model.safetensors").stat().st_size <= 3_200_000
        card = (folder / "README.md").read_text()
        assert "python -m llmos_hub_nano.train" in card and "baseline" in card
        assert family.capabilities(name) == frozenset({SHIPPED_CAPS[name]})


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_checkpoint_loads_with_its_training_provenance(name):
    model = check_model_family(NanoFamily(), name)
    assert model.name == f"nano:{name}"
    training = model.provenance.extra["training"]
    assert training["task"] == name and training["split"] == "train"
    assert len(training["fingerprint"]) == 64
    assert "llmos_hub_nano.train" in training["command"]
    # A causal LM starts from <eos>, the token that opens every document it was trained on (rolling
    # windows and empty prompts put it first); a seq2seq decoder keeps <bos> as its start token.
    tok = model.tokenizer
    assert (tok.bos_id == tok.eos_id) == (SHIPPED_CAPS[name] == Capability.CAUSAL_LM)


# -- plugin -----------------------------------------------------------------------------------------
def test_plugin_registers_the_family():
    host = check_plugin(plugin, name="nano-under-test")
    assert isinstance(host.get("models", "nano"), NanoFamily)


def test_plugin_and_cli_start_without_torch():
    code = (
        "import sys\n"
        "from llmos_hub import load_plugins\n"
        "host = load_plugins()\n"
        "assert 'nano' in host.registry.names('models')\n"
        "assert 'pytorch' in host.registry.names('backends')\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
    cli = subprocess.run(
        [sys.executable, "-c", "import sys; from llmos_hub.cli import main\n"
         "try:\n main(['plugins'])\nexcept SystemExit: pass\nprint('torch' in sys.modules, file=sys.stderr)"],
        capture_output=True, text=True,
    )
    assert cli.stderr.strip().endswith("False"), cli.stderr


def test_capabilities_and_listing_import_no_torch():
    code = (
        "import sys\n"
        "from llmos_hub import load_plugins\n"
        "family = load_plugins().get('models', 'nano')\n"
        "print(sorted(family.available()), sorted(str(c) for c in family.capabilities('lm-sample')))\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    listing, torch_loaded = out.stdout.strip().splitlines()
    assert torch_loaded == "False"
    assert "'causal-lm'" in listing and "'lm-sample'" in listing


# -- training recipes -------------------------------------------------------------------------------
def test_recipe_overrides_parse_json_values_and_refuse_unknown_keys():
    from llmos_hub_nano.train import RECIPES, with_overrides

    base = RECIPES["translation-sample"]
    changed = with_overrides(base, ["copy=true", "dropout=0.3", "vocab_size=3072"])
    assert (changed.copy, changed.dropout, changed.vocab_size) == (True, 0.3, 3072)
    assert changed.steps == base.steps and base.copy is False
    for bad in ("colour=1", "copy", "architecture=\"seq2seq\"", "dropout=high"):
        with pytest.raises(UsageError):
            with_overrides(base, [bad])


# -- where training writes ----------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "said"), [
    (["--steps", "0"], "argument --steps: must be at least 1, not 0"),  # 0 had trained the full recipe
    (["--steps", "-3"], "argument --steps: must be at least 1, not -3"),  # had saved an untrained model
    (["--threads", "0"], "argument --threads: must be at least 1, not 0"),
    (["--set", "dropout=2"], "error: --set dropout=2: must be a number from 0 up to (not including) 1"),
    (["--set", "n_heads=5"], "error: --set: d_model 96 must be a multiple of n_heads 5"),
    (["--set", "copy=3"], "error: --set copy=3: must be true or false"),
    (["--eval-split", "nosuch"], "error: --eval-split 'nosuch': task lm-sample has the splits train, validation, test"),
])
def test_training_settings_are_refused_before_any_training_starts(tmp_path, monkeypatch, capsys, args, said):
    from llmos_hub_nano import train as training

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(training.RECIPES, "lm-sample", training.RECIPES["lm-sample"])  # --set replaces it
    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("training started"))
    try:
        code = training.main(["lm-sample", *args])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    assert code == 2
    assert said in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # no output folder was made


def test_an_out_folder_that_cannot_be_made_is_refused_before_training(tmp_path, monkeypatch, capsys):
    from llmos_hub_nano import train as training

    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("training started"))
    (tmp_path / "afile").write_text("")
    assert training.main(["lm-sample", "--out", str(tmp_path / "afile" / "x")]) == 2
    assert capsys.readouterr().err.startswith(f"error: --out {tmp_path / 'afile' / 'x'}: cannot create it")


def test_training_writes_a_new_folder_and_never_over_a_shipped_checkpoint(tmp_path, capsys):
    from llmos_hub_nano.family import CHECKPOINTS
    from llmos_hub_nano.train import main, output_folder

    assert output_folder("lm-sample", cwd=tmp_path) == tmp_path / "nano-lm-sample"
    (tmp_path / "nano-lm-sample").mkdir()
    (tmp_path / "nano-lm-sample-2").mkdir()
    assert output_folder("lm-sample", cwd=tmp_path) == tmp_path / "nano-lm-sample-3"
    shipped = CHECKPOINTS / "lm-sample"
    before = {p.name: p.stat().st_mtime_ns for p in shipped.iterdir()}
    for out in (shipped, CHECKPOINTS, shipped / "sub"):
        with pytest.raises(UsageError, match="shipped checkpoint; pass --overwrite"):
            output_folder("lm-sample", out)
    assert output_folder("lm-sample", shipped, overwrite=True) == shipped
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        output_folder("lm-sample", busy)
    assert output_folder("lm-sample", tmp_path / "empty") == tmp_path / "empty"
    # The command refuses before any training starts: one line, status 2, the shipped files untouched.
    assert main(["lm-sample", "--out", str(shipped), "--steps", "1"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {shipped} is a shipped checkpoint")
    assert {p.name: p.stat().st_mtime_ns for p in shipped.iterdir()} == before
