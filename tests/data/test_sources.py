"""Reading task rows from local files and local `datasets` builders; errors name file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mtlm import ConfigError, DataError
from mtlm.config import TaskSpec, task_spec
from mtlm.data.sources import (
    check_split_name,
    check_split_present,
    read_file,
    read_task_splits,
)


def spec(data: dict[str, Any], **fields: Any) -> TaskSpec:
    """A classification task spec reading `data`."""
    return task_spec({"name": "t", "kind": "classification", "data": data, **fields})


def tagging_spec(data: dict[str, Any], **fields: Any) -> TaskSpec:
    return task_spec({"name": "tags", "kind": "token_classification", "data": data, **fields})


def data_error(call, *args: Any) -> str:
    with pytest.raises(DataError) as caught:
        call(*args)
    message = str(caught.value)
    assert "\n" not in message
    return message


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


ROWS = [{"text": "good film", "label": "pos"}, {"text": "bad, dull", "label": "neg"}]


# --- formats --------------------------------------------------------------------------------
def test_csv(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('text,label\ngood film,pos\n"bad, dull",neg\n', encoding="utf-8")
    rows = read_file(str(path))
    assert rows.rows == ROWS
    assert rows.locators == ["line 2", "line 3"]
    assert rows.where(1) == f"{path}, line 3"


def test_tsv(tmp_path: Path) -> None:
    path = tmp_path / "d.tsv"
    path.write_text("text\tlabel\ngood film\tpos\nbad, dull\tneg\n", encoding="utf-8")
    assert read_file(str(path)).rows == ROWS


def test_csv_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"\xef\xbb\xbftext,label\ngood film,pos\n")
    assert read_file(str(path)).rows == ROWS[:1]


def test_csv_row_with_too_many_fields_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("text,label\ngood,pos\nbad,neg,extra\n", encoding="utf-8")
    message = data_error(read_file, str(path))
    assert f"{path}, line 3" in message


def test_jsonl_skips_blank_lines_and_keeps_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n", encoding="utf-8")
    rows = read_file(str(path))
    assert rows.rows == ROWS
    assert rows.locators == ["line 1", "line 3"]


def test_explicit_format_overrides_the_suffix(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    path.write_text("text\tlabel\ngood film\tpos\n", encoding="utf-8")
    assert read_file(str(path), "tsv").rows == ROWS[:1]
    message = data_error(read_file, str(path))
    assert str(path) in message
    assert "'.txt'" in message


def test_plain_text_gives_a_row_per_non_empty_line_under_the_text_column(tmp_path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("the first line\n\n  the second line \n", encoding="utf-8")
    task = spec(
        {"train": str(path), "format": "text"}, kind="language_modeling", text_column="body"
    )
    (train,) = read_task_splits(task)[0].values()
    assert train.rows == [{"body": "the first line"}, {"body": "the second line"}]
    assert train.where(1) == f"{path}, line 3"


def test_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    table = pa.table({"text": ["good film", "bad, dull"], "label": ["pos", "neg"], "n": [1, 2]})
    pq.write_table(table, path)
    rows = read_file(str(path))
    assert rows.rows == [{**ROWS[0], "n": 1}, {**ROWS[1], "n": 2}]
    assert rows.where(1) == f"{path}, row 2"


def test_corrupt_parquet_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    path.write_bytes(b"not parquet at all")
    message = data_error(read_file, str(path))
    assert str(path) in message
    assert "Parquet" in message


CONLL = """-DOCSTART- -X- -X- O

EU NNP B-ORG
rejects VBZ O
German JJ B-MISC

Peter NNP B-PER
Blackburn NNP I-PER
-DOCSTART- -X- -X- O
BRUSSELS NNP B-LOC


"""


def test_conll_sentences_split_on_blank_lines_and_docstart(tmp_path: Path) -> None:
    path = tmp_path / "d.conll"
    path.write_text(CONLL, encoding="utf-8")
    rows = read_file(str(path), spec=tagging_spec({"train": str(path)}))
    assert rows.rows == [
        {"tokens": ["EU", "rejects", "German"], "tags": ["B-ORG", "O", "B-MISC"]},
        {"tokens": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"]},
        {"tokens": ["BRUSSELS"], "tags": ["B-LOC"]},
    ]
    assert rows.locators == ["line 3", "line 7", "line 10"]


def test_conll_columns_and_names_come_from_the_spec(tmp_path: Path) -> None:
    path = tmp_path / "d.conll"
    path.write_text(CONLL, encoding="utf-8")
    task = tagging_spec(
        {"train": str(path), "conll_tag_column": 1},
        tokens_column="words",
        tags_column="pos",
    )
    rows = read_file(str(path), spec=task)
    assert rows.rows[0] == {"words": ["EU", "rejects", "German"], "pos": ["NNP", "VBZ", "JJ"]}


def test_conll_line_without_a_tag_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "d.conll"
    path.write_text("EU B-ORG\nrejects O\n\nPeter B-PER\nBlackburn\n", encoding="utf-8")
    message = data_error(read_file, str(path), "auto", tagging_spec({"train": str(path)}))
    assert f"{path}, line 5" in message
    assert "1 field" in message


# --- errors ---------------------------------------------------------------------------------
def test_missing_file_names_file_and_task(tmp_path: Path) -> None:
    path = tmp_path / "absent.jsonl"
    message = data_error(read_task_splits, spec({"train": str(path)}))
    assert str(path) in message
    assert "not found" in message
    assert "task t" in message


def test_empty_split_names_file_split_and_task(tmp_path: Path) -> None:
    train = jsonl(tmp_path / "train.jsonl", ROWS)
    validation = tmp_path / "validation.jsonl"
    validation.write_text("\n", encoding="utf-8")
    message = data_error(
        read_task_splits, spec({"train": str(train), "validation": str(validation)})
    )
    assert str(validation) in message
    assert "validation split" in message
    assert "empty" in message


def test_csv_with_only_a_header_is_an_empty_split(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,label\n", encoding="utf-8")
    message = data_error(read_task_splits, spec({"train": str(path)}))
    assert str(path) in message
    assert "empty" in message


def test_no_training_split(tmp_path: Path) -> None:
    validation = jsonl(tmp_path / "validation.jsonl", ROWS)
    message = data_error(read_task_splits, spec({"validation": str(validation)}))
    assert "no training data" in message


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_undecodable_text_names_its_line(tmp_path: Path, bom: bytes) -> None:
    path = tmp_path / "d.jsonl"
    lines = [json.dumps(row).encode() for row in ROWS] + [b"\xff" + b'{"text": "x"}']
    path.write_bytes(bom + b"\n".join(lines) + b"\n")
    message = data_error(read_file, str(path))
    assert f"{path}, line 3" in message
    assert "UTF-8" in message
    assert "0xff" in message


def test_bad_json_line_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[1]) + '\n{"text": "x", label}\n',
        encoding="utf-8",
    )
    message = data_error(read_file, str(path))
    assert f"{path}, line 3" in message
    assert "JSON" in message


def test_json_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n[1, 2]\n", encoding="utf-8")
    assert f"{path}, line 2" in data_error(read_file, str(path))


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"text": "x", "label": NaN}', "NaN is not a JSON value; write null for a missing value"),
        ('{"text": "x", "score": -Infinity}', "-Infinity is not a JSON value"),
        ('{"text": "x", "label": "pos", "text": "y"}', "key 'text' appears twice in one object"),
        ('{"text": "x", "meta": {"a": 1, "a": 2}}', "key 'a' appears twice in one object"),
    ],
)
def test_json_that_only_python_accepts_or_that_loses_a_value_names_its_line(
    tmp_path: Path, line: str, problem: str
) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + line + "\n", encoding="utf-8")
    assert data_error(read_file, str(path)).startswith(f"{path}, line 3: {problem}")


# --- split names ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("split", "hint"),
    [
        ("dev", " (a hub dataset's 'dev' split is read as 'validation')"),
        ("tst", " (did you mean 'test'?)"),
        ("holdout", ""),
    ],
)
def test_a_split_no_task_can_have_names_the_key(split: str, hint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_split_name(split, "training.eval_split")
    assert str(caught.value) == (
        f"training.eval_split: no split {split!r}; the splits are train, validation and test" + hint
    )


def test_a_split_no_task_has_names_the_key_and_the_splits_there_are() -> None:
    check_split_present("test", "training.final_eval_split", {"a": ["train"], "b": ["test"]})
    with pytest.raises(ConfigError) as caught:
        check_split_present(
            "test", "training.final_eval_split", {"a": ["train", "validation"], "b": ["train"]}
        )
    assert str(caught.value) == (
        "training.final_eval_split: no task has a 'test' split (the tasks have train, "
        "validation); give a task test data or set training.final_eval_split to one of those"
    )


# --- split files and seeded splits ----------------------------------------------------------
def test_per_split_files_and_notes_for_missing_splits(tmp_path: Path) -> None:
    train = jsonl(tmp_path / "train.jsonl", ROWS)
    test = jsonl(tmp_path / "test.jsonl", ROWS[:1])
    splits, notes = read_task_splits(spec({"train": str(train), "test": str(test)}))
    assert set(splits) == {"train", "test"}
    assert splits["test"].rows == ROWS[:1]
    assert any("no validation split" in note for note in notes)


def numbered_rows(count: int) -> list[dict[str, Any]]:
    return [{"text": f"row {index}", "label": str(index % 3)} for index in range(count)]


def split_texts(splits) -> dict[str, list[str]]:
    return {split: [row["text"] for row in rows.rows] for split, rows in splits.items()}


def test_seeded_split_is_disjoint_complete_and_sized(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "all.jsonl", numbered_rows(200))
    data = {"path": str(path), "validation_fraction": 0.2, "test_fraction": 0.1}
    splits, notes = read_task_splits(spec(data))
    texts = split_texts(splits)
    assert {split: len(rows) for split, rows in texts.items()} == {
        "train": 140,
        "validation": 40,
        "test": 20,
    }
    every = texts["train"] + texts["validation"] + texts["test"]
    assert sorted(every) == sorted(f"row {index}" for index in range(200))
    assert texts["train"] != sorted(texts["train"], key=lambda text: int(text.split()[1]))
    assert any("seed 0" in note for note in notes)
    # each row keeps the line it came from
    first = splits["test"]
    assert first.locators[0] == f"line {int(first.rows[0]['text'].split()[1]) + 1}"


def test_seeded_split_is_deterministic_and_depends_on_the_seed(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "all.jsonl", numbered_rows(100))
    first, _ = read_task_splits(spec({"path": str(path), "split_seed": 3}))
    again, _ = read_task_splits(spec({"path": str(path), "split_seed": 3}))
    other, _ = read_task_splits(spec({"path": str(path), "split_seed": 4}))
    assert split_texts(first) == split_texts(again)
    assert split_texts(first)["test"] != split_texts(other)["test"]
    assert first["test"].fingerprint == again["test"].fingerprint
    assert first["test"].fingerprint != other["test"].fingerprint
    assert first["test"].fingerprint != first["validation"].fingerprint


# --- datasets builders ----------------------------------------------------------------------
def test_hub_path_with_local_json_files(tmp_path: Path) -> None:
    train = jsonl(tmp_path / "train.jsonl", numbered_rows(10))
    test = jsonl(tmp_path / "test.jsonl", ROWS)
    data = {
        "hub": "json",
        "hub_kwargs": {
            "data_files": {"train": str(train), "test": str(test)},
            "cache_dir": str(tmp_path / "hf-cache"),
        },
    }
    splits, notes = read_task_splits(spec(data))
    assert set(splits) == {"train", "test"}
    assert splits["train"].rows == numbered_rows(10)
    assert splits["test"].rows == ROWS
    assert splits["test"].where(1) == "json[test], row 2"
    assert any("no validation split" in note for note in notes)


def test_hub_dataset_with_only_a_train_split_gets_derived_splits(tmp_path: Path) -> None:
    train = jsonl(tmp_path / "train.jsonl", numbered_rows(50))
    data = {
        "hub": "json",
        "hub_kwargs": {"data_files": {"train": str(train)}, "cache_dir": str(tmp_path / "hf")},
        "validation_fraction": 0.2,
        "test_fraction": 0.2,
    }
    splits, notes = read_task_splits(spec(data))
    texts = split_texts(splits)
    assert {split: len(rows) for split, rows in texts.items()} == {
        "train": 30,
        "validation": 10,
        "test": 10,
    }
    assert sorted(sum(texts.values(), [])) == sorted(row["text"] for row in numbered_rows(50))
    assert any("only a train split" in note for note in notes)


def test_hub_dataset_that_cannot_load(tmp_path: Path) -> None:
    data = {
        "hub": "json",
        "hub_kwargs": {
            "data_files": {"train": str(tmp_path / "absent.jsonl")},
            "cache_dir": str(tmp_path / "hf"),
        },
    }
    message = data_error(read_task_splits, spec(data))
    assert "'json'" in message
    assert "task t" in message


# --- hub datasets: named splits, class names, local copies -----------------------------------
def pairs(count: int, offset: int = 0) -> dict[str, list[Any]]:
    """Columns of `count` text pairs whose class ids alternate 1, 0, ..."""
    indices = range(offset, offset + count)
    return {
        "sentence1": [f"first {i}" for i in indices],
        "sentence2": [f"second {i}" for i in indices],
        "label": [(i + 1) % 2 for i in indices],
    }


def firsts(rows) -> list[str]:
    return [row["sentence1"] for row in rows.rows]


def save_pairs(folder: Path, sizes: dict[str, int], hidden: tuple[str, ...] = ()) -> Path:
    """A dataset of text pairs with class ids, written by `save_to_disk`; the `hidden` splits
    have no labels (-1, as the benchmarks' test splits)."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features(
        {
            "sentence1": Value("string"),
            "sentence2": Value("string"),
            "label": ClassLabel(names=["not_equivalent", "equivalent"]),
        }
    )
    parts, offset = {}, 0
    for split, size in sizes.items():
        columns = pairs(size, offset)
        if split in hidden:
            columns["label"] = [-1] * size
        parts[split] = Dataset.from_dict(columns, features=features)
        offset += size
    DatasetDict(parts).save_to_disk(str(folder))
    return folder


def test_hub_splits_named_and_validation_carved_from_train(tmp_path: Path) -> None:
    folder = save_pairs(tmp_path / "saved", {"train": 20, "dev_matched": 6, "test": 4}, ("test",))
    data = {"hub": str(folder), "splits": {"test": "dev_matched"}, "validation_fraction": 0.25}
    splits, notes = read_task_splits(spec(data, text_column="sentence1"))
    sizes = {split: len(rows.rows) for split, rows in splits.items()}
    assert sizes == {"train": 15, "validation": 5, "test": 6}  # 20 * 0.25 = 5 carved
    assert firsts(splits["test"]) == pairs(6, 20)["sentence1"]
    carved = {split: firsts(rows) for split, rows in splits.items()}
    assert sorted(carved["train"] + carved["validation"]) == sorted(pairs(20)["sentence1"])
    assert splits["test"].where(0) == f"{folder}[dev_matched], row 1"
    assert notes == [
        "t: the test split is the dataset's 'dev_matched' split",
        "t: the validation split is carved from the dataset's 'train' split (25% of it, seed 0)",
    ]
    again, _ = read_task_splits(spec({**data, "split_seed": 1}, text_column="sentence1"))
    assert firsts(again["validation"]) != carved["validation"]


def test_class_ids_are_read_as_their_names(tmp_path: Path) -> None:
    folder = save_pairs(tmp_path / "saved", {"train": 4, "test": 2}, ("test",))
    data = {"hub": str(folder), "splits": {"test": "test"}, "validation_fraction": 0.0}
    splits, _ = read_task_splits(spec(data, text_column="sentence1"))
    assert [row["label"] for row in splits["train"].rows] == [
        "equivalent",
        "not_equivalent",
        "equivalent",
        "not_equivalent",
    ]
    assert [row["label"] for row in splits["test"].rows] == [None, None]  # hidden labels


def test_lists_of_class_ids_are_read_as_names(tmp_path: Path) -> None:
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    # Sequence: datasets 3's list feature, and a List in 4 and later.
    features = Features(
        {"tokens": Sequence(Value("string")), "tags": Sequence(ClassLabel(names=["O", "X"]))}
    )
    rows = {"tokens": [["a", "b"], ["c"]], "tags": [[0, 1], [1]]}
    DatasetDict({"train": Dataset.from_dict(rows, features=features)}).save_to_disk(
        str(tmp_path / "tagged")
    )
    splits, _ = read_task_splits(
        tagging_spec(
            {"hub": str(tmp_path / "tagged"), "validation_fraction": 0, "test_fraction": 0}
        )
    )
    assert [row["tags"] for row in splits["train"].rows] == [["O", "X"], ["X"]]


def test_a_saved_folder_per_configuration(tmp_path: Path) -> None:
    save_pairs(tmp_path / "glue" / "mrpc", {"train": 6, "validation": 2})
    data = {"hub": str(tmp_path / "glue"), "hub_config": "mrpc"}
    splits, notes = read_task_splits(spec(data, text_column="sentence1"))
    assert {split: len(rows.rows) for split, rows in splits.items()} == {
        "train": 6,
        "validation": 2,
    }
    assert splits["validation"].source == f"{tmp_path / 'glue'}[validation]"


def test_a_named_split_that_the_dataset_lacks_names_the_key(tmp_path: Path) -> None:
    folder = save_pairs(tmp_path / "saved", {"train": 6, "validation": 2})
    data = {"hub": str(folder), "splits": {"test": "validation_matched"}}
    message = data_error(read_task_splits, spec(data, text_column="sentence1"))
    assert message == (
        f"tasks[t].data.splits.test: dataset {str(folder)!r} has no split 'validation_matched' "
        "(its splits: train, validation)"
    )


def test_a_folder_laid_out_as_the_hub_holds_one_keeps_its_class_names(tmp_path: Path) -> None:
    from conftest import write_hub_folder

    rows = {
        split: [{"sentence1": "a", "sentence2": "b", "label": index % 2} for index in range(4)]
        for split in ("train", "validation")
    }
    folder = write_hub_folder(tmp_path / "repo", "mrpc", rows, {"label": ["no", "yes"]})
    data = {
        "hub": str(folder),
        "hub_config": "mrpc",
        "hub_kwargs": {"cache_dir": str(tmp_path / "hf")},
    }
    splits, _ = read_task_splits(spec(data, text_column="sentence1"))
    assert [row["label"] for row in splits["validation"].rows] == ["no", "yes", "no", "yes"]


def test_splits_need_a_hub_dataset() -> None:
    with pytest.raises(ConfigError) as caught:
        spec({"train": "t.jsonl", "splits": {"test": "validation"}})
    assert "data.splits: names the splits of a hub dataset; it needs data.hub" in str(caught.value)
