"""Read a task's rows, split by split, from local files or a Hugging Face dataset.

Every row keeps a locator (`line 12`, `row 3`) so that later validation can name the exact
place of a bad value.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterable
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import numpy as np

from mtlm.config import DataSpec, TaskSpec, TrainingSpec
from mtlm.data.rows import SplitRows
from mtlm.errors import ConfigError, DataError

SPLITS = ("train", "validation", "test")
_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".conll": "conll",
    ".conllu": "conll",
    ".bio": "conll",
}
_HUB_SPLIT_ALIASES = {"validation": ("validation", "valid", "dev"), "test": ("test",)}


def check_split_name(split: str, key: str) -> None:
    """Refuse a split name that no task can have (the splits are train, validation and test,
    whatever a hub dataset calls them); the ConfigError names `key`."""
    if split in SPLITS:
        return
    aliased = [name for name, aliases in _HUB_SPLIT_ALIASES.items() if split in aliases]
    hint = (
        f" (a hub dataset's {split!r} split is read as {aliased[0]!r})"
        if aliased
        else "".join(f" (did you mean {close!r}?)" for close in get_close_matches(split, SPLITS, 1))
    )
    raise ConfigError(f"{key}: no split {split!r}; the splits are train, validation and test{hint}")


def check_split_names(training: TrainingSpec) -> None:
    """The config's `training.eval_split` and `training.final_eval_split` name splits that a
    task can have."""
    for key in ("eval_split", "final_eval_split"):
        check_split_name(getattr(training, key), f"training.{key}")


def check_split_present(split: str, key: str, splits: dict[str, Iterable[str]]) -> None:
    """Refuse a split that none of the tasks has (`splits`: each task's split names); the
    ConfigError names `key` and the splits the tasks do have."""
    if any(split in names for names in splits.values()):
        return
    present = {name for names in splits.values() for name in names}
    raise ConfigError(
        f"{key}: no task has a {split!r} split (the tasks have "
        f"{', '.join(name for name in SPLITS if name in present)}); give a task {split} data "
        f"or set {key} to one of those"
    )


def read_task_splits(spec: TaskSpec) -> tuple[dict[str, SplitRows], list[str]]:
    """All available splits of a task, and notes about splits that were derived or are missing."""
    data = spec.data
    notes: list[str] = []
    if data.bundled:
        from mtlm.bundled import bundled_task_files

        files = {split: str(path) for split, path in bundled_task_files(data.bundled).items()}
        splits = {split: read_file(path, data.format, spec) for split, path in files.items()}
    elif data.hub:
        splits, notes = _read_hub(data, spec)
    elif data.path:
        splits = _seeded_split(read_file(data.path, data.format, spec), data)
        notes.append(
            f"{spec.name}: validation and test split from {data.path} with seed {data.split_seed}"
        )
    else:
        splits = {
            split: read_file(getattr(data, split), data.format, spec)
            for split in SPLITS
            if getattr(data, split)
        }
    if "train" not in splits:
        raise DataError(f"task {spec.name}: no training data (give data.train or data.path)")
    for split in SPLITS:
        if split not in splits:
            notes.append(f"{spec.name}: no {split} split; it is not evaluated on {split}")
    for split, rows in splits.items():
        if not rows.rows:
            raise DataError(f"{rows.source}: the {split} split of task {spec.name} is empty")
    return splits, notes


def read_file(path: str, fmt: str = "auto", spec: TaskSpec | None = None) -> SplitRows:
    """Rows of one local file; `fmt` "auto" takes the format from the file's suffix.

    CoNLL files need the task's `spec` (which columns hold words and tags, and their names).
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{path}: data file not found" + (f" (task {spec.name})" if spec else ""))
    fmt = fmt if fmt != "auto" else _SUFFIX_FORMATS.get(file.suffix.lower())
    if fmt is None:
        key = f"tasks[{spec.name}].data.format" if spec else "the format"
        raise DataError(
            f"{path}: cannot tell the format from the suffix {file.suffix!r}; "
            f"set {key} to one of csv, tsv, jsonl, parquet, conll"
        )
    if fmt == "conll" and spec is None:
        raise DataError(f"{path}: CoNLL files are read only as task data")
    raw = file.read_bytes()
    fingerprint = hashlib.sha256(raw).hexdigest()
    if fmt == "parquet":
        rows, locators = _parse_parquet(file)
    else:
        text = _decode(raw, path)
        if fmt == "jsonl":
            rows, locators = _parse_jsonl(text, path)
        elif fmt == "conll":
            rows, locators = _parse_conll(text, path, spec)
        elif fmt == "text":
            rows, locators = _parse_text(text, _column(spec, "text_column", "text"))
        else:
            rows, locators = _parse_delimited(text, "\t" if fmt == "tsv" else ",", path)
    return SplitRows(rows, path, locators, fingerprint)


def _decode(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        # utf-8-sig reports the offset after a byte-order mark; count from the file's start.
        start = error.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        line = raw[:start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: text is not valid UTF-8 (byte {raw[start]:#04x})"
        ) from None


class _NotStrictJson(ValueError):
    """JSON that Python's parser accepts and the standard does not, or that loses data."""


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    row = dict(pairs)
    if len(row) < len(pairs):
        counts = Counter(key for key, _ in pairs)
        repeated = next(key for key, count in counts.items() if count > 1)
        raise _NotStrictJson(f"key {repeated!r} appears twice in one object, so a value is lost")
    return row


def _no_constant(name: str) -> Any:
    raise _NotStrictJson(f"{name} is not a JSON value; write null for a missing value")


def _parse_jsonl(text: str, path: str) -> tuple[list[dict[str, Any]], list[str]]:
    rows, locators = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=_no_repeated_keys, parse_constant=_no_constant)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, line {number}: not valid JSON ({error.msg})") from None
        except _NotStrictJson as error:
            raise DataError(f"{path}, line {number}: {error}") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}, line {number}: expected a JSON object per line")
        rows.append(row)
        locators.append(f"line {number}")
    return rows, locators


def _parse_text(text: str, column: str) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per non-empty line of plain text (a language-modelling corpus), under `column`."""
    numbered = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)]
    rows = [{column: line} for _, line in numbered if line]
    return rows, [f"line {number}" for number, line in numbered if line]


def _parse_delimited(
    text: str, delimiter: str, path: str
) -> tuple[list[dict[str, Any]], list[str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, locators = [], []
    try:
        for row in reader:
            if None in row:
                raise DataError(
                    f"{path}, line {reader.line_num}: more fields than the header has columns"
                )
            rows.append(row)
            locators.append(f"line {reader.line_num}")
    except csv.Error as error:
        raise DataError(f"{path}, line {reader.line_num}: {error}") from None
    return rows, locators


def _parse_parquet(file: Path) -> tuple[list[dict[str, Any]], list[str]]:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(file).to_pylist()
    except Exception as error:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{file}: not a readable Parquet file ({error})") from None
    return rows, [f"row {i + 1}" for i in range(len(rows))]


def _column(spec: TaskSpec | None, option: str, default: str) -> str:
    """The column a file format fills: the task's own name for it where its kind takes that
    option (`text_column`, `tokens_column`, ...), else the usual name."""
    return getattr(spec, option, default)


def _parse_conll(text: str, path: str, spec: TaskSpec) -> tuple[list[dict[str, Any]], list[str]]:
    rows: list[dict[str, Any]] = []
    locators: list[str] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    words = _column(spec, "tokens_column", "tokens")
    labels = _column(spec, "tags_column", "tags")

    def flush() -> None:
        if tokens:
            rows.append({words: list(tokens), labels: list(tags)})
            locators.append(f"line {start}")
            tokens.clear()
            tags.clear()

    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            flush()
            continue
        if not tokens:
            start = number
        try:
            if len(fields) < 2:
                raise IndexError
            tokens.append(fields[spec.data.conll_token_column])
            tags.append(fields[spec.data.conll_tag_column])
        except IndexError:
            raise DataError(
                f"{path}, line {number}: expected a token and a tag column, "
                f"found {len(fields)} field(s)"
            ) from None
    flush()
    return rows, locators


def _read_hub(data: DataSpec, spec: TaskSpec) -> tuple[dict[str, SplitRows], list[str]]:
    """The splits of a hub dataset: those `data.splits` names, the others carved from train;
    without `data.splits`, those the dataset has by their usual names (`dev` reads as
    validation), and when it has only a train split the others carved from it."""
    loaded = _load_hub(data, spec)
    if data.splits is None:
        splits = {}
        for split in SPLITS:
            present = [
                alias for alias in _HUB_SPLIT_ALIASES.get(split, (split,)) if alias in loaded
            ]
            if present:
                splits[split] = _hub_split(loaded, present[0], data)
        if set(splits) != {"train"}:
            return splits, []
        note = f"{spec.name}: the dataset has only a train split; derived the others"
        return _seeded_split(splits["train"], data), [note]
    named = data.splits.model_dump(exclude_none=True)
    for split, name in named.items():
        if name not in loaded:
            raise DataError(
                f"tasks[{spec.name}].data.splits.{split}: dataset {data.hub!r} has no split "
                f"{name!r} (its splits: {', '.join(loaded)})"
            )
    splits = {split: _hub_split(loaded, name, data) for split, name in named.items()}
    notes = [
        f"{spec.name}: the {split} split is the dataset's {name!r} split"
        for split, name in named.items()
        if name != split
    ]
    carved = tuple(
        split
        for split in ("validation", "test")
        if split not in named and getattr(data, f"{split}_fraction") > 0
    )
    if carved:
        splits.update(_seeded_split(splits["train"], data, carved))
        notes += [
            f"{spec.name}: the {split} split is carved from the dataset's {named['train']!r} "
            f"split ({getattr(data, f'{split}_fraction'):.0%} of it, seed {data.split_seed})"
            for split in carved
        ]
    return splits, notes


def _load_hub(data: DataSpec, spec: TaskSpec) -> Any:
    """The dataset's splits (a `datasets.DatasetDict`): a folder written by `save_to_disk`
    (`hub` itself, or its sub-folder named by `hub_config`, one per configuration) is loaded
    from disk; any other name goes to `datasets.load_dataset`."""
    import datasets

    folder = Path(data.hub).expanduser()
    saved = [folder / data.hub_config] if data.hub_config else []
    saved = [path for path in [*saved, folder] if (path / "dataset_dict.json").is_file()]
    try:
        if saved:
            return datasets.load_from_disk(str(saved[0]), **data.hub_kwargs)
        return datasets.load_dataset(data.hub, data.hub_config, **data.hub_kwargs)
    except Exception as error:  # the hub client raises many types; the user needs the message
        raise DataError(
            f"dataset {data.hub!r} (task {spec.name}): cannot load it ({error})"
        ) from None


def _hub_split(loaded: Any, name: str, data: DataSpec) -> SplitRows:
    """One split of a loaded dataset, its class ids read as their class names."""
    part = loaded[name]
    rows = part.to_list()
    named = _class_names(part.features)
    for row in rows:
        for column, decode in named.items():
            row[column] = decode(row[column])
    fingerprint = part._fingerprint
    if named:  # the rows differ from the dataset's own; so must their fingerprint
        fingerprint = hashlib.sha256(f"{fingerprint}:class names".encode()).hexdigest()
    return SplitRows(
        rows=rows,
        source=f"{data.hub}[{name}]",
        locators=[f"row {i + 1}" for i in range(len(part))],
        fingerprint=fingerprint,
    )


def _class_names(features: Any) -> dict[str, Any]:
    """For each column of class ids (`ClassLabel`, or a list of them as tags are), a function
    from its ids to their names; `-1`, how `datasets` marks a hidden label, reads as None."""
    import datasets

    def name(feature: datasets.ClassLabel) -> Any:
        return lambda value: None if value is None or value < 0 else feature.int2str(value)

    decoders: dict[str, Any] = {}
    for column, feature in features.items():
        inner = getattr(feature, "feature", None)
        if isinstance(feature, datasets.ClassLabel):
            decoders[column] = name(feature)
        elif isinstance(inner, datasets.ClassLabel):
            decode = name(inner)
            decoders[column] = lambda values, decode=decode: (
                None if values is None else [decode(value) for value in values]
            )
    return decoders


def _seeded_split(
    rows: SplitRows, data: DataSpec, carved: tuple[str, ...] = ("validation", "test")
) -> dict[str, SplitRows]:
    """`rows` shuffled with the data's seed, the `carved` splits (their fractions of the rows)
    cut off and the rest kept as train."""
    fraction = {
        split: getattr(data, f"{split}_fraction") if split in carved else 0.0
        for split in ("validation", "test")
    }
    order = np.random.default_rng(data.split_seed).permutation(len(rows.rows)).tolist()
    n_test = round(len(order) * fraction["test"])
    n_validation = round(len(order) * fraction["validation"])
    parts = {
        "test": order[:n_test],
        "validation": order[n_test : n_test + n_validation],
        "train": order[n_test + n_validation :],
    }
    key = f"{rows.fingerprint}:{data.split_seed}:{fraction['validation']}:{fraction['test']}"
    return {
        split: rows.select(indices, hashlib.sha256(f"{key}:{split}".encode()).hexdigest())
        for split, indices in parts.items()
        if indices
    }
