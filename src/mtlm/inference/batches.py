"""The one batching rule: which features are predicted together.

A task's features are sorted by length (a task that generates: by prompt length), stably, and
cut into batches of `batch_size` (label scoring reads every label after each prompt, so it
takes `batch_size // labels` prompts); each batch is padded to its longest. A feature's
prediction so depends on its batch alone: not on the tasks predicted with it, and not on which
process predicts the batch (see `mtlm.inference.shards`).
"""

from __future__ import annotations

from typing import Any

from mtlm.tasks import TaskKind


def feature_batches(
    task: TaskKind, features: dict[str, list[Any]], batch_size: int
) -> list[list[int]]:
    """The batches, as lists of feature indices, in which `task` predicts `features`."""
    if task.generates:
        lengths = [
            min(len(ids), length)
            for ids, length in zip(features["input_ids"], features["prompt_length"], strict=True)
        ]
        if task.spec.decoding == "score_labels":
            batch_size = max(1, batch_size // len(task.label_names))
    else:
        lengths = [len(ids) for ids in features["input_ids"]]
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
