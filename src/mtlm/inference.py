"""Prediction on new inputs: tasks that read the same inputs share one backbone pass."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from mtlm.errors import ConfigError
from mtlm.tasks import TaskKind

if TYPE_CHECKING:
    from mtlm.modeling.multitask_model import MultiTaskModel


def input_signature(task: TaskKind) -> tuple[Any, ...]:
    """Tasks with equal signatures (the same tokenizing method, columns and length) tokenize an
    input identically, so can share a pass; a task that generates answers alone."""
    if task.generates:
        return ("generates", task.spec.name)
    return (type(task).encode_inputs, tuple(task.input_columns), task.spec.max_length)


def as_rows(task: TaskKind, inputs: Sequence[Any]) -> list[dict[str, Any]]:
    """Rows from plain inputs: a text, a (text, pair) tuple, a list of words, or a row dict."""
    columns = task.input_columns
    rows = []
    for item in inputs:
        if isinstance(item, dict):
            rows.append(item)
        elif isinstance(item, str) or (isinstance(item, list) and len(columns) == 1):
            rows.append({columns[0]: item})
        else:
            rows.append(dict(zip(columns, item, strict=True)))
    return rows


def predict_rows(
    model: MultiTaskModel, task_names: list[str], inputs: Sequence[Any], batch_size: int = 32
) -> dict[str, list[Any]]:
    """Predictions of every named task for every input, in input order."""
    if batch_size < 1:
        raise ConfigError(f"batch_size: must be at least 1 (got {batch_size})")
    groups: dict[tuple[Any, ...], list[str]] = {}
    for name in task_names:
        groups.setdefault(input_signature(model.tasks[name]), []).append(name)
    results: dict[str, list[Any]] = {}
    for names in groups.values():
        lead = model.tasks[names[0]]
        rows = as_rows(lead, inputs)
        lead.check_inputs(rows, lambda index: f"input {index + 1}")
        features = lead.encode_inputs(rows, model.tokenizer)
        for name, predicted in predict_features(model, names, features, batch_size).items():
            results[name] = model.tasks[name].row_predictions(predicted, rows)
    return {name: results[name] for name in task_names}


def pass_groups(model: MultiTaskModel, task_names: list[str]) -> list[list[str]]:
    """The named tasks grouped by encoder (`sharing.pass_key`): one backbone pass per group."""
    groups: dict[str | None, list[str]] = {}
    for name in task_names:
        groups.setdefault(model.sharing.pass_key(name), []).append(name)
    return list(groups.values())


@torch.no_grad()
def predict_features(
    model: MultiTaskModel,
    task_names: list[str],
    features: dict[str, list[Any]],
    batch_size: int,
    device: torch.device | None = None,
) -> dict[str, list[Any]]:
    """Run the named heads over tokenized features, in length-sorted batches, in input order.

    Each batch goes through the backbone once per group of tasks that share an encoder (once
    for all of them under hard sharing).
    """
    device = device or next(model.parameters()).device
    lead = model.tasks[task_names[0]]
    if lead.generates:
        from mtlm.modeling.generation import generate_answers

        with model.evaluating():
            answers = generate_answers(model, task_names[0], features, batch_size, device)
        return {task_names[0]: lead.predict(answers, {})}
    count = len(features["input_ids"])
    order = sorted(range(count), key=lambda index: len(features["input_ids"][index]))
    predictions: dict[str, list[Any]] = {name: [None] * count for name in task_names}
    groups = pass_groups(model, task_names)
    with model.evaluating():
        for start in range(0, count, batch_size):
            indices = order[start : start + batch_size]
            rows = [{key: values[index] for key, values in features.items()} for index in indices]
            batch = lead.collate(rows, model.pad_token_id)
            batch = {key: value.to(device) for key, value in batch.items()}
            for names in groups:
                if lead.uses_language_model_head:
                    outputs = {name: model.task_output(name, batch).head for name in names}
                else:
                    outputs = model.forward_heads(batch, names)
                for name in names:
                    decoded = model.tasks[name].predict(outputs[name], batch)
                    for index, prediction in zip(indices, decoded, strict=True):
                        predictions[name][index] = prediction
    return predictions
