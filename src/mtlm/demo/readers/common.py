"""What the demo readers share: the row type, text cleaning, de-duplication, tar members."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterable
from typing import Any

from mtlm.errors import DataError

__all__ = ["GROUP", "SEED", "Row", "dedupe", "one_line", "tar_member", "utf8_or_latin1"]

Row = dict[str, Any]
#: The row key that keeps rows together in one split (see mtlm.demo.tasks.DemoTask).
GROUP = "_group"
#: The seed of every random choice made while building the demo data.
SEED = 0


def one_line(text: str) -> str:
    """`text` with every run of whitespace, line breaks included, as one space."""
    return " ".join(text.split())


def dedupe(rows: Iterable[Row], key: str) -> list[Row]:
    """The rows whose `key` value has not been seen before, in order."""
    # Exact duplicates would otherwise land in train and test at once and inflate scores.
    seen: set[str] = set()
    out = []
    for row in rows:
        k = json.dumps(row[key], ensure_ascii=False)
        if k not in seen:
            seen.add(k)
            out.append(row)
    return out


def tar_member(tar: tarfile.TarFile, suffix: str, where: str) -> bytes:
    """The bytes of the one member of `tar` whose name ends in `suffix`."""
    names = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(suffix)]
    if len(names) != 1:
        raise DataError(f"{where}: expected one member ending in {suffix}, found {len(names)}")
    f = tar.extractfile(names[0])
    if f is None:
        raise DataError(f"{where}: cannot read {names[0].name}")
    return f.read()


def utf8_or_latin1(raw: bytes) -> str:
    """`raw` decoded as UTF-8, or as latin-1 where it is not valid UTF-8."""
    # The BBC files are UTF-8 except one with a bare latin-1 pound sign, and lee.cor is latin-1;
    # decoding UTF-8 as latin-1 would turn every "£" into "Â£".
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
