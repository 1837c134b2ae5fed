"""ConFIG (Liu, Chu & Thuerey, 2024, "ConFIG: Towards Conflict-free Training of Physics
Informed Neural Networks")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mtlm.training.balancers.aggregation import AggregatorSpec, GradientAggregation

if TYPE_CHECKING:
    from torchjd.aggregation import Aggregator


class ConFIGSpec(AggregatorSpec):
    """No options."""

    kind: Literal["config"]


class ConFIG(GradientAggregation):
    """The direction with an equal, positive cosine to every task's gradient."""

    name = "config"
    options = ConFIGSpec
    spec: ConFIGSpec

    def make_aggregator(self) -> Aggregator:
        """torchjd's ConFIG."""
        from torchjd.aggregation import ConFIG as Method

        return Method()
