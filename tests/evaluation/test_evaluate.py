"""Evaluation: per-task scores on a split and the aggregate that ranks models."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from mtlm.config import ExperimentConfig, task_spec
from mtlm.data.features import TaskData, load_task_data
from mtlm.evaluation.evaluate import aggregate_score, evaluate, trivial_baseline
from mtlm.modeling.multitask_model import MultiTaskModel, load_tokenizer
from mtlm.tasks import KINDS, TaskKind


def kind(kind_name: str, **fields: object) -> TaskKind:
    spec = task_spec({"name": "t", "kind": kind_name, "data": {"train": "x"}, **fields})
    return KINDS[kind_name](spec)


def test_aggregate_negates_lower_is_better_metrics() -> None:
    tasks = {
        "sentiment": kind("classification"),
        "score": kind("regression", primary_metric="mse"),
        "corr": kind("regression"),
    }
    scores = {
        "sentiment": {"primary": "accuracy", "accuracy": 0.8},
        "score": {"primary": "mse", "mse": 0.5, "pearson": 0.9},
        "corr": {"primary": "pearson", "mse": 0.5, "pearson": 0.4},
    }
    assert aggregate_score(scores, tasks) == pytest.approx((0.8 - 0.5 + 0.4) / 3)


def test_an_auxiliary_language_modeling_task_stays_out_of_the_aggregate() -> None:
    tasks = {"sentiment": kind("classification"), "lm": kind("language_modeling")}
    scores = {
        "sentiment": {"primary": "accuracy", "accuracy": 0.8},
        "lm": {"primary": "perplexity", "perplexity": 250.0},
    }
    assert aggregate_score(scores, tasks) == pytest.approx(0.8)
    assert aggregate_score({"lm": scores["lm"]}, tasks) == pytest.approx(-250.0)


def test_aggregate_skips_non_finite_values_and_can_be_empty() -> None:
    tasks = {"a": kind("classification"), "b": kind("regression")}
    scores = {
        "a": {"primary": "accuracy", "accuracy": 0.6},
        "b": {"primary": "pearson", "pearson": math.nan},
    }
    assert aggregate_score(scores, tasks) == pytest.approx(0.6)
    assert aggregate_score({"b": scores["b"]}, tasks) is None
    assert aggregate_score({}, tasks) is None


@pytest.fixture
def task_data(make_config: Callable[..., ExperimentConfig], tiny_model_dir: Path, tmp_path: Path):
    config = make_config()
    tokenizer = load_tokenizer(str(tiny_model_dir), None)
    data = {
        spec.name: load_task_data(spec, tokenizer, tmp_path / "features") for spec in config.tasks
    }
    return config, data


def without(data: TaskData, split: str) -> TaskData:
    return TaskData(data.task, {k: v for k, v in data.splits.items() if k != split}, data.notes)


def test_trivial_baseline_skips_tasks_without_the_split(task_data) -> None:
    _, data = task_data
    data["tagging"] = without(data["tagging"], "test")
    results = trivial_baseline(data, "test")
    assert results["split"] == "test"
    assert set(results["tasks"]) == {"sentiment", "score"}
    sentiment = results["tasks"]["sentiment"]
    task = data["sentiment"].task
    references = task.references(data["sentiment"].splits["test"].to_dict())
    train = task.references(data["sentiment"].splits["train"].to_dict())
    majority = max(set(train), key=train.count)
    assert sentiment["primary"] == "accuracy"
    assert sentiment["accuracy"] == pytest.approx(references.count(majority) / len(references))
    assert results["tasks"]["score"]["pearson"] == 0.0
    assert results["aggregate"] == pytest.approx((sentiment["accuracy"] + 0.0) / 2)


def test_evaluate_scores_every_task_with_the_split(task_data, tiny_model_dir: Path) -> None:
    _, data = task_data
    tasks = {name: entry.task for name, entry in data.items()}
    model = MultiTaskModel.from_backbone(str(tiny_model_dir), tasks)
    data["score"] = without(data["score"], "validation")
    model.train()
    results = evaluate(model, data, "validation", batch_size=5)
    assert model.training
    assert set(results["tasks"]) == {"sentiment", "tagging"}
    assert results["tasks"]["tagging"]["primary"] == "accuracy"  # POS-like tags
    assert 0.0 <= results["tasks"]["sentiment"]["accuracy"] <= 1.0
    expected = aggregate_score(results["tasks"], tasks)
    assert results["aggregate"] == pytest.approx(expected)
    assert evaluate(model, data, "nonexistent")["tasks"] == {}
