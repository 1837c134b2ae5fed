"""How batches are formed inside one task: length-grouped order and dynamic padding.

How much of each task is trained is the sampler's business (training/samplers/), not this
module's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

#: Value a padded position gets, by field; every other list field is padded with 0.
_PAD_VALUES = {"labels": -100}


def pad_features(features: list[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Stack features into tensors, padding list fields to the longest in the batch."""
    batch: dict[str, torch.Tensor] = {}
    for key in features[0]:
        values = [feature[key] for feature in features]
        if isinstance(values[0], list):
            width = max(len(value) for value in values)
            pad = pad_token_id if key == "input_ids" else _PAD_VALUES.get(key, 0)
            padded = [value + [pad] * (width - len(value)) for value in values]
            sample = next((value[0] for value in values if value), 0)
            batch[key] = torch.tensor(padded, dtype=_dtype(sample))
        else:
            batch[key] = torch.tensor(values, dtype=_dtype(values[0]))
    return batch


def row_length(input_ids: list[Any]) -> int:
    """The padded length a row needs: its token count, or for a row of several sequences (a
    multiple-choice row's candidates) the longest one's."""
    if input_ids and isinstance(input_ids[0], list):
        return max(len(ids) for ids in input_ids)
    return len(input_ids)


def _dtype(sample: Any) -> torch.dtype:
    return torch.float32 if isinstance(sample, float) else torch.long


class LengthGroupedBatches:
    """Batch order for one epoch: shuffled, then sorted by length inside chunks of batches.

    With `sample_weights`, an epoch draws its rows with replacement in proportion to them
    (class-balanced resampling) instead of shuffling each row once.

    Sorting inside chunks of `chunk_batches` batches keeps similar lengths together (little
    padding) while the order of chunks and of batches stays random. With several processes,
    each takes every `num_replicas`-th batch so all see the same number of batches.
    """

    def __init__(
        self,
        lengths: list[int],
        batch_size: int,
        seed: int,
        chunk_batches: int = 50,
        num_replicas: int = 1,
        rank: int = 0,
        sample_weights: list[float] | None = None,
    ) -> None:
        self.lengths = np.asarray(lengths)
        self.sample_weights = (
            None if sample_weights is None else np.asarray(sample_weights) / np.sum(sample_weights)
        )
        self.batch_size = batch_size
        self.seed = seed
        self.chunk_batches = chunk_batches
        self.num_replicas = num_replicas
        self.rank = rank

    def epoch(self, epoch: int) -> list[list[int]]:
        """This process's batches (lists of row indices) for epoch `epoch`, deterministically."""
        rng = np.random.default_rng([self.seed, epoch])
        if self.sample_weights is None:
            order = rng.permutation(len(self.lengths))
        else:
            # Resampling: an epoch of the same size, rows drawn with replacement by weight.
            order = rng.choice(len(self.lengths), size=len(self.lengths), p=self.sample_weights)
        chunk = self.batch_size * self.chunk_batches
        batches: list[list[int]] = []
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            part = part[np.argsort(-self.lengths[part], kind="stable")]
            batches.extend(
                part[i : i + self.batch_size].tolist() for i in range(0, len(part), self.batch_size)
            )
        batches = [batches[i] for i in rng.permutation(len(batches))]
        while len(batches) < self.num_replicas:
            batches = batches + batches
        usable = len(batches) - len(batches) % self.num_replicas
        return batches[self.rank : usable : self.num_replicas]
