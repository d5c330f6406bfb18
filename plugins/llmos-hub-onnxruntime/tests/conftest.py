"""Shared fixtures: one export cache per test session, and models shared across a test module.

Exports take seconds, so every test of a session uses the same temporary cache folder and the
runners are module-scoped; tests that need a cold cache make their own folder.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the tiny models module sits beside the tests (importlib import mode)
    sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def ort_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The export cache folder shared by this session's tests."""
    return tmp_path_factory.mktemp("onnx-cache")


# -- nano models with both backends, shared by the whole session -------------------------------------
SHIPPED = {
    "causal-lm": ["lm-sample"],
    "seq2seq": ["translation-sample", "summarization-sample"],
    "classifier": ["classification-sample"],
}


def _nano_pairs(architecture: str, tmp_path_factory: pytest.TempPathFactory, cache: Path) -> list[tuple]:
    """``(model, pytorch runner, onnxruntime runner)`` for the shipped checkpoints of ``architecture``,
    or for one seeded random nano model while none is shipped."""
    from llmos_hub_nano.family import NanoFamily
    from llmos_hub_nano.tiny import random_checkpoint
    from llmos_hub_onnxruntime.backend import OnnxRuntimeBackend
    from llmos_hub_pytorch.backend import TorchBackend

    family = NanoFamily()
    shipped = [name for name in SHIPPED[architecture] if name in family.available()]
    if shipped:
        models = [family.load(name) for name in shipped]
    else:
        folder = tmp_path_factory.mktemp(f"nano-{architecture}")
        models = [family.load(str(random_checkpoint(folder / "model", architecture, seed=3)))]
    # One thread each: on a 2-core machine shared with other work, two OpenMP threads stall on every
    # barrier whenever another process holds a core (a 24-token generation went from 0.1 s to 13 s).
    ort_options = {"cache_dir": str(cache), "threads": 1}
    return [
        (model, TorchBackend().prepare(model, options={"threads": 1}), OnnxRuntimeBackend().prepare(model, options=ort_options))
        for model in models
    ]


@pytest.fixture(scope="session")
def _torch_threads() -> Iterator[None]:
    """The pytorch runners set torch's global thread count; give it back after the session."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def nano_causal(tmp_path_factory: pytest.TempPathFactory, ort_cache: Path, _torch_threads: None) -> list[tuple]:
    return _nano_pairs("causal-lm", tmp_path_factory, ort_cache)


@pytest.fixture(scope="session")
def nano_seq2seq(tmp_path_factory: pytest.TempPathFactory, ort_cache: Path, _torch_threads: None) -> list[tuple]:
    return _nano_pairs("seq2seq", tmp_path_factory, ort_cache)


@pytest.fixture(scope="session")
def nano_classifier(tmp_path_factory: pytest.TempPathFactory, ort_cache: Path, _torch_threads: None) -> list[tuple]:
    return _nano_pairs("classifier", tmp_path_factory, ort_cache)
