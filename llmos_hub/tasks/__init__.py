"""Tasks declared in YAML files (placeholder until the tasks module lands)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import DataError


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise DataError(f"{path}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: a task file must be a mapping with at least 'name' and 'kind'")
    return data


def declared_name(path: Path) -> tuple[str, str]:
    """The ``name`` and ``description`` a task file declares, read without building the task."""
    data = _read_yaml(path)
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise DataError(f"{path}: missing field 'name'")
    return name, str(data.get("description", ""))


def task_from_file(path: str | Path) -> Any:
    raise NotImplementedError
