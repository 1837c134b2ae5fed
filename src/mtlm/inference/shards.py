"""Prediction shared among processes: each predicts whole batches, and all gather the answers.

Process r of n predicts batches r, r + n, r + 2n, ... of the one batching rule
(`mtlm.inference.batches`): whole batches, so that every feature is predicted in the very batch
one process would have put it in, and the predictions equal one process's, whatever n is.
Batches are dealt out in length order, so that every process gets long and short ones alike.
"""

from __future__ import annotations

from typing import Any, Protocol

from accelerate.utils import gather_object

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
    for indices, answers in gather_object([(mine, predicted)]):
        for index, answer in zip(indices, answers, strict=True):
            predictions[index] = answer
    return predictions
