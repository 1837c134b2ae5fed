"""Classification: label vocabulary, validation naming the row, metrics, trivial baseline,
class weights and class-balanced resampling."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest
import torch
from conftest import assert_declared, tiny_tokenizer
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
from sklearn.utils.class_weight import compute_class_weight

from mtlm import ConfigError, DataError
from mtlm.config import config_from_dict, task_spec
from mtlm.data.batching import LengthGroupedBatches
from mtlm.data.rows import SplitRows
from mtlm.tasks.base import label_vocabulary
from mtlm.tasks.classification import Classification


def split_rows(rows: list[dict[str, Any]], source: str = "train.jsonl") -> SplitRows:
    return SplitRows(rows, source, [f"line {i + 1}" for i in range(len(rows))], "fingerprint")


def make_task(rows: list[dict[str, Any]], **fields: Any) -> Classification:
    spec = task_spec(
        {"name": "sentiment", "kind": "classification", "data": {"train": "x"}, **fields}
    )
    task = Classification(spec)
    task.fit({"train": split_rows(rows)})
    return task


ROWS = [
    {"text": "good film", "label": "pos"},
    {"text": "bad plot", "label": "neg"},
    {"text": "the movie was great", "label": "pos"},
]


def test_prepare_tokenizes_text_and_maps_labels() -> None:
    task = make_task(ROWS)
    tokenizer = tiny_tokenizer()
    features = task.prepare(split_rows(ROWS), tokenizer)
    assert task.label_names == ["neg", "pos"]
    assert features["labels"] == [1, 0, 1]
    assert features["input_ids"] == [tokenizer(row["text"])["input_ids"] for row in ROWS]
    assert features["attention_mask"][2] == [1] * 6
    assert task.references(features) == ["pos", "neg", "pos"]


def test_prepare_text_pairs_and_truncation() -> None:
    rows = [{"a": "good film", "b": "the plot was dull", "y": "1"}]
    task = make_task(rows, text_column="a", text_pair_column="b", label_column="y", max_length=5)
    features = task.prepare(split_rows(rows), tiny_tokenizer())
    assert len(features["input_ids"][0]) == 5
    assert features["token_type_ids"][0].count(1) >= 1
    assert task.input_columns == ["a", "b"]


def test_label_outside_the_declared_set_names_the_row() -> None:
    rows = [*ROWS, {"text": "fine", "label": "neutral"}]
    task = make_task(rows, labels=["neg", "pos"])
    with pytest.raises(DataError) as caught:
        task.prepare(split_rows(rows), tiny_tokenizer())
    message = str(caught.value)
    assert message.startswith("train.jsonl, line 4: label 'neutral'")
    assert "tasks[sentiment].labels" in message


def test_declared_labels_keep_their_order() -> None:
    task = make_task(ROWS, labels=["pos", "neg", "neutral"])
    assert task.label_names == ["pos", "neg", "neutral"]
    assert task.num_outputs == 3
    assert task.prepare(split_rows(ROWS), tiny_tokenizer())["labels"] == [0, 1, 0]


def test_missing_label_column_names_the_row() -> None:
    rows = [*ROWS[:2], {"text": "good"}]
    task = make_task(rows)
    with pytest.raises(DataError, match=r"^train\.jsonl, line 3: missing column 'label'"):
        task.prepare(split_rows(rows), tiny_tokenizer())


@pytest.mark.parametrize("value", ["", None])
def test_empty_label_names_the_row(value: Any) -> None:
    rows = [*ROWS, {"text": "good", "label": value}]
    task = make_task(rows)
    with pytest.raises(DataError, match=r"line 4: empty value in column 'label'"):
        task.prepare(split_rows(rows), tiny_tokenizer())


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        ("text", ["a", "b"], "a list ['a', 'b']"),
        ("text", {"a": 1}, "an object {'a': 1}"),
        ("text", True, "a boolean True"),
        ("text", float("nan"), "a number nan"),
        ("label", ["pos"], "a list ['pos']"),
        ("label", {"name": "pos"}, "an object {'name': 'pos'}"),
    ],
)
def test_a_value_of_the_wrong_type_names_file_line_and_column(column, value, shown) -> None:
    rows = [*ROWS, {**ROWS[0], column: value}]
    task = make_task(rows)
    with pytest.raises(DataError) as caught:
        task.prepare(split_rows(rows), tiny_tokenizer())
    expected = "must hold a text" if column == "text" else "must hold one label"
    assert str(caught.value) == (
        f"train.jsonl, line 4: column {column!r} {expected}"
        + (" (a text or a number)" if column == "label" else "")
        + f", got {shown}"
    )


def test_numbers_read_as_texts_and_labels() -> None:
    rows = [*ROWS, {"text": 10, "label": 1}, {"text": 2.5, "label": True}]
    task = make_task(rows)
    features = task.prepare(split_rows(rows), tiny_tokenizer())
    assert task.references(features) == ["pos", "neg", "pos", "1", "True"]
    assert features["input_ids"][3] == tiny_tokenizer()("10")["input_ids"]


def test_missing_text_column_names_the_row() -> None:
    rows = [ROWS[0], {"label": "pos", "sentence": "good"}]
    task = make_task(rows)
    with pytest.raises(DataError, match=r"line 2: missing column 'text'.*sentence"):
        task.prepare(split_rows(rows), tiny_tokenizer())


def test_label_vocabulary_is_seen_over_every_split() -> None:
    spec = task_spec({"name": "s", "kind": "classification", "data": {"train": "x"}})
    task = Classification(spec)
    task.fit({"train": split_rows(ROWS), "test": split_rows([{"text": "a", "label": "mixed"}])})
    assert task.label_names == ["mixed", "neg", "pos"]


def test_numeric_labels_in_natural_order() -> None:
    rows = [{"text": "a", "label": value} for value in ("10", "2", "1", 2, "-3")]
    task = make_task(rows)
    assert task.label_names == ["-3", "1", "2", "10"]
    assert task.prepare(split_rows(rows), tiny_tokenizer())["labels"] == [3, 2, 1, 2, 0]


def test_label_vocabulary_order_is_fully_determined() -> None:
    # "1", "01" and "001" are equal as numbers: the order must not depend on set hashing,
    # or two processes (two ranks, or training and evaluation) would number labels differently
    values = ["1", "01", "2", "10", "001"]
    assert label_vocabulary(values, None) == ["001", "01", "1", "2", "10"]
    assert label_vocabulary(values[::-1], None) == ["001", "01", "1", "2", "10"]
    assert label_vocabulary(["b", "a", "C"], None) == ["C", "a", "b"]


@pytest.mark.parametrize("odd", ["--1", "\u00b2", "1.5", "-"])
def test_label_vocabulary_with_number_like_names_sorts_as_text(odd: str) -> None:
    assert label_vocabulary(["2", odd, "10"], None) == sorted(["2", odd, "10"])


def prediction(label: str, names: list[str]) -> dict[str, Any]:
    return {"label": label, "probabilities": {name: float(name == label) for name in names}}


def test_metrics_match_sklearn() -> None:
    names = ["a", "b", "c"]
    task = make_task([{"text": "x", "label": name} for name in names])
    gold = ["a", "a", "b", "c", "c", "c", "b", "a"]
    guess = ["a", "b", "b", "c", "a", "c", "c", "a"]
    scores = task.score([prediction(label, names) for label in guess], gold)
    assert scores["primary"] == "accuracy"
    assert scores["accuracy"] == pytest.approx(5 / 8)
    assert scores["accuracy"] == pytest.approx(accuracy_score(gold, guess))
    assert scores["macro_f1"] == pytest.approx(f1_score(gold, guess, average="macro"))
    assert scores["mcc"] == pytest.approx(matthews_corrcoef(gold, guess))
    assert 0 < scores["macro_f1"] < 1


def test_predict_decodes_the_most_likely_class() -> None:
    task = make_task(ROWS)
    logits = torch.tensor([[2.0, -1.0], [0.0, 3.0]])
    predicted = task.predict(logits, {})
    assert [p["label"] for p in predicted] == ["neg", "pos"]
    assert sum(predicted[0]["probabilities"].values()) == pytest.approx(1.0)
    assert predicted[0]["probabilities"]["neg"] == pytest.approx(torch.softmax(logits[0], 0)[0])
    loss = task.loss(logits, {"labels": torch.tensor([0, 1])})
    assert loss.item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).item()
    )


def test_trivial_predictions_are_the_majority_class() -> None:
    rows = [{"text": "x", "label": label} for label in ("a", "b", "b", "c", "b", "a")]
    task = make_task(rows)
    train = task.prepare(split_rows(rows), tiny_tokenizer())
    references = ["a", "c", "b"]
    trivial = task.trivial_predictions(train, references)
    assert [p["label"] for p in trivial] == ["b", "b", "b"]
    assert trivial[0]["probabilities"] == {"a": 0.0, "b": 1.0, "c": 0.0}
    assert task.score(trivial, references)["accuracy"] == pytest.approx(1 / 3)


def test_unknown_primary_metric_is_a_config_error_listing_the_metrics() -> None:
    entry = {"name": "sentiment", "kind": "classification", "data": {"train": "x"}}
    raw = {"model": {"name_or_path": "x"}, "tasks": [{**entry, "primary_metric": "acc"}]}
    message = r"tasks\[sentiment\]\.primary_metric: 'acc' is not a metric of classification"
    with pytest.raises(ConfigError, match=message + r".*\(metrics: accuracy, macro_f1, mcc\)"):
        config_from_dict(raw)


def test_per_class_metrics_are_valid_primary_metrics_with_imbalance_handling() -> None:
    with pytest.raises(ConfigError, match=r"f1\[pos\]"):
        make_task(ROWS, primary_metric="f1[pos]")
    assert make_task(ROWS, primary_metric="f1[pos]", class_weights="balanced")
    with pytest.raises(ConfigError, match=r"metrics: accuracy, macro_f1, mcc, f1\[a\], f1\[b\]"):
        make_task(ROWS, primary_metric="f1[c]", class_weights="balanced", labels=["a", "b"])


def test_primary_metric_that_the_data_does_not_give_is_named() -> None:
    task = make_task(ROWS, primary_metric="f1[maybe]", resample="balanced")
    with pytest.raises(DataError, match=r"tasks\[sentiment\]\.primary_metric: 'f1\[maybe\]'"):
        task.score([prediction("pos", ["neg", "pos"])], ["pos"])


def test_configured_primary_metric() -> None:
    task = make_task(ROWS, primary_metric="mcc")
    assert task.score([prediction("pos", ["neg", "pos"])], ["pos"])["primary"] == "mcc"


# --- class imbalance -----------------------------------------------------------------------
IMBALANCED = [{"text": "x", "label": label} for label in ["a"] * 6 + ["b"] * 3 + ["c"]]


def test_balanced_class_weights_are_n_over_c_times_n_c() -> None:
    task = make_task(IMBALANCED, class_weights="balanced", labels=["a", "b", "c", "d"])
    labels = [row["label"] for row in IMBALANCED]
    present = ["a", "b", "c"]
    sklearn = compute_class_weight("balanced", classes=np.array(present), y=np.array(labels))
    counts = Counter(labels)
    expected = [len(labels) / (len(present) * counts[name]) for name in present]
    assert task.state["class_weights"][:3] == pytest.approx(expected)
    assert task.state["class_weights"][:3] == pytest.approx(sklearn.tolist())
    assert task.state["class_weights"][3] == 1.0  # a declared class with no training rows
    assert make_task(IMBALANCED).state["class_weights"] is None


def test_class_weight_mapping_sets_named_classes_and_keeps_the_rest_at_one() -> None:
    task = make_task(IMBALANCED, class_weights={"c": 4.0, "b": 0.5})
    assert task.state["class_weights"] == [1.0, 0.5, 4.0]


def test_class_weight_mapping_with_an_unknown_label_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^tasks\[sentiment\]\.class_weights: no label 'z'"):
        make_task(IMBALANCED, class_weights={"a": 2.0, "z": 3.0})


def test_numeric_class_names_may_be_written_as_numbers() -> None:
    rows = [{"text": "x", "label": label} for label in (0, 0, 0, 1)]
    task = make_task(rows, class_weights={1: 3.0})
    assert task.state["class_weights"] == [1.0, 3.0]


def test_weighted_loss_is_weighted_cross_entropy() -> None:
    task = make_task(IMBALANCED, class_weights="balanced")
    logits = torch.randn(7, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 0, 1, 2, 2, 0, 1])
    weight = torch.tensor(task.state["class_weights"])
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=weight)
    assert task.loss(logits, {"labels": labels}).item() == pytest.approx(expected.item())
    plain = torch.nn.functional.cross_entropy(logits, labels)
    assert expected.item() != pytest.approx(plain.item())


def test_balanced_resampling_draws_every_class_about_equally() -> None:
    task = make_task(IMBALANCED, resample="balanced")
    features = task.prepare(split_rows(IMBALANCED * 10), tiny_tokenizer())
    weights = task.sample_weights(features)
    counts = Counter(features["labels"])
    assert weights == pytest.approx([1 / counts[label] for label in features["labels"]])
    assert make_task(IMBALANCED).sample_weights(features) is None
    order = LengthGroupedBatches([1] * len(weights), 10, seed=0, sample_weights=weights)
    drawn = Counter(
        features["labels"][index]
        for epoch in range(30)
        for batch in order.epoch(epoch)
        for index in batch
    )
    total = sum(drawn.values())
    assert total == 30 * len(weights)  # an epoch keeps its size
    for label in range(3):
        assert drawn[label] / total == pytest.approx(1 / 3, abs=0.03)


@pytest.mark.parametrize(
    ("fields", "per_class"),
    [({}, False), ({"class_weights": "balanced"}, True), ({"resample": "balanced"}, True)],
)
def test_per_class_f1_only_when_imbalance_is_handled(fields: dict, per_class: bool) -> None:
    names = ["a", "b", "c"]
    task = make_task(IMBALANCED, **fields)
    gold = ["a", "a", "b", "c", "c", "a"]
    guess = ["a", "b", "b", "c", "a", "a"]
    scores = task.score([prediction(label, names) for label in guess], gold)
    per_class_keys = {key for key in scores if key.startswith("f1[")}
    if not per_class:
        assert per_class_keys == set()
        return
    assert per_class_keys == {"f1[a]", "f1[b]", "f1[c]"}
    assert_declared(task, scores)
    expected = f1_score(gold, guess, labels=names, average=None)
    assert [scores[f"f1[{name}]"] for name in names] == pytest.approx(expected.tolist())


def test_positive_label_adds_the_f1_of_that_class() -> None:
    task = make_task(ROWS, positive_label="pos")
    gold = ["pos", "pos", "pos", "neg", "neg"]
    guess = ["pos", "neg", "pos", "pos", "neg"]
    scores = task.score([prediction(label, ["neg", "pos"]) for label in guess], gold)
    # pos: 2 true positives, 1 false positive, 1 false negative: F1 = 2*2 / (2*2 + 1 + 1)
    assert scores["f1"] == pytest.approx(4 / 6)
    assert_declared(task, scores)
    plain = make_task(ROWS).score([prediction(label, ["neg", "pos"]) for label in guess], gold)
    assert "f1" not in plain


def test_positive_label_must_be_a_declared_label() -> None:
    with pytest.raises(ConfigError) as caught:
        make_task(ROWS, labels=["neg", "pos"], positive_label="positive")
    assert "positive_label" in str(caught.value)
    assert "'positive' is not among the labels (neg, pos)" in str(caught.value)


def test_positive_label_must_be_in_the_data() -> None:
    with pytest.raises(ConfigError) as caught:
        make_task(ROWS, positive_label="positive")
    assert str(caught.value) == (
        "tasks[sentiment].positive_label: no label 'positive' in the data (labels: neg, pos)"
    )


def test_several_text_columns_are_joined_by_the_separator_token() -> None:
    rows = [{"word": "plot", "a": "the plot was dull", "b": "a dull plot", "label": "1"}]
    task = make_task(rows, text_column="word", text_pair_column=["a", "b"])
    tokenizer = tiny_tokenizer()
    features = task.prepare(split_rows(rows), tokenizer)
    assert task.input_columns == ["word", "a", "b"]
    expected = tokenizer("plot", "the plot was dull [SEP] a dull plot")["input_ids"]
    assert features["input_ids"] == [expected]
    assert (
        expected.count(tokenizer.sep_token_id) == 3
    )  # after the word, between a and b, at the end
    with pytest.raises(DataError, match="missing column 'b'"):
        task.prepare(split_rows([{"word": "plot", "a": "dull", "label": "1"}]), tokenizer)
