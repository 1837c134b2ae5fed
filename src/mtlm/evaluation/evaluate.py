"""Per-task metrics on a split, and the aggregate score that ranks whole models."""

from __future__ import annotations

import math
from typing import Any

from mtlm.data.features import TaskData
from mtlm.inference import predict_features
from mtlm.inference.shards import Processes, predict_sharded
from mtlm.modeling.multitask_model import MultiTaskModel
from mtlm.tasks import TaskKind

EvalResults = dict[str, Any]


def evaluate(
    model: MultiTaskModel,
    data: dict[str, TaskData],
    split: str,
    batch_size: int = 64,
    processes: Processes | None = None,
) -> EvalResults:
    """Metrics of every task that has `split`, keyed by task, with their aggregate.

    With `processes` (the Accelerator of a distributed run), each process predicts its share
    of every task's batches and all take the gathered predictions (see
    `mtlm.inference.shards`): every process must call it, and each gets the results one
    process would compute alone."""
    scores = {}
    for name, task_data in data.items():
        if split not in task_data.splits:
            continue
        features = task_data.splits[split].to_dict()
        if processes is None:
            predictions = predict_features(model, [name], features, batch_size)[name]
        else:
            predictions = predict_sharded(model, name, features, batch_size, processes)
        scores[name] = task_data.task.score(predictions, task_data.task.references(features))
    return results(scores, {name: d.task for name, d in data.items()}, split)


def trivial_baseline(data: dict[str, TaskData], split: str) -> EvalResults:
    """Scores of input-blind predictions (majority class, training mean) on `split`."""
    scores = {}
    for name, task_data in data.items():
        if split not in task_data.splits:
            continue
        task = task_data.task
        references = task.references(task_data.splits[split].to_dict())
        train = task_data.splits["train"].to_dict()
        scores[name] = task.score(task.trivial_predictions(train, references), references)
    return results(scores, {name: d.task for name, d in data.items()}, split)


def results(
    scores: dict[str, dict[str, Any]], tasks: dict[str, TaskKind], split: str
) -> EvalResults:
    """The `eval_results.json` structure."""
    return {"tasks": scores, "aggregate": aggregate_score(scores, tasks), "split": split}


def aggregate_score(scores: dict[str, dict[str, Any]], tasks: dict[str, TaskKind]) -> float | None:
    """Mean of the tasks' primary metrics; a lower-is-better metric counts negated. Auxiliary
    tasks (language modeling: perplexity, on another scale) count only when all tasks are."""
    main = {name: m for name, m in scores.items() if not tasks[name].auxiliary}
    values = []
    for name, metrics in (main or scores).items():
        primary = metrics["primary"]
        value = metrics[primary]
        values.append(value if tasks[name].higher_is_better(primary) else -value)
    finite = [value for value in values if math.isfinite(value)]
    return sum(finite) / len(finite) if finite else None


def flat_metrics(results: dict[str, Any], prefix: str) -> dict[str, float]:
    """mtlm's evaluation results as the Trainer's flat metrics dict."""
    metrics = {
        f"{prefix}_{task}_{name}": float(value)
        for task, scores in results["tasks"].items()
        for name, value in scores.items()
        if isinstance(value, int | float)
    }
    if results["aggregate"] is not None:
        metrics[f"{prefix}_aggregate"] = float(results["aggregate"])
    return metrics
