"""The ``compile`` option: the decoding step through ``torch.compile`` gives the eager runner's tokens,
serves batches of other sizes and widths without compiling again, and is refused in one line, before
any model loads, where it cannot work."""

from __future__ import annotations

import pytest
import torch

from llmos_hub import GenerationConfig, UsageError
from llmos_hub_nano.family import NanoFamily
from llmos_hub_nano.tiny import random_checkpoint
from llmos_hub_pytorch.backend import TorchBackend
from llmos_hub_pytorch.compiled import _cpp_compiler

PROMPTS = ["The quick brown fox", "Usage:", "Packages provide libraries, tools and documentation for the",
           "A tokenizer splits text"]
OTHERS = ["Once upon a time", "x", "The license grants everyone the freedom to share and change all versions"]


def _load(root, arch):
    return NanoFamily().load(str(random_checkpoint(root / arch, arch, seed=5, max_length=64)))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("compile")


def _graphs() -> int:
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


@pytest.mark.slow
@pytest.mark.skipif(_cpp_compiler() is None, reason="no C++ compiler for torch.compile's CPU code")
@pytest.mark.parametrize("arch", ["causal-lm", "seq2seq"])
def test_compiled_step_gives_the_eager_tokens_and_compiles_only_while_prepared(root, arch):
    model = _load(root, arch)
    eager = TorchBackend().prepare(model, options={})
    torch._dynamo.reset()
    before = _graphs()
    compiled = TorchBackend().prepare(model, options={"compile": "true"})
    assert compiled.describe()["compiled_step"] is True and eager.describe()["compiled_step"] is False
    # prepare compiled the two graphs a run needs: batches of several rows, and of one row
    # (torch.compile's own specialisation); the step really goes through torch.compile.
    prepared = _graphs()
    assert prepared == before + 2
    config = GenerationConfig(max_new_tokens=10)
    assert [g.text for g in compiled.generate(PROMPTS, config)] == [g.text for g in eager.generate(PROMPTS, config)]
    # Other rows and prompt widths (so another cache capacity and source length), single rows, beam
    # search reordering the cache between steps: the same tokens, and no graph compiled again.
    assert [g.text for g in compiled.generate(OTHERS, config)] == [g.text for g in eager.generate(OTHERS, config)]
    for prompt in ("Usage:", OTHERS[2]):
        assert compiled.generate([prompt], config)[0].text == eager.generate([prompt], config)[0].text
    beams = GenerationConfig(max_new_tokens=6, num_beams=3)
    assert [g.text for g in compiled.generate(PROMPTS[:2], beams)] == [g.text for g in eager.generate(PROMPTS[:2], beams)]
    assert _graphs() == prepared


@pytest.mark.parametrize(
    ("options", "says"),
    [({"compile": True, "use_cache": False}, "use_cache=true"),
     ({"compile": "yes", "prepack": True}, "drop one of them")],
)
def test_compile_that_cannot_work_is_one_line_before_loading(options, says):
    with pytest.raises(UsageError) as caught:
        TorchBackend().check("cpu", "float32", options)
    assert "\n" not in str(caught.value) and says in str(caught.value)


def test_compile_without_a_cpp_compiler_names_the_fix(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-llmos")
    with pytest.raises(UsageError, match="needs a C\\+\\+ compiler.*apt-get install g\\+\\+"):
        TorchBackend().check("cpu", "float32", {"compile": True})
    TorchBackend().check("cpu", "float32", {"compile": False})  # off: nothing to check


@pytest.mark.cuda
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_compiled_cuda_step_gives_the_cpu_tokens(root):
    """On CUDA the same compiled step runs through Triton; float32 greedy tokens equal the CPU's."""
    model = _load(root, "causal-lm")
    config = GenerationConfig(max_new_tokens=10)
    cpu = TorchBackend().prepare(model, options={})
    gpu = TorchBackend().prepare(model, device="cuda", dtype="float32", options={"compile": True})
    assert [g.token_ids for g in gpu.generate(PROMPTS, config)] == [g.token_ids for g in cpu.generate(PROMPTS, config)]


def test_a_compiler_that_fails_is_one_line_naming_the_way_out(root):
    """A toolchain that breaks while compiling (found only at the first step) is a one-line error."""
    from torch._inductor.exc import InductorError

    runner = TorchBackend().prepare(_load(root, "causal-lm"), options={"compile": True})

    def broken(*_args):
        raise InductorError(RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail"), None)

    runner._compiled.compiled = broken
    with pytest.raises(UsageError) as caught:
        runner.generate(PROMPTS[:2], GenerationConfig(max_new_tokens=3))
    message = str(caught.value)
    assert "\n" not in message and "InvalidCxxCompiler" in message and "compile=true" in message
