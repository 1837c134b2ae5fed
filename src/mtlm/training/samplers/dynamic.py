"""Dynamic sampling (Gottumukkala et al., 2020, "Dynamic Sampling Strategies for Multi-Task
Reading Comprehension"): more steps for the tasks furthest from their targets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from mtlm.suggest import suggestion
from mtlm.training.samplers.base import Sampler, SamplerSpec

if TYPE_CHECKING:
    from mtlm.tasks.base import TaskKind


class DynamicSpec(SamplerSpec):
    """Sampling in proportion to each task's gap to its target, above a floor; `targets` (a
    score per task name, such as its single-task score) replace the metrics' ideal."""

    kind: Literal["dynamic"]
    floor: float = Field(0.05, ge=0.0, lt=1.0)
    targets: dict[str, float] = Field(default_factory=dict)

    def check_tasks(self, names: list[str]) -> None:
        """The floors fit in 1, and every target names a task."""
        if self.floor * len(names) > 1:
            raise ValueError("training.sampler.floor times the number of tasks must be at most 1")
        unknown = [name for name in self.targets if name not in names]
        if unknown:
            raise ValueError(
                f"training.sampler.targets: no task named {unknown[0]!r}"
                f"{suggestion(unknown[0], names)}"
            )

    def for_tasks(self, names: list[str]) -> DynamicSpec:
        """The targets of those tasks only."""
        targets = {name: value for name, value in self.targets.items() if name in names}
        return self.model_copy(update={"targets": targets})


class Dynamic(Sampler):
    """Starts uniform; after each validation, p_i = floor + (1 - T·floor) · gap_i / Σ gap."""

    name = "dynamic"
    options = DynamicSpec
    spec: DynamicSpec

    def observe(self, results: dict[str, Any], tasks: dict[str, TaskKind]) -> None:
        """Follow each task's gap between its primary validation metric and its target."""
        self.follow_gaps(metric_gaps(results, tasks, self.spec.targets))

    def follow_gaps(self, gaps: dict[str, float]) -> None:
        """Probabilities from how far each task is from its target (a negative gap is none)."""
        if gaps:
            known = {name: max(gaps.get(name, 0.0), 0.0) for name in self._names}
            self.probabilities = dynamic_probabilities(known, self.spec.floor)


def dynamic_probabilities(gaps: dict[str, float], floor: float) -> dict[str, float]:
    """p_i = floor + (1 - T·floor) · gap_i / Σ gap; with every gap at zero, all tasks get the
    same share. The floor keeps every task in training."""
    total = sum(gaps.values())
    share = 1.0 - floor * len(gaps)
    if total <= 0:
        return {name: 1.0 / len(gaps) for name in gaps}
    return {name: floor + share * gap / total for name, gap in gaps.items()}


def metric_gaps(
    results: dict[str, Any], tasks: dict[str, TaskKind], targets: dict[str, float]
) -> dict[str, float]:
    """How far each task's primary validation metric is from its target (never negative).

    The target is `targets[task]` when configured (for example a single-task model's score),
    else the metric's ideal: 1 for higher-is-better metrics, 0 for lower-is-better ones.
    """
    gaps = {}
    for name, metrics in results["tasks"].items():
        metric = metrics["primary"]
        higher = tasks[name].higher_is_better(metric)
        target = targets.get(name, 1.0 if higher else 0.0)
        value = metrics[metric]
        gaps[name] = max(target - value if higher else value - target, 0.0)
    return gaps
