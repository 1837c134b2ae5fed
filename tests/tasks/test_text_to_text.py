"""Text-to-text: prompt and target templates, the prompt masked out of the loss, layouts for
causal and sequence-to-sequence models, metric choice and the trivial baseline."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_declared, tiny_decoder_tokenizer

from mtlm import ConfigError, DataError
from mtlm.config import task_spec
from mtlm.data.rows import SplitRows
from mtlm.tasks.text_to_text import TextToText, fill, template_fields

ROWS = [
    {"text": "good movie", "label": "pos"},
    {"text": "the plot was bad", "label": "neg"},
    {"text": "lovely", "label": "pos"},
]


def split_rows(rows: list[dict[str, Any]]) -> SplitRows:
    return SplitRows(rows, "train.jsonl", [f"line {i + 1}" for i in range(len(rows))], "fp")


def make_task(rows: list[dict[str, Any]] = ROWS, family: str = "causal", **fields: Any):
    spec = task_spec(
        {
            "name": "sentiment",
            "kind": "text_to_text",
            "data": {"train": "x"},
            "prompt_template": "review: {text} sentiment:",
            **fields,
        }
    )
    task = TextToText(spec)
    task.fit({"train": split_rows(rows)})
    task.state["family"] = family
    return task


def ids(*words: str) -> list[int]:
    return tiny_decoder_tokenizer().convert_tokens_to_ids(list(words))


def test_features_are_the_prompt_then_the_target_and_end_of_sequence():
    task = make_task()
    features = task.prepare(split_rows(ROWS[:1]), tiny_decoder_tokenizer())
    assert features["input_ids"] == [ids("review:", "good", "movie", "sentiment:", "pos", "</s>")]
    assert features["prompt_length"] == [4]
    assert features["target"] == ["pos"]


def test_causal_batches_mask_the_prompt_and_the_padding_out_of_the_labels():
    task = make_task()
    features = task.prepare(split_rows(ROWS[:2]), tiny_decoder_tokenizer())
    rows = [{key: values[i] for key, values in features.items()} for i in range(2)]
    batch = task.collate(rows, pad_token_id=0)
    first, second = batch["labels"].tolist()
    assert first == [-100] * 4 + ids("pos", "</s>") + [-100] * 2
    assert second == [-100] * 6 + ids("neg", "</s>")
    assert batch["attention_mask"][0].tolist() == [1] * 6 + [0] * 2


def test_the_loss_counts_target_tokens_only():
    task = make_task()
    features = task.prepare(split_rows(ROWS[:1]), tiny_decoder_tokenizer())
    batch = task.collate([{key: values[0] for key, values in features.items()}], 0)
    torch.manual_seed(0)
    logits = torch.randn(1, 6, 40)
    loss = task.loss(logits, batch)
    # Position 3 (the prompt's last token) predicts "pos", position 4 predicts "</s>".
    expected = F.cross_entropy(logits[0, 3:5], torch.tensor(ids("pos", "</s>")))
    assert loss.item() == pytest.approx(expected.item())
    changed = logits.clone()
    changed[0, :3] = torch.randn(3, 40)  # the prompt's predictions of prompt tokens
    assert task.loss(changed, batch).item() == pytest.approx(loss.item())
    # A model that returns only the last k logits (logits_to_keep) gives the same loss.
    assert task.loss(logits[:, -3:], batch).item() == pytest.approx(loss.item())


def test_seq2seq_batches_split_the_prompt_from_the_target():
    task = make_task(family="seq2seq")
    features = task.prepare(split_rows(ROWS[:2]), tiny_decoder_tokenizer())
    rows = [{key: values[i] for key, values in features.items()} for i in range(2)]
    batch = task.collate(rows, pad_token_id=0)
    assert batch["input_ids"].tolist() == [
        ids("review:", "good", "movie", "sentiment:") + [0, 0],
        ids("review:", "the", "plot", "was", "bad", "sentiment:"),
    ]
    assert batch["labels"].tolist() == [ids("pos", "</s>"), ids("neg", "</s>")]
    logits = torch.randn(2, 2, 40)
    expected = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten())
    assert task.loss(logits, batch).item() == pytest.approx(expected.item())


def test_templates_read_columns_and_join_lists():
    assert template_fields("words: {tokens} -> {tags}", "key") == ["tokens", "tags"]
    assert fill("{tokens}", {"tokens": ["the", "movie"]}) == "the movie"
    assert template_fields("{translation[de]} -> {translation[en]}", "key") == ["translation"]
    assert fill("{translation[de]}", {"translation": {"de": "Hallo", "en": "Hello"}}) == "Hallo"
    with pytest.raises(ConfigError, match="key"):
        template_fields("{text", "key")
    with pytest.raises(ConfigError, match="not a column name"):
        template_fields("{row.attribute}", "key")


def test_a_missing_target_column_names_the_row():
    task = make_task()
    with pytest.raises(DataError, match="train.jsonl, line 2: missing column 'label'"):
        task.prepare(split_rows([ROWS[0], {"text": "good"}]), tiny_decoder_tokenizer())


def test_a_nested_value_the_row_lacks_names_the_row():
    rows = [{"text": {"de": "gut"}, "label": "pos"}, {"text": {"en": "good"}, "label": "pos"}]
    task = make_task(rows, prompt_template="{text[de]}")
    with pytest.raises(DataError, match="train.jsonl, line 2: cannot fill the template"):
        task.prepare(split_rows(rows), tiny_decoder_tokenizer())


def test_metrics_follow_the_kind_of_target():
    labels = make_task()
    assert labels.label_names == ["neg", "pos"]
    assert labels.primary_metric == "accuracy"
    scores = labels.metrics(["pos", "Neg.", "pos"], ["pos", "neg", "neg"])
    assert scores["accuracy"] == pytest.approx(2 / 3)
    numbers = make_task([{"text": "a", "label": 1.5}, {"text": "b", "label": -2.0}])
    assert numbers.primary_metric == "pearson"
    assert numbers.metrics(["1.4", "-2"], ["1.5", "-2.0"])["pearson"] == pytest.approx(1.0)
    tags = make_task(
        [{"tokens": ["the", "movie"], "tags": ["DT", "NN"]}],
        prompt_template="{tokens}",
        target_template="{tags}",
    )
    assert tags.primary_metric == "word_accuracy"
    assert tags.metrics(["DT VB"], ["DT NN"])["word_accuracy"] == pytest.approx(0.5)
    many_numbers = make_task([{"text": str(i), "label": i / 10} for i in range(60)])
    assert many_numbers.label_names is None
    assert many_numbers.primary_metric == "pearson"
    free = make_task([{"text": str(i), "label": f"answer {i}"} for i in range(60)])
    assert free.label_names is None
    assert free.primary_metric == "chrf"
    assert {"bleu", "chrf", "rougeL"} <= set(free.metrics(["answer 1"], ["answer 1"]))
    for task, predictions, references in (
        (labels, ["pos"], ["neg"]),
        (numbers, ["1.4"], ["1.5"]),
        (tags, ["DT VB"], ["DT NN"]),
        (free, ["answer 1"], ["answer 2"]),
    ):
        assert_declared(task, task.metrics(predictions, references))


def test_scoring_labels_needs_label_like_targets():
    rows = [{"text": str(i), "label": f"answer {i}"} for i in range(60)]
    with pytest.raises(ConfigError, match="decoding: score_labels"):
        make_task(rows, decoding="score_labels")


def test_the_trivial_answer_is_the_most_common_training_target():
    task = make_task()
    assert task.trivial_predictions({}, ["neg", "neg"]) == ["pos", "pos"]
