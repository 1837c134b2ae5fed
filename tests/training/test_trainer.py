"""End-to-end training of the tiny three-task model: the run folder, determinism, how long a
run is, which rows each task trains on, and joint groups."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
import torch

from mtlm import ConfigError, MultiTaskModel, Trainer
from mtlm.config import config_from_dict


def test_training_writes_a_run_directory_and_learns(make_config, tmp_path):
    config = make_config(max_steps=60)
    trainer = Trainer(config)
    before = trainer.evaluate("test")
    results = trainer.train()
    run = tmp_path / "run"
    assert (run / "model" / "mtlm_config.json").is_file()
    assert json.loads((run / "eval_results.json").read_text()) == results
    assert set(results["tasks"]) == {"sentiment", "score", "tagging"}
    assert results["split"] == "test"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("losses" in row for row in rows) and any("eval" in row for row in rows)
    assert results["aggregate"] > before["aggregate"]
    assert results["tasks"]["tagging"]["accuracy"] > 0.8
    validation = json.loads((run / "validation_results.json").read_text())
    summary = json.loads((run / "train_summary.json").read_text())
    assert validation["split"] == "validation"
    assert validation["aggregate"] == summary["best_validation_aggregate"]
    trivial = json.loads((run / "trivial_results.json").read_text())
    assert trivial["split"] == "test"
    assert trivial["tasks"]["score"]["pearson"] == 0.0
    assert trivial["tasks"]["tagging"]["accuracy"] < results["tasks"]["tagging"]["accuracy"]


def test_two_runs_with_one_seed_end_with_identical_weights(make_config, tmp_path):
    weights = []
    for name in ("a", "b"):
        config = make_config(max_steps=8, output_dir=str(tmp_path / name), eval_steps=None)
        Trainer(config).train()
        model = MultiTaskModel.from_pretrained(tmp_path / name)
        weights.append(model.state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


def read_json(path):
    return json.loads(path.read_text())


def train_rows(run):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [row for row in rows if "loss" in row]


TRAIN_ROWS = 64 * 3  # the fixture's three tasks have 64 training rows each


@pytest.mark.parametrize(
    ("step_mode", "batch_size", "accumulation", "epochs", "groups"),
    [
        ("sampled", 10, 1, 1.5, None),
        ("sampled", 5, 2, 0.3, None),
        ("joint", 5, 2, 0.5, None),
        ("joint", 8, 1, 1.0, [["sentiment", "score"], ["tagging"]]),
    ],
)
def test_num_epochs_sets_the_number_of_steps(
    make_config, tmp_path, step_mode, batch_size, accumulation, epochs, groups
):
    config = make_config(
        max_steps=None,
        num_epochs=epochs,
        step_mode=step_mode,
        batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        joint_groups=groups,
        eval_steps=None,
        logging_steps=1000,
    )
    Trainer(config).train()
    run = tmp_path / "run"
    if step_mode == "sampled":
        tasks_per_step = 1
    else:
        tasks_per_step = sum(map(len, groups)) / len(groups) if groups else 3
    examples_per_step = batch_size * accumulation * tasks_per_step
    summary = read_json(run / "train_summary.json")
    assert summary["steps"] == math.ceil(epochs * TRAIN_ROWS / examples_per_step)
    assert summary["steps_per_epoch"] == math.ceil(TRAIN_ROWS / examples_per_step)
    (row,) = train_rows(run)
    assert row["step"] == summary["steps"]
    drawn = sum(row["batches"].values())
    assert drawn == pytest.approx(summary["steps"] * accumulation * tasks_per_step, abs=1)
    for task, seen in summary["examples_per_task"].items():
        full = row["batches"].get(task, 0) * batch_size
        # A batch is short only where it ends a pass over the task's 64 training rows.
        short_batches = math.ceil(full / 64)
        assert (
            seen == full if 64 % batch_size == 0 else 0 <= full - seen < short_batches * batch_size
        )


def with_task_fields(config, **fields_by_task):
    """The config with some task fields changed, validated again."""
    raw = config.model_dump(mode="json")
    for task in raw["tasks"]:
        task.update(fields_by_task.get(task["name"], {}))
    return config_from_dict(raw)


def test_max_examples_and_oversample_shape_each_tasks_stream(make_config, tmp_path):
    config = with_task_fields(
        make_config(max_steps=None, num_epochs=1, eval_steps=None),
        sentiment={"max_examples": 20},
        tagging={"oversample": 3},
    )
    trainer = Trainer(config)
    train = {name: data.splits["train"] for name, data in trainer.data.items()}
    streams = trainer.task_streams()
    sizes = {name: len(stream.features) for name, stream in streams.items()}
    assert sizes == {"sentiment": 20, "score": 64, "tagging": 192}
    rows = [tuple(ids) for ids in train["sentiment"]["input_ids"]]
    kept = [tuple(ids) for ids in streams["sentiment"].features["input_ids"]]
    assert all(row in rows for row in kept)
    tagged = Counter(tuple(ids) for ids in streams["tagging"].features["input_ids"])
    original = Counter(tuple(ids) for ids in train["tagging"]["input_ids"])
    assert tagged == Counter({ids: 3 * count for ids, count in original.items()})
    trainer.train()
    summary = read_json(tmp_path / "run" / "train_summary.json")
    assert summary["steps_per_epoch"] == math.ceil(sum(sizes.values()) / 8)


def test_joint_groups_alternate(make_config, tmp_path):
    config = make_config(
        step_mode="joint",
        joint_groups=[["sentiment", "score"], ["tagging"]],
        max_steps=5,
        logging_steps=1,
        eval_steps=None,
    )
    Trainer(config).train()
    rows = train_rows(tmp_path / "run")
    assert [row["batches"] for row in rows] == [
        {"sentiment": 1, "score": 1},
        {"tagging": 1},
        {"sentiment": 1, "score": 1},
        {"tagging": 1},
        {"sentiment": 1, "score": 1},
    ]
    assert [set(row["losses"]) for row in rows[:2]] == [{"sentiment", "score"}, {"tagging"}]


def test_early_stopping_ends_the_run_after_patience_validations_without_improvement(
    make_config, tmp_path, capsys
):
    # A threshold no score can beat makes every validation after the first stale.
    config = make_config(
        max_steps=40,
        eval_steps=4,
        early_stopping_patience=2,
        early_stopping_threshold=10.0,
        logging_steps=1000,
    )
    Trainer(config).train()
    summary = read_json(tmp_path / "run" / "train_summary.json")
    assert summary["steps"] == 12
    assert summary["planned_steps"] == 40
    printed = capsys.readouterr().out
    assert "early stopping at step 12" in printed
    lines = [line for line in printed.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["4", "8", "12"]
    assert lines[0].endswith("(best)") and "sentiment accuracy" in lines[0]
    best = next(line for line in lines if line.split()[1] == str(summary["best_step"]))
    assert best.endswith("(best)")


def test_eval_strategy_epoch_validates_at_each_epoch_end(make_config, tmp_path):
    config = make_config(
        max_steps=None, num_epochs=2, batch_size=32, eval_steps=None, eval_strategy="epoch"
    )
    Trainer(config).train()
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [row["step"] for row in rows if "eval" in row] == [6, 12]


def test_early_stopping_needs_a_validation_schedule(make_config):
    from mtlm.errors import ConfigError

    with pytest.raises(ConfigError, match="early_stopping_patience counts validations"):
        make_config(eval_steps=None, early_stopping_patience=2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda config: setattr(config.tasks[1], "max_length", 100000),
            r"^tasks\[score\]\.max_length: 100000 tokens, and .* reads at most 64 "
            r"\(max_position_embeddings in its config\.json\)",
        ),
        (
            lambda config: setattr(config.training, "eval_split", "dev"),
            r"^training\.eval_split: no split 'dev'",
        ),
        (
            lambda config: setattr(config.training, "final_eval_split", "tst"),
            r"^training\.final_eval_split: no split 'tst'",
        ),
    ],
)
def test_what_the_model_or_the_split_names_refuse_fails_before_data_is_read(
    make_config, tmp_path, capsys, change, message
):
    config = make_config()
    change(config)
    with pytest.raises(ConfigError, match=message):
        Trainer(config)
    assert not (tmp_path / "features").exists() and not (tmp_path / "run").exists()
    assert capsys.readouterr().out == ""


def test_a_default_max_length_beyond_the_positions_is_lowered_with_a_note(
    make_config, tmp_path, capsys
):
    config = make_config(max_steps=1)
    trainer = Trainer(config)
    assert config.tasks[0].max_length == 128  # the caller's config is left as it was
    assert [task.spec.max_length for task in trainer.model.tasks.values()] == [64, 64, 64]
    assert capsys.readouterr().out == ""  # notes wait until training starts
    trainer.train()
    printed = capsys.readouterr().out
    assert "note: tasks[tagging].max_length: " in printed and "the task reads 64" in printed
    saved = MultiTaskModel.from_pretrained(tmp_path / "run")
    assert saved.tasks["tagging"].spec.max_length == 64
