"""Tests for mtlm.demo.readers.tweet_intensity on the real data."""

from __future__ import annotations

import pytest
from conftest import demo_task_rows


@pytest.mark.integration
def test_demo_tweet_intensity_labels() -> None:
    rows = [row for part in demo_task_rows("tweet_intensity").values() for row in part]
    scores = [row["label"] for row in rows]
    assert all(isinstance(s, float) and -4.0 <= s <= 4.0 for s in scores)
    assert min(scores) < -3 and max(scores) > 3
    assert not any("&amp;" in row["text"] for row in rows)
