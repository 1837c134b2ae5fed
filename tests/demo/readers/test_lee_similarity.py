"""Tests for mtlm.demo.readers.lee_similarity."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from conftest import demo_task_rows

from mtlm.config import task_spec
from mtlm.data.sources import read_task_splits
from mtlm.demo.readers.lee_similarity import read_lee_similarity
from mtlm.errors import DataError


def _fake_gensim(path: Path, docs: list[bytes], matrix: str) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("gensim/test/test_data/lee.cor", b"\n".join(docs))
        zf.writestr("gensim/test/test_data/similarities0-1.txt", matrix)


def test_lee_similarity_rows_are_the_upper_triangle_pairs(tmp_path: Path) -> None:
    path = tmp_path / "gensim.whl"
    # lee.cor is latin-1 (a bare pound sign) with no newline at the end; the lower triangle of
    # the matrix is zeros.
    docs = [b"First  doc \xa33.", b"Second doc.", b"Third doc.", b"Fourth doc."]
    matrix = "1\t0.3\t0.24\t0.2\n0\t1\t0.5\t0.26666666\n0\t0\t1\t0.9\n0\t0\t0\t1\n"
    _fake_gensim(path, docs, matrix)
    rows = read_lee_similarity(path)
    assert rows == [
        {"text": "First doc £3.", "text_pair": "Second doc.", "label": 0.3},
        {"text": "First doc £3.", "text_pair": "Third doc.", "label": 0.24},
        {"text": "First doc £3.", "text_pair": "Fourth doc.", "label": 0.2},
        {"text": "Second doc.", "text_pair": "Third doc.", "label": 0.5},
        {"text": "Second doc.", "text_pair": "Fourth doc.", "label": 0.26666666},
        {"text": "Third doc.", "text_pair": "Fourth doc.", "label": 0.9},
    ]
    _fake_gensim(path, docs[:3], matrix)
    with pytest.raises(DataError, match="not a 3x3 matrix"):
        read_lee_similarity(path)


@pytest.mark.integration
def test_demo_lee_similarity_feeds_a_pair_regression_task() -> None:
    parts = demo_task_rows("lee_similarity")
    rows = [row for part in parts.values() for row in part]
    docs = {text for row in rows for text in (row["text"], row["text_pair"])}
    assert len(docs) == 50 and len(rows) == 50 * 49 // 2
    scores = [row["label"] for row in rows]
    assert min(scores) == 0.2 and max(scores) == 1.0
    assert "£" in " ".join(docs) and "Â£" not in " ".join(docs)
    spec = task_spec(
        {
            "name": "lee",
            "kind": "regression",
            "text_pair_column": "text_pair",
            "data": {"bundled": "lee_similarity"},
        }
    )
    splits, _ = read_task_splits(spec)
    assert {split: len(part.rows) for split, part in splits.items()} == {
        split: len(rows) for split, rows in parts.items()
    }
