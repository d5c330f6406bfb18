"""Class 4 of issue 13: user errors are found while planning, before any model loads, with exit status 2."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from llmos_hub import Capability, ModelInfo, hookimpl
from llmos_hub.cli import main

from ._fakes import FakeBackend, FakeFamily, FakePlugin
from ._hardening import error_lines, run_cli


class CudaCapable(FakeBackend):
    name = "cudafake"
    devices = ("cpu", "cuda", "auto")
    dtypes = ("float32", "float16")
    cuda_only_dtypes = ("float16",)
    option_schema = {"threads": {"type": "integer", "minimum": 1}, "mode": {"enum": ["fast", "exact"]}}


class LabelledFamily(FakeFamily):
    name = "labelled"

    def inspect(self, ref, *, revision=None):
        return ModelInfo(capabilities=frozenset({Capability.CLASSIFIER}), labels=("pos", "neg"))

    def capabilities(self, ref):
        return frozenset({Capability.CLASSIFIER})


class Extra:
    @hookimpl
    def register_backends(self, register):
        register("cudafake", CudaCapable)

    @hookimpl
    def register_models(self, register):
        register("labelled", LabelledFamily)


@pytest.fixture
def bench(monkeypatch, tmp_path):
    import llmos_hub._plugins as plugins
    import llmos_hub.bench._checks as checks

    real = plugins.load_plugins
    monkeypatch.setattr(plugins, "load_plugins", lambda **k: real(
        autoload=False, extra=[("fake-plugin", FakePlugin()), ("extra", Extra())]))
    monkeypatch.setattr(checks, "_cuda_devices", lambda: 0)  # the same answer on a machine with a GPU
    FakeFamily.loads = 0
    out = tmp_path / "out"

    def run(*args):
        result = CliRunner().invoke(main, ["bench", "--task", "upper", "--model", "fake:upper",
                                           "--output-dir", str(out), *args])
        return result

    run.out = out
    return run


def _refused(result, out, expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert error_lines(result.stderr) == [f"error: {expected}"]
    assert FakeFamily.loads == 0
    assert not out.exists()


CASES = {
    "cuda without CUDA": (["--backend", "cudafake", "--device", "cuda"],
                          "--device cuda: no CUDA device is available here; use --device cpu (or auto)"),
    "a device the backend lacks": (["--backend", "fake", "--device", "cuda"],
                                   "backend fake does not run on cuda; it runs on cpu"),
    "not a device": (["--backend", "cudafake", "--device", "gpu0"],
                     "--device 'gpu0' is not a device; use cpu, cuda, cuda:N or auto"),
    "float16 on the CPU": (["--backend", "cudafake", "--dtype", "float16"],
                           "backend cudafake runs dtype float16 on CUDA only; on the CPU use float32"),
    "unknown backend option": (["--backend", "cudafake", "--backend-option", "thread=2"],
                               "--backend-option thread: no backend in this bench knows it; known: mode, threads"),
    "invalid option value": (["--backend", "cudafake", "--backend-option", "threads=0"],
                             "--backend-option cudafake.threads=0: 0 is less than the minimum of 1"),
    "invalid enum value": (["--backend", "cudafake", "--backend-option", "cudafake.mode=slow"],
                           "--backend-option cudafake.mode='slow': 'slow' is not one of ['fast', 'exact']"),
    "option scoped to a backend not in the bench": (
        ["--backend", "cudafake", "--backend-option", "failing.threads=2"],
        "--backend-option failing.threads: backend failing is not in this bench (backends: cudafake); "
        "drop the option or add --backend failing"),
    "negative seed": (["--backend", "fake", "--seed", "-1"], "--seed must be a non-negative integer, not -1"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_errors_exit_2_before_any_model_loads(bench, case):
    args, expected = CASES[case]
    _refused(bench(*args), bench.out, expected)


def test_scoped_options_reach_only_their_backend(bench):
    result = bench("--backend", "cudafake", "--backend", "fake", "--backend-option", "cudafake.threads=2",
                   "--backend-option", "mode=fast", "--json")
    assert result.exit_code == 0, result.output
    specs = sorted(json.dumps(json.loads(p.read_text())["config"]["spec"]["backend_options"], sort_keys=True)
                   for p in bench.out.glob("*.json"))
    # fake declares no schema, so it takes the unscoped mode=fast; only cudafake gets threads=2
    assert specs == sorted(['{"mode": "fast"}', '{"mode": "fast", "threads": 2}'])


def test_revision_on_a_local_folder(bench, tmp_path):
    _refused(bench("--backend", "fake", "--model", f"fake:{tmp_path}@v2"), bench.out,
             f"fake:{tmp_path}@v2: a local folder has no revisions; drop '@v2'")


def test_labels_that_do_not_match_are_refused_before_loading(bench, tmp_path):
    rows = [{"text": "ab", "label": "even"}, {"text": "abc", "label": "odd"}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "t.yaml").write_text("name: parity2\nkind: classification\ndata: rows.jsonl\n"
                                     "fields: {input: text, target: label}\nlabels: [even, odd]\n")
    result = CliRunner().invoke(main, ["bench", "--task", str(tmp_path / "t.yaml"), "--model", "labelled:x",
                                       "--backend", "fake", "--output-dir", str(bench.out)])
    _refused(result, bench.out, "labelled:x cannot run parity2 on fake: logits needs a classifier with the task's "
             "labels; loglikelihood needs loglikelihood requests, which fake does not answer for a classifier model")


@pytest.mark.parametrize(("metrics", "expected"), [
    ("{nope: {}}", "field 'metrics.nope': unknown metric 'nope'"),
    ("{bleu: {tokenise: intl}}", "field 'metrics.bleu': unknown option 'tokenise'; known: force, lowercase"),
    ("{bleu: {lowercase: 'yes'}}", "field 'metrics.bleu.lowercase': must be bool, not 'yes'"),
])
def test_unknown_metrics_and_options_in_a_task_file(bench, tmp_path, metrics, expected):
    rows = [{"en": "ab", "de": "AB"}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = tmp_path / "t.yaml"
    task.write_text(f"name: tr\nkind: translation\ndata: rows.jsonl\nfields: {{input: en, target: de}}\n"
                    f"metrics: {metrics}\nprimary_metric: bleu\n")
    result = CliRunner().invoke(main, ["bench", "--task", str(task), "--model", "fake:upper", "--backend", "fake",
                                       "--output-dir", str(bench.out)])
    assert result.exit_code == 2, result.output
    [line] = error_lines(result.stderr)
    assert line.startswith(f"error: {task}: {expected}")
    assert FakeFamily.loads == 0 and not bench.out.exists()


@pytest.mark.slow
def test_the_real_pytorch_backend_refuses_cuda_and_float16_at_plan_time(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "out"
    for args, expected in ((["--device", "cuda"], "error: --device cuda: no CUDA device is available here"),
                           (["--dtype", "float16"], "error: backend pytorch runs dtype float16 on CUDA only"),
                           (["--backend-option", "onnxruntime.threads=2", "--backend-option", "threadz=1"],
                            "error: --backend-option onnxruntime.threads: backend onnxruntime is not in this bench")):
        result = run_cli(["bench", "--task", "lm-sample", "--output-dir", str(out), *args])
        assert result.returncode == 2, result.stderr
        [line] = error_lines(result.stderr)
        assert line.startswith(expected), line
        assert not out.exists()
