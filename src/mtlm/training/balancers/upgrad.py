"""UPGrad (Quinton & Rey, 2024, "Jacobian Descent for Multi-Objective Optimization")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mtlm.training.balancers.aggregation import AggregatorSpec, GradientAggregation

if TYPE_CHECKING:
    from torchjd.aggregation import Aggregator


class UPGradSpec(AggregatorSpec):
    """No options."""

    kind: Literal["upgrad"]


class UPGrad(GradientAggregation):
    """Projects each gradient onto the dual cone of all of them, then averages."""

    name = "upgrad"
    options = UPGradSpec
    spec: UPGradSpec

    def make_aggregator(self) -> Aggregator:
        """torchjd's UPGrad."""
        from torchjd.aggregation import UPGrad as Method

        return Method()
