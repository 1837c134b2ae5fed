"""PCGrad (Yu et al., 2020, "Gradient Surgery for Multi-Task Learning")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mtlm.training.balancers.aggregation import AggregatorSpec, GradientAggregation

if TYPE_CHECKING:
    from torchjd.aggregation import Aggregator


class PCGradSpec(AggregatorSpec):
    """No options."""

    kind: Literal["pcgrad"]


class PCGrad(GradientAggregation):
    """Projects each task's gradient off the gradients it conflicts with."""

    name = "pcgrad"
    options = PCGradSpec
    spec: PCGradSpec

    def make_aggregator(self) -> Aggregator:
        """torchjd's PCGrad."""
        from torchjd.aggregation import PCGrad as Method

        return Method()
