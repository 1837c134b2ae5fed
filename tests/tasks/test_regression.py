"""Regression: numeric targets naming bad rows, standardisation, metrics, trivial baseline, and
no class options."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from conftest import assert_declared, tiny_tokenizer
from scipy.stats import pearsonr, spearmanr

from mtlm import ConfigError, DataError
from mtlm.config import config_from_dict, task_spec
from mtlm.data.rows import SplitRows
from mtlm.tasks.regression import Regression


def split_rows(rows: list[dict[str, Any]], source: str = "train.csv") -> SplitRows:
    return SplitRows(rows, source, [f"line {i + 2}" for i in range(len(rows))], "fingerprint")


def make_task(rows: list[dict[str, Any]], **fields: Any) -> Regression:
    spec = task_spec({"name": "score", "kind": "regression", "data": {"train": "x"}, **fields})
    task = Regression(spec)
    task.fit({"train": split_rows(rows)})
    return task


ROWS = [
    {"text": "good film", "label": "3.0"},
    {"text": "bad plot", "label": 1},
    {"text": "the movie was fine", "label": 2.0},
]


def test_prepare_standardises_targets_and_references_undo_it() -> None:
    task = make_task(ROWS)
    assert task.state["mean"] == pytest.approx(2.0)
    assert task.state["std"] == pytest.approx(np.std([3.0, 1.0, 2.0]))
    features = task.prepare(split_rows(ROWS), tiny_tokenizer())
    assert features["labels"] == pytest.approx([1 / task.state["std"], -1 / task.state["std"], 0])
    assert task.references(features) == pytest.approx([3.0, 1.0, 2.0])
    assert features["input_ids"][1] == tiny_tokenizer()("bad plot")["input_ids"]


def test_constant_targets_do_not_divide_by_zero() -> None:
    rows = [{"text": "a", "label": 4.0}, {"text": "b", "label": 4.0}]
    task = make_task(rows)
    assert task.state["std"] == 1.0
    assert task.prepare(split_rows(rows), tiny_tokenizer())["labels"] == [0.0, 0.0]


@pytest.mark.parametrize("value", ["high", True, False, float("nan"), "nan", "inf", [1.0]])
def test_non_numeric_target_names_the_row(value: Any) -> None:
    rows = [*ROWS, {"text": "odd", "label": value}]
    with pytest.raises(DataError) as caught:
        make_task(rows)
    message = str(caught.value)
    assert message.startswith("train.csv, line 5: column 'label' must be a number")
    assert repr(value) in message


def test_non_numeric_target_in_another_split_names_its_row() -> None:
    task = make_task(ROWS)
    with pytest.raises(DataError, match=r"^test\.csv, line 3: column 'label'"):
        task.prepare(
            split_rows([ROWS[0], {"text": "x", "label": "?"}], "test.csv"), tiny_tokenizer()
        )


def test_missing_target_column_names_the_row() -> None:
    rows = [ROWS[0], {"text": "x", "score": 2.0}]
    with pytest.raises(DataError, match=r"^train\.csv, line 3: missing column 'label'"):
        make_task(rows)


def test_predict_returns_scores_on_the_original_scale() -> None:
    task = make_task(ROWS)
    std = task.state["std"]
    predicted = task.predict(torch.tensor([[0.0], [1.0], [-2.0]]), {})
    assert [p["score"] for p in predicted] == pytest.approx([2.0, 2.0 + std, 2.0 - 2 * std])
    loss = task.loss(torch.tensor([[0.5], [1.0]]), {"labels": torch.tensor([0.0, 2.0])})
    assert loss.item() == pytest.approx((0.25 + 1.0) / 2)


def scored(values: list[float]) -> list[dict[str, float]]:
    return [{"score": value} for value in values]


def test_metrics_match_scipy() -> None:
    task = make_task(ROWS)
    gold = [0.1, 0.9, 2.5, 3.0, 4.2, 1.1]
    guess = [0.0, 1.5, 2.0, 3.3, 3.9, 2.0]
    scores = task.score(scored(guess), gold)
    assert scores["primary"] == "pearson"
    assert_declared(task, scores)
    assert scores["pearson"] == pytest.approx(pearsonr(guess, gold)[0])
    assert scores["spearman"] == pytest.approx(spearmanr(guess, gold)[0])
    assert scores["mse"] == pytest.approx(np.mean((np.array(guess) - np.array(gold)) ** 2))
    assert 0 < scores["spearman"] < 1
    assert task.higher_is_better("pearson")
    assert not task.higher_is_better("mse")


def test_constant_predictions_score_zero_correlation() -> None:
    task = make_task(ROWS)
    scores = task.metrics(scored([2.0, 2.0, 2.0]), [1.0, 2.0, 4.0])
    assert scores["pearson"] == 0.0
    assert scores["spearman"] == 0.0
    assert scores["mse"] == pytest.approx((1 + 0 + 4) / 3)
    assert all(math.isfinite(value) for value in scores.values())


def test_trivial_predictions_are_the_training_mean() -> None:
    task = make_task(ROWS)
    references = [0.0, 5.0]
    trivial = task.trivial_predictions({"labels": []}, references)
    assert trivial == [{"score": 2.0}, {"score": 2.0}]
    assert task.score(trivial, references)["mse"] == pytest.approx((4 + 9) / 2)


def test_the_ideal_scores_are_a_perfect_correlation_and_no_error() -> None:
    task = make_task(ROWS)
    assert task.ideal_score("pearson") == 1.0 and task.ideal_score("spearman") == 1.0
    assert task.ideal_score("mse") == 0.0


def test_regression_refuses_class_options() -> None:
    for fields in ({"class_weights": "balanced"}, {"resample": "balanced"}):
        raw = {
            "model": {"name_or_path": "x"},
            "tasks": [{"name": "score", "kind": "regression", "data": {"train": "x"}, **fields}],
        }
        key = next(iter(fields))
        message = rf"tasks\[score\]\.{key}: regression tasks take no '{key}'; classification"
        with pytest.raises(ConfigError, match=message):
            config_from_dict(raw)
