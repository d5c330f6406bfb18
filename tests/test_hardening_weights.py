"""Class 1 of issue 13: a model family opens only whole ``.safetensors`` files inside the model's folder.

Each case is driven through ``llmos-hub bench`` (exit status, the one error line, no record written)
and, where it is cheaper, through :func:`llmos_hub.check_safetensors` itself.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from llmos_hub import DataError

from ._hardening import error_lines, run_cli

NANO = Path(__file__).resolve().parents[1] / "plugins" / "llmos-hub-nano" / "llmos_hub_nano" / "checkpoints"


def _bench(model: str, task: str, out: Path):
    return run_cli(["bench", "--model", model, "--task", task, "--output-dir", str(out), "--quiet"])


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    pytest.importorskip("transformers")
    from llmos_hub_transformers.tiny import save_tiny

    return save_tiny("gpt2", tmp_path_factory.mktemp("tiny") / "gpt2")


def _copy(folder: Path, dest: Path) -> Path:
    shutil.copytree(folder, dest)
    return dest


def _assert_refused(result, out: Path, *fragments: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = error_lines(result.stderr)
    assert line.startswith("error: ")
    for fragment in fragments:
        assert fragment in line, line
    assert not out.exists() or not any(out.iterdir())
    return line


@pytest.mark.slow
def test_an_index_mapping_weights_to_a_pickle_is_refused_naming_it(gpt2, tmp_path):
    import torch
    from safetensors.torch import load_file

    folder = _copy(gpt2, tmp_path / "m")
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: "pytorch_model.bin" for k in state}}))
    out = tmp_path / "out"
    _assert_refused(_bench(f"hf:{folder}", "lm-sample", out), out, "pytorch_model.bin", "only .safetensors")


@pytest.mark.slow
def test_a_shard_outside_the_model_folder_is_never_opened(gpt2, tmp_path):
    from safetensors import safe_open

    folder = _copy(gpt2, tmp_path / "m")
    shutil.move(folder / "model.safetensors", tmp_path / "outside.safetensors")
    with safe_open(str(tmp_path / "outside.safetensors"), framework="pt") as handle:
        keys = list(handle.keys())
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: "../outside.safetensors" for k in keys}}))
    out = tmp_path / "out"
    _assert_refused(_bench(f"hf:{folder}", "lm-sample", out), out, "../outside.safetensors",
                    "outside the model's folder")


@pytest.mark.slow
def test_a_truncated_hf_weight_file_names_the_file_and_the_fix(gpt2, tmp_path):
    folder = _copy(gpt2, tmp_path / "m")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    line = _assert_refused(_bench(f"hf:{folder}", "lm-sample", out), out, str(weights),
                           "truncated or corrupt safetensors file", "download or save the checkpoint again")
    assert f"the file has {len(data) // 2 - 8 - struct.unpack('<Q', data[:8])[0]}" in line


@pytest.mark.slow
def test_a_truncated_nano_checkpoint_is_refused_before_loading(tmp_path):
    folder = _copy(NANO / "lm-sample", tmp_path / "nano")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    out = tmp_path / "out"
    _assert_refused(_bench(f"nano:{folder}", "lm-sample", out), out, str(weights),
                    "truncated or corrupt safetensors file", "retrain it or copy the checkpoint again")


@pytest.mark.slow
def test_a_nano_weights_symlink_out_of_the_folder_is_refused(tmp_path):
    folder = _copy(NANO / "lm-sample", tmp_path / "nano")
    shutil.move(folder / "model.safetensors", tmp_path / "elsewhere.safetensors")
    (folder / "model.safetensors").symlink_to(tmp_path / "elsewhere.safetensors")
    out = tmp_path / "out"
    _assert_refused(_bench(f"nano:{folder}", "lm-sample", out), out, "outside the model's folder")


@pytest.mark.parametrize(("payload", "problem"), [
    (b"\x01\x02", "shorter than the 8-byte header length"),
    (struct.pack("<Q", 10**12) + b"{}", "does not fit in the file"),
    (struct.pack("<Q", 4) + b"nope", "the header is not JSON"),
    (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    (struct.pack("<Q", 80) + json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode().ljust(80)
     + b"\0" * 8, "the tensors need 16 bytes of data, the file has 8"),
])
def test_corrupt_framing_is_named(tmp_path, payload, problem):
    from llmos_hub import check_safetensors

    (tmp_path / "model.safetensors").write_bytes(payload)
    with pytest.raises(DataError, match="truncated or corrupt") as info:
        check_safetensors("model.safetensors", folder=tmp_path)
    assert problem in str(info.value) and "\n" not in str(info.value)


def test_a_whole_file_passes_and_other_suffixes_never_do(tmp_path):
    from llmos_hub import check_safetensors

    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    assert check_safetensors("model.safetensors", folder=tmp_path) == tmp_path / "model.safetensors"
    for name in ("model.bin", "model.safetensors.pt", "/etc/passwd"):
        with pytest.raises(DataError, match="refusing weight file"):
            check_safetensors(name, folder=tmp_path)
