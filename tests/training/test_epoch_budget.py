"""Validation chooses a run's epoch cap: longer runs only where the cap ended the last one,
the best-validating kept."""

from __future__ import annotations

from functools import partial

import pytest
from conftest import ScriptedRuns

from mtlm.config import ExperimentConfig
from mtlm.training.epoch_budget import choose_epochs, epoch_budgets


def _with_epochs(config: ExperimentConfig, epochs: float) -> ExperimentConfig:
    changed = config.model_copy(deep=True)
    changed.training.num_epochs, changed.training.max_steps = epochs, None
    return changed


@pytest.mark.parametrize(
    ("epochs", "max_epochs", "budgets"),
    [(10, 10, [10]), (10, 30, [10, 30]), (10, 100, [10, 30, 90, 100]), (4, 5, [4, 5])],
)
def test_each_budget_is_three_times_the_last_up_to_the_maximum(epochs, max_epochs, budgets):
    assert epoch_budgets(epochs, max_epochs) == budgets


@pytest.mark.parametrize(
    ("outcomes", "caps", "kept"),
    [
        # Ended by early stopping: converged, nothing more to try.
        ({10: (0.5, True)}, [10], 10),
        # Still improving at the cap; the longer run validates better.
        ({10: (0.5, False), 30: (0.6, True)}, [10, 30], 30),
        # The longer run stops on noise below the shorter one: the shorter is kept.
        ({10: (0.6, False), 30: (0.55, True)}, [10, 30], 10),
        # A tie keeps the cheaper run.
        ({10: (0.6, False), 30: (0.6, True)}, [10, 30], 10),
        # Capped up to the maximum: every cap is tried.
        ({10: (0.5, False), 30: (0.7, False), 90: (0.65, False)}, [10, 30, 90], 30),
        # A run without a score never beats one with a score.
        ({10: (0.5, False), 30: (None, True)}, [10, 30], 10),
    ],
)
def test_validation_chooses_the_epoch_cap(make_config, tmp_path, outcomes, caps, kept):
    runs = ScriptedRuns(tmp_path, outcomes)
    config = make_config()
    configure = partial(_with_epochs, config)
    converged = choose_epochs(configure, runs, 10, max(outcomes))
    assert runs.caps == caps
    assert [run.epochs for run in converged.tried] == caps
    assert converged.kept.epochs == kept
    assert converged.kept.folder == tmp_path / f"epochs-{kept}"
    assert converged.tried[-1].stopped_early == outcomes[caps[-1]][1]
