"""Tests for mtlm.demo.readers.ner."""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from conftest import demo_task_rows, pin_fake_archive, read_jsonl, shrink_demo_task

from mtlm.config import task_spec
from mtlm.data.sources import read_task_splits
from mtlm.demo.readers import ner
from mtlm.demo.splits import demo_task_files


def test_rendered_template_gets_bio_tags() -> None:
    # `\n` is the templates' written line break.
    template = (
        r"{{prefix_male}} {{person}}'s office: {{address}},\n{{city}}. "
        r"Call {{phone_number}} at {{organization}}!"
    )
    values = {
        "prefix_male": "Dr.",
        "person": "Ann O'Neil",
        "address": "P.O. Box 255, Vila Real",
        "city": "São Paulo",
        "phone_number": "(1) 824-7680",
        "organization": "Smith & Co",
    }
    row = ner.render_template(template, values.__getitem__)
    assert list(zip(row["tokens"], row["tags"], strict=True)) == [
        ("Dr", "O"),
        (".", "O"),
        ("Ann", "B-PER"),
        ("O'Neil", "I-PER"),
        ("'s", "O"),
        ("office", "O"),
        (":", "O"),
        ("P.O", "B-LOC"),
        (".", "I-LOC"),
        ("Box", "I-LOC"),
        ("255", "I-LOC"),
        (",", "I-LOC"),
        ("Vila", "I-LOC"),
        ("Real", "I-LOC"),
        (",", "O"),
        ("São", "B-LOC"),
        ("Paulo", "I-LOC"),
        (".", "O"),
        ("Call", "O"),
        ("(", "O"),
        ("1", "O"),
        (")", "O"),
        ("824-7680", "O"),
        ("at", "O"),
        ("Smith", "B-ORG"),
        ("&", "I-ORG"),
        ("Co", "I-ORG"),
        ("!", "O"),
    ]


FAKE_TEMPLATES = "\n".join(
    [
        "My name is {{person}}",
        "{{first_name}} works for {{organization}} in {{city}}",
        "Card {{credit_card_number}} is lost",  # no column to fill it: left out
        "The corner of {street_name} and {street_name}",  # malformed: left out
        "",
        "How do I check my balance?",  # no slots: one row
        "Send it to {{address}}, {{country}}",
        "{{name_female}} turned {{age}}",
    ]
)
FAKE_PEOPLE = [
    line.split(",")
    for line in (
        "female,Marie,Hamanová,P.O. Box 255,Kangerlussuaq,Greenland,Simple Solutions",
        "female,Patricia,Desrosiers,Avenida Noruega 42,Vila Real,Portugal,Formula Gray",
        "male,Grgur,Lukić,ul. Zamkowa 33,[[w:Kalisz|Kalisz],Poland,Elm Farm",
        "male,Kauê,Silva,1659 Hoog St,Brakpan,South Africa,Ideal Garden Maintenance",
        "male,Brian,Greig,5 Crestview Terrace,San Antonio,United States,Tape World",
    )
]


def _fake_presidio(path: Path) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    columns = ["Gender", "GivenName", "Surname", "StreetAddress", "City", "CountryFull", "Company"]
    extra = ["Title", "TelephoneNumber", "EmailAddress", "Domain", "ZipCode", "Age", "Birthday"]
    writer.writerow(columns + extra + ["Occupation", "NameSet"])
    other = "Mr.,555 0101,a@b.com,b.com,1234,37,3/29/1982,Clerk,Czech".split(",")
    writer.writerows([*person, *other] for person in FAKE_PEOPLE)
    folder = "presidio_evaluator/data_generator/raw_data/"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(folder + "templates.txt", FAKE_TEMPLATES)
        zf.writestr(folder + "FakeNameGenerator.com_3000.csv", "\ufeff" + buf.getvalue())


@pytest.fixture
def fake_ner(tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small fake presidio-evaluator wheel, pinned and cached."""
    path = pin_fake_archive(monkeypatch, tmp_cache, "presidio-evaluator", _fake_presidio)
    shrink_demo_task(monkeypatch, "ner", 100, 20, 20)
    monkeypatch.setattr(ner, "RENDERINGS", 8)
    return path


def test_ner_renders_the_fillable_templates_from_the_fake_identities(fake_ner: Path) -> None:
    rows = ner.read_ner(fake_ner)
    assert rows == ner.read_ner(fake_ner)
    groups = Counter(row["_group"] for row in rows)
    # Lines 1, 2, 7 and 8 have slots the identities fill; line 6 has none; the rest are out.
    assert set(groups) == {1, 2, 6, 7, 8} and groups[6] == 1
    assert all(1 < groups[line] <= 8 for line in (1, 2, 7, 8))
    names = {f"{p[1]} {p[2]}" for p in FAKE_PEOPLE if "[" not in p[4]}
    for row in rows:
        assert len(row["tokens"]) == len(row["tags"])
        if row["_group"] == 1:
            assert row["tokens"][:3] == ["My", "name", "is"]
            assert " ".join(row["tokens"][3:]) in names
            assert row["tags"] == ["O", "O", "O", "B-PER", "I-PER"]
        if row["_group"] == 8:
            # A female name, and the age tagged O.
            assert " ".join(row["tokens"][:2]) in {"Marie Hamanová", "Patricia Desrosiers"}
            assert row["tags"] == ["B-PER", "I-PER", "O", "O"]
    text = " ".join(token for row in rows for token in row["tokens"])
    assert "Kalisz" not in text and "Lukić" not in text


def test_ner_splits_by_template(fake_ner: Path) -> None:
    rows = ner.read_ner(fake_ner)
    template_of = {json.dumps(row["tokens"]): row["_group"] for row in rows}
    files = demo_task_files("ner")
    parts = {split: read_jsonl(path) for split, path in files.items()}
    assert all(set(row) == {"tokens", "tags"} for part in parts.values() for row in part)
    splits_of: dict[int, set[str]] = {}
    for split, part in parts.items():
        for row in part:
            splits_of.setdefault(template_of[json.dumps(row["tokens"])], set()).add(split)
    assert all(len(splits) == 1 for splits in splits_of.values())
    assert sum(len(part) for part in parts.values()) == len(rows)
    assert all(0 < len(parts[s]) <= 20 for s in ("validation", "test"))
    # Built again from scratch, byte for byte the same.
    first = {split: path.read_bytes() for split, path in files.items()}
    shutil.rmtree(files["train"].parent)
    again = demo_task_files("ner")
    assert {split: path.read_bytes() for split, path in again.items()} == first


@pytest.mark.integration
def test_demo_ner_tags() -> None:
    parts = demo_task_rows("ner")
    tags = {f"{bio}-{kind}" for bio in "BI" for kind in ("PER", "LOC", "ORG")} | {"O"}
    for rows in parts.values():
        assert {tag for row in rows for tag in row["tags"]} == tags
        for row in rows:
            assert len(row["tokens"]) == len(row["tags"])
            # An I- tag continues an entity of its own type.
            for before, tag in zip(["O", *row["tags"]], row["tags"], strict=False):
                assert not tag.startswith("I-") or before[2:] == tag[2:]
    spec = task_spec({"name": "ner", "kind": "token_classification", "data": {"bundled": "ner"}})
    splits, _ = read_task_splits(spec)
    assert {split: len(part.rows) for split, part in splits.items()} == {
        split: len(rows) for split, rows in parts.items()
    }
