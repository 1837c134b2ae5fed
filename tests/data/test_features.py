"""The feature cache: same inputs skip tokenization, any change re-tokenizes; the training
subset a run uses (capped, oversampled)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import sentiment_rows, tiny_decoder_tokenizer, tiny_tokenizer, write_jsonl
from datasets import Dataset

from mtlm.config import TaskSpec
from mtlm.data.features import load_task_data, tokenizer_fingerprint, training_subset
from mtlm.tasks.classification import Classification


def spy_on_prepare(monkeypatch: pytest.MonkeyPatch, kind: type) -> list[str]:
    """Record the source of every split that `kind.prepare` tokenizes."""
    calls: list[str] = []
    original = kind.prepare

    def spy(self: Any, rows: Any, tokenizer: Any) -> Any:
        calls.append(rows.source)
        return original(self, rows, tokenizer)

    monkeypatch.setattr(kind, "prepare", spy)
    return calls


@pytest.fixture
def prepare_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the source of every split that Classification.prepare tokenizes."""
    return spy_on_prepare(monkeypatch, Classification)


def sentiment_spec(tmp_path: Path, **fields: Any) -> TaskSpec:
    files = {
        split: str(write_jsonl(tmp_path / f"{split}.jsonl", sentiment_rows(count, seed)))
        for split, count, seed in (("train", 20, 0), ("validation", 6, 1))
    }
    return TaskSpec.model_validate(
        {"name": "sentiment", "kind": "classification", "data": files, **fields}
    )


def test_second_load_reuses_the_cache(tmp_path: Path, prepare_calls: list[str]) -> None:
    spec = sentiment_spec(tmp_path)
    cache = tmp_path / "cache"
    first = load_task_data(spec, tiny_tokenizer(), cache)
    assert sorted(prepare_calls) == sorted([spec.data.train, spec.data.validation])
    prepare_calls.clear()
    second = load_task_data(spec, tiny_tokenizer(), cache)
    assert prepare_calls == []
    assert set(second.splits) == {"train", "validation"}
    for split in first.splits:
        assert second.splits[split].to_dict() == first.splits[split].to_dict()
    assert second.task.label_names == first.task.label_names == ["neg", "pos"]


def test_the_tokenizer_hash_ignores_truncation_an_earlier_call_left_behind() -> None:
    # A fast tokenizer keeps the truncation of its last call; one task tokenized at
    # max_length 64 must not make the next task's cache key differ from run to run.
    tokenizer = tiny_decoder_tokenizer()
    fresh = tokenizer_fingerprint(tokenizer)
    tokenizer(["good movie", "bad plot"], truncation=True, max_length=3, padding=True)
    assert tokenizer_fingerprint(tokenizer) == fresh
    assert tokenizer_fingerprint(tiny_tokenizer()) != fresh


def test_cached_features_equal_uncached_ones(tmp_path: Path) -> None:
    spec = sentiment_spec(tmp_path)
    cached = load_task_data(spec, tiny_tokenizer(), tmp_path / "cache")
    fresh = load_task_data(spec, tiny_tokenizer(), None)
    assert cached.splits["train"].to_dict() == fresh.splits["train"].to_dict()


def test_a_changed_data_file_is_tokenized_again(tmp_path: Path, prepare_calls: list[str]) -> None:
    spec = sentiment_spec(tmp_path)
    cache = tmp_path / "cache"
    load_task_data(spec, tiny_tokenizer(), cache)
    write_jsonl(Path(spec.data.validation), sentiment_rows(9, seed=7))
    prepare_calls.clear()
    again = load_task_data(spec, tiny_tokenizer(), cache)
    assert prepare_calls == [spec.data.validation]
    assert len(again.splits["validation"]) == 9
    assert again.splits["validation"]["labels"] == [
        ["neg", "pos"].index(row["label"]) for row in sentiment_rows(9, seed=7)
    ]


def test_a_changed_input_setting_is_tokenized_again(
    tmp_path: Path, prepare_calls: list[str]
) -> None:
    cache = tmp_path / "cache"
    load_task_data(sentiment_spec(tmp_path), tiny_tokenizer(), cache)
    prepare_calls.clear()
    short = load_task_data(sentiment_spec(tmp_path, max_length=4), tiny_tokenizer(), cache)
    assert len(prepare_calls) == 2
    assert max(len(ids) for ids in short.splits["train"]["input_ids"]) == 4


def test_a_new_label_elsewhere_changes_the_label_ids(
    tmp_path: Path, prepare_calls: list[str]
) -> None:
    spec = sentiment_spec(tmp_path)
    cache = tmp_path / "cache"
    load_task_data(spec, tiny_tokenizer(), cache)
    rows = sentiment_rows(6, seed=1)
    rows[0]["label"] = "mixed"
    write_jsonl(Path(spec.data.validation), rows)
    prepare_calls.clear()
    again = load_task_data(spec, tiny_tokenizer(), cache)
    # the train file is unchanged, but its label ids moved: it must be re-encoded too
    assert sorted(prepare_calls) == sorted([spec.data.train, spec.data.validation])
    assert again.task.label_names == ["mixed", "neg", "pos"]
    train_rows = sentiment_rows(20, seed=0)
    expected = [again.task.label_names.index(row["label"]) for row in train_rows]
    assert again.splits["train"]["labels"] == expected


def test_changed_conll_columns_are_tokenized_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mtlm.tasks.token_classification import TokenClassification

    calls = spy_on_prepare(monkeypatch, TokenClassification)
    path = tmp_path / "train.conll"
    path.write_text("1 the DT\n2 film NN\n\n1 a DT\n2 movie NN\n", encoding="utf-8")

    def load(token_column: int) -> list[list[str]]:
        spec = TaskSpec.model_validate(
            {
                "name": "pos",
                "kind": "token_classification",
                "data": {"train": str(path), "conll_token_column": token_column},
            }
        )
        data = load_task_data(spec, tiny_tokenizer(), tmp_path / "cache")
        tokenizer = tiny_tokenizer()
        return [tokenizer.decode(ids[1:-1]).split() for ids in data.splits["train"]["input_ids"]]

    assert load(0) == [["[UNK]", "[UNK]"], ["[UNK]", "[UNK]"]]  # the index column, by mistake
    assert load(1) == [["the", "film"], ["a", "movie"]]  # fixed: the words, tokenized again
    assert len(calls) == 2


def numbered_rows(count: int) -> Dataset:
    return Dataset.from_dict({"row": list(range(count))})


def subset_spec(**fields: Any) -> TaskSpec:
    return TaskSpec.model_validate(
        {"name": "s", "kind": "classification", "data": {"train": "x"}, **fields}
    )


def test_training_subset_caps_with_a_seeded_choice() -> None:
    rows = numbered_rows(30)
    assert training_subset(rows, subset_spec(), seed=0) is rows
    chosen = training_subset(rows, subset_spec(max_examples=8), seed=0)["row"]
    assert len(chosen) == len(set(chosen)) == 8 and chosen == sorted(chosen)
    assert training_subset(rows, subset_spec(max_examples=8), seed=0)["row"] == chosen
    others = [training_subset(rows, subset_spec(max_examples=8), seed=s)["row"] for s in (1, 2)]
    assert any(other != chosen for other in others)
    assert training_subset(rows, subset_spec(max_examples=99), seed=0)["row"] == list(range(30))


def test_training_subset_oversamples_every_kept_row() -> None:
    rows = numbered_rows(10)
    repeated = training_subset(rows, subset_spec(oversample=3), seed=0)["row"]
    assert Counter(repeated) == {row: 3 for row in range(10)}
    both = training_subset(rows, subset_spec(max_examples=4, oversample=2), seed=5)["row"]
    kept = training_subset(rows, subset_spec(max_examples=4), seed=5)["row"]
    assert Counter(both) == {row: 2 for row in kept}
