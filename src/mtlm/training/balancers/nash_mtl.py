"""Nash-MTL (Navon et al., 2022, "Multi-Task Learning as a Bargaining Game"): the task weights
of the Nash bargaining solution between the tasks' gradients."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from mtlm.training.balancers.aggregation import AggregatorSpec, GradientAggregation

if TYPE_CHECKING:
    from torchjd.aggregation import Aggregator


class NashMTLSpec(AggregatorSpec):
    """The solver's budget, how often the weights are solved again, and the update's largest
    norm. Needs cvxpy (`pip install mtlm[balancing]`)."""

    kind: Literal["nash_mtl"]
    max_norm: float = Field(1.0, ge=0.0)
    update_weights_every: int = Field(1, gt=0)
    optim_niter: int = Field(20, gt=0)
    weighs_representation = True
    keeps_per_task_state = True


class NashMTL(GradientAggregation):
    """Weights w with (GᵀG w)_i = 1/w_i, solved by sequential convex programs."""

    name = "nash_mtl"
    options = NashMTLSpec
    spec: NashMTLSpec

    def make_aggregator(self) -> Aggregator:
        """torchjd's NashMTL over the tasks."""
        from torchjd.aggregation import NashMTL as Method

        return Method(
            n_tasks=self.tasks,
            max_norm=self.spec.max_norm,
            update_weights_every=self.spec.update_weights_every,
            optim_niter=self.spec.optim_niter,
        )
