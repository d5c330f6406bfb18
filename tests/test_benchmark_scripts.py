"""The scripts in ``benchmarks/`` run as their docs say, and their contenders agree on the tokens.

Nothing here reads a timing: the figures are for people on quiet machines (docs/results.md). What a
test can hold is that each script still runs against today's SDK at its smallest settings, writes its
JSON where ``--out`` says, and that every contender it times produced the same greedy tokens as the
reference it is compared with (a speed-up bought with different tokens is no speed-up).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, tmp_path: Path, *args: str) -> dict[str, Any]:
    """Run ``benchmarks/<script>`` with ``args`` (caches under ``tmp_path``); its JSON report."""
    out = tmp_path / f"{Path(script).stem}.json"
    env = {**os.environ, "LLMOS_HUB_CACHE": str(tmp_path / "cache"), "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args, "--out", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def test_decode_benchmark_runs_and_every_variant_generates_the_same_tokens(tmp_path):
    report = _run("decode.py", tmp_path, "--rounds", "1", "--prompt-tokens", "16", "--new-tokens", "8")
    assert report["benchmark"] == "decode"
    assert report["same_tokens"] and all(report["same_tokens"].values()), report["same_tokens"]


def test_threads_benchmark_runs_and_records_the_default_it_measured(tmp_path):
    report = _run("threads.py", tmp_path, "--threads", "1", "--rounds", "1", "--busy", "0")
    assert report["threads"] == [1]
    assert report["default_threads"] >= 1
    assert {row["condition"] for row in report["rows"]} == {"quiet", "contended"}
    assert all(rate > 0 for row in report["rows"] for rate in row["rates"].values())


@pytest.mark.slow
def test_generate_benchmark_runs_on_the_tiny_models_with_identical_tokens_everywhere(tmp_path):
    report = _run("generate.py", tmp_path, "--models", "tiny-gpt2,tiny-t5", "--batches", "1", "--rounds", "1",
                  "--new-tokens", "4", "--no-compile", "--no-classifier", "--threads", "1",
                  "--cache-dir", str(tmp_path / "onnx"), "--build-dir", str(tmp_path / "build"))
    assert set(report["models"]) == {"tiny-gpt2", "tiny-t5"}
    for name, model in report["models"].items():
        agree = model["batches"]["1"]["same_tokens_as_generate"]
        # every engine contender ran, and each produced exactly generate's tokens
        assert set(agree) >= {"engine_pytorch", "engine_onnxruntime"}, (name, agree)
        assert all(agree.values()), (name, agree)


@pytest.mark.slow
def test_backends_benchmark_runs_and_onnxruntime_generates_pytorchs_tokens(tmp_path):
    report = _run("backends.py", tmp_path, "--no-hf", "--no-int8", "--threads", "1", "--rounds", "1",
                  "--prompts", "2", "--new-tokens", "4", "--classify-examples", "4", "--rolling-texts", "2")
    assert report["same_greedy_tokens"] and all(report["same_greedy_tokens"].values()), report["same_greedy_tokens"]
