"""The single-task baselines that `mtlm compare` and `mtlm plan` measure multi-task training
against: what each trains.

A converged baseline trains a task alone up to a number of epochs, validated at each epoch's
end, stopped after `patience` validations without improvement, keeping its best validated
weights; where the cap rather than early stopping ended it, validation chooses a longer budget
(`mtlm.training.epoch_budget`): 10 epochs of a 100-row task are 70 optimizer steps, over which
the learning rate decays to zero, and such a baseline had not finished learning.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mtlm.config import ExperimentConfig, config_from_dict, task_alone
from mtlm.training.epoch_budget import BudgetChoice, choose_epochs


def baseline_config(
    config: ExperimentConfig, task: str, examples: int, multitask_steps: int
) -> ExperimentConfig:
    """The equal-examples baseline: the single-task config of `task` that sees `examples` of
    its training examples, as the multi-task run of `config` (`multitask_steps` steps) did."""
    raw = _single_task(config, task)
    training = raw["training"]
    steps = math.ceil(examples / (training["batch_size"] * training["gradient_accumulation_steps"]))
    eval_steps = training["eval_steps"]
    if eval_steps is not None:
        eval_steps = max(1, round(eval_steps * steps / multitask_steps))
    training.update(max_steps=steps, num_epochs=None, eval_steps=eval_steps)
    return config_from_dict(raw, source=f"the single-task baseline of {task}")


def converged_baseline_config(
    config: ExperimentConfig, task: str, epochs: float = 10, patience: int | None = 2
) -> ExperimentConfig:
    """One run of the converged baseline: the single-task config of `task` trained up to
    `epochs` epochs, validated at each epoch's end and stopped after `patience` validations
    without any improvement (None: never), keeping its best validated weights."""
    raw = _single_task(config, task)
    raw["training"].update(
        max_steps=None,
        num_epochs=float(epochs),
        eval_strategy="epoch",
        eval_steps=None,
        early_stopping_patience=patience,
        early_stopping_threshold=0.0,
        load_best_model_at_end=True,
    )
    return config_from_dict(raw, source=f"the converged single-task baseline of {task}")


def train_converged(
    config: ExperimentConfig,
    task: str,
    train: Callable[[ExperimentConfig], Path],
    epochs: int = 10,
    patience: int | None = 2,
    max_epochs: int = 30,
) -> BudgetChoice:
    """Train the converged baseline of `task`: runs of `converged_baseline_config`, their epoch
    cap chosen on validation (`mtlm.training.epoch_budget`); `train` trains one run's config and
    returns its finished folder. Without patience (no validation split to stop on) there is no
    score to choose by: one run of `epochs` epochs."""
    return choose_epochs(
        lambda cap: converged_baseline_config(config, task, cap, patience),
        train,
        epochs,
        max_epochs if patience is not None else epochs,
    )


def _single_task(config: ExperimentConfig, task: str) -> dict[str, Any]:
    """The dumped config of `task` trained alone with the settings of the multi-task `config`
    (see `mtlm.analysis.compare`'s docstring); the caller sets its budget."""
    raw = task_alone(config, task)
    if not config.sharing.baseline_keeps_sharing:
        raw["sharing"] = {}
    raw["training"]["overwrite_output_dir"] = False
    return raw
