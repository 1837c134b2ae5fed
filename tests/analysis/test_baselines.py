"""The single-task baselines: what each trains, and how validation chooses a converged one's
epoch cap."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from conftest import ScriptedRuns

from mtlm.analysis.baselines import baseline_config, converged_baseline_config, train_converged
from mtlm.config import ExperimentConfig, config_from_dict
from mtlm.modeling.sharing.hard import HardSharingSpec


def _variant(config: ExperimentConfig, **top: Any) -> ExperimentConfig:
    """The config with top-level keys (sharing, tasks) replaced."""
    return config_from_dict({**config.model_dump(mode="json"), **top})


def _weighted_joint_config(make_config, score: dict[str, Any], **training: Any) -> ExperimentConfig:
    """A soft-shared joint config (seed 7, 30 steps) whose task `score` weighs 3 and has the
    keys `score`; `training` adds training keys."""
    config = make_config(
        seed=7,
        max_steps=30,
        eval_steps=15,
        save_steps=10,
        step_mode="joint",
        balancer={"kind": "upgrad"},
        **training,
    )
    tasks = config.model_dump(mode="json")["tasks"]
    tasks[1].update(loss_weight=3.0, **score)
    return _variant(config, tasks=tasks, sharing={"kind": "soft", "strength": 0.01})


def test_a_baseline_trains_one_task_alone_on_the_same_budget(make_config):
    config = _weighted_joint_config(make_config, {}, gradient_accumulation_steps=2)

    baseline = baseline_config(config, "score", examples=100, multitask_steps=30)

    steps = math.ceil(100 / (config.training.batch_size * 2))
    assert [task.name for task in baseline.tasks] == ["score"]
    assert baseline.tasks[0].loss_weight == 1.0
    assert baseline.tasks[0].label_column == config.tasks[1].label_column
    assert baseline.sharing == HardSharingSpec(kind="hard")
    training = baseline.training
    assert training.max_steps == steps
    assert training.eval_steps == max(1, round(15 * steps / 30))
    assert training.save_steps is None
    assert training.step_mode == "sampled" and training.balancer.kind == "static"
    # The multi-task trainer seeds the stream of the task at position i with seed + i.
    assert training.seed == 7 + 1
    for key in ("learning_rate", "warmup_ratio", "batch_size", "gradient_accumulation_steps"):
        assert getattr(training, key) == getattr(config.training, key)


def test_a_converged_baseline_trains_one_task_alone_until_validation_stops_improving(
    make_config,
):
    config = _weighted_joint_config(make_config, {"max_length": 24}, early_stopping_threshold=0.05)

    baseline = converged_baseline_config(config, "score", epochs=6, patience=3)

    assert [task.name for task in baseline.tasks] == ["score"]
    assert baseline.tasks[0].loss_weight == 1.0 and baseline.tasks[0].max_length == 24
    assert baseline.sharing == HardSharingSpec(kind="hard")
    training = baseline.training
    assert training.num_epochs == 6 and training.max_steps is None
    assert training.eval_strategy == "epoch" and training.eval_steps is None
    assert training.early_stopping_patience == 3
    assert training.early_stopping_threshold == 0.0  # any improvement counts
    assert training.load_best_model_at_end and training.save_steps is None
    assert training.step_mode == "sampled" and training.balancer.kind == "static"
    assert training.seed == 7 + 1
    for key in ("learning_rate", "warmup_ratio", "batch_size", "gradient_accumulation_steps"):
        assert getattr(training, key) == getattr(config.training, key)
    defaults = converged_baseline_config(config, "score").training
    assert defaults.num_epochs == 10 and defaults.early_stopping_patience == 2


def test_a_lora_baseline_keeps_its_adapter(make_config):
    config = _variant(make_config(), sharing={"kind": "lora", "r": 4})
    baseline = baseline_config(config, "tagging", examples=40, multitask_steps=30)
    assert baseline.sharing == config.sharing
    assert converged_baseline_config(config, "tagging").sharing == config.sharing


def test_a_baseline_of_a_two_stage_config_has_no_fine_tuning_stage(make_config):
    config = make_config(finetune={"num_epochs": 1})
    assert converged_baseline_config(config, "score").training.finetune is None
    assert baseline_config(config, "score", 40, multitask_steps=30).training.finetune is None


def test_a_converged_baseline_tries_converged_configs_of_each_cap(make_config, tmp_path):
    tried = []

    def train(config: ExperimentConfig) -> Path:
        tried.append(config)
        return ScriptedRuns(tmp_path / str(len(tried)), {10: (0.5, False), 30: (0.6, True)})(config)

    config = make_config()
    converged = train_converged(config, "score", train, 10, 3, 30)
    assert tried == [converged_baseline_config(config, "score", cap, 3) for cap in (10, 30)]
    assert converged.kept.epochs == 30


def test_without_patience_a_converged_baseline_is_one_run(make_config, tmp_path):
    runs = ScriptedRuns(tmp_path, {10: (0.5, False), 30: (0.9, True)})
    converged = train_converged(make_config(), "score", runs, 10, None, 30)
    assert runs.caps == [10] and converged.kept.epochs == 10
