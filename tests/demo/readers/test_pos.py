"""Tests for mtlm.demo.readers.pos."""

from __future__ import annotations

import pytest
from conftest import demo_task_rows

from mtlm.demo.readers.pos import parse_tagged_sentence
from mtlm.errors import DataError


def test_parse_tagged_sentence_splits_on_last_slash() -> None:
    row = parse_tagged_sentence("1\\/2/CD and/or/CC ./.")
    assert row == {"tokens": ["1\\/2", "and/or", "."], "tags": ["CD", "CC", "."]}
    with pytest.raises(DataError, match="word/TAG"):
        parse_tagged_sentence("no_tag_here")


@pytest.mark.integration
def test_demo_pos_tokens_and_tags() -> None:
    rows = [row for part in demo_task_rows("pos").values() for row in part]
    assert all(row["tokens"] and len(row["tokens"]) == len(row["tags"]) for row in rows)
    tags = {tag for row in rows for tag in row["tags"]}
    assert {"NN", "NNP", "VBD", "DT", "IN", ",", "."} <= tags
    assert 40 <= len(tags) <= 46
    assert all("/" not in tag for tag in tags)
