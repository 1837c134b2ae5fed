"""Each kind's options: the keys a kind takes, its metric names, labels and task names."""

from __future__ import annotations

from typing import Any

import pytest

from mtlm import ConfigError
from mtlm.config import config_from_dict, task_spec
from mtlm.tasks import KINDS
from mtlm.tasks.spec import LABEL_SLOT, TaskSpec, reports_metric


def error_of(**entry: Any) -> str:
    """The one-line error of a config whose single task is `entry`."""
    task = {"name": "t", "data": {"train": "x.jsonl"}, **entry}
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"model": {"name_or_path": "m"}, "tasks": [task]}, source="exp.yaml")
    message = str(caught.value)
    assert "\n" not in message
    return message


def takers(key: str) -> list[str]:
    return [name for name, kind in KINDS.items() if key in kind.options.model_fields]


def test_every_kind_has_options_of_its_own_name() -> None:
    for name, kind in KINDS.items():
        spec = task_spec({"name": "t", "kind": name, "data": {"train": "x"}})
        assert type(spec) is kind.options
        assert isinstance(spec, TaskSpec)
        assert spec.kind == name


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_key_of_other_kinds_is_refused_naming_the_kinds_that_take_it(kind: str) -> None:
    own = KINDS[kind].options.model_fields
    foreign = sorted(
        {key for other in KINDS.values() for key in other.options.model_fields} - set(own)
    )
    assert foreign, "every kind lacks some other kind's option"
    for key in foreign:
        message = error_of(kind=kind, **{key: 1})
        assert message.startswith(f"exp.yaml: tasks[t].{key}: {kind} tasks take no {key!r}; ")
        assert message.endswith(f"{', '.join(takers(key))} tasks do")


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_misspelt_key_is_unknown_and_the_nearest_key_of_the_kind_suggested(kind: str) -> None:
    message = error_of(kind=kind, max_lenght=64)
    assert (
        message
        == "exp.yaml: tasks[t].max_lenght: unknown key 'max_lenght' (did you mean 'max_length'?)"
    )


@pytest.mark.parametrize("kind", list(KINDS))
def test_primary_metric_must_be_a_metric_of_the_kind(kind: str) -> None:
    spec = task_spec({"name": "t", "kind": kind, "data": {"train": "x"}})
    names = spec.metric_names()
    message = error_of(kind=kind, primary_metric="acc")
    assert message == (
        f"exp.yaml: tasks[t].primary_metric: 'acc' is not a metric of {kind} tasks "
        f"(metrics: {', '.join(names)})"
    )
    for name in names:
        metric = name.replace(LABEL_SLOT, "some_label")
        chosen = task_spec(
            {"name": "t", "kind": kind, "data": {"train": "x"}, "primary_metric": metric}
        )
        assert chosen.primary_metric == metric


def test_metric_names_follow_the_options() -> None:
    def names(kind: str, **options: Any) -> list[str]:
        entry = {"name": "t", "kind": kind, "data": {"train": "x"}, **options}
        return task_spec(entry).metric_names()

    assert "f1[<label>]" not in names("classification")
    assert "f1[<label>]" in names("classification", resample="balanced")
    assert names("classification", class_weights="balanced", labels=["yes", "no"])[-2:] == [
        "f1[yes]",
        "f1[no]",
    ]
    assert "f1" in names("token_classification")
    assert "f1" not in names("token_classification", labels=["DT", "NN"])
    assert "f1" in names("token_classification", labels=["O", "B-PER", "I-PER"])
    assert "f1[no_answer]" not in names("extractive_qa")
    assert "f1[no_answer]" in names("extractive_qa", allow_unanswerable=True)


def test_a_per_label_metric_matches_any_label_only_where_labels_come_from_the_data() -> None:
    assert reports_metric(["accuracy", "f1[<label>]"], "f1[pos]")
    assert not reports_metric(["accuracy", "f1[<label>]"], "f1[]")
    assert not reports_metric(["accuracy", "f1[pos]"], "f1[neg]")


def test_labels_declared_twice_are_refused() -> None:
    message = error_of(kind="classification", labels=["pos", "neg", "pos"])
    assert message == "exp.yaml: tasks[t].labels: label 'pos' is declared twice"


def test_labels_written_as_numbers_or_booleans_are_text() -> None:
    entry = {"name": "t", "kind": "token_classification", "data": {"train": "x"}}
    assert task_spec({**entry, "labels": [0, 1.5, True]}).labels == ["0", "1.5", "True"]
    weights = task_spec({**entry, "class_weights": {1: 2.0}}).class_weights
    assert weights == {"1": 2.0}


@pytest.mark.parametrize("name", ["a\nb", "a/b", "ok then", "", "é"])
def test_a_task_name_must_be_able_to_name_a_file(name: str) -> None:
    message = error_of(kind="regression", name=name)
    assert message.startswith("exp.yaml: tasks[0].name: a task name may hold only letters")
    assert message.endswith(f"(got {name!r})")


def test_stride_must_leave_room_in_the_window() -> None:
    message = error_of(kind="extractive_qa", stride=64, max_length=64)
    assert message.startswith("exp.yaml: tasks[t].stride: 64 is the overlap")
