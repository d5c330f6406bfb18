"""Issue 13, class 9 continued: library noise never precedes our one-line error.

``datasets`` draws "Generating train split: ..." bars and transformers prints a "LOAD REPORT" table
("MISSING: those params were newly initialized ...") on stderr. Both are silenced around our calls
(and put back afterwards, for programs importing llmos-hub); what the load report says that matters,
weights missing from the checkpoint or of the wrong shape, becomes our own one-line error instead of a
run scored with random weights. Run in subprocesses, so stderr is exactly what a user sees.
"""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from ._hardening import error_lines, run_cli

pytest.importorskip("transformers")
pytest.importorskip("llmos_hub_transformers")


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    from llmos_hub_transformers.tiny import save_tiny

    return save_tiny("gpt2", tmp_path_factory.mktemp("noise") / "gpt2")


def _broken(tiny_gpt2, tmp_path, how: str):
    """A copy of the tiny checkpoint with one tensor dropped (``missing``) or cut (``shape``)."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / how
    shutil.copytree(tiny_gpt2, folder)
    tensors = load_file(folder / "model.safetensors")
    if how == "missing":
        del tensors["transformer.h.0.mlp.c_fc.weight"]
    else:
        tensors["transformer.h.0.mlp.c_fc.weight"] = tensors["transformer.h.0.mlp.c_fc.weight"][:, :8].contiguous()
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("how,said", [
    ("missing", "the checkpoint has no weights for 1 parameter(s) of GPT2LMHeadModel "
                "(transformer.h.0.mlp.c_fc.weight); transformers would initialize them randomly, so its scores "
                "would mean nothing; download or save the checkpoint again"),
    ("shape", "1 weight(s) in the checkpoint do not fit the model's config (transformer.h.0.mlp.c_fc.weight is "
              "(32, 8), the config says (32, 128)); use the config.json saved with these weights"),
], ids=["missing weights", "wrong shape"])
def test_a_broken_checkpoint_is_our_line_with_no_load_report_before_it(tiny_gpt2, tmp_path, how, said):
    folder = _broken(tiny_gpt2, tmp_path, how)
    out = tmp_path / "out"
    result = run_cli(["bench", "--model", f"hf:{folder}", "--backend", "pytorch", "--task", "lm-sample", "--limit", "2",
                      "--output-dir", str(out)], env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 1, result.stderr
    assert error_lines(result.stderr) == [
        f"failed hf:{folder} · lm-sample · pytorch: hf:{folder}: {said}",
        "1 run(s) failed; the other records are kept."]
    assert not list(out.glob("*.json"))  # no record scored with random weights


def test_the_load_is_quiet_in_process_and_puts_the_libraries_settings_back(tiny_gpt2, tmp_path, capfd):
    from transformers.utils import logging as hf_logging

    from llmos_hub import DataError
    from llmos_hub_transformers.family import HFFamily

    folder = _broken(tiny_gpt2, tmp_path, "missing")
    before = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled())
    model = HFFamily().load(str(folder))
    capfd.readouterr()
    with pytest.raises(DataError, match=r"has no weights for 1 parameter\(s\)"):
        model.modules  # noqa: B018 - building the torch model is what loads the weights
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
    assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()) == before


@pytest.mark.slow
def test_datasets_progress_bars_never_precede_our_error(tiny_gpt2, tmp_path):
    (tmp_path / "files").mkdir()
    rows = [{"text": f"row {i}", "label": ["games", "graphics", "net"][i % 3]} for i in range(12)]
    (tmp_path / "files" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "task.yaml").write_text(yaml.safe_dump({
        "name": "t", "kind": "classification", "data": {"path": "files", "format": "datasets"},
        "splits": {"test": "test"}, "labels": ["games", "graphics", "net"],
        "fields": {"input": "text", "target": "label"}}), encoding="utf-8")
    result = run_cli(["bench", "--task", "task.yaml", "--model", f"hf:{tiny_gpt2}", "--backend", "pytorch",
                      "--output-dir", str(tmp_path / "out")], cwd=tmp_path,
                     env={"HF_DATASETS_CACHE": str(tmp_path / "datasets-cache"), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2, result.stderr
    assert error_lines(result.stderr) == [
        "error: files split test: no split 'test'; the dataset has train (map them in 'splits' of task.yaml)"]


def test_datasets_settings_are_put_back_after_a_task_loads(tmp_path, capfd, monkeypatch):
    import datasets
    from datasets.utils import logging as ds_logging

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")  # a fresh cache draws bars

    from llmos_hub.tasks import task_from_file

    (tmp_path / "files").mkdir()
    rows = [{"text": f"row {i}", "label": "net"} for i in range(3)]
    (tmp_path / "files" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "kind": "classification", "labels": ["net", "games"],
                                    "data": {"path": "files", "format": "datasets"}, "splits": {"test": "test"},
                                    "fields": {"input": "text", "target": "label"}}), encoding="utf-8")
    before = (ds_logging.get_verbosity(), datasets.is_progress_bar_enabled())
    capfd.readouterr()
    data = task_from_file(path).load()
    assert len(data.examples) == 3
    assert capfd.readouterr().err == ""  # no "Generating test split" bar
    assert (ds_logging.get_verbosity(), datasets.is_progress_bar_enabled()) == before
