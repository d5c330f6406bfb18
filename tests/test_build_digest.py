"""A model's build digest (what its modules would be built from) and cache aliases keyed on it.

A backend that converts modules (an ONNX export) keys its cache on the modules' tensors; for a model
whose modules are not built yet it first looks the entry up under the build digest, linked to the
entry by :meth:`FolderCache.link`, so a cache hit never builds a torch model.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from llmos_hub import Capability, FolderCache, LoadedModel, Provenance
from tests._fakes import CharTokenizer


@pytest.fixture
def builder_package(tmp_path, monkeypatch):
    """A package ``digestfam`` on ``sys.path`` whose ``build`` makes the modules; returns its folder."""
    root = tmp_path / "src" / "digestfam"
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "family.py").write_text("def build():\n    return {'causal_lm': object()}\n")
    monkeypatch.syspath_prepend(str(root.parent))
    yield root
    for name in [n for n in sys.modules if n == "digestfam" or n.startswith("digestfam.")]:
        del sys.modules[name]


def _model(build, *, weights: str = "a" * 64, config: dict | None = None) -> LoadedModel:
    return LoadedModel(
        family="digest", ref="m", capabilities=frozenset({Capability.CAUSAL_LM}), tokenizer=CharTokenizer(),
        provenance=Provenance("test", None, weights, 1), max_length=64, build_modules=build,
        config=config if config is not None else {"n_layers": 2},
    )


def test_the_digest_is_stable_and_follows_weights_config_and_the_builders_code(builder_package):
    family = importlib.import_module("digestfam.family")
    digest = _model(family.build).build_digest
    assert isinstance(digest, str) and len(digest) == 64
    assert _model(family.build).build_digest == digest  # a reload
    assert _model(family.build, weights="b" * 64).build_digest != digest
    assert _model(family.build, config={"n_layers": 3}).build_digest != digest
    model = _model(family.build)
    model.config["n_heads"] = 4  # what a family's builder adds once it knows (the hf family: the cache geometry)
    assert model.build_digest == digest
    (builder_package / "modeling.py").write_text("SCALE = 2\n")  # any file of the package counts
    assert _model(family.build).build_digest != digest


def test_there_is_no_digest_once_modules_exist(builder_package):
    family = importlib.import_module("digestfam.family")
    model = _model(family.build)
    assert model.build_digest is not None
    assert "causal_lm" in model.modules  # built: they may be changed in memory from now on
    assert model.build_digest is None
    given = LoadedModel(family="digest", ref="m", capabilities=frozenset({Capability.CAUSAL_LM}),
                        tokenizer=CharTokenizer(), provenance=Provenance("test", None, "a" * 64, 1),
                        max_length=64, modules={"causal_lm": object()})
    assert given.build_digest is None


def _graph(data: bytes):
    def build(folder: Path) -> dict:
        (folder / "graph.onnx").write_bytes(data)
        return {}

    return build


def test_an_alias_leads_to_its_entry_and_is_replaced_when_it_points_elsewhere(tmp_path):
    cache = FolderCache(tmp_path)
    cache.get_or_build("full1", _graph(b"1"))
    cache.get_or_build("full2", _graph(b"22"))
    assert cache.follow("cheap") is None  # no alias yet
    cache.link("cheap", "full1")
    found = cache.follow("cheap")
    assert found is not None and found.path == tmp_path / "full1" and found.manifest["key"] == "full1"
    assert sorted(p.name for p in (tmp_path / "cheap").iterdir()) == ["manifest.json"]  # only a pointer
    cache.link("cheap", "full2")
    assert cache.follow("cheap").path == tmp_path / "full2"
    assert cache.follow("full1") is None  # an entry, not an alias
    (tmp_path / "full2" / "graph.onnx").write_bytes(b"2")  # a damaged target is dropped: the alias leads nowhere
    assert cache.follow("cheap") is None


def test_linking_in_a_cache_that_cannot_be_written_is_no_error(tmp_path):
    cache = FolderCache(tmp_path / "cache")
    cache.get_or_build("full", _graph(b"1"))
    (tmp_path / "cache" / ".locks").rename(tmp_path / "locks-moved")
    (tmp_path / "cache" / ".locks").write_text("")  # a file where the lock folder must go: writes fail
    assert cache.link("cheap", "full") is False
    assert cache.follow("cheap") is None and cache.get("full") is not None
