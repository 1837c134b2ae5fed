"""The feature cache: same inputs skip tokenization, any change re-tokenizes; the task entry:
same files and spec skip reading, validating and fitting; the training subset a run uses
(capped, oversampled)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import sentiment_rows, tiny_decoder_tokenizer, tiny_tokenizer, write_jsonl
from datasets import Dataset

import mtlm.data.features as features
from mtlm.config import TaskSpec, task_spec
from mtlm.data.features import load_task_data, tokenizer_fingerprint, training_subset
from mtlm.data.rows import SplitRows
from mtlm.errors import DataError
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
    return task_spec({"name": "sentiment", "kind": "classification", "data": files, **fields})


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
    left_behind = tokenizer.backend_tokenizer.truncation, tokenizer.backend_tokenizer.padding
    assert tokenizer_fingerprint(tokenizer) == fresh
    # Hashing clears them for a moment; it must put them back.
    assert (tokenizer.backend_tokenizer.truncation, tokenizer.backend_tokenizer.padding) == (
        left_behind
    )
    assert left_behind[0]["max_length"] == 3
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
        spec = task_spec(
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


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of every task whose rows `load_task_data` reads (and validates)."""
    calls: list[str] = []
    original = features.read_task_splits

    def spy(spec: TaskSpec) -> Any:
        calls.append(spec.name)
        return original(spec)

    monkeypatch.setattr(features, "read_task_splits", spy)
    return calls


def forbid_reading_and_fitting(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> Any:
        raise AssertionError("the rows were read or fitted on a cache hit")

    monkeypatch.setattr(features, "read_task_splits", refuse)
    monkeypatch.setattr(Classification, "fit", refuse)


def one_file_spec(tmp_path: Path, **fields: Any) -> TaskSpec:
    """A task whose splits come from one file with a seed (its notes say so)."""
    path = write_jsonl(tmp_path / "all.jsonl", sentiment_rows(40, seed=3))
    return task_spec(
        {
            "name": "sentiment",
            "kind": "classification",
            "data": {"path": str(path), "split_seed": 1},
            **fields,
        }
    )


def test_a_second_load_reads_and_fits_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prepare_calls: list[str]
) -> None:
    spec = one_file_spec(tmp_path, class_weights="balanced")
    cache = tmp_path / "cache"
    first = load_task_data(spec, tiny_tokenizer(), cache)
    assert first.notes and first.task.state["class_weights"] is not None
    forbid_reading_and_fitting(monkeypatch)
    prepare_calls.clear()
    second = load_task_data(spec, tiny_tokenizer(), cache)
    assert prepare_calls == []
    assert second.task.state == first.task.state
    assert second.notes == first.notes
    assert list(second.splits) == list(first.splits) == ["test", "validation", "train"]
    for split in first.splits:
        assert second.splits[split].to_dict() == first.splits[split].to_dict()
    # the same as with no cache at all
    monkeypatch.undo()
    fresh = load_task_data(spec, tiny_tokenizer(), None)
    assert fresh.task.state == second.task.state and fresh.notes == second.notes
    assert fresh.splits["train"].to_dict() == second.splits["train"].to_dict()


def test_one_changed_byte_reads_the_rows_again(tmp_path: Path, reads: list[str]) -> None:
    spec = sentiment_spec(tmp_path)
    cache = tmp_path / "cache"
    load_task_data(spec, tiny_tokenizer(), cache)
    load_task_data(spec, tiny_tokenizer(), cache)
    assert reads == ["sentiment"]
    path = Path(spec.data.validation)
    text = path.read_text(encoding="utf-8")
    assert '"pos"' in text
    changed = text.replace('"pos"', '"pot"', 1)  # one byte: s -> t
    assert (
        len(changed) == len(text) and sum(a != b for a, b in zip(changed, text, strict=True)) == 1
    )
    path.write_text(changed, encoding="utf-8")
    again = load_task_data(spec, tiny_tokenizer(), cache)
    assert reads == ["sentiment", "sentiment"]
    assert again.task.label_names == ["neg", "pos", "pot"]
    assert again.task.label_names[again.splits["validation"]["labels"][text_index(text)]] == "pot"


def text_index(text: str) -> int:
    """The row of the first `"pos"` label in JSON lines."""
    return next(i for i, line in enumerate(text.splitlines()) if '"pos"' in line)


def test_a_changed_setting_reads_the_rows_again(
    tmp_path: Path, reads: list[str], prepare_calls: list[str]
) -> None:
    cache = tmp_path / "cache"
    load_task_data(sentiment_spec(tmp_path), tiny_tokenizer(), cache)
    short = load_task_data(sentiment_spec(tmp_path, max_length=4), tiny_tokenizer(), cache)
    assert reads == ["sentiment", "sentiment"] and len(prepare_calls) == 4
    assert max(len(ids) for ids in short.splits["train"]["input_ids"]) == 4
    # a setting of the loss reads again (it may shape what `fit` learns), but the features
    # it does not shape are still reused
    prepare_calls.clear()
    weighted = load_task_data(sentiment_spec(tmp_path, loss_weight=2.0), tiny_tokenizer(), cache)
    assert reads == ["sentiment"] * 3 and prepare_calls == []
    assert weighted.task.spec.loss_weight == 2.0
    # each spec keeps its own entry
    load_task_data(sentiment_spec(tmp_path, max_length=4), tiny_tokenizer(), cache)
    assert reads == ["sentiment"] * 3


def test_a_changed_parse_setting_reads_the_rows_again(tmp_path: Path, reads: list[str]) -> None:
    spec = sentiment_spec(tmp_path)
    cache = tmp_path / "cache"
    load_task_data(spec, tiny_tokenizer(), cache)
    as_jsonl = spec.model_copy(update={"data": spec.data.model_copy(update={"format": "jsonl"})})
    load_task_data(as_jsonl, tiny_tokenizer(), cache)
    assert reads == ["sentiment", "sentiment"]


def test_a_given_task_with_other_labels_does_not_reuse_the_entry(
    tmp_path: Path, reads: list[str]
) -> None:
    spec = sentiment_spec(tmp_path)
    cache = tmp_path / "cache"
    first = load_task_data(spec, tiny_tokenizer(), cache)
    reversed_task = Classification(spec, {"label_names": ["pos", "neg"], "family": "encoder"})
    given = load_task_data(spec, tiny_tokenizer(), cache, reversed_task)
    assert reads == ["sentiment", "sentiment"]
    assert given.task is reversed_task and reversed_task.label_names == ["pos", "neg"]
    assert given.splits["train"]["labels"] == [
        1 - label for label in first.splits["train"]["labels"]
    ]
    assert given.notes == first.notes


def test_a_given_task_with_the_same_labels_reuses_the_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = sentiment_spec(tmp_path)
    cache = tmp_path / "cache"
    first = load_task_data(spec, tiny_tokenizer(), cache)
    # a trained model's task: the same labels, plus what the model bound
    trained = Classification(spec, {**first.task.state, "family": "encoder"})
    forbid_reading_and_fitting(monkeypatch)
    given = load_task_data(spec, tiny_tokenizer(), cache, trained)
    assert given.task is trained and trained.state["family"] == "encoder"
    assert given.splits["train"].to_dict() == first.splits["train"].to_dict()


def test_a_given_task_on_an_empty_cache_leaves_the_fitting_to_a_new_task(
    tmp_path: Path, reads: list[str]
) -> None:
    spec = sentiment_spec(tmp_path)
    cache = tmp_path / "cache"
    load_task_data(
        spec, tiny_tokenizer(), cache, Classification(spec, {"label_names": ["neg", "pos"]})
    )
    # the entry has no learned state: a new task must fit, once
    fitted = load_task_data(spec, tiny_tokenizer(), cache)
    load_task_data(spec, tiny_tokenizer(), cache)
    assert reads == ["sentiment", "sentiment"]
    assert fitted.task.label_names == ["neg", "pos"]


def test_features_missing_from_the_cache_are_built_again(
    tmp_path: Path, reads: list[str], prepare_calls: list[str]
) -> None:
    import shutil

    spec = sentiment_spec(tmp_path)
    cache = tmp_path / "cache"
    first = load_task_data(spec, tiny_tokenizer(), cache)
    for folder in cache.iterdir():
        if folder.name != "tasks":
            shutil.rmtree(folder)
    prepare_calls.clear()
    again = load_task_data(spec, tiny_tokenizer(), cache)
    assert reads == ["sentiment", "sentiment"] and len(prepare_calls) == 2
    assert again.splits["train"].to_dict() == first.splits["train"].to_dict()


def test_bad_data_fails_the_same_with_a_filled_cache(tmp_path: Path) -> None:
    spec = sentiment_spec(tmp_path)
    cache = tmp_path / "cache"
    load_task_data(spec, tiny_tokenizer(), cache)
    path = Path(spec.data.train)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2][:-1]  # no closing brace
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as cached:
        load_task_data(spec, tiny_tokenizer(), cache)
    with pytest.raises(DataError) as uncached:
        load_task_data(spec, tiny_tokenizer(), None)
    assert str(cached.value) == str(uncached.value)
    assert str(cached.value).startswith(f"{path}, line 3: not valid JSON")
    rows = sentiment_rows(20, seed=0)
    rows[4]["label"] = ""
    write_jsonl(path, rows)
    with pytest.raises(DataError, match=r"line 5: empty value in column 'label'"):
        load_task_data(spec, tiny_tokenizer(), cache)
    path.unlink()
    with pytest.raises(DataError, match="data file not found"):
        load_task_data(spec, tiny_tokenizer(), cache)


def test_hub_data_is_read_every_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = sentiment_rows(12, seed=0)
    calls: list[str] = []

    def from_the_hub(spec: TaskSpec) -> Any:
        calls.append(spec.name)
        split = SplitRows(rows, "user/reviews[train]", [f"row {i}" for i in range(12)], "abc")
        return {"train": split}, ["a note"]

    monkeypatch.setattr(features, "read_task_splits", from_the_hub)
    spec = task_spec({"name": "hub", "kind": "classification", "data": {"hub": "user/reviews"}})
    cache = tmp_path / "cache"
    first = load_task_data(spec, tiny_tokenizer(), cache)
    second = load_task_data(spec, tiny_tokenizer(), cache)
    assert calls == ["hub", "hub"] and not (cache / "tasks").exists()
    assert second.notes == first.notes == ["a note"]
    assert second.splits["train"].to_dict() == first.splits["train"].to_dict()


def test_the_tokenizer_hash_covers_added_tokens_and_padding_side() -> None:
    tokenizer = tiny_decoder_tokenizer()
    before = tokenizer_fingerprint(tokenizer)
    tokenizer.add_tokens(["brandnew"])
    added = tokenizer_fingerprint(tokenizer)
    assert added != before
    tokenizer.padding_side = "left" if tokenizer.padding_side == "right" else "right"
    assert tokenizer_fingerprint(tokenizer) not in (before, added)


def numbered_rows(count: int) -> Dataset:
    return Dataset.from_dict({"row": list(range(count))})


def subset_spec(**fields: Any) -> TaskSpec:
    return task_spec({"name": "s", "kind": "classification", "data": {"train": "x"}, **fields})


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
