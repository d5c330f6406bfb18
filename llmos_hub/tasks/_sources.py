"""Read the raw rows of one split from a local file, a ``datasets`` folder or a ``datasets`` id.

Every row carries where it came from (``data/x.jsonl:17``, ``x.parquet row 4``), so a bad value is
reported with its file, line or row, and field. ``datasets`` and ``pyarrow`` are imported only when
a task actually uses them.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError
from ._confine import check_data_path
from ._spec import FILE_SUFFIXES, TaskSpec

__all__ = ["Row", "SplitSource", "open_split"]


@dataclass(frozen=True)
class Row:
    """One raw record and where it is (``file:line`` or ``file row N``)."""

    where: str
    values: Mapping[str, Any]


@dataclass(frozen=True)
class SplitSource:
    """A readable split: ``label`` names it in messages, ``portable`` in records (no local paths)."""

    spec: TaskSpec
    split: str
    label: str
    portable: str
    format: str
    path: Path | None

    def read(self) -> tuple[list[str] | None, Iterator[Row]]:
        """The column names when the format has a header (``None`` for jsonl) and the rows."""
        return _READERS[self.format](self)


def _display(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return rel if not rel.startswith("..") else str(path)


def open_split(spec: TaskSpec, split: str) -> SplitSource:
    """Locate ``split`` of the task's data, checking that it exists (before any model is loaded)."""
    if split not in spec.splits:
        raise DataError(f"task {spec.name!r} has no split {split!r}; its splits: {', '.join(spec.splits)}")
    location = spec.splits[split]
    data = spec.data
    if data.dataset is not None:
        label = f"dataset {data.dataset}" + (f" ({data.config})" if data.config else "") + f" split {location}"
        portable = f"datasets:{data.dataset}" + (f"/{data.config}" if data.config else "") + \
            (f"@{data.revision}" if data.revision else "") + f":{location}"
        return SplitSource(spec, split, label, portable, "hub", None)
    assert data.path is not None
    if not data.path.exists():
        raise DataError(f"{_display(data.path)}: not found (field 'data' of {spec.file})")
    if data.path.is_file():
        path, portable = data.path, data.declared
    elif _is_datasets_folder(data.path, data.format, location):
        label = f"{_display(data.path)} split {location}"
        return SplitSource(spec, split, label, f"{data.declared}:{location}", "folder", data.path)
    else:
        path, portable = data.path / location, f"{data.declared.rstrip('/')}/{location}"
        check_data_path(spec.file, path, location, field=f"splits.{split}")
    fmt = data.format or FILE_SUFFIXES.get(path.suffix)
    if fmt is None or fmt == "datasets":
        raise DataError(f"{_display(path)}: cannot tell the format from the name; set data.format to one of "
                        f"{', '.join(sorted(set(FILE_SUFFIXES.values())))} in {spec.file}")
    if path.exists() and not path.is_file():  # a folder, a FIFO, a device: never opened (a FIFO would block)
        raise DataError(f"{_display(path)}: not a regular file (split {split!r} of {spec.file}); name a data file")
    if not path.is_file():
        raise DataError(f"{_display(path)}: file not found (split {split!r} of {spec.file})")
    return SplitSource(spec, split, _display(path), portable, fmt, path)


def _is_datasets_folder(folder: Path, fmt: str | None, location: str) -> bool:
    if fmt == "datasets":
        return True
    if fmt is not None:
        return False
    if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():
        return True
    return Path(location).suffix not in FILE_SUFFIXES


# -- readers ---------------------------------------------------------------------------------------

def _jsonl_rows(src: SplitSource) -> Iterator[Row]:
    with _open_text(src) as handle:
        for number, line in enumerate(_lines(src, handle), start=1):
            if not line.strip():
                continue
            where = f"{src.label}:{number}"
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
            if not isinstance(value, dict):
                raise DataError(f"{where}: each line must be a JSON object, not {type(value).__name__}")
            yield Row(where, value)


def _read_jsonl(src: SplitSource) -> tuple[list[str] | None, Iterator[Row]]:
    return None, _jsonl_rows(src)


def _read_csv(src: SplitSource) -> tuple[list[str] | None, Iterator[Row]]:
    delimiter = "\t" if src.format == "tsv" else ","
    with _open_text(src, newline="") as handle:
        header = next(csv.reader(_lines(src, handle), delimiter=delimiter), [])

    def rows() -> Iterator[Row]:
        with _open_text(src, newline="") as handle:
            reader = csv.DictReader(_lines(src, handle), delimiter=delimiter)
            try:
                for values in reader:
                    yield Row(f"{src.label}:{reader.line_num}", values)
            except csv.Error as exc:
                raise DataError(f"{src.label}:{reader.line_num}: not valid {src.format.upper()} ({exc})") from exc

    return header, rows()


def _read_parquet(src: SplitSource) -> tuple[list[str] | None, Iterator[Row]]:
    table = _parquet_table(src)
    rows = (Row(f"{src.label} row {n}", values) for n, values in enumerate(table.to_pylist(), start=1))
    return list(table.column_names), rows


def _read_dataset(src: SplitSource) -> tuple[list[str] | None, Iterator[Row]]:
    dataset = _load_dataset(src)
    rows = (Row(f"{src.label} row {n}", values) for n, values in enumerate(dataset, start=1))
    return list(dataset.column_names), rows


_READERS = {
    "jsonl": _read_jsonl,
    "csv": _read_csv,
    "tsv": _read_csv,
    "parquet": _read_parquet,
    "folder": _read_dataset,
    "hub": _read_dataset,
}


def _open_text(src: SplitSource, newline: str | None = None) -> Any:
    """The file in binary: :func:`_lines` decodes it a line at a time, so bad UTF-8 is named by line."""
    assert src.path is not None
    try:
        return src.path.open("rb")
    except OSError as exc:
        raise DataError(f"{src.label}: cannot read: {exc.strerror or exc}") from exc


def max_example_chars() -> int:
    """The longest line (and field) a task's data may hold: ``LLMOS_HUB_MAX_EXAMPLE_CHARS``, default 1,000,000."""
    try:
        return max(1, int(os.environ.get("LLMOS_HUB_MAX_EXAMPLE_CHARS", "1000000")))
    except ValueError:
        return 1_000_000


def _lines(src: SplitSource, handle: Any) -> Iterator[str]:
    """Decoded lines (a UTF-8 BOM dropped); invalid UTF-8 and over-long lines name their line number."""
    limit = max_example_chars()
    for number, raw in enumerate(handle, start=1):
        if len(raw) > 4 * limit + 1024:  # longer in bytes than any accepted example could be
            raise DataError(f"{src.label}:{number}: line of {len(raw)} bytes, longer than an example may be "
                            f"({limit} characters); shorten it or set LLMOS_HUB_MAX_EXAMPLE_CHARS")
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{src.label}:{number}: not UTF-8 text (byte {exc.start + 1} of the line); "
                            "save the file as UTF-8") from exc
        yield line


def _parquet_table(src: SplitSource) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(src.path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{src.label}: not a readable Parquet file ({' '.join(str(exc).split())})") from exc


def _load_dataset(src: SplitSource) -> Any:
    import datasets

    from .._quiet import quiet_datasets

    data = src.spec.data
    location = src.spec.splits[src.split]
    try:
        with quiet_datasets():  # no progress bars or warnings of theirs above ours
            if src.format == "hub":
                loaded = datasets.load_dataset(data.dataset, data.config, revision=data.revision)
            elif src.path is not None and ((src.path / "dataset_dict.json").is_file() or (src.path / "state.json").is_file()):
                loaded = datasets.load_from_disk(str(src.path))
            else:
                loaded = datasets.load_dataset(str(src.path))
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{src.label}: cannot load with datasets ({' '.join(str(exc).split())[:300]})") from exc
    if isinstance(loaded, datasets.Dataset):
        return loaded
    if location not in loaded:
        raise DataError(f"{src.label}: no split {location!r}; the dataset has {', '.join(loaded)} "
                        f"(map them in 'splits' of {src.spec.file})")
    return loaded[location]
