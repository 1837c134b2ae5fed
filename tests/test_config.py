"""Config validation: every error is a ConfigError that names the file and the key path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mtlm import ConfigError
from mtlm.config import (
    config_from_dict,
    load_config,
    saved_sharing_spec,
    saved_task_spec,
    sharing_spec,
    task_spec,
)
from mtlm.tasks import KINDS


def minimal(**overrides: Any) -> dict[str, Any]:
    """A valid config dict with one classification task; keyword arguments replace top keys."""
    raw: dict[str, Any] = {
        "model": {"name_or_path": "some/model"},
        "tasks": [{"name": "sentiment", "kind": "classification", "data": {"train": "t.jsonl"}}],
    }
    raw.update(overrides)
    return raw


def task(**fields: Any) -> dict[str, Any]:
    """One task entry; keyword arguments replace its fields."""
    return {"name": "sentiment", "kind": "classification", "data": {"train": "t.jsonl"}, **fields}


def error_of(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(raw, source="exp.yaml")
    message = str(caught.value)
    assert message.startswith("exp.yaml: ")
    assert "\n" not in message
    return message


def test_minimal_config_is_valid_with_defaults() -> None:
    config = config_from_dict(minimal())
    assert config.tasks[0].name == "sentiment"
    assert config.training.sampler.kind == "proportional"


def test_unknown_top_level_key_is_named_with_a_suggestion() -> None:
    message = error_of(minimal(trainig={"max_steps": 5}))
    assert "trainig" in message
    assert "did you mean 'training'" in message


def test_unknown_nested_key_names_its_path_and_suggests() -> None:
    message = error_of(minimal(training={"learning_rat": 1e-4}))
    assert "training.learning_rat" in message
    assert "did you mean 'learning_rate'" in message


def test_unknown_key_inside_a_task_names_the_task() -> None:
    message = error_of(minimal(tasks=[task(data={"train": "t.jsonl", "formt": "csv"})]))
    assert "tasks[sentiment].data.formt" in message
    assert "did you mean 'format'" in message


def test_unknown_key_two_levels_deep() -> None:
    message = error_of(minimal(training={"sampler": {"kind": "temperature", "temprature": 3}}))
    assert "training.sampler.temprature" in message
    assert "did you mean 'temperature'" in message


@pytest.mark.parametrize("value", ["many", 2.5, [1]])
def test_wrong_type_names_the_key_path(value: Any) -> None:
    message = error_of(minimal(training={"max_steps": value}))
    assert "training.max_steps" in message
    assert "integer" in message


def test_out_of_range_value_names_the_key_and_the_value() -> None:
    message = error_of(minimal(training={"batch_size": 0}))
    assert "training.batch_size" in message
    assert "(got 0)" in message


def test_unknown_task_kind_names_the_task_and_suggests_the_closest_kind() -> None:
    message = error_of(minimal(tasks=[task(kind="token_clasification")]))
    assert "tasks[sentiment].kind" in message
    assert "did you mean 'token_classification'" in message


def test_unknown_task_kind_without_a_close_match_lists_the_kinds() -> None:
    message = error_of(minimal(tasks=[task(kind="zzz")]))
    assert "tasks[sentiment].kind" in message
    for kind in ("classification", "regression", "token_classification"):
        assert kind in message


def test_numeric_labels_are_read_as_text() -> None:
    config = config_from_dict(minimal(tasks=[task(labels=[0, 1, 2])]))
    assert config.tasks[0].labels == ["0", "1", "2"]


def test_task_without_a_name_is_located_by_index() -> None:
    entry = task()
    del entry["name"]
    message = error_of(minimal(tasks=[task(name="first"), entry]))
    assert "tasks[1].name" in message
    assert "required key is missing" in message


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (minimal(tasks=[task(labels=[{"a": 1}, "b"])]), "tasks[sentiment].labels[0]"),
        (minimal(tasks=[task(), "oops"]), "tasks[1]"),
    ],
)
def test_list_items_that_are_not_mappings_are_located_by_index(
    raw: dict[str, Any], path: str
) -> None:
    assert f"exp.yaml: {path}: " in error_of(raw)


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"tasks": [task()]}, "model"),
        (minimal(model={}), "model.name_or_path"),
        (minimal(tasks=[{"name": "sentiment", "kind": "classification"}]), "tasks[sentiment].data"),
    ],
)
def test_missing_required_key_is_named(raw: dict[str, Any], path: str) -> None:
    message = error_of(raw)
    assert f"exp.yaml: {path}: required key is missing" in message


def test_duplicate_task_names_are_rejected() -> None:
    message = error_of(minimal(tasks=[task(), task(kind="regression"), task(name="other")]))
    assert "unique" in message
    assert "sentiment" in message
    assert "other" not in message


def test_no_tasks_is_rejected() -> None:
    assert "tasks" in error_of(minimal(tasks=[]))


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"train": "t.jsonl", "path": "all.jsonl"},
        {"path": "all.jsonl", "hub": "glue"},
        {"validation": "v.jsonl", "bundled": "demo"},
    ],
)
def test_exactly_one_data_source(data: dict[str, Any]) -> None:
    message = error_of(minimal(tasks=[task(data=data)]))
    assert "tasks[sentiment].data" in message
    assert "exactly one source" in message


@pytest.mark.parametrize(
    "data",
    [
        {"train": "t.jsonl"},
        {"train": "t.jsonl", "validation": "v.jsonl", "test": "x.jsonl"},
        {"path": "all.jsonl"},
        {"hub": "glue", "hub_config": "sst2"},
        {"bundled": "demo"},
    ],
)
def test_each_single_data_source_is_accepted(data: dict[str, Any]) -> None:
    config = config_from_dict(minimal(tasks=[task(data=data)]))
    assert config.tasks[0].data.model_dump(exclude_defaults=True) == data


def test_split_fractions_must_leave_training_rows() -> None:
    data = {"path": "all.jsonl", "validation_fraction": 0.5, "test_fraction": 0.5}
    message = error_of(minimal(tasks=[task(data=data)]))
    assert "tasks[sentiment].data" in message
    assert "below 1" in message


def write_yaml(path: Path, raw: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "exp.yaml", minimal(training={"max_stepz": 3}))
    with pytest.raises(ConfigError, match=r"exp\.yaml, line \d+: training\.max_stepz: unknown key"):
        load_config(path)


def test_yaml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        "model:\n  name_or_path: x\ntasks:\n  - name: a\n    kind: : classification\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert "line 5" in message
    assert "not valid YAML" in message


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_config_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_relative_data_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absolute = str(tmp_path / "elsewhere" / "test.jsonl")
    tasks = [
        task(data={"train": "data/train.jsonl", "validation": "../v.jsonl", "test": absolute}),
        task(name="whole", data={"path": "all.csv"}),
        task(name="hub", data={"hub": "some/dataset"}),
    ]
    path = write_yaml(tmp_path / "configs" / "exp.yaml", minimal(tasks=tasks))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    config = load_config(path)
    folder = (tmp_path / "configs").resolve()
    data = config.task("sentiment").data
    assert data.train == str(folder / "data" / "train.jsonl")
    assert data.validation == str(tmp_path.resolve() / "v.jsonl")
    assert data.test == absolute
    assert config.task("whole").data.path == str(folder / "all.csv")
    assert config.task("hub").data.hub == "some/dataset"


def test_a_hub_folder_next_to_the_config_is_a_local_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "configs" / "glue").mkdir(parents=True)
    tasks = [task(data={"preset": "glue/mrpc", "hub": "glue"}, name="mrpc", kind="classification")]
    path = write_yaml(tmp_path / "configs" / "exp.yaml", minimal(tasks=tasks))
    monkeypatch.chdir(tmp_path)
    data = load_config(path).task("mrpc").data
    assert (data.hub, data.hub_config) == (str((tmp_path / "configs" / "glue").resolve()), "mrpc")


def test_home_relative_data_paths_expand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = write_yaml(
        tmp_path / "configs" / "exp.yaml", minimal(tasks=[task(data={"path": "~/all.csv"})])
    )
    assert load_config(path).tasks[0].data.path == str(tmp_path / "home" / "all.csv")


def test_base_dir_overrides_the_config_folder(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "configs" / "exp.yaml", minimal())
    config = load_config(path, base_dir=tmp_path / "root")
    assert config.tasks[0].data.train == str((tmp_path / "root" / "t.jsonl").resolve())


def test_unknown_task_lookup_suggests_a_name() -> None:
    config = config_from_dict(minimal())
    with pytest.raises(ConfigError, match="did you mean 'sentiment'"):
        config.task("sentimnt")


def test_to_json_is_stable() -> None:
    first = config_from_dict(minimal(training={"max_steps": 7})).to_json()
    second = config_from_dict(minimal(training={"max_steps": 7})).to_json()
    assert first == second
    assert first != config_from_dict(minimal(training={"max_steps": 8})).to_json()


def test_errors_of_a_file_name_the_line_of_the_key(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(
        "model:\n"
        "  name_or_path: x\n"
        "tasks:\n"
        "  - name: sentiment\n"
        "    kind: classification\n"
        "    data: {train: t.jsonl}\n"
        "    labels: [pos, neg]\n"
        "    primary_metric: acc\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}, line 8: tasks[sentiment].primary_metric: 'acc' is not a metric of "
        "classification tasks (metrics: accuracy, macro_f1, mcc)"
    )


def test_yes_and_no_labels_stay_as_written(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(
        "model: {name_or_path: x}\n"
        "tasks:\n"
        "  - {name: answer, kind: classification, data: {train: t.jsonl}, labels: [yes, no, on]}\n"
        "training: {overwrite_output_dir: yes, progress_bar: false}\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.tasks[0].labels == ["yes", "no", "on"]
    assert config.training.overwrite_output_dir is True
    assert config.training.progress_bar is False
    path.write_text(path.read_text().replace("[yes, no, on]", "[yes, no, yes]"))
    with pytest.raises(
        ConfigError, match=r"line 3: tasks\[answer\]\.labels: label 'yes' is declared"
    ):
        load_config(path)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (minimal(training={"sampler": "temperature"}), "`sampler: {kind: temperature}`"),
        (minimal(training={"balancer": "upgrad"}), "`balancer: {kind: upgrad}`"),
        (minimal(sharing="lora"), "`sharing: {kind: lora}`"),
    ],
)
def test_a_kind_written_for_its_section_shows_the_mapping_form(
    raw: dict[str, Any], expected: str
) -> None:
    assert expected in error_of(raw)


def test_an_unknown_kind_is_said_once() -> None:
    message = error_of(minimal(tasks=[task(kind="pair_classification")]))
    assert message == (
        "exp.yaml: tasks[sentiment].kind: unknown kind 'pair_classification' "
        "(did you mean 'classification'?)"
    )


def test_a_task_without_a_kind_lists_the_kinds() -> None:
    entry = task()
    del entry["kind"]
    message = error_of(minimal(tasks=[entry]))
    assert message.startswith("exp.yaml: tasks[sentiment].kind: required key is missing (one of: ")
    assert "token_classification" in message


def test_the_saved_config_round_trips_with_tasks_of_every_kind() -> None:
    tasks = [
        {"name": f"t{index}", "kind": kind, "data": {"train": "t.jsonl"}}
        for index, kind in enumerate(KINDS)
    ]
    tasks[0]["labels"] = ["yes", "no"]
    config = config_from_dict(minimal(tasks=tasks))
    again = config_from_dict(json.loads(config.to_json()))
    assert again == config
    assert [type(spec) for spec in again.tasks] == [kind.options for kind in KINDS.values()]
    assert again.task("t0").labels == ["yes", "no"]


def test_a_spec_saved_before_kinds_had_options_of_their_own_still_loads() -> None:
    """Models saved by earlier versions hold every kind's keys in each task's spec."""
    old = {
        **task(),
        "stride": 32,
        "prompt_template": None,
        "mlm_probability": 0.15,
        "tokens_column": "tokens",
        "labels": ["neg", "pos"],
    }
    spec = saved_task_spec(old, "model/mtlm_config.json")
    assert spec == task_spec({**task(), "labels": ["neg", "pos"]})
    with pytest.raises(ConfigError, match=r"model/mtlm_config\.json: colour: unknown key"):
        saved_task_spec({**old, "colour": "red"}, "model/mtlm_config.json")


def test_a_sharing_saved_before_kinds_had_options_of_their_own_still_loads() -> None:
    """Models saved by earlier versions hold every sharing kind's keys."""
    old = {
        "kind": "hard",
        "strength": 0.001,
        "strength_schedule": "constant",
        "strength_warmup_ratio": 0.1,
        "hard_modules": [],
        "hard_layers": None,
        "r": 8,
        "alpha": 16.0,
        "dropout": 0.05,
        "target_modules": None,
        "train_base": False,
    }
    assert saved_sharing_spec(old, "model/mtlm_config.json") == sharing_spec({"kind": "hard"})
    lora = saved_sharing_spec({**old, "kind": "lora", "r": 4}, "model/mtlm_config.json")
    assert lora == sharing_spec({"kind": "lora", "r": 4})
    assert saved_sharing_spec({}, "model/mtlm_config.json") == sharing_spec({})


@pytest.mark.parametrize(
    ("section", "value", "message"),
    [
        (
            "training.sampler",
            {"kind": "uniform", "temperature": 3},
            "training.sampler.temperature: uniform samplers take no 'temperature'; "
            "temperature samplers do",
        ),
        (
            "training.balancer",
            {"kind": "upgrad", "mu": 1.0},
            "training.balancer.mu: upgrad balancers take no 'mu'; stch balancers do",
        ),
        (
            "sharing",
            {"kind": "soft", "train_base": True},
            "sharing.train_base: soft sharing takes no 'train_base'; lora sharing does",
        ),
    ],
)
def test_a_key_of_another_kind_names_the_kinds_that_take_it(
    section: str, value: dict[str, Any], message: str
) -> None:
    raw = minimal(training={"step_mode": "joint"})
    parent, _, key = section.rpartition(".")
    (raw[parent] if parent else raw)[key] = value
    assert error_of(raw) == f"exp.yaml: {message}"


def test_sections_of_a_kind_dump_only_their_own_keys() -> None:
    config = config_from_dict(
        minimal(
            sharing={"kind": "lora", "r": 4},
            training={"sampler": {"kind": "dynamic", "floor": 0.1}},
        )
    )
    dumped = json.loads(config.to_json())
    assert dumped["sharing"] == {
        "kind": "lora",
        "r": 4,
        "alpha": 16.0,
        "dropout": 0.05,
        "target_modules": None,
        "train_base": False,
    }
    assert dumped["training"]["sampler"] == {"kind": "dynamic", "floor": 0.1, "targets": {}}
    assert dumped["training"]["balancer"] == {"kind": "static"}
    assert config_from_dict(json.loads(config.to_json())) == config
    # A dump without defaults keeps each section's kind, so it reads back the same.
    assert config_from_dict(config.model_dump(mode="json", exclude_defaults=True)) == config
