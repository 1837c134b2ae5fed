"""DualProj: the mean gradient projected onto the dual cone of the gradients, as in GEM
(Lopez-Paz & Ranzato, 2017, "Gradient Episodic Memory for Continual Learning")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mtlm.training.balancers.aggregation import AggregatorSpec, GradientAggregation

if TYPE_CHECKING:
    from torchjd.aggregation import Aggregator


class DualProjSpec(AggregatorSpec):
    """No options."""

    kind: Literal["dualproj"]


class DualProj(GradientAggregation):
    """Projects the mean gradient onto the dual cone of the gradients."""

    name = "dualproj"
    options = DualProjSpec
    spec: DualProjSpec

    def make_aggregator(self) -> Aggregator:
        """torchjd's DualProj."""
        from torchjd.aggregation import DualProj as Method

        return Method()
