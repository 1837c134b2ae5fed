"""Tests for mtlm.demo.readers.sentiment on the real data (the reader's cleaning is tested on a
fake archive in tests/demo/test_splits.py)."""

from __future__ import annotations

import pytest
from conftest import demo_task_rows


@pytest.mark.integration
def test_demo_sentiment_labels() -> None:
    rows = [row for part in demo_task_rows("sentiment").values() for row in part]
    assert {row["label"] for row in rows} == {"fresh", "rotten"}
    assert all(row["text"] and "\n" not in row["text"] for row in rows)
