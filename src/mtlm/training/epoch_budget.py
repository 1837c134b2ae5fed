"""Validation chooses a run's epoch budget, as a user tuning it would.

A run that its epoch cap ended, rather than early stopping, may have stopped while it was still
learning: its learning rate decays to zero over the budget it is given, however short. A longer
cap alone is not the answer either: its learning rate decays more slowly, and on a small
validation split patience then ends runs on noise, below the shorter run's score. So while the
cap ended the last run and `max_epochs` allows, the run is trained again from the start with
`GROWTH` times the epochs, and the run with the best validation aggregate is kept (the shorter
one on a tie).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtlm.config import ExperimentConfig
from mtlm.files import read_json
from mtlm.training.run_folder import FINISHED_MARKER

#: How many times the epochs of a run its cap ended the next run trains.
GROWTH = 3


@dataclass(frozen=True)
class BudgetTried:
    """One run: its epoch cap, its best validation aggregate, and whether early stopping
    (rather than the cap) ended it."""

    epochs: float
    best_validation: float | None
    stopped_early: bool
    folder: Path

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (without the folder, which the kept run's own record names)."""
        return {
            "epochs": self.epochs,
            "best_validation": self.best_validation,
            "stopped_early": self.stopped_early,
        }


@dataclass(frozen=True)
class BudgetChoice:
    """The runs tried, and the one kept."""

    tried: tuple[BudgetTried, ...]
    kept: BudgetTried

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the runs tried and the epoch cap of the one kept."""
        return {"tried": [run.to_dict() for run in self.tried], "kept_epochs": self.kept.epochs}

    def describe(self) -> str:
        """The caps tried, each with what ended its run, e.g. "10 (cap), 30 (early stopping)"."""
        return ", ".join(
            f"{run.epochs:g} ({'early stopping' if run.stopped_early else 'cap'})"
            for run in self.tried
        )


def stopped_early(summary: Mapping[str, Any]) -> bool:
    """Whether early stopping, not the budget, ended a run: a train summary (or a record with
    its `steps` and `planned_steps`) that stopped short of its planned steps."""
    return summary["steps"] < summary["planned_steps"]


def epoch_budgets(epochs: float, max_epochs: float) -> list[float]:
    """The epoch caps to try, in order: `epochs`, then `GROWTH` times the last, up to
    `max_epochs`."""
    budgets = [epochs]
    while budgets[-1] < max_epochs:
        budgets.append(min(budgets[-1] * GROWTH, max_epochs))
    return budgets


def choose_epochs(
    configure: Callable[[float], ExperimentConfig],
    train: Callable[[ExperimentConfig], Path],
    epochs: float,
    max_epochs: float,
) -> BudgetChoice:
    """Train `configure(cap)` for each cap of `epoch_budgets` while the cap ended the last run;
    `train` trains a config and returns its finished run folder. Keeps the best-validating."""
    tried: list[BudgetTried] = []
    for budget in epoch_budgets(epochs, max_epochs):
        folder = train(configure(budget))
        summary = read_json(folder / FINISHED_MARKER)
        tried.append(
            BudgetTried(
                budget,
                summary["best_validation_aggregate"],
                stopped_early(summary),
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
    return BudgetChoice(tuple(tried), kept)
