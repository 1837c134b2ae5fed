"""The single-task baselines that `mtlm compare` and `mtlm plan` measure multi-task training
against: what each trains, and how a converged one's budget is chosen.

A converged baseline trains a task alone up to a number of epochs, validated at each epoch's
end, stopped after `patience` validations without improvement, keeping its best validated
weights. A run that its epoch cap ended, not early stopping, may have stopped while it was
still learning: 10 epochs of a 100-row task are 70 optimizer steps, over which the learning
rate decays to zero. A longer cap alone is not the answer either: its learning rate decays
more slowly, and on a small validation split patience then ends runs on noise, below the
shorter run's score. So validation chooses the budget, as a user tuning a baseline would:
while the cap ended the last run and `max_epochs` allows, the task trains again from the start
with `GROWTH` times the epochs, and the run with the best validation score is kept (the
shorter one on a tie).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtlm.config import ExperimentConfig, config_from_dict, task_alone
from mtlm.files import read_json
from mtlm.training.run_folder import FINISHED_MARKER

#: How many times the epochs of a capped converged baseline the next one trains.
GROWTH = 3


@dataclass(frozen=True)
class BudgetTried:
    """One run of a converged baseline: its epoch cap, its best validation score, and whether
    early stopping (rather than the cap) ended it."""

    epochs: int
    best_validation: float | None
    stopped_early: bool
    folder: Path

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (without the folder, which the baseline's own record names)."""
        return {
            "epochs": self.epochs,
            "best_validation": self.best_validation,
            "stopped_early": self.stopped_early,
        }


@dataclass(frozen=True)
class ConvergedBaseline:
    """The runs a converged baseline tried, and the one kept."""

    tried: tuple[BudgetTried, ...]
    kept: BudgetTried


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
    config: ExperimentConfig, task: str, epochs: int = 10, patience: int | None = 2
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


def converged_budgets(epochs: int, max_epochs: int) -> list[int]:
    """The epoch caps a converged baseline may try, in order: `epochs`, then `GROWTH` times
    the last, up to `max_epochs`."""
    budgets = [epochs]
    while budgets[-1] < max_epochs:
        budgets.append(min(budgets[-1] * GROWTH, max_epochs))
    return budgets


def train_converged(
    config: ExperimentConfig,
    task: str,
    train: Callable[[ExperimentConfig], Path],
    epochs: int = 10,
    patience: int | None = 2,
    max_epochs: int = 30,
) -> ConvergedBaseline:
    """Train the converged baseline of `task` (see the module's docstring): `train` trains one
    run's config and returns its finished folder. Without patience (no validation split to
    stop on) there is no score to choose by: one run of `epochs` epochs."""
    tried: list[BudgetTried] = []
    for budget in converged_budgets(epochs, max_epochs if patience is not None else epochs):
        folder = train(converged_baseline_config(config, task, budget, patience))
        summary = read_json(folder / FINISHED_MARKER)
        tried.append(
            BudgetTried(
                budget,
                summary["best_validation_aggregate"],
                summary["steps"] < summary["planned_steps"],
                folder,
            )
        )
        if tried[-1].stopped_early:
            break
    kept = tried[0]
    for run in tried[1:]:
        if run.best_validation is not None and (
            kept.best_validation is None or run.best_validation > kept.best_validation
        ):
            kept = run
    return ConvergedBaseline(tuple(tried), kept)


def _single_task(config: ExperimentConfig, task: str) -> dict[str, Any]:
    """The dumped config of `task` trained alone with the settings of the multi-task `config`
    (see `mtlm.analysis.compare`'s docstring); the caller sets its budget."""
    raw = task_alone(config, task)
    if not config.sharing.baseline_keeps_sharing:
        raw["sharing"] = {}
    raw["training"]["overwrite_output_dir"] = False
    return raw
