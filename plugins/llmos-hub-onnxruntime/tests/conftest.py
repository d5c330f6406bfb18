"""Shared fixtures: one export cache per test session, and models shared across a test module.

Exports take seconds, so every test of a session uses the same temporary cache folder and the
runners are module-scoped; tests that need a cold cache make their own folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the tiny models module sits beside the tests (importlib import mode)
    sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def ort_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The export cache folder shared by this session's tests."""
    return tmp_path_factory.mktemp("onnx-cache")
