"""Prediction shared among processes: each predicts whole batches, and all gather the answers.

Process r of n predicts batches r, r + n, r + 2n, ... of the one batching rule
(`mtlm.inference.batches`): whole batches, so that every feature is predicted in the very batch
one process would have put it in, and the predictions equal one process's, whatever n is.
Batches are dealt out in length order, so that every process gets long and short ones alike.
The answers travel through `torch.distributed`, which every launcher (Accelerate, the HF
Trainer, Lightning) has joined, so any of them can share the work.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import torch.distributed

from mtlm.inference.batches import feature_batches
from mtlm.inference.passes import predict_features
from mtlm.inference.predictor import Predictor


class Processes(Protocol):
    """The processes that predict together (an `accelerate.Accelerator` is one)."""

    @property
    def process_index(self) -> int:
        """This process's rank."""

    @property
    def num_processes(self) -> int:
        """How many processes there are."""


class Ranks(NamedTuple):
    """This process's place among the processes, for launchers without an Accelerator (e.g.
    Lightning: `Ranks(trainer.global_rank, trainer.world_size)`)."""

    process_index: int
    num_processes: int


def predict_sharded(
    model: Predictor,
    task: str,
    features: dict[str, list[Any]],
    batch_size: int,
    processes: Processes,
) -> list[Any]:
    """`task`'s prediction for every feature, in order, each process predicting its share of
    the batches; every process must call it, and every process gets all predictions."""
    if processes.num_processes == 1:
        return predict_features(model, [task], features, batch_size)[task]
    batches = feature_batches(model.tasks[task], features, batch_size)
    share = batches[processes.process_index :: processes.num_processes]
    mine = [index for batch in share for index in batch]
    # In length order already, so the share re-forms exactly these batches.
    own = {key: [values[index] for index in mine] for key, values in features.items()}
    predicted = predict_features(model, [task], own, batch_size)[task] if mine else []
    predictions: list[Any] = [None] * len(features["input_ids"])
    for indices, answers in gather_shares((mine, predicted), processes.num_processes):
        for index, answer in zip(indices, answers, strict=True):
            predictions[index] = answer
    return predictions


def gather_shares(share: Any, count: int) -> list[Any]:
    """Every process's `share`, in rank order (each of the `count` processes must call it)."""
    shares: list[Any] = [None] * count
    torch.distributed.all_gather_object(shares, share)
    return shares
