"""Tokenized features to decoded predictions: length-sorted batches and shared backbone passes.

The one batching rule: each encoding's features sorted by length, `batch_size` at a time, each
batch padded to its longest; predictions come back in input order. A task's predictions so
never depend on the tasks predicted with it.

The one sharing rule: at each step, the heads of tasks that share an encoder (equal
`sharing.pass_key`) and whose batches feed it the same tokens read one pass of it, whether or
not their tasks tokenized the inputs alike (a classification task's text and a tagging task's
words of it give the same tokens on most tokenizers). A task on a decoder's language model
head, or one that generates its answers, runs alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mtlm.inference.generation import generate_answers
from mtlm.inference.inputs import Encoded
from mtlm.inference.predictor import Predictor

#: The batch fields a backbone reads: batches equal on these give the same hidden states.
BACKBONE_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def predict_features(
    model: Predictor, task_names: list[str], features: dict[str, list[Any]], batch_size: int
) -> dict[str, list[Any]]:
    """Predictions of the named tasks, which read the same features, one per feature."""
    return predict_encoded(model, [Encoded(task_names, features)], batch_size)


@torch.no_grad()
def predict_encoded(
    model: Predictor, encoded: Sequence[Encoded], batch_size: int
) -> dict[str, list[Any]]:
    """Predictions of every task of `encoded`, one per feature of its encoding, in order."""
    device = next(model.parameters()).device
    predictions: dict[str, list[Any]] = {}
    batched: list[tuple[Encoded, list[int]]] = []
    for group in encoded:
        name = group.tasks[0]
        if model.tasks[name].generates:
            with model.evaluating():
                answers = generate_answers(model, name, group.features, batch_size, device)
            predictions[name] = model.tasks[name].predict(answers, {})
            continue
        order = _length_order(group.features["input_ids"])
        batched.append((group, order))
        predictions.update({task: [None] * len(order) for task in group.tasks})
    steps = max((math.ceil(len(order) / batch_size) for _, order in batched), default=0)
    with model.evaluating():
        for step in range(steps):
            batches = [
                _Batch(group, indices, _collate(model, group, indices, device))
                for group, order in batched
                if (indices := order[step * batch_size : (step + 1) * batch_size])
            ]
            for one in _passes(model, batches):
                names = [name for name, _ in one.readers]
                if one.key[0] == "alone":
                    outputs = {names[0]: model(names[0], one.tensors)}
                else:
                    outputs = model.forward_heads(one.tensors, names)
                for name, own in one.readers:
                    decoded = model.tasks[name].predict(outputs[name], own.tensors)
                    for index, prediction in zip(own.indices, decoded, strict=True):
                        predictions[name][index] = prediction
    return predictions


@dataclass
class _Batch:
    """An encoding's features at `indices`, padded into tensors."""

    group: Encoded
    indices: list[int]
    tensors: dict[str, torch.Tensor]


@dataclass
class _Pass:
    """One run of an encoder over `tensors`, and the tasks whose heads read it, each with its
    own batch (for the fields its decoding reads and the inputs it answers)."""

    key: tuple[str, Any]
    tensors: dict[str, torch.Tensor]
    readers: list[tuple[str, _Batch]]


def _length_order(input_ids: list[list[Any]]) -> list[int]:
    """Feature indices from the shortest to the longest."""
    return sorted(range(len(input_ids)), key=lambda index: len(input_ids[index]))


def _collate(
    model: Predictor, group: Encoded, indices: list[int], device: torch.device
) -> dict[str, torch.Tensor]:
    """The padded batch of a group's features at `indices`, on `device`."""
    rows = [{key: values[index] for key, values in group.features.items()} for index in indices]
    batch = model.tasks[group.tasks[0]].collate(rows, model.pad_token_id)
    return {key: value.to(device) for key, value in batch.items()}


def _passes(model: Predictor, batches: list[_Batch]) -> list[_Pass]:
    """The passes one step needs for the encodings' batches at that step."""
    passes: list[_Pass] = []
    for batch in batches:
        for name in batch.group.tasks:
            # A language model head's output is the whole model's: such a task runs alone.
            alone = model.tasks[name].uses_language_model_head
            key = ("alone", name) if alone else ("encoder", model.sharing.pass_key(name))
            shared = next(
                (one for one in passes if one.key == key and _same_tokens(one.tensors, batch)),
                None,
            )
            if shared is None:
                passes.append(_Pass(key, batch.tensors, [(name, batch)]))
            else:
                shared.readers.append((name, batch))
    return passes


def _same_tokens(tensors: dict[str, torch.Tensor], batch: _Batch) -> bool:
    """Whether a batch gives a backbone the same inputs as `tensors`."""
    return all(
        (key in tensors) == (key in batch.tensors)
        and (key not in tensors or torch.equal(tensors[key], batch.tensors[key]))
        for key in BACKBONE_INPUTS
    )
