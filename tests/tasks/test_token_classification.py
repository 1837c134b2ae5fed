"""Token classification: first-sub-word labels, validation naming the row, aligned metrics,
tag weights."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import torch
from conftest import assert_declared, tiny_tokenizer
from seqeval.metrics import f1_score
from seqeval.scheme import IOB2
from sklearn.metrics import f1_score as sklearn_f1

from mtlm import ConfigError, DataError
from mtlm.config import config_from_dict, task_spec
from mtlm.data.rows import SplitRows
from mtlm.tasks.token_classification import TokenClassification


def split_rows(rows: list[dict[str, Any]], source: str = "train.jsonl") -> SplitRows:
    return SplitRows(rows, source, [f"line {i + 1}" for i in range(len(rows))], "fingerprint")


def make_task(rows: list[dict[str, Any]], **fields: Any) -> TokenClassification:
    spec = task_spec(
        {"name": "ner", "kind": "token_classification", "data": {"train": "x"}, **fields}
    )
    task = TokenClassification(spec)
    task.fit({"train": split_rows(rows)})
    return task


NER = [
    {"tokens": ["movies", "good"], "tags": ["B-ORG", "O"]},
    {"tokens": ["the", "films", "was", "bad"], "tags": ["O", "B-PER", "I-PER", "O"]},
]
POS = [
    {"tokens": ["the", "movie", "was", "good"], "tags": ["DT", "NN", "VB", "JJ"]},
    {"tokens": ["a", "film"], "tags": ["DT", "NN"]},
]


def test_labels_sit_on_the_first_sub_word_only() -> None:
    task = make_task(NER)
    tokenizer = tiny_tokenizer()
    features = task.prepare(split_rows(NER), tokenizer)
    ids = {name: index for index, name in enumerate(task.label_names)}
    # "movies" splits into "movie" + "##s": only "movie" carries the word's tag
    assert tokenizer.convert_ids_to_tokens(features["input_ids"][0]) == [
        "[CLS]",
        "movie",
        "##s",
        "good",
        "[SEP]",
    ]
    assert features["labels"][0] == [-100, ids["B-ORG"], -100, ids["O"], -100]
    assert features["word_starts"][0] == [0, 1, 0, 2, 0]
    assert features["labels"][1] == [
        -100,
        ids["O"],
        ids["B-PER"],
        -100,
        ids["I-PER"],
        ids["O"],
        -100,
    ]
    assert task.references(features) == [row["tags"] for row in NER]


def test_bio_tags_make_span_f1_the_primary_metric() -> None:
    task = make_task(NER)
    assert task.is_bio
    assert task.default_primary_metric == "f1"
    pos = make_task(POS)
    assert not pos.is_bio
    assert pos.default_primary_metric == "accuracy"
    assert pos.label_names == ["DT", "JJ", "NN", "VB"]


def test_tag_count_mismatch_names_the_row() -> None:
    rows = [POS[0], {"tokens": ["a", "film", "was"], "tags": ["DT", "NN"]}]
    task = make_task(rows)
    with pytest.raises(DataError) as caught:
        task.prepare(split_rows(rows), tiny_tokenizer())
    message = str(caught.value)
    assert message.startswith("train.jsonl, line 2: 3 words in 'tokens' but 2 tags in 'tags'")


@pytest.mark.parametrize("tokens", ["the movie", ["the", ""], ["the", 3], []])
def test_tokens_must_be_a_list_of_words(tokens: Any) -> None:
    rows = [POS[0], {"tokens": tokens, "tags": ["DT", "NN"]}]
    task = make_task(rows)
    with pytest.raises(DataError, match=r"^train\.jsonl, line 2: column 'tokens'"):
        task.prepare(split_rows(rows), tiny_tokenizer())


def test_tags_must_be_a_list() -> None:
    rows = [POS[0], {"tokens": ["a", "film"], "tags": "DT NN"}]
    task = make_task(rows)
    with pytest.raises(DataError, match=r"^train\.jsonl, line 2: column 'tags' must be a list"):
        task.prepare(split_rows(rows), tiny_tokenizer())


def test_a_tag_that_is_not_a_text_names_the_row() -> None:
    rows = [POS[0], {"tokens": ["a", "film"], "tags": ["DT", ["NN"]]}]
    task = make_task(rows)
    with pytest.raises(DataError) as caught:
        task.prepare(split_rows(rows), tiny_tokenizer())
    assert str(caught.value) == (
        "train.jsonl, line 2: column 'tags' must be a list of tags (texts or numbers), "
        "and holds a list ['NN']"
    )


def test_tag_outside_the_declared_labels_names_the_row() -> None:
    task = make_task(POS, labels=["DT", "NN", "VB"])
    with pytest.raises(DataError, match=r"^train\.jsonl, line 1: label 'JJ'"):
        task.prepare(split_rows(POS), tiny_tokenizer())


def test_missing_tags_column_names_the_row() -> None:
    rows = [POS[0], {"tokens": ["a"]}]
    task = make_task(rows)
    with pytest.raises(DataError, match=r"line 2: missing column 'tags'"):
        task.prepare(split_rows(rows), tiny_tokenizer())


def batch_of(task: TokenClassification, features: dict[str, list[Any]]) -> dict[str, Any]:
    rows = [
        dict(zip(features, values, strict=True)) for values in zip(*features.values(), strict=True)
    ]
    return task.collate(rows, pad_token_id=0)


def test_truncation_keeps_predictions_aligned_with_references() -> None:
    rows = [
        {"tokens": ["movies", "good", "films", "bad"], "tags": ["B-ORG", "O", "B-PER", "O"]},
        {"tokens": ["the", "film"], "tags": ["O", "B-ORG"]},
    ]
    task = make_task(rows, max_length=5)
    features = task.prepare(split_rows(rows), tiny_tokenizer())
    assert len(features["input_ids"][0]) == 5
    references = task.references(features)
    assert references == [["B-ORG", "O"], ["O", "B-ORG"]]
    batch = batch_of(task, features)
    logits = torch.randn(
        2,
        batch["input_ids"].shape[1],
        len(task.label_names),
        generator=torch.Generator().manual_seed(0),
    )
    predicted = task.predict(logits, batch)
    assert [len(p["tags"]) for p in predicted] == [2, 2]
    scores = task.score(predicted, references)
    assert 0.0 <= scores["f1"] <= 1.0
    assert_declared(task, scores)
    # a head that outputs the gold label everywhere scores perfectly
    perfect = torch.nn.functional.one_hot(batch["labels"].clamp(min=0), len(task.label_names))
    gold_predictions = task.predict(perfect.float(), batch)
    assert [p["tags"] for p in gold_predictions] == references
    assert task.score(gold_predictions, references)["f1"] == 1.0


def test_loss_ignores_continuation_pieces() -> None:
    task = make_task(NER)
    features = task.prepare(split_rows(NER), tiny_tokenizer())
    batch = batch_of(task, features)
    logits = torch.randn(*batch["input_ids"].shape, len(task.label_names))
    kept = batch["labels"] != -100
    expected = torch.nn.functional.cross_entropy(logits[kept], batch["labels"][kept])
    assert task.loss(logits, batch).item() == pytest.approx(expected.item())


def tags(*rows: list[str]) -> list[dict[str, list[str]]]:
    return [{"tags": row} for row in rows]


def test_metrics_on_bio_tags_include_span_f1() -> None:
    task = make_task(NER)
    gold = [["B-ORG", "O", "O"], ["B-PER", "I-PER", "O", "B-ORG"]]
    guess = [["B-ORG", "O", "B-PER"], ["B-PER", "O", "O", "B-ORG"]]
    scores = task.score(tags(*guess), gold)
    assert scores["primary"] == "f1"
    assert scores["accuracy"] == pytest.approx(5 / 7)
    # gold spans: ORG, PER(2 words), ORG; predicted: ORG, PER, PER(1 word), ORG -> 2 correct
    assert scores["precision"] == pytest.approx(2 / 4)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(f1_score(gold, guess, mode="strict", scheme=IOB2))
    assert scores["f1"] == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))


def test_metrics_on_pos_tags_have_no_span_scores() -> None:
    task = make_task(POS)
    gold = [["DT", "NN", "VB", "JJ"], ["DT", "NN"]]
    guess = [["DT", "NN", "NN", "JJ"], ["NN", "NN"]]
    scores = task.score(tags(*guess), gold)
    assert scores == {"primary": "accuracy", "accuracy": pytest.approx(4 / 6)}
    assert "f1" not in scores


def test_trivial_predictions_are_the_majority_tag() -> None:
    rows = [*POS, {"tokens": ["movie", "film", "plot"], "tags": ["NN", "NN", "NN"]}]
    task = make_task(rows)
    train = task.prepare(split_rows(rows), tiny_tokenizer())
    references = [["DT", "NN"], ["VB"]]
    trivial = task.trivial_predictions(train, references)
    assert trivial == [{"tags": ["NN", "NN"]}, {"tags": ["NN"]}]
    assert task.score(trivial, references)["accuracy"] == pytest.approx(1 / 3)


# --- class imbalance -----------------------------------------------------------------------
def test_balanced_tag_weights_count_every_word() -> None:
    task = make_task(POS, class_weights="balanced")
    tags = [tag for row in POS for tag in row["tags"]]  # DT 2, NN 2, VB 1, JJ 1
    counts = Counter(tags)
    expected = [len(tags) / (len(counts) * counts[name]) for name in task.label_names]
    assert task.state["class_weights"] == pytest.approx(expected)
    assert task.state["class_weights"][task.label_names.index("VB")] == pytest.approx(1.5)


def test_tag_weight_mapping_with_an_unknown_tag_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^tasks\[ner\]\.class_weights: no label 'B-LOC'"):
        make_task(NER, class_weights={"B-LOC": 2.0})


def test_weighted_loss_is_weighted_cross_entropy_over_first_sub_words() -> None:
    task = make_task(NER, class_weights={"O": 0.25, "B-PER": 3.0})
    batch = batch_of(task, task.prepare(split_rows(NER), tiny_tokenizer()))
    logits = torch.randn(
        *batch["input_ids"].shape, len(task.label_names), generator=torch.Generator().manual_seed(1)
    )
    weight = torch.tensor([{"O": 0.25, "B-PER": 3.0}.get(name, 1.0) for name in task.label_names])
    expected = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), batch["labels"].flatten(), weight=weight, ignore_index=-100
    )
    assert task.loss(logits, batch).item() == pytest.approx(expected.item())
    assert make_task(NER).loss(logits, batch).item() != pytest.approx(expected.item())


def test_per_tag_f1_only_with_class_weights() -> None:
    gold = [["DT", "NN", "VB", "JJ"], ["DT", "NN"]]
    guess = [["DT", "NN", "NN", "JJ"], ["NN", "NN"]]
    assert not any(key.startswith("f1[") for key in make_task(POS).score(tags(*guess), gold))
    task = make_task(POS, class_weights="balanced")
    scores = task.score(tags(*guess), gold)
    flat_gold = [tag for row in gold for tag in row]
    flat_guess = [tag for row in guess for tag in row]
    expected = sklearn_f1(flat_gold, flat_guess, labels=task.label_names, average=None)
    assert [scores[f"f1[{name}]"] for name in task.label_names] == pytest.approx(expected.tolist())
    assert scores["primary"] == "accuracy"
    assert_declared(task, scores)


def test_resampling_is_refused_for_token_classification() -> None:
    raw = {
        "model": {"name_or_path": "x"},
        "tasks": [
            {
                "name": "ner",
                "kind": "token_classification",
                "data": {"train": "x"},
                "resample": "balanced",
            }
        ],
    }
    message = r"tasks\[ner\]\.resample: token_classification tasks take no 'resample'; classif"
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw)
