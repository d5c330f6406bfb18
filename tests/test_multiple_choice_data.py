"""The bundled multiple-choice-sample data: real sentences of lm-sample, its split kept, rebuildable.

Checks the committed files against lm-sample (the text they are cut from) and rebuilds them with
``scripts/build_suite --only multiple-choice-sample`` into a temporary folder to show the build is
deterministic and produced exactly what is committed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "llmos_hub" / "tasks" / "builtin" / "data"
MC = DATA / "multiple-choice-sample"
SPLITS = ("train", "validation", "test")


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def examples() -> dict[str, list[dict]]:
    return {s: _read(MC / f"{s}.jsonl") for s in SPLITS}


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, str]]:
    """lm-sample's documents per split, id -> whitespace-normalized text."""
    return {
        s: {d["id"]: " ".join(d["text"].split()) for d in _read(DATA / "lm-sample" / f"{s}.jsonl")}
        for s in SPLITS
    }


def test_sizes_fields_and_choices(examples: dict[str, list[dict]]) -> None:
    assert {s: len(e) for s, e in examples.items()} == {"train": 1000, "validation": 150, "test": 200}
    for split, rows in examples.items():
        assert len({r["id"] for r in rows}) == len(rows), split
        for row in rows:
            assert list(row) == ["id", "context", "choices", "label"]
            assert len(row["choices"]) == 4 and len(set(row["choices"])) == 4
            assert isinstance(row["label"], int) and 0 <= row["label"] < 4
            assert 8 <= len((row["context"] + " " + row["choices"][row["label"]]).split()) <= 40


def test_gold_positions_are_balanced(examples: dict[str, list[dict]]) -> None:
    for split, rows in examples.items():
        counts = Counter(r["label"] for r in rows)
        assert sorted(counts) == [0, 1, 2, 3]
        assert max(counts.values()) - min(counts.values()) <= 1, (split, counts)


def test_every_example_is_a_real_sentence_of_its_own_lm_sample_split(
    examples: dict[str, list[dict]], documents: dict[str, dict[str, str]]
) -> None:
    for split, rows in examples.items():
        split_text = "\n".join(documents[split].values())
        for row in rows:
            doc_id = row["id"].rsplit(".s", 1)[0]
            sentence = row["context"] + " " + row["choices"][row["label"]]
            assert sentence in documents[split][doc_id], row["id"]  # the gold ending is the true one
        for row in rows[:200]:  # distractors come from the same split's text (a substring search)
            for choice in row["choices"]:
                assert choice in split_text, (row["id"], choice)


def test_no_test_sentence_was_seen_in_training(
    examples: dict[str, list[dict]], documents: dict[str, dict[str, str]]
) -> None:
    train_text = "\n".join(documents["train"].values())
    for split in ("validation", "test"):
        for row in examples[split]:
            assert row["context"] + " " + row["choices"][row["label"]] not in train_text, row["id"]
    contexts = {s: {r["context"] for r in rows} for s, rows in examples.items()}
    for a, b in (("train", "test"), ("train", "validation"), ("validation", "test")):
        assert not contexts[a] & contexts[b], (a, b)


def test_source_md_records_licence_and_the_committed_files() -> None:
    text = (MC / "SOURCE.md").read_text(encoding="utf-8")
    assert "**Source**" in text and "**Licence**" in text and "PSF License" in text
    for split in SPLITS:
        assert hashlib.sha256((MC / f"{split}.jsonl").read_bytes()).hexdigest() in text


@pytest.mark.slow
def test_the_build_script_rebuilds_the_committed_files(tmp_path: Path) -> None:
    shutil.copytree(DATA / "lm-sample", tmp_path / "lm-sample")
    for _ in range(2):  # twice: the same bytes every time
        done = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "build_suite"), "--only", "multiple-choice-sample",
             "--seed", "0", "--out", str(tmp_path)],
            capture_output=True, text=True, timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        for name in ("train.jsonl", "validation.jsonl", "test.jsonl", "SOURCE.md"):
            assert (tmp_path / "multiple-choice-sample" / name).read_bytes() == (MC / name).read_bytes(), name
