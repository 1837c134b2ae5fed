"""Tweets with their sentiment intensity (-4 to 4) as people rated it, from vaderSentiment's
sdist (Hutto and Gilbert, ICWSM 2014)."""

from __future__ import annotations

import html
import io
import tarfile
from pathlib import Path

from mtlm.demo.readers.common import Row, dedupe, one_line, tar_member
from mtlm.errors import DataError

__all__ = ["read_tweet_intensity"]


def read_tweet_intensity(archive: Path) -> list[Row]:
    """One row (text, label: the mean rating) per distinct tweet."""
    with tarfile.open(archive) as outer:
        inner_bytes = tar_member(outer, "/hutto_ICWSM_2014.tar.gz", archive.name)
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        raw = tar_member(inner, "/tweets_GroundTruth.txt", "hutto_ICWSM_2014.tar.gz")
    rows = []
    # UTF-8 with CRLF line ends; splitlines() drops the \r.
    for number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise DataError(f"tweets_GroundTruth.txt line {number}: expected id, score, text")
        try:
            score = float(fields[1])
        except ValueError:
            raise DataError(f"tweets_GroundTruth.txt line {number}: bad score") from None
        # The tweets keep Twitter's HTML escaping (&amp;, &lt;, &gt;).
        rows.append({"text": one_line(html.unescape(fields[2])), "label": score})
    return dedupe(rows, "text")
