"""One safe YAML loader for every task file: bounded size, depth and alias expansion, no duplicate keys.

``yaml.safe_load`` runs no code, but it happily builds a 600-byte "billion laughs" document whose
aliases expand to gigabytes once anything walks it, nests until the interpreter's recursion limit,
and lets a later key silently replace an earlier one. :func:`load_yaml` refuses each of these with a
one-line :class:`~llmos_hub.DataError` naming the file (and the line, where there is one):

* the file is at most :data:`MAX_BYTES`;
* the document, with every alias expanded, has at most :data:`MAX_NODES` nodes (an alias costs what
  the node it names costs, so a bomb is caught before it is ever expanded);
* collections nest at most :data:`MAX_DEPTH` deep;
* a mapping never repeats a key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .errors import DataError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "load_yaml"]

MAX_BYTES = 1_000_000
MAX_NODES = 100_000
MAX_DEPTH = 64


def _line(node: yaml.Node) -> str:
    mark = getattr(node, "start_mark", None)
    return f":{mark.line + 1}" if mark is not None else ""


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mappings refuse duplicate keys."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # an unhashable key: SafeLoader reports it itself
                    break
                if duplicate:
                    raise _Duplicate(key, seen[key], key_node)
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]


class _Duplicate(Exception):
    def __init__(self, key: Any, first: yaml.Node, again: yaml.Node) -> None:
        super().__init__(key)
        self.key, self.first, self.again = key, first, again


def _measure(root: yaml.Node, path: str) -> None:
    """Expanded node count and depth of the composed document, memoised per node (aliases are shared)."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}

    def visit(node: yaml.Node, depth: int, active: frozenset[int]) -> tuple[int, int]:
        if depth > MAX_DEPTH:
            raise DataError(f"{path}{_line(node)}: YAML nested deeper than {MAX_DEPTH} levels; a task file is shallow")
        key = id(node)
        if key in sizes:
            return sizes[key], depths[key]
        if key in active:
            raise DataError(f"{path}{_line(node)}: YAML alias refers to itself; remove the recursive anchor")
        if isinstance(node, yaml.ScalarNode):
            size, below = 1, 0
        else:
            children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else node.value
            size, below = 1, 0
            for child in children:
                child_size, child_depth = visit(child, depth + 1, active | {key})
                size += child_size
                below = max(below, child_depth + 1)
                if size > MAX_NODES:
                    raise DataError(
                        f"{path}{_line(node)}: YAML expands to more than {MAX_NODES} values (aliases of aliases?); "
                        "write the values out, a task file needs no anchors")
        sizes[key], depths[key] = size, below
        return size, below

    visit(root, 0, frozenset())


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """The YAML document in ``path``, parsed within the limits above, or a one-line :class:`DataError`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise DataError(f"{path}: {size} bytes; a task file is at most {MAX_BYTES} bytes "
                            "(put examples in the data file, not the task file)")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataError(f"{path}: task file not found") from exc
    except UnicodeDecodeError as exc:
        number = text_line(path, exc.start)
        raise DataError(f"{path}:{number}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise DataError(f"{path}: YAML nested too deeply to parse; a task file is shallow") from None
        if node is None:
            return None
        _measure(node, str(path))
        return loader.construct_document(node)
    except _Duplicate as dup:
        raise DataError(f"{path}{_line(dup.again)}: duplicate key {dup.key!r} (first at line "
                        f"{dup.first.start_mark.line + 1}); keep one") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise DataError(f"{path}{where}: not valid YAML: {problem}") from exc
    finally:
        loader.dispose()


def text_line(path: Path, offset: int) -> int:
    """The 1-based line of byte ``offset`` in ``path`` (to name where invalid UTF-8 is)."""
    with path.open("rb") as handle:
        return handle.read(offset).count(b"\n") + 1
