"""From a task spec to tokenized features per split, cached on disk by content.

The cache holds two kinds of entries, both keyed by content (bytes, not file dates):

* features: one Arrow dataset (`datasets.Dataset`) per split, in a folder named by the hash of
  the split's rows (their file bytes), the task's feature settings, what the task learned from
  its rows (label names) and the tokenizer. Any change re-tokenizes; a setting that shapes only
  the loss, the head or the sampling shares the features.
* tasks: `tasks/<key>.json` per task read from local files, keyed by the bytes of every data
  file, the whole task spec (its parse settings included), `FEATURES_VERSION` and
  `ROW_CHECKS_VERSION`. It records what reading the files gave (the splits, each split's row
  fingerprint, the notes) and what `task.fit` learned from the rows (`task.state`, as JSON).
  A second load of the same files and spec hashes the files and loads the features, skipping
  parsing, validation and fitting: the same bytes under the same spec already passed them. A
  task passed in by the caller (a trained model's task, with its own state) reuses the entry
  only when features built with its state are in the cache; otherwise, and for hub datasets,
  the rows are read again.

Both are written atomically (a staged folder, a renamed file), and a task's entry only once
all its features are in, so a reader never finds half an entry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, load_from_disk
from transformers import PreTrainedTokenizerBase

from mtlm.config import TaskSpec
from mtlm.data.rows import SplitRows
from mtlm.data.sources import SPLITS, read_task_splits
from mtlm.files import staged_directory, write_json
from mtlm.tasks import KINDS, TaskKind

#: Bump when the layout of features changes, so that old caches are not reused.
FEATURES_VERSION = 2
#: Bump when rows are checked more strictly: a task's entry lets a second load skip the checks,
#: so an entry recorded under looser ones must not be reused.
ROW_CHECKS_VERSION = 2
#: Task settings that shape the loss, the head or the sampling, not the features; every other
#: setting is part of the cache key, so a new setting can never reuse stale features.
_NOT_FEATURE_SETTINGS = frozenset(
    {
        "name",
        "data",
        "labels",
        "pooling",
        "dropout",
        "loss_weight",
        "primary_metric",
        "max_examples",
        "oversample",
        "class_weights",
        "resample",
        "positive_label",
        "mlm_probability",
        "max_new_tokens",
        "decoding",
    }
)
#: What a task learns from its model rather than its rows (the model binds it after the
#: features are built) or what shapes only the loss.
_NOT_FEATURE_STATE = frozenset({"class_weights", "family", "vocab_size", "mask_token_id"})
#: Data settings that change how a file's bytes become rows (the file hash does not cover them).
_PARSE_SETTINGS = ("format", "conll_token_column", "conll_tag_column")


@dataclass
class TaskData:
    """A task and its tokenized features per split."""

    task: TaskKind
    splits: dict[str, Dataset]
    notes: list[str] = field(default_factory=list)


def load_task_data(
    spec: TaskSpec,
    tokenizer: PreTrainedTokenizerBase,
    cache_dir: Path | None,
    task: TaskKind | None = None,
) -> TaskData:
    """Read, validate and tokenize every split of a task, reusing cached features.

    A `task` that already learned its state (a trained model's task) keeps it; otherwise a new
    task learns it from the rows.
    """
    tokenizer_hash = tokenizer_fingerprint(tokenizer)
    files = _data_files(spec) if cache_dir is not None else None
    key = _task_key(spec, files) if files else None
    entry = cache_dir / "tasks" / f"{key}.json" if key else None
    if entry is not None:
        hit = _from_task_entry(entry, spec, task, tokenizer_hash, cache_dir)
        if hit is not None:
            return hit
    raw, notes = read_task_splits(spec)
    fitted = task is None
    if task is None:
        task = KINDS[spec.kind](spec)
        task.fit(raw)
    splits = {}
    for split, rows in raw.items():
        key = _cache_key(rows.fingerprint, task, tokenizer_hash)
        splits[split] = _cached(cache_dir, key, lambda rows=rows: task.prepare(rows, tokenizer))
    if entry is not None and (fitted or not entry.is_file()):
        _write_task_entry(entry, raw, notes, task.state if fitted else None)
    return TaskData(task, splits, notes)


def _data_files(spec: TaskSpec) -> dict[str, Path] | None:
    """The local files a task's rows come from, by split (`path` for one file split with a
    seed); None for a hub dataset, whose rows have no bytes of ours to hash."""
    data = spec.data
    if data.bundled:
        from mtlm.bundled import bundled_task_files

        return bundled_task_files(data.bundled)
    if data.path:
        return {"path": Path(data.path)}
    if data.hub:
        return None
    return {split: Path(getattr(data, split)) for split in SPLITS if getattr(data, split)}


def _task_key(spec: TaskSpec, files: dict[str, Path]) -> str | None:
    """The key of a task's entry: the bytes of its files and its whole spec (what the rows,
    the notes and `fit` depend on); None when a file cannot be read (reading it again gives
    the error)."""
    try:
        hashes = {
            name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items()
        }
    except OSError:
        return None
    description = json.dumps(
        [FEATURES_VERSION, ROW_CHECKS_VERSION, "task", hashes, spec.model_dump(mode="json")],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(description.encode()).hexdigest()[:32]


def _from_task_entry(
    entry: Path,
    spec: TaskSpec,
    task: TaskKind | None,
    tokenizer_hash: str,
    cache_dir: Path,
) -> TaskData | None:
    """The task and its features from the task's entry, or None where the entry does not
    serve: none yet, no learned state for a new task, or features missing for this state."""
    try:
        recorded = json.loads(entry.read_text(encoding="utf-8"))
        state, fingerprints, notes = recorded["state"], recorded["splits"], recorded["notes"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(fingerprints, dict) or not isinstance(notes, list):
        return None
    if task is None:
        if state is None:
            return None
        task = KINDS[spec.kind](spec, state)
    targets = {
        split: cache_dir / _cache_key(fingerprint, task, tokenizer_hash)
        for split, fingerprint in fingerprints.items()
    }
    if not all(target.is_dir() for target in targets.values()):
        return None
    splits = {split: load_from_disk(str(target)) for split, target in targets.items()}
    return TaskData(task, splits, list(notes))


def _write_task_entry(
    entry: Path, raw: dict[str, SplitRows], notes: list[str], state: dict[str, Any] | None
) -> None:
    """Record what reading and fitting gave; a state that JSON would not give back unchanged
    is left out (the next load then fits again)."""
    if state is not None and json.loads(json.dumps(state, default=str)) != state:
        state = None
    recorded = {
        "splits": {split: rows.fingerprint for split, rows in raw.items()},
        "notes": notes,
        "state": state,
    }
    write_json(entry, recorded)


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of everything that decides how the tokenizer splits text."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        described = _without_call_settings(backend)
    else:
        described = json.dumps(tokenizer.get_vocab())
    settings = json.dumps(
        [type(tokenizer).__name__, tokenizer.model_max_length, tokenizer.padding_side],
        default=str,
    )
    return hashlib.sha256((described + settings).encode()).hexdigest()


def _without_call_settings(backend) -> str:
    """A fast tokenizer's serialized state without its truncation and padding.

    A call with truncation or padding leaves those settings on the backend; they say nothing
    about how text is split, and would change the hash from one task to the next. They are
    cleared for the serialization and put back (rather than the large state parsed, edited and
    dumped again, which cost 0.2 s a task).
    """
    truncation, padding = backend.truncation, backend.padding
    backend.no_truncation()
    backend.no_padding()
    try:
        return backend.to_str()
    finally:
        if truncation is not None:
            backend.enable_truncation(**truncation)
        if padding is not None:
            backend.enable_padding(**padding)


def _cache_key(data_fingerprint: str, task: TaskKind, tokenizer_hash: str) -> str:
    settings = task.spec.model_dump(mode="json", exclude=_NOT_FEATURE_SETTINGS)
    state = {k: v for k, v in task.state.items() if k not in _NOT_FEATURE_STATE}
    settings.update({name: getattr(task.spec.data, name) for name in _PARSE_SETTINGS})
    description = json.dumps(
        [FEATURES_VERSION, data_fingerprint, settings, state, tokenizer_hash],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(description.encode()).hexdigest()[:32]


def _cached(cache_dir: Path | None, key: str, build) -> Dataset:
    if cache_dir is None:
        return Dataset.from_dict(build())
    target = cache_dir / key
    if not target.is_dir():
        with staged_directory(target) as staging:
            Dataset.from_dict(build()).save_to_disk(str(staging))
    return load_from_disk(str(target))


def training_subset(dataset: Dataset, spec: TaskSpec, seed: int) -> Dataset:
    """The training rows a run uses: at most `max_examples` of them (a seeded choice), each
    repeated `oversample` times."""
    if spec.max_examples is None and spec.oversample == 1:
        return dataset
    indices = np.random.default_rng(seed).permutation(len(dataset))[: spec.max_examples]
    return dataset.select(np.tile(np.sort(indices), spec.oversample))
