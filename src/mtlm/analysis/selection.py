"""Choosing, task by task, which trained model serves it: on validation scores only.

A plan trains a few candidates (one model of all tasks, group models, their fine-tuned
versions, single-task models) and serves each task with the candidate that scored best on that
task's validation split. The test split never takes part in the choice. The single-task model
is the fallback: another candidate serves a task only if it beats the single-task model's
validation score, so no task is served by a model that does worse on validation than the task's
own model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mtlm.analysis.transfer import signed_difference

#: The name of the candidate that holds each task's own model.
SINGLE_TASK = "single-task"


@dataclass
class Candidate:
    """One trained candidate: the validation and test scores (primary metric) of the tasks it
    serves, and the model folder that serves each of them."""

    name: str
    validation: dict[str, float]
    test: dict[str, float] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)


@dataclass
class Choice:
    """The candidate chosen for one task and the validation scores it was chosen on."""

    task: str
    candidate: str
    validation: dict[str, float]

    @property
    def reason(self) -> str:
        """Why this candidate: its validation score against the single-task model's."""
        chosen = self.validation[self.candidate]
        single = self.validation.get(SINGLE_TASK)
        if self.candidate == SINGLE_TASK:
            others = [name for name in self.validation if name != SINGLE_TASK]
            return (
                f"no other candidate beat its single-task model on validation ({single:.4f})"
                if others
                else "only its single-task model was trained"
            )
        if single is None:
            return f"best validation score ({chosen:.4f}); no single-task model to compare"
        return f"validation {chosen:.4f} against {single:.4f} for its single-task model"


def choose_per_task(
    candidates: list[Candidate], higher_is_better: Mapping[str, bool]
) -> dict[str, Choice]:
    """For every task, the candidate with the best validation score; the single-task candidate
    keeps a task unless another is strictly better on its validation split."""
    choices = {}
    for task, higher in higher_is_better.items():
        scores = {c.name: c.validation[task] for c in candidates if task in c.validation}
        if not scores:
            continue
        best = SINGLE_TASK if SINGLE_TASK in scores else next(iter(scores))
        for name, score in scores.items():
            if signed_difference(scores[best], score, higher) > 0:
                best = name
        choices[task] = Choice(task, best, scores)
    return choices


def chosen_scores(
    choices: Mapping[str, Choice], candidates: list[Candidate]
) -> dict[str, dict[str, Any]]:
    """The test score each task gets from its chosen candidate (None where it has none)."""
    by_name = {c.name: c for c in candidates}
    return {
        task: {
            "candidate": choice.candidate,
            "validation": choice.validation[choice.candidate],
            "test": by_name[choice.candidate].test.get(task),
        }
        for task, choice in choices.items()
    }
