"""GradVac (Wang, Tsvetkov, Firat & Cao, 2021, "Gradient Vaccine: Investigating and Improving
Multi-task Optimization in Massively Multilingual Models")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from mtlm.training.balancers.aggregation import AggregatorSpec, GradientAggregation

if TYPE_CHECKING:
    from torchjd.aggregation import Aggregator


class GradVacSpec(AggregatorSpec):
    """`beta`: how fast the targets of the gradients' cosine similarities follow the cosines."""

    kind: Literal["gradvac"]
    beta: float = Field(0.5, ge=0.0, le=1.0)
    eps: float = Field(1e-8, ge=0.0)
    keeps_per_task_state = True


class GradVac(GradientAggregation):
    """Raises each pair of gradients' cosine toward a moving target of that pair's cosines."""

    name = "gradvac"
    options = GradVacSpec
    spec: GradVacSpec

    def make_aggregator(self) -> Aggregator:
        """torchjd's GradVac."""
        from torchjd.aggregation import GradVac as Method

        return Method(beta=self.spec.beta, eps=self.spec.eps)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the moving targets. torchjd creates them (T × T, in the Gramian's dtype) at
        the first aggregation; one aggregation of a zero Gramian of that shape and dtype
        creates them as zeros, which the saved targets then replace."""
        import torch

        saved = list(state.get("aggregator", {}).values())
        if saved:
            targets = saved[0]
            # GradVac visits the tasks in a random order: the run's generator must not move.
            with torch.random.fork_rng(devices=[]):
                self.aggregator.gramian_weighting(torch.zeros_like(targets))
        super().load_state_dict(state)
