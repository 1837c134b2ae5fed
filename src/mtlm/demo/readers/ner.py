"""Named entities in presidio-evaluator's sentence templates, filled with its fake identities."""

from __future__ import annotations

import csv
import io
import operator
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mtlm.demo.readers.common import GROUP, SEED, Row, dedupe, one_line
from mtlm.errors import DataError

__all__ = ["RENDERINGS", "read_ner", "render_template"]


class _Slot(NamedTuple):
    """How a template slot is filled from a fake identity (a row of the CSV) and tagged."""

    entity: str | None  # PER, LOC or ORG; None: the value is tagged O
    value: Callable[[dict[str, str]], str]
    gender: str | None = None  # take the value from an identity of this gender


def _full_name(person: dict[str, str]) -> str:
    return f"{person['GivenName']} {person['Surname']}"


def _address(person: dict[str, str]) -> str:
    return f"{person['StreetAddress']}, {person['City']}"


def _year(person: dict[str, str]) -> str:
    return person["Birthday"].rpartition("/")[2]


_given, _surname = operator.itemgetter("GivenName"), operator.itemgetter("Surname")
_title, _nationality = operator.itemgetter("Title"), operator.itemgetter("NameSet")
_birthday = operator.itemgetter("Birthday")
# The slots of presidio-evaluator's templates that the fake identities can fill. Names are PER,
# places and addresses LOC (presidio counts an address as a location too), companies ORG. Titles,
# contact details, dates, ages, jobs and nationalities are filled but tagged O: nationalities
# would be MISC in CoNLL, which this tag set lacks. The CSV has no usable credit card, IBAN, SSN,
# IP address, licence, weekday or separate street name and house number (its card numbers are
# spreadsheet floats like 5.54563E+15), so templates with those slots are left out.
_SLOTS: dict[str, _Slot] = {
    "person": _Slot("PER", _full_name),
    "name": _Slot("PER", _full_name),
    "name_female": _Slot("PER", _full_name, "female"),
    "name_male": _Slot("PER", _full_name, "male"),
    "first_name": _Slot("PER", _given),
    "first_name_female": _Slot("PER", _given, "female"),
    "first_name_male": _Slot("PER", _given, "male"),
    "first_name_nonbinary": _Slot("PER", _given),
    "last_name": _Slot("PER", _surname),
    "last_name_female": _Slot("PER", _surname, "female"),
    "last_name_male": _Slot("PER", _surname, "male"),
    "city": _Slot("LOC", operator.itemgetter("City")),
    "country": _Slot("LOC", operator.itemgetter("CountryFull")),
    "address": _Slot("LOC", _address),
    "organization": _Slot("ORG", operator.itemgetter("Company")),
    "prefix": _Slot(None, _title),
    "prefix_female": _Slot(None, _title, "female"),
    "prefix_male": _Slot(None, _title, "male"),
    "phone_number": _Slot(None, operator.itemgetter("TelephoneNumber")),
    "email": _Slot(None, operator.itemgetter("EmailAddress")),
    "url": _Slot(None, operator.itemgetter("Domain")),
    "zipcode": _Slot(None, operator.itemgetter("ZipCode")),
    "postcode": _Slot(None, operator.itemgetter("ZipCode")),
    "age": _Slot(None, operator.itemgetter("Age")),
    "date_of_birth": _Slot(None, _birthday),
    "date_time": _Slot(None, _birthday),
    "year": _Slot(None, _year),
    "job": _Slot(None, operator.itemgetter("Occupation")),
    "nationality": _Slot(None, _nationality),
    "nation_woman": _Slot(None, _nationality, "female"),
}
_TEMPLATE_SLOT = re.compile(r"\{\{(\w+)\}\}")
# A word keeps inner - ' . @ / (e-mail, it's, P.O, 3/29/1982, a@b.com), a possessive 's after a
# slot is a token, and any other non-space character is a token of its own.
_TOKEN = re.compile(r"['’]s\b|\w+(?:[-'’.@/]\w+)*|\S")
# Each template is rendered this many times (once if it has no slots) with other identities.
RENDERINGS = 15


def render_template(template: str, fill: Callable[[str], str]) -> Row:
    """Tokens and BIO tags of `template` with each `{{slot}}` replaced by `fill(slot)`.

    Text and values are tokenised apart, so a slot's tokens never merge with the text around
    it ("{{person}}'s" gives the name's tokens, then 's). A written `\\n` is a line break.
    """
    tokens: list[str] = []
    tags: list[str] = []
    for index, piece in enumerate(_TEMPLATE_SLOT.split(template)):
        if index % 2 == 0:
            words = _TOKEN.findall(piece.replace("\\n", " "))
            tags += ["O"] * len(words)
        else:
            words = _TOKEN.findall(fill(piece))
            entity = _SLOTS[piece].entity
            if entity is None:
                tags += ["O"] * len(words)
            elif words:
                tags += [f"B-{entity}"] + [f"I-{entity}"] * (len(words) - 1)
        tokens += words
    return {"tokens": tokens, "tags": tags}


def read_ner(archive: Path) -> list[Row]:
    """Sentences of presidio-evaluator's templates with fake people, places and companies in
    their slots, tagged B-/I-PER, LOC, ORG and O; each row's `_group` is its template's line,
    so a template's renderings share a split and the test frames are unseen sentences."""
    folder = "presidio_evaluator/data_generator/raw_data/"
    with zipfile.ZipFile(archive) as zf:
        templates = zf.read(folder + "templates.txt").decode("utf-8").splitlines()
        table = zf.read(folder + "FakeNameGenerator.com_3000.csv").decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(table, newline=""))
    needed = {"Gender", "GivenName", "Surname", "StreetAddress", "City", "CountryFull", "Company"}
    needed |= {"Title", "TelephoneNumber", "EmailAddress", "Domain", "ZipCode", "Age", "Birthday"}
    needed |= {"Occupation", "NameSet"}
    missing = needed - set(reader.fieldnames or ())
    if missing:
        raise DataError(f"{archive.name}: FakeNameGenerator.com_3000.csv lacks {sorted(missing)}")
    # One identity has wiki markup for a city ("[[w:Kalisz|Kalisz]").
    people = [person for person in reader if "[" not in person["City"]]
    pools = {
        slot: [
            value
            for person in people
            if spec.gender in (None, person["Gender"])
            if (value := one_line(spec.value(person)))
        ]
        for slot, spec in _SLOTS.items()
    }
    rng = np.random.default_rng(SEED)

    def fill(slot: str) -> str:
        return pools[slot][rng.integers(len(pools[slot]))]

    rows = []
    for number, template in enumerate(templates, start=1):
        slots = _TEMPLATE_SLOT.findall(template)
        text = _TEMPLATE_SLOT.sub("", template)
        # Skip blank lines, unknown slots and a malformed `{street_name}`.
        if (not slots and not text.strip()) or "{" in text or "}" in text:
            continue
        if any(slot not in _SLOTS for slot in slots):
            continue
        for _ in range(RENDERINGS if slots else 1):
            rows.append({**render_template(template, fill), GROUP: number})
    # Two renderings can come out the same ("I just turned 37"); keep one.
    return dedupe(rows, "tokens")
