"""The SDK's :class:`llmos_hub.FolderCache`: an entry is served only with the bytes it was built with."""

from __future__ import annotations

import json
import os
from pathlib import Path

from llmos_hub import FolderCache


def _builder(builds: list[Path], data: bytes):
    def build(folder: Path):
        builds.append(folder)
        (folder / "model.bin").write_bytes(data)
        (folder / "sub").mkdir()
        (folder / "sub" / "vocab.txt").write_text("a\nb\n")
        return {"what": "graph"}

    return build


def _edit_later(path: Path, data: bytes) -> None:
    """Write ``data`` as an edit made a second after the build: file systems stamp writes from a coarse
    clock, so a write in the same few milliseconds as the build could keep its modification time."""
    stamp = path.stat().st_mtime_ns
    path.write_bytes(data)
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))


def test_the_manifest_records_each_files_sha256(tmp_path):
    import hashlib

    entry = FolderCache(tmp_path).get_or_build("k", _builder([], b"x" * 100))
    manifest = json.loads((entry.path / "manifest.json").read_text())
    assert manifest["file_sha256"] == {"model.bin": hashlib.sha256(b"x" * 100).hexdigest(),
                                       "sub/vocab.txt": hashlib.sha256(b"a\nb\n").hexdigest()}
    assert manifest["file_sizes"] == {"model.bin": 100, "sub/vocab.txt": 4}


def test_a_same_size_corruption_is_found_and_the_entry_rebuilt(tmp_path, capsys):
    builds: list[Path] = []
    data = bytes(range(256)) * 40
    cache = FolderCache(tmp_path)
    first = cache.get_or_build("k", _builder(builds, data))
    damaged = bytearray(data)
    damaged[3000:7000] = b"\0" * 4000  # same size, other bytes
    _edit_later(first.path / "model.bin", bytes(damaged))
    assert cache.get_or_build("k", _builder(builds, data)).hit is False and len(builds) == 2
    assert (first.path / "model.bin").read_bytes() == data
    assert capsys.readouterr().err.splitlines() == [
        f"warning: llmos-hub cache entry {first.path} is corrupt "
        "(model.bin does not have the sha256 it was written with); rebuilding it"]
    assert cache.get_or_build("k", _builder(builds, data)).hit is True and len(builds) == 2


def test_an_entry_written_without_hashes_is_stale_and_rebuilt(tmp_path, capsys):
    builds: list[Path] = []
    cache = FolderCache(tmp_path)
    first = cache.get_or_build("k", _builder(builds, b"y" * 10))
    manifest = json.loads((first.path / "manifest.json").read_text())
    del manifest["file_sha256"]  # as llmos-hub wrote entries before it hashed them
    (first.path / "manifest.json").write_text(json.dumps(manifest))
    assert cache.get("k") is None
    assert "is stale (written by an older llmos-hub, without file hashes); rebuilding it" in capsys.readouterr().err
    assert cache.get_or_build("k", _builder(builds, b"y" * 10)).hit is False and len(builds) == 2
    assert cache.get("k") is not None


def test_discard_drops_an_entry_with_a_one_line_warning(tmp_path, capsys):
    builds: list[Path] = []
    cache = FolderCache(tmp_path)
    entry = cache.get_or_build("k", _builder(builds, b"z"))
    cache.discard("k", "the engine cannot load it")
    assert not entry.path.exists() and cache.get("k") is None
    assert capsys.readouterr().err == (
        f"warning: llmos-hub cache entry {entry.path} is corrupt (the engine cannot load it); rebuilding it\n")
    cache.discard("absent", "nothing")  # no entry: nothing to do, no warning
    assert capsys.readouterr().err == ""


def test_an_alias_still_leads_to_its_hashed_entry(tmp_path):
    cache = FolderCache(tmp_path)
    cache.get_or_build("full", _builder([], b"1"))
    assert cache.link("cheap", "full") is True
    found = cache.follow("cheap")
    assert found is not None and found.path == tmp_path / "full"


def test_a_hit_hashes_only_files_whose_modification_time_changed(tmp_path, monkeypatch):
    import llmos_hub._cache as cache_module

    cache = FolderCache(tmp_path)
    first = cache.get_or_build("k", _builder([], b"y" * 64))
    hashed: list[str] = []
    real = cache_module.file_sha256
    monkeypatch.setattr(cache_module, "file_sha256", lambda path: (hashed.append(path.name), real(path))[1])
    assert cache.get_or_build("k", _builder([], b"y" * 64)).hit is True
    assert hashed == []  # a multi-GB export is not read again on every run
    _edit_later(first.path / "model.bin", b"y" * 64)  # touched, same bytes: hashed, and still a hit
    assert cache.get_or_build("k", _builder([], b"y" * 64)).hit is True
    assert hashed == ["model.bin"]


def test_file_sha256_is_the_files_sha256_and_follows_a_rewrite(tmp_path):
    import hashlib

    from llmos_hub import file_sha256

    path = tmp_path / "w.safetensors"
    path.write_bytes(b"a" * 3_000_000)  # more than one read block
    assert file_sha256(path) == hashlib.sha256(b"a" * 3_000_000).hexdigest()
    _edit_later(path, b"b" * 10)
    assert file_sha256(str(path)) == hashlib.sha256(b"b" * 10).hexdigest()


def test_a_builder_killed_mid_build_leaves_no_folder_behind_once_the_key_is_built_again(tmp_path):
    cache = FolderCache(tmp_path)
    orphan = tmp_path / ".k.x1y2z3.tmp"  # what mkdtemp named a build that was then killed with -9
    orphan.mkdir()
    (orphan / "model.bin").write_bytes(b"partial")
    other = tmp_path / ".other.x1y2z3.tmp"  # another key's: maybe being built right now, left alone
    other.mkdir()
    entry = cache.get_or_build("k", _builder([], b"z" * 8))
    assert entry.hit is False and not orphan.exists() and other.exists()


def test_a_cache_that_cannot_take_a_new_entry_is_one_line_naming_the_fix(tmp_path, monkeypatch):
    import errno
    import tempfile

    import pytest

    from llmos_hub import UsageError

    def read_only(**kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    with pytest.raises(UsageError) as caught:
        FolderCache(tmp_path).get_or_build("k", _builder([], b"z"))
    assert str(caught.value).startswith(f"cannot write the llmos-hub cache at {tmp_path}: Read-only file system; set ")
