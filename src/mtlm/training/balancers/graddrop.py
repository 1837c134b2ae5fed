"""GradDrop (Chen et al., 2020, "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient
Sign Dropout")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mtlm.training.balancers.aggregation import AggregatorSpec, GradientAggregation

if TYPE_CHECKING:
    from torchjd.aggregation import Aggregator


class GradDropSpec(AggregatorSpec):
    """No options."""

    kind: Literal["graddrop"]


class GradDrop(GradientAggregation):
    """Keeps, coordinate by coordinate, the gradients of one sign, drawn by how much they agree."""

    name = "graddrop"
    options = GradDropSpec
    spec: GradDropSpec

    def make_aggregator(self) -> Aggregator:
        """torchjd's GradDrop."""
        from torchjd.aggregation import GradDrop as Method

        return Method()
