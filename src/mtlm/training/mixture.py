"""One stream of batches of all tasks, for training loops that take one dataset (transformers'
Trainer, Lightning): a sampler draws each step's task, whose stream gives the batch."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from torch.utils.data import IterableDataset

from mtlm.training.samplers import SamplerSpec, build_sampler
from mtlm.training.streams import TaskBatchStream

#: The key of a batch that names its task.
TASK_KEY = "task"


def sampler_options(sampler: SamplerSpec | dict[str, Any] | None) -> SamplerSpec:
    """Sampler options as given (a spec, or a mapping as a config writes them), checked;
    proportional to the training sizes when none are given."""
    from mtlm.config import sampler_spec

    if isinstance(sampler, SamplerSpec):
        return sampler
    return sampler_spec(sampler or {"kind": "proportional"})


class TaskMixture(IterableDataset):
    """Padded batches of every task, each step's task drawn by a sampler; one epoch is every
    task's training rows once (Σ N_i / batch size steps), as in mtlm's own Trainer."""

    def __init__(
        self,
        streams: dict[str, TaskBatchStream],
        sampler_spec: SamplerSpec,
        seed: int,
        batch_size: int,
        num_replicas: int = 1,
    ) -> None:
        self.streams = streams
        sizes = {name: len(stream.features) for name, stream in streams.items()}
        self.sampler = build_sampler(sizes, sampler_spec, seed)
        self.steps_per_epoch = math.ceil(sum(sizes.values()) / (batch_size * num_replicas))

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for _ in range(self.steps_per_epoch):
            task = self.sampler.sample()
            yield {TASK_KEY: task, **self.streams[task].next_batch()}
