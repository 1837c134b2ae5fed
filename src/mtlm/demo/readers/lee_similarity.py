"""Pairs of the 50 Lee news documents with their human similarity, from gensim's test data
(Lee, Pincombe and Welsh, 2005)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from mtlm.demo.readers.common import Row, one_line, utf8_or_latin1
from mtlm.errors import DataError

__all__ = ["read_lee_similarity"]


def read_lee_similarity(archive: Path) -> list[Row]:
    """Every unordered pair (i < j) of the 50 Lee news documents, as text, text_pair and their
    human similarity from similarities0-1.txt (0.2 to 1): 1,225 rows for pair regression.

    The splits are by pair, so the same 50 documents recur across the splits: a test pair is a
    new pair of documents the model has seen in other pairs, not a pair of unseen documents.
    """
    folder = "gensim/test/test_data/"
    with zipfile.ZipFile(archive) as zf:
        docs = [one_line(d) for d in utf8_or_latin1(zf.read(folder + "lee.cor")).splitlines()]
        matrix = zf.read(folder + "similarities0-1.txt").decode("ascii").splitlines()
    # The upper triangle of a tab-separated matrix, one line per document: row i, column j > i.
    scores = [line.split("\t") for line in matrix]
    n = len(docs)
    if not n or len(scores) != n or any(len(line) != n for line in scores):
        raise DataError(f"{archive.name}: similarities0-1.txt is not a {n}x{n} matrix")
    if not all(docs):
        raise DataError(f"{archive.name}: lee.cor line {docs.index('') + 1} is empty")
    rows = []
    for i in range(n):
        for j in range(i + 1, n):
            try:
                label = float(scores[i][j])
            except ValueError:
                raise DataError(
                    f"similarities0-1.txt line {i + 1}, column {j + 1}: bad score {scores[i][j]!r}"
                ) from None
            rows.append({"text": docs[i], "text_pair": docs[j], "label": label})
    return rows
