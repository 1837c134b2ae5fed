"""MGDA (Désidéri, 2012, "Multiple-gradient descent algorithm (MGDA) for multiobjective
optimization"; Sener & Koltun, 2018, "Multi-Task Learning as Multi-Objective Optimization")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from mtlm.training.balancers.aggregation import AggregatorSpec, GradientAggregation

if TYPE_CHECKING:
    from torchjd.aggregation import Aggregator


class MGDASpec(AggregatorSpec):
    """The tolerance and iteration budget of the min-norm solver."""

    kind: Literal["mgda"]
    epsilon: float = Field(0.001, gt=0.0)
    max_iters: int = Field(100, gt=0)
    weighs_representation = True


class MGDA(GradientAggregation):
    """The min-norm point of the convex hull of the gradients."""

    name = "mgda"
    options = MGDASpec
    spec: MGDASpec

    def make_aggregator(self) -> Aggregator:
        """torchjd's MGDA."""
        from torchjd.aggregation import MGDA as Method

        return Method(epsilon=self.spec.epsilon, max_iters=self.spec.max_iters)
