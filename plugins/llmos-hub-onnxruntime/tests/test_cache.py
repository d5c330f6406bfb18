"""The export cache: a second prepare does not export, keys follow content, concurrent builders are safe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from ort_tiny_models import tiny_causal_lm

from llmos_hub import UsageError

from llmos_hub_onnxruntime import cache as cache_module
from llmos_hub_onnxruntime import export as export_module
from llmos_hub_onnxruntime.backend import OnnxRuntimeBackend
from llmos_hub_onnxruntime.cache import ExportCache, default_cache_dir, export_key

HERE = Path(__file__).resolve().parent
FAST = {"exporter": "torchscript"}


def _entries(root: Path) -> list[Path]:
    """Published entries (hidden names are lock and temporary folders)."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.fixture
def count_exports(monkeypatch):
    """Counts calls of the exporter the backend uses, still exporting for real."""
    calls = []
    real = export_module.export_model

    def counting(model, folder, **kwargs):
        calls.append(model.name)
        return real(model, folder, **kwargs)

    monkeypatch.setattr(export_module, "export_model", counting)
    return calls


def test_second_prepare_is_a_cache_hit_and_does_not_export(tmp_path, count_exports):
    backend = OnnxRuntimeBackend()
    model = tiny_causal_lm()
    first = backend.prepare(model, options={**FAST, "cache_dir": str(tmp_path)})
    second = backend.prepare(model, options={**FAST, "cache_dir": str(tmp_path)})
    assert count_exports == [model.name]
    assert first.describe()["export"]["cache_hit"] is False
    assert second.describe()["export"]["cache_hit"] is True
    assert first.describe()["export"]["key"] == second.describe()["export"]["key"]
    entries = _entries(tmp_path)
    assert len(entries) == 1 and (entries[0] / "manifest.json").is_file()
    assert first.loglikelihood([("abc", "def")]) == second.loglikelihood([("abc", "def")])


def test_int8_is_cached_beside_the_float_export(tmp_path, count_exports):
    backend = OnnxRuntimeBackend()
    model = tiny_causal_lm()
    backend.prepare(model, dtype="int8", options={**FAST, "cache_dir": str(tmp_path)})
    again = backend.prepare(model, dtype="int8", options={**FAST, "cache_dir": str(tmp_path)})
    assert count_exports == [model.name]
    assert again.describe()["export"]["cache_hit"] is True
    assert len(_entries(tmp_path)) == 2  # float and int8 entries


def test_key_changes_with_weights_exporter_and_opset_but_not_with_a_reload():
    model = tiny_causal_lm(seed=0)
    key, parts = export_key(model, exporter="dynamo", opset=18)
    assert export_key(tiny_causal_lm(seed=0), exporter="dynamo", opset=18)[0] == key
    assert parts["versions"]["torch"] == torch.__version__
    assert export_key(model, exporter="torchscript", opset=18)[0] != key
    assert export_key(model, exporter="dynamo", opset=19)[0] != key
    with torch.no_grad():  # one weight nudged in memory, provenance hash unchanged
        next(model.modules["causal_lm"].parameters()).view(-1)[0] += 1e-3
    assert export_key(model, exporter="dynamo", opset=18)[0] != key


def test_cache_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMOS_HUB_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "onnx"
    monkeypatch.delenv("LLMOS_HUB_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "llmos-hub" / "onnx"


def test_an_unwritable_cache_folder_is_a_one_line_usage_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(UsageError, match="cannot write the ONNX export cache") as info:
        OnnxRuntimeBackend().prepare(tiny_causal_lm(), options={**FAST, "cache_dir": str(blocker / "onnx")})
    assert "\n" not in str(info.value) and "LLMOS_HUB_CACHE" in str(info.value)


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    cache = ExportCache(tmp_path)

    def failing(folder: Path):
        (folder / "causal_lm.onnx").write_bytes(b"half a graph")
        raise RuntimeError("exporter crashed")

    with pytest.raises(RuntimeError):
        cache.get_or_build("k1", failing)
    assert cache.get("k1") is None
    assert [p.name for p in tmp_path.iterdir() if p.is_dir() and p.name != ".locks"] == []  # no temporary folder left


def test_losing_an_unlocked_race_uses_the_winners_entry(tmp_path, monkeypatch):
    """Where no lock is available, the rename keeps entries whole: the second builder discards its copy."""
    from contextlib import nullcontext

    import llmos_hub._cache as folder_cache  # the SDK's FolderCache, which ExportCache stores entries with

    monkeypatch.setattr(folder_cache, "_locked", lambda path: nullcontext())
    cache = ExportCache(tmp_path)

    def racing(folder: Path):
        # Another process publishes the same key while we are still building ours.
        winner = tmp_path / "k2"
        winner.mkdir()
        (winner / "model.onnx").write_text("winner")
        (winner / "manifest.json").write_text(json.dumps({"key": "k2", "by": "winner"}))
        (folder / "model.onnx").write_text("loser")
        return {"by": "loser"}

    entry = cache.get_or_build("k2", racing)
    assert entry.manifest["by"] == "winner" and entry.hit
    assert (tmp_path / "k2" / "model.onnx").read_text() == "winner"
    assert [p.name for p in tmp_path.iterdir() if p.is_dir() and p.name != ".locks"] == ["k2"]  # our copy is gone


_WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from ort_tiny_models import tiny_causal_lm
    from llmos_hub_onnxruntime import export as export_module
    from llmos_hub_onnxruntime.backend import OnnxRuntimeBackend

    real = export_module.export_model
    def slow_export(model, folder, **kwargs):  # widen the window in which the other process arrives
        out = real(model, folder, **kwargs)
        with open(Path({work!r}) / "exports.log", "a") as log:
            log.write(sys.argv[1] + " ")
        time.sleep(1.0)
        return out
    export_module.export_model = slow_export

    model = tiny_causal_lm()
    backend = OnnxRuntimeBackend()
    ready = Path({work!r})
    (ready / f"ready-{{sys.argv[1]}}").touch()
    while len(list(ready.glob("ready-*"))) < 2:  # start both prepares together
        time.sleep(0.01)
    runner = backend.prepare(model, options={{"exporter": "torchscript", "cache_dir": {cache!r}}})
    ll = runner.loglikelihood([("hello there", " general")])[0]
    print(json.dumps({{"hit": runner.describe()["export"]["cache_hit"], "logprob": ll.logprob}}))
    """
)


@pytest.mark.slow
def test_two_processes_preparing_the_same_model_export_it_once(tmp_path):
    cache_dir, work = tmp_path / "cache", tmp_path / "work"
    work.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(_WORKER.format(tests=str(HERE), work=str(work), cache=str(cache_dir)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, str(script), str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for i in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert len((work / "exports.log").read_text().split()) == 1  # the exporter ran once in all
    assert sorted(r["hit"] for r in results) == [False, True]  # the other process waited and reused it
    assert results[0]["logprob"] == results[1]["logprob"]
    assert np.isfinite(results[0]["logprob"])
    assert [p.name for p in cache_dir.iterdir() if p.name.endswith(".tmp")] == []
    assert len(_entries(cache_dir)) == 1


def _unbuilt(ref: str = "lm-sample"):
    """A shipped nano checkpoint, loaded the way the bench loads it: modules built on first use."""
    from llmos_hub import load_plugins

    model = load_plugins().get("models", "nano").load(ref)
    assert not model.modules_built
    return model


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_an_unbuilt_model_finds_its_export_without_building_a_torch_model(tmp_path, count_exports, monkeypatch, dtype):
    backend = OnnxRuntimeBackend()
    options = {**FAST, "cache_dir": str(tmp_path)}
    first_model = _unbuilt()
    first = backend.prepare(first_model, dtype=dtype, options=options)
    assert count_exports == [first_model.name] and not first_model.modules_built  # exported from a private copy
    second_model = _unbuilt()
    builds = []
    monkeypatch.setattr(second_model, "own_modules", lambda: builds.append("built") or {})
    second = backend.prepare(second_model, dtype=dtype, options=options)
    assert builds == [] and not second_model.modules_built  # found by the build digest alone
    assert second.describe()["export"]["cache_hit"] is True
    assert second.describe()["export"]["key"] == first.describe()["export"]["key"]
    assert second.loglikelihood([("abc", "def")]) == first.loglikelihood([("abc", "def")])
    # A model whose modules exist is keyed on their tensors, and finds the same entry.
    built = _unbuilt()
    assert built.modules
    third = backend.prepare(built, dtype=dtype, options=options)
    assert third.describe()["export"] == {**first.describe()["export"], "cache_hit": True,
                                          "seconds": third.describe()["export"]["seconds"]}
    assert count_exports == [first_model.name]
