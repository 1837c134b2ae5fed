"""Multiple choice: pair encoding and truncation, batches of uneven candidate counts, the masked
loss, answers as index or text, errors naming the row, and training beside a classifier."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import FILLER, NEGATIVE, POSITIVE, assert_declared, tiny_tokenizer, write_jsonl
from datasets import Dataset

from mtlm import ConfigError, DataError, MultiTaskModel, Trainer
from mtlm.config import config_from_dict, task_spec
from mtlm.data.features import load_task_data
from mtlm.data.rows import SplitRows
from mtlm.inference import input_signature
from mtlm.tasks import KINDS
from mtlm.tasks.multiple_choice import MultipleChoice
from mtlm.training.streams import TaskBatchStream


def split_rows(rows: list[dict[str, Any]], source: str = "train.jsonl") -> SplitRows:
    return SplitRows(rows, source, [f"line {i + 1}" for i in range(len(rows))], "fingerprint")


def make_task(**fields: Any) -> MultipleChoice:
    spec = task_spec({"name": "mc", "kind": "multiple_choice", "data": {"train": "x"}, **fields})
    return MultipleChoice(spec)


ROWS = [
    {"text": "the film was", "choices": ["good", "bad", "dull"], "label": 0},
    {"text": "the plot is very", "choices": ["awful", "boring", "superb"], "label": "superb"},
]


def test_kind_is_registered() -> None:
    assert KINDS["multiple_choice"] is MultipleChoice


def test_each_row_holds_one_encoded_pair_per_candidate() -> None:
    tokenizer = tiny_tokenizer()
    features = make_task().prepare(split_rows(ROWS), tokenizer)
    assert features["labels"] == [0, 2]
    for row, ids, types in zip(
        ROWS, features["input_ids"], features["token_type_ids"], strict=True
    ):
        assert ids == [tokenizer(row["text"], choice)["input_ids"] for choice in row["choices"]]
        assert [pair.count(1) for pair in types] == [2] * 3  # ending and its [SEP]


def test_a_batch_is_rows_times_candidates_pairs_and_scores_rows_by_candidates(
    tiny_model_dir: Path,
) -> None:
    task = make_task()
    features = task.prepare(split_rows(ROWS), tiny_tokenizer())
    rows = [{key: values[i] for key, values in features.items()} for i in range(2)]
    batch = task.collate(rows, pad_token_id=0)
    longest = max(len(ids) for row in features["input_ids"] for ids in row)
    assert batch["input_ids"].shape == (2 * 3, longest)
    assert batch["attention_mask"].shape == (6, longest)
    assert batch["choice_mask"].tolist() == [[True] * 3] * 2
    assert batch["labels"].tolist() == [0, 2]
    model = MultiTaskModel.from_backbone(str(tiny_model_dir), {"mc": task}).eval()
    with torch.no_grad():
        output = model("mc", batch)
    assert output.shape == (6, 1)
    scores = task.choice_scores(output, batch)
    assert scores.shape == (2, 3)
    assert task.batch_rows(batch) == 2  # examples are rows, not pairs
    assert scores[1, 2] == output[5, 0]  # row-major: the second row's third candidate


def test_the_context_is_cut_so_that_the_ending_survives() -> None:
    tokenizer = tiny_tokenizer()
    context = "the movie was very good and the plot was fine and it was lovely"
    rows = [{"text": context, "choices": ["very dull", "great"], "label": 1}]
    features = make_task(max_length=8).prepare(split_rows(rows), tokenizer)
    first, second = features["input_ids"][0]
    ending = tokenizer("very dull", add_special_tokens=False)["input_ids"]
    assert len(first) == 8
    assert first[-len(ending) - 1 : -1] == ending
    assert first[:6] == tokenizer(context)["input_ids"][:4] + [tokenizer.sep_token_id] + ending[:1]
    assert len(second) == 8


def test_an_ending_longer_than_max_length_is_cut_too() -> None:
    # only_first alone would refuse the whole batch
    rows = [{"text": "the film", "choices": ["good", "it was very good and great"], "label": 0}]
    features = make_task(max_length=6).prepare(split_rows(rows), tiny_tokenizer())
    assert [len(ids) for ids in features["input_ids"][0]] == [6, 6]
    assert features["input_ids"][0][1][:2] == tiny_tokenizer()("the")["input_ids"][:2]


def uneven_batch(task: MultipleChoice) -> dict[str, torch.Tensor]:
    rows = [
        {"text": "the film", "choices": ["good", "bad"], "label": 0},
        {"text": "the plot", "choices": ["dull", "poor", "superb", "awful"], "label": 2},
    ]
    features = task.prepare(split_rows(rows), tiny_tokenizer())
    return task.collate([{key: values[i] for key, values in features.items()} for i in range(2)], 0)


def test_rows_with_fewer_candidates_are_padded_with_masked_places() -> None:
    task = make_task()
    batch = uneven_batch(task)
    assert batch["input_ids"].shape[0] == 2 + 4  # no encoder pass for a padded place
    assert batch["choice_mask"].tolist() == [[True, True, False, False], [True] * 4]
    # the short row's real candidates score far below anything: still one of them wins
    head_output = torch.tensor([[-50.0], [-60.0], [0.5], [-1.0], [3.0], [0.0]])
    predicted = task.predict(head_output, batch)
    assert predicted[0]["choice"] == 0
    odds = math.exp(-10)
    assert predicted[0]["probabilities"] == pytest.approx([1 / (1 + odds), odds / (1 + odds)])
    assert len(predicted[0]["probabilities"]) == 2
    assert predicted[1]["choice"] == 2
    assert sum(predicted[1]["probabilities"]) == pytest.approx(1.0)


def test_loss_is_cross_entropy_over_the_real_candidates_only() -> None:
    task = make_task()
    batch = uneven_batch(task)
    head_output = torch.tensor([[1.0], [2.0], [0.5], [-1.0], [3.0], [0.0]], requires_grad=True)
    loss = task.loss(head_output, batch)
    first = math.log(math.exp(1.0) + math.exp(2.0)) - 1.0
    second = math.log(sum(math.exp(v) for v in (0.5, -1.0, 3.0, 0.0))) - 3.0
    assert loss.item() == pytest.approx((first + second) / 2)
    loss.backward()
    assert torch.isfinite(head_output.grad).all()
    # d loss / d score of the right candidate: (p - 1) / rows
    right = math.exp(1.0) / (math.exp(1.0) + math.exp(2.0))
    assert head_output.grad[0, 0].item() == pytest.approx((right - 1) / 2)


@pytest.mark.parametrize(
    ("label", "expected"), [(1, 1), ("2", 2), (" 0 ", 0), ("bad", 1), ("dull", 2)]
)
def test_answer_as_index_or_as_text(label: Any, expected: int) -> None:
    rows = [{"text": "the film", "choices": ["good", "bad", "dull"], "label": label}]
    assert make_task().prepare(split_rows(rows), tiny_tokenizer())["labels"] == [expected]


def test_choices_may_be_json_text_as_csv_holds_them() -> None:
    rows = [{"text": "the film", "choices": '["good", "bad"]', "label": "1"}]
    features = make_task().prepare(split_rows(rows, "train.csv"), tiny_tokenizer())
    assert len(features["input_ids"][0]) == 2
    assert features["labels"] == [1]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"text": "the film", "label": 0}, r"line 3: missing column 'choices'"),
        ({"text": "the film", "choices": [], "label": 0}, r"line 3: column 'choices' must be"),
        ({"text": "the film", "choices": "", "label": 0}, r"line 3: empty value in column 'cho"),
        ({"text": "the film", "choices": ["good"], "label": 0}, r"line 3: .* at least two"),
        ({"text": "the film", "choices": ["good", " "], "label": 0}, r"line 3: .*non-empty"),
        ({"text": "the film", "choices": "good or bad", "label": 0}, r"line 3: .*'good or bad'"),
        ({"text": "the film", "choices": [1, 2], "label": 0}, r"line 3: column 'choices'"),
        ({"choices": ["good", "bad"], "label": 0}, r"line 3: missing column 'text'"),
        ({"text": "film", "choices": ["good", "bad"]}, r"line 3: missing column 'label'"),
        ({"text": "film", "choices": ["good", "bad"], "label": 2}, r"line 3: answer index 2 .*2 c"),
        ({"text": "film", "choices": ["good", "bad"], "label": "-1"}, r"line 3: answer index -1"),
        ({"text": "film", "choices": ["good", "bad"], "label": "fine"}, r"line 3: answer 'fine'"),
        ({"text": "film", "choices": ["good", "bad"], "label": True}, r"line 3: answer True"),
    ],
)
def test_bad_rows_are_named(row: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=r"^train\.jsonl, " + message):
        make_task().prepare(split_rows([*ROWS, row]), tiny_tokenizer())


def test_prediction_inputs_are_checked_and_named(tiny_model_dir: Path) -> None:
    model = MultiTaskModel.from_backbone(str(tiny_model_dir), {"mc": make_task()})
    with pytest.raises(DataError, match=r"^input 2: column 'choices' must be"):
        model.predict("mc", [("the film", ["good", "bad"]), ("the plot", ["dull"])])


def test_never_shares_a_prediction_pass_with_another_kind() -> None:
    spec = task_spec(
        {
            "name": "c",
            "kind": "classification",
            "data": {"train": "x"},
            "text_pair_column": "choices",
        }
    )
    pair_classifier = KINDS["classification"](spec)
    assert pair_classifier.input_columns == make_task().input_columns
    assert input_signature(pair_classifier) != input_signature(make_task())
    assert input_signature(make_task(name="other")) == input_signature(make_task())


def test_class_imbalance_options_are_refused() -> None:
    for option in ({"class_weights": "balanced"}, {"resample": "balanced"}):
        raw = {
            "model": {"name_or_path": "x"},
            "tasks": [{"name": "mc", "kind": "multiple_choice", "data": {"train": "x"}, **option}],
        }
        key = next(iter(option))
        with pytest.raises(
            ConfigError, match=rf"tasks\[mc\]\.{key}: multiple_choice tasks take no"
        ):
            config_from_dict(raw)


def test_metrics_and_the_majority_position_baseline() -> None:
    task = make_task()
    predictions = [{"choice": c, "probabilities": []} for c in (0, 1, 2, 1)]
    scores = task.score(predictions, [0, 1, 1, 3])
    assert scores == {"primary": "accuracy", "accuracy": pytest.approx(0.5)}
    assert_declared(task, scores)
    trivial = task.trivial_predictions({"labels": [2, 0, 2, 1, 2]}, [2, 0, 1])
    assert [p["choice"] for p in trivial] == [2, 2, 2]
    assert task.score(trivial, [2, 0, 1])["accuracy"] == pytest.approx(1 / 3)


def test_streams_group_rows_by_their_longest_candidate() -> None:
    task = make_task()
    rows = [
        {"text": "the film", "choices": ["good", "it was very good and great"], "label": 0},
        {"text": "a", "choices": ["bad", "dull", "poor"], "label": 1},
    ]
    features = Dataset.from_dict(task.prepare(split_rows(rows), tiny_tokenizer()))
    stream = TaskBatchStream(task, features, batch_size=2, seed=0, pad_token_id=0)
    assert stream.order.lengths.tolist() == [11, 5]
    batch = stream.next_batch()
    assert batch["input_ids"].shape == (5, 11)
    assert batch["choice_mask"].sum().item() == 5


def choice_rows(count: int, seed: int) -> list[dict[str, Any]]:
    """Two to four endings, exactly one with a positive word; the answer given in all forms."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        size = rng.randint(2, 4)
        answer = rng.randrange(size)
        endings = [
            f"{rng.choice(FILLER)} {rng.choice(POSITIVE if i == answer else NEGATIVE)}"
            for i in range(size)
        ]
        label = (answer, str(answer), endings[answer])[index % 3]
        rows.append({"text": " ".join(rng.sample(FILLER, 3)), "choices": endings, "label": label})
    return rows


@pytest.fixture
def choice_files(tmp_path: Path) -> dict[str, str]:
    return {
        split: str(write_jsonl(tmp_path / "data" / f"mc_{split}.jsonl", choice_rows(count, seed)))
        for split, count, seed in (("train", 96, 0), ("validation", 24, 1), ("test", 40, 2))
    }


def mixed_config(tiny_model_dir, task_files, choice_files, tmp_path, **training: Any):
    sentiment = {split: str(path) for split, path in task_files["sentiment"].items()}
    return config_from_dict(
        {
            "model": {"name_or_path": str(tiny_model_dir)},
            "cache_dir": str(tmp_path / "features"),
            "tasks": [
                {"name": "mc", "kind": "multiple_choice", "data": choice_files},
                {"name": "sentiment", "kind": "classification", "data": sentiment},
            ],
            "training": {
                "output_dir": str(tmp_path / "run"),
                "batch_size": 8,
                "learning_rate": 1e-3,
                "logging_steps": 10,
                "progress_bar": False,
                **training,
            },
        }
    )


def gold_index(row: dict[str, Any]) -> int:
    label = row["label"]
    return row["choices"].index(label) if label in row["choices"] else int(label)


@pytest.mark.parametrize(("step_mode", "steps"), [("sampled", 160), ("joint", 80)])
def test_trains_beside_a_classifier_and_reloads_with_identical_predictions(
    tiny_model_dir, task_files, choice_files, tmp_path, step_mode, steps
) -> None:
    config = mixed_config(
        tiny_model_dir, task_files, choice_files, tmp_path, step_mode=step_mode, max_steps=steps
    )
    trainer = Trainer(config)
    results = trainer.train()
    # chance is about 0.36 with two to four candidates
    assert results["tasks"]["mc"]["accuracy"] >= 0.8
    assert results["tasks"]["sentiment"]["accuracy"] >= 0.8
    log = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert any("mc" in row.get("losses", {}) for row in log)

    test_rows = [json.loads(line) for line in Path(choice_files["test"]).read_text().splitlines()]
    reloaded = MultiTaskModel.from_pretrained(tmp_path / "run")
    before = trainer.model.predict("mc", test_rows)
    after = reloaded.predict(["mc", "sentiment"], test_rows)
    assert [p["choice"] for p in after["mc"]] == [p["choice"] for p in before]
    for old, new in zip(before, after["mc"], strict=True):
        assert new["probabilities"] == pytest.approx(old["probabilities"], abs=1e-6)
    assert len(after["sentiment"]) == len(test_rows)
    # prediction on raw rows agrees with evaluation on cached features
    right = [p["choice"] == gold_index(row) for p, row in zip(after["mc"], test_rows, strict=True)]
    assert sum(right) / len(right) == pytest.approx(results["tasks"]["mc"]["accuracy"])


def test_features_are_cached_with_their_nested_candidates(choice_files, tmp_path) -> None:
    spec = task_spec({"name": "mc", "kind": "multiple_choice", "data": choice_files})
    cache = tmp_path / "cache"
    first = load_task_data(spec, tiny_tokenizer(), cache)
    second = load_task_data(spec, tiny_tokenizer(), cache)
    assert len([p for p in cache.iterdir() if p.name != "tasks"]) == 3  # one folder per split
    assert first.splits["train"].to_dict() == second.splits["train"].to_dict()
    counts = [len(ids) for ids in second.splits["train"]["input_ids"]]
    assert sorted(set(counts)) == [2, 3, 4]


def test_candidates_in_columns_of_their_own_and_the_answer_as_a_column_name() -> None:
    rows = [
        {"premise": "the film was", "question": "effect", "c1": "good", "c2": "dull", "y": "c2"},
        {"premise": "the plot is", "question": "cause", "c1": "bad", "c2": "fine", "y": 0},
    ]
    task = make_task(
        text_column=["premise", "question"], choices_column=["c1", "c2"], label_column="y"
    )
    tokenizer = tiny_tokenizer()
    features = task.prepare(split_rows(rows), tokenizer)
    assert features["labels"] == [1, 0]
    assert task.input_columns == ["premise", "question", "c1", "c2"]
    assert features["input_ids"][0] == [
        tokenizer("the film was [SEP] effect", choice)["input_ids"] for choice in ("good", "dull")
    ]
    with pytest.raises(DataError, match=r"train.jsonl, line 1: column 'c2' must hold a text"):
        task.prepare(split_rows([{**rows[0], "c2": ["dull"]}]), tokenizer)
    with pytest.raises(DataError, match=r"line 1: answer 'c3' in column 'y'"):
        task.prepare(split_rows([{**rows[0], "y": "c3"}]), tokenizer)


def test_candidates_in_columns_need_two_columns() -> None:
    with pytest.raises(ConfigError, match=r"choices_column: name two columns or more"):
        make_task(choices_column=["c1"])
