"""An endless, resumable stream of padded batches from one task's training features."""

from __future__ import annotations

from typing import Any

import torch
from datasets import Dataset

from mtlm.data.batching import LengthGroupedBatches, row_length
from mtlm.data.features import TaskData, training_subset
from mtlm.tasks import TaskKind


class TaskBatchStream:
    """Length-grouped batches of one task, epoch after epoch; its position is checkpointable."""

    def __init__(
        self,
        task: TaskKind,
        features: Dataset,
        batch_size: int,
        seed: int,
        pad_token_id: int,
        chunk_batches: int = 50,
        num_replicas: int = 1,
        rank: int = 0,
        sample_weights: list[float] | None = None,
    ) -> None:
        self.task = task
        self.features = features
        self.pad_token_id = pad_token_id
        lengths = [row_length(ids) for ids in features["input_ids"]]
        self.order = LengthGroupedBatches(
            lengths, batch_size, seed, chunk_batches, num_replicas, rank, sample_weights
        )
        self.epoch = 0
        self.position = 0
        self._batches = self.order.epoch(0)

    def next_batch(self) -> dict[str, torch.Tensor]:
        """The next padded batch; a new, reshuffled epoch starts when one ends."""
        if self.position >= len(self._batches):
            self.epoch += 1
            self.position = 0
            self._batches = self.order.epoch(self.epoch)
        indices = self._batches[self.position]
        self.position += 1
        columns = self.features[indices]
        rows = [{key: values[i] for key, values in columns.items()} for i in range(len(indices))]
        return self.task.collate(rows, self.pad_token_id)

    def state_dict(self) -> dict[str, Any]:
        """Epoch, position within it, and how many processes share the epoch's batches."""
        return {"epoch": self.epoch, "position": self.position, "replicas": self.order.num_replicas}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue at the saved epoch and position.

        Saved by another number of processes, the position is carried over as the number of the
        epoch's batches that all of them together took (each process takes every
        `num_replicas`-th): the epoch goes on where it was, its next batches split among the
        processes there are now (up to one batch per process is seen twice)."""
        self.epoch = state["epoch"]
        self.position = state["position"] * state["replicas"] // self.order.num_replicas
        self._batches = self.order.epoch(self.epoch)


def task_streams(
    task_data: dict[str, TaskData],
    batch_size: int,
    seed: int,
    pad_token_id: int,
    chunk_batches: int = 50,
    num_replicas: int = 1,
    rank: int = 0,
) -> dict[str, TaskBatchStream]:
    """Each task's endless batch stream over its training rows (capped, oversampled), the
    i-th task's seeded with `seed + i`; `rank`'s shard of `num_replicas`."""
    streams = {}
    for index, (name, data) in enumerate(task_data.items()):
        features = training_subset(data.splits["train"], data.task.spec, seed + index)
        streams[name] = TaskBatchStream(
            data.task,
            features,
            batch_size,
            seed + index,
            pad_token_id,
            chunk_batches,
            num_replicas,
            rank,
            data.task.sample_weights(features),
        )
    return streams
