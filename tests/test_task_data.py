"""Task data: every source kind, one-line errors naming file/line/field, subsamples, fingerprints, the bundled suite.

Expected values come from the fixture files themselves (read here with ``json``/``csv``), never from
the loader under test.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
import yaml

from llmos_hub import DataError, Example, UsageError
from llmos_hub.tasks import BUILTIN_DIR, task_from_file

FIXTURES = Path(__file__).parent / "data" / "tasks"


@pytest.fixture(autouse=True)
def _fixtures_are_allowed_data(tmp_path_factory):
    """These tests' task files live in tmp_path and name the shared fixtures by absolute path."""
    from llmos_hub.tasks import allow_data_paths

    with allow_data_paths([Path(__file__).resolve().parents[1], tmp_path_factory.getbasetemp()]):
        yield
MINI = FIXTURES / "mini-translation.yaml"
SUITE = ("lm-sample", "classification-sample", "translation-sample", "summarization-sample")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write_yaml(folder: Path, **fields) -> Path:
    declaration = {"name": "t", "kind": "translation", "fields": {"input": "en", "target": "de"}}
    declaration.update(fields)
    path = folder / "task.yaml"
    path.write_text(yaml.safe_dump(declaration, allow_unicode=True), encoding="utf-8")
    return path


def _classification_yaml(folder: Path, data: str | dict, **fields) -> Path:
    fields.setdefault("fields", {"input": "text", "target": "label"})
    return _write_yaml(folder, kind="classification", data=data, labels=["games", "graphics", "net"], **fields)


def _topics() -> list[dict[str, str]]:
    with (FIXTURES / "mini-topics.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# -- each source kind -------------------------------------------------------------------------------

def test_jsonl_folder_with_splits_id_field_and_prompt_fields() -> None:
    task = task_from_file(MINI)
    rows = _jsonl(FIXTURES / "mini-translation" / "test.jsonl")
    data = task.load()
    assert data.split == "test"
    assert data.source == "mini-translation/test.jsonl"
    assert [(e.id, e.input, e.target) for e in data.examples] == [(r["key"], r["en"], r["de"]) for r in rows]
    assert data.examples[0].extra == {"domain": "ui"}
    train = task.load(split="train")
    assert [e.id for e in train.examples] == [r["key"] for r in _jsonl(FIXTURES / "mini-translation" / "train.jsonl")]


@pytest.mark.parametrize("suffix", ["csv", "tsv"])
def test_csv_and_tsv_files_with_ids_from_row_numbers(tmp_path: Path, suffix: str) -> None:
    task = task_from_file(_classification_yaml(tmp_path, str(FIXTURES / f"mini-topics.{suffix}")))
    data = task.load()
    expected = _topics()
    assert [e.id for e in data.examples] == [str(i) for i in range(len(expected))]
    assert [(e.input, e.target) for e in data.examples] == [(r["text"], r["label"]) for r in expected]


def test_parquet_file(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = _topics()
    pq.write_table(pa.Table.from_pylist([{"id": f"p{i}", **r} for i, r in enumerate(rows)]), tmp_path / "x.parquet")
    path = _classification_yaml(tmp_path, "x.parquet", fields={"id": "id", "input": "text", "target": "label"})
    data = task_from_file(path).load()
    assert [(e.id, e.input, e.target) for e in data.examples] == [(f"p{i}", r["text"], r["label"]) for i, r in enumerate(rows)]


def test_parquet_missing_column_and_empty_value(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.Table.from_pylist([{"text": "a b c"}]), tmp_path / "nolabel.parquet")
    with pytest.raises(DataError) as excinfo:
        task_from_file(_classification_yaml(tmp_path, "nolabel.parquet")).load()
    assert "nolabel.parquet: missing field 'label'" in _one_line_error(excinfo)
    pq.write_table(pa.Table.from_pylist([{"text": "a", "label": "net"}, {"text": "b", "label": " "}]),
                   tmp_path / "blank.parquet")
    with pytest.raises(DataError) as excinfo:
        task_from_file(_classification_yaml(tmp_path, "blank.parquet")).load()
    assert "blank.parquet row 2: empty field 'label'" in _one_line_error(excinfo)


@pytest.fixture(scope="module")
def saved_datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    datasets = pytest.importorskip("datasets")
    root = tmp_path_factory.mktemp("datasets")
    rows = _topics()
    half = len(rows) // 2
    datasets.DatasetDict({
        "train": datasets.Dataset.from_list(rows[:half]),
        "test": datasets.Dataset.from_list(rows[half:]),
    }).save_to_disk(str(root / "dict"))
    datasets.Dataset.from_list(rows).save_to_disk(str(root / "single"))
    return root


def test_datasets_folder_saved_with_save_to_disk(saved_datasets: Path, tmp_path: Path) -> None:
    rows = _topics()
    half = len(rows) // 2
    path = _classification_yaml(tmp_path, str(saved_datasets / "dict"), splits={"fit": "train", "test": "test"})
    task = task_from_file(path)
    assert [e.input for e in task.load().examples] == [r["text"] for r in rows[half:]]
    assert [e.target for e in task.load(split="fit").examples] == [r["label"] for r in rows[:half]]
    single = task_from_file(_classification_yaml(tmp_path, str(saved_datasets / "single")))
    assert [e.input for e in single.load().examples] == [r["text"] for r in rows]


def test_datasets_folder_missing_split_names_the_available_ones(saved_datasets: Path, tmp_path: Path) -> None:
    path = _classification_yaml(tmp_path, str(saved_datasets / "dict"), splits={"test": "validation"})
    with pytest.raises(DataError) as excinfo:
        task_from_file(path).load()
    message = _one_line_error(excinfo)
    assert "no split 'validation'" in message and "train, test" in message


def test_folder_of_data_files_read_by_datasets(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    folder = tmp_path / "files"
    folder.mkdir()
    rows = _topics()
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    path = _classification_yaml(tmp_path, {"path": "files", "format": "datasets"}, splits={"test": "test"})
    data = task_from_file(path).load()
    assert [(e.input, e.target) for e in data.examples] == [(r["text"], r["label"]) for r in rows]


def test_single_file_is_the_default_split(tmp_path: Path) -> None:
    path = _classification_yaml(tmp_path, str(FIXTURES / "mini-topics.csv"), default_split="eval")
    task = task_from_file(path)
    assert task.load().split == "eval"
    with pytest.raises(DataError) as excinfo:
        task.load(split="train")
    assert "has no split 'train'" in _one_line_error(excinfo)


# -- bad data: one line naming the file, the line or row, and the field --------------------------------

def _jsonl_task(tmp_path: Path, lines: list[str], **fields) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "x.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return _write_yaml(tmp_path, data="data/x.jsonl", **fields)


GOOD = json.dumps({"en": "Hello there.", "de": "Hallo."})


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        (json.dumps({"en": "Hello."}),
         "x.jsonl:3: missing field 'de'; the rows before it have it, so add it or remove this row"),
        (json.dumps({"de": "Hallo."}), "x.jsonl:3: missing field 'en'"),
        (json.dumps({"en": "Hello.", "de": "  "}), "x.jsonl:3: empty field 'de'"),
        (json.dumps({"en": "Hello.", "de": None}), "x.jsonl:3: field 'de' has no value; give it one or remove this row"),
        (json.dumps({"en": ["Hello."], "de": "Hallo."}), "x.jsonl:3: field 'en' must be text, not list"),
        ('{"en": "Hello.", "de": "Hallo."', "x.jsonl:3: not valid JSON"),
        ('["Hello.", "Hallo."]', "x.jsonl:3: each line must be a JSON object, not list"),
    ],
)
def test_bad_jsonl_line(tmp_path: Path, bad_line: str, expected: str) -> None:
    task = task_from_file(_jsonl_task(tmp_path, [GOOD, GOOD, bad_line, GOOD]))
    with pytest.raises(DataError) as excinfo:
        task.load(limit=1)  # every row is checked, not only the sampled one
    assert expected in _one_line_error(excinfo)


def test_blank_lines_count_for_line_numbers(tmp_path: Path) -> None:
    task = task_from_file(_jsonl_task(tmp_path, [GOOD, "", "  ", json.dumps({"en": "x"})]))
    with pytest.raises(DataError) as excinfo:
        task.load()
    assert "x.jsonl:4: missing field 'de'" in _one_line_error(excinfo)


def test_unknown_label(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text(
        json.dumps({"text": "a", "label": "net"}) + "\n" + json.dumps({"text": "b", "label": "sports"}) + "\n",
        encoding="utf-8")
    with pytest.raises(DataError) as excinfo:
        task_from_file(_classification_yaml(tmp_path, "x.jsonl")).load()
    message = _one_line_error(excinfo)
    assert "x.jsonl:2: unknown label 'sports' in field 'label'" in message
    assert "games, graphics, net" in message


def test_duplicate_id(tmp_path: Path) -> None:
    lines = [json.dumps({"k": "a", "en": "One.", "de": "Eins."}), json.dumps({"k": "a", "en": "Two.", "de": "Zwei."})]
    task = task_from_file(_jsonl_task(tmp_path, lines, fields={"id": "k", "input": "en", "target": "de"}))
    with pytest.raises(DataError) as excinfo:
        task.load()
    assert "x.jsonl:2: duplicate id 'a' in field 'k' (first at" in _one_line_error(excinfo)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    task = task_from_file(_jsonl_task(tmp_path, []))
    with pytest.raises(DataError) as excinfo:
        task.load()
    assert "x.jsonl: empty, no examples" in _one_line_error(excinfo)
    (tmp_path / "data" / "x.jsonl").unlink()
    with pytest.raises(DataError) as excinfo:
        task.load()
    assert "x.jsonl: not found" in _one_line_error(excinfo)


def test_missing_split_file_in_a_folder(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "test.jsonl").write_text(GOOD + "\n", encoding="utf-8")
    task = task_from_file(_write_yaml(tmp_path, data="d", splits={"test": "test.jsonl", "train": "train.jsonl"}))
    assert len(task.load().examples) == 1
    with pytest.raises(DataError) as excinfo:
        task.load(split="train")
    assert "train.jsonl: file not found (split 'train'" in _one_line_error(excinfo)


def test_csv_missing_column_is_reported_on_the_header_line(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("text,topic\nhello,net\n", encoding="utf-8")
    with pytest.raises(DataError) as excinfo:
        task_from_file(_classification_yaml(tmp_path, "x.csv")).load()
    message = _one_line_error(excinfo)
    assert "x.csv:1: missing field 'label' (fields.target: 'label' in " in message
    assert message.endswith("task.yaml); the data has fields text, topic; set fields.target to the data's name for it")


def test_csv_short_row_and_empty_file(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text('text,label\n"two\nlines",net\nshort\n', encoding="utf-8")
    with pytest.raises(DataError) as excinfo:
        task_from_file(_classification_yaml(tmp_path, "x.csv")).load()
    assert "x.csv:4: field 'label' has no value; give it one or remove this row" in _one_line_error(excinfo)
    (tmp_path / "x.csv").write_text("", encoding="utf-8")
    with pytest.raises(DataError) as excinfo:
        task_from_file(_classification_yaml(tmp_path, "x.csv")).load()
    assert "x.csv:1: empty" in _one_line_error(excinfo)


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_bytes(GOOD.encode() + b"\n" + b'{"en": "caf\xe9", "de": "x"}\n')
    with pytest.raises(DataError) as excinfo:
        task_from_file(_write_yaml(tmp_path, data="x.jsonl")).load()
    assert "x.jsonl:2: not UTF-8 text (byte 12 of the line); save the file as UTF-8" in _one_line_error(excinfo)


# -- subsample and fingerprint ------------------------------------------------------------------------

def _independent_fingerprint(examples: list[Example]) -> str:
    payload = [{"id": e.id, "input": e.input, "target": e.target} for e in examples]
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_limit_is_a_seeded_subsample_in_file_order() -> None:
    task = task_from_file(MINI)
    order = [e.id for e in task.load().examples]
    first = task.load(limit=5, seed=3)
    again = task.load(limit=5, seed=3)
    other = task.load(limit=5, seed=4)
    assert [e.id for e in first.examples] == [e.id for e in again.examples]
    assert first.fingerprint == again.fingerprint
    assert len(first.examples) == 5 and len(set(e.id for e in first.examples)) == 5
    positions = [order.index(e.id) for e in first.examples]
    assert positions == sorted(positions)
    assert [e.id for e in other.examples] != [e.id for e in first.examples]
    assert other.fingerprint != first.fingerprint


def test_fingerprint_covers_exactly_the_examples_used() -> None:
    task = task_from_file(MINI)
    full = task.load()
    assert full.fingerprint == _independent_fingerprint(list(full.examples))
    part = task.load(limit=4, seed=0)
    assert part.fingerprint == _independent_fingerprint(list(part.examples))
    assert part.fingerprint != full.fingerprint
    assert task.load(limit=len(full.examples) + 10).fingerprint == full.fingerprint


@pytest.mark.parametrize("limit", [0, -1, True, 2.5])
def test_bad_limit(limit) -> None:
    with pytest.raises(UsageError):
        task_from_file(MINI).load(limit=limit)


# -- the bundled default suite --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def suite() -> dict:
    return {name: task_from_file(BUILTIN_DIR / f"{name}.yaml") for name in SUITE}


@pytest.mark.parametrize("name", SUITE)
def test_bundled_task_has_three_disjoint_splits(suite: dict, name: str) -> None:
    task = suite[name]
    splits = {s: task.load(split=s).examples for s in ("train", "validation", "test")}
    assert 100 <= len(splits["test"]) <= 200
    assert len(splits["train"]) >= 1000
    assert task.describe()["default_split"] == "test"
    for split, examples in splits.items():
        assert len({e.id for e in examples}) == len(examples), split
    ids = {s: {e.id for e in ex} for s, ex in splits.items()}
    inputs = {s: {e.input for e in ex} for s, ex in splits.items()}
    for a, b in (("train", "test"), ("train", "validation"), ("validation", "test")):
        assert not ids[a] & ids[b], (a, b)
        assert not inputs[a] & inputs[b], (a, b)


def test_bundled_translation_never_shares_english_between_train_and_test(suite: dict) -> None:
    task = suite["translation-sample"]
    norm = lambda s: " ".join(s.lower().split())  # noqa: E731
    train = {norm(e.input) for e in task.load(split="train").examples}
    assert not any(norm(e.input) in train for e in task.load().examples)


def test_bundled_classification_test_split_covers_every_label(suite: dict) -> None:
    task = suite["classification-sample"]
    seen = [e.target for e in task.load().examples]
    assert set(seen) == set(task.labels)
    counts = {label: seen.count(label) for label in task.labels}
    assert max(counts.values()) - min(counts.values()) <= 1  # balanced


@pytest.mark.parametrize("name", SUITE)
def test_bundled_task_records_source_and_licence(suite: dict, name: str) -> None:
    folder = BUILTIN_DIR / "data" / name
    source_md = (folder / "SOURCE.md").read_text(encoding="utf-8")
    assert "**Source**" in source_md and "**Licence**" in source_md
    for split in ("train", "validation", "test"):
        digest = hashlib.sha256((folder / f"{split}.jsonl").read_bytes()).hexdigest()
        assert digest in source_md  # SOURCE.md describes exactly the committed files
    assert "SOURCE.md" in suite[name].describe()["source"]


def test_bundled_data_is_small() -> None:
    total = sum(p.stat().st_size for p in (BUILTIN_DIR / "data").rglob("*") if p.is_file())
    assert total < 8 * 1024 * 1024


# -- the build script's pure parts (the sources themselves are not needed) -------------------------------

@pytest.fixture(scope="module")
def build_suite():
    import importlib
    import sys

    folder = str(Path(__file__).resolve().parents[1] / "scripts" / "build_suite")
    names = ("_common", "debian", "translation")
    sys.path.insert(0, folder)
    try:
        yield {name: importlib.import_module(name) for name in names}
    finally:
        sys.path.remove(folder)
        for name in names:  # generic names: do not leave them for other tests to import by accident
            sys.modules.pop(name, None)


def test_group_split_keeps_groups_whole_and_is_seeded(build_suite) -> None:
    group_split = build_suite["_common"].group_split
    items = [(f"g{i % 37}", i) for i in range(400)]
    sizes = {"test": 30, "validation": 30, "train": 200}
    first = group_split(items, lambda x: x[0], sizes=sizes, seed=5)
    assert first == group_split(items, lambda x: x[0], sizes=sizes, seed=5)
    assert first != group_split(items, lambda x: x[0], sizes=sizes, seed=6)
    assert {s: len(v) for s, v in first.items()} == sizes
    groups = {s: {g for g, _ in v} for s, v in first.items()}
    assert not groups["test"] & groups["train"] and not groups["validation"] & groups["train"]
    assert not groups["test"] & groups["validation"]


def test_debian_long_description_to_plain_text(build_suite) -> None:
    lines = [" First paragraph wraps", " onto a second line.", " .", " Features:", "  * one", "  * two", " .", " End."]
    assert build_suite["debian"].plain_description(lines) == (
        "First paragraph wraps onto a second line.\nFeatures:\n* one\n* two\nEnd.")


@pytest.mark.parametrize(
    ("source", "target", "kept"),
    [
        ("Could not open the file for writing.", "Datei konnte nicht geöffnet werden.", True),
        ("Could not open %s for writing.", "%s konnte nicht geöffnet werden.", False),
        ("  -v, --verbose    print more", "  -v, --verbose    mehr ausgeben", False),
        ("_Open the recent file now", "Zuletzt geöffnete Datei jetzt _öffnen", False),
        ("Too short.", "Zu kurz.", False),
        ("Same text in both languages here.", "Same text in both languages here.", False),
        ("The first line\nand the second line.", "Die erste Zeile\nund die zweite.", False),
    ],
)
def test_translation_message_filter(build_suite, source: str, target: str, kept: bool) -> None:
    assert build_suite["translation"].keep_message(source, target) is kept
