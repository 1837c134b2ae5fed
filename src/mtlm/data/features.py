"""From a task spec to tokenized features per split, cached on disk by content.

The cache key covers the data's bytes, the task's input settings, what the task learned from
its training rows (label names) and the tokenizer, so a second run with the same inputs skips
tokenization, and any change re-tokenizes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasets import Dataset, load_from_disk
from transformers import PreTrainedTokenizerBase

from mtlm.config import TaskSpec
from mtlm.data.sources import read_task_splits
from mtlm.files import staged_directory
from mtlm.tasks import KINDS, TaskKind

#: Bump when the layout of features changes, so that old caches are not reused.
FEATURES_VERSION = 1
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
    raw, notes = read_task_splits(spec)
    if task is None:
        task = KINDS[spec.kind](spec)
        task.fit(raw)
    tokenizer_hash = tokenizer_fingerprint(tokenizer)
    splits = {}
    for split, rows in raw.items():
        key = _cache_key(rows.fingerprint, task, tokenizer_hash)
        splits[split] = _cached(cache_dir, key, lambda rows=rows: task.prepare(rows, tokenizer))
    return TaskData(task, splits, notes)


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of everything that decides how the tokenizer splits text."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # A call with truncation or padding leaves those settings on the backend; they say
        # nothing about how text is split, and would change the hash from one task to the next.
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
        described = json.dumps(state, sort_keys=True)
    else:
        described = json.dumps(tokenizer.get_vocab())
    settings = json.dumps(
        [type(tokenizer).__name__, tokenizer.model_max_length, tokenizer.padding_side],
        default=str,
    )
    return hashlib.sha256((described + settings).encode()).hexdigest()


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
