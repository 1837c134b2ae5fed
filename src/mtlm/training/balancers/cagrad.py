"""CAGrad (Liu, Liu, Jin, Stone & Liu, 2021, "Conflict-Averse Gradient Descent for Multi-task
Learning")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from mtlm.training.balancers.aggregation import AggregatorSpec, GradientAggregation

if TYPE_CHECKING:
    from torchjd.aggregation import Aggregator


class CAGradSpec(AggregatorSpec):
    """`c`: how far the update may leave the mean gradient to lift the task it helps least."""

    kind: Literal["cagrad"]
    c: float = Field(0.5, ge=0.0)
    norm_eps: float = Field(0.0001, ge=0.0)
    weighs_representation = True


class CAGrad(GradientAggregation):
    """The update that most improves the worst-off task within a ball around the mean gradient."""

    name = "cagrad"
    options = CAGradSpec
    spec: CAGradSpec

    def make_aggregator(self) -> Aggregator:
        """torchjd's CAGrad."""
        from torchjd.aggregation import CAGrad as Method

        return Method(c=self.spec.c, norm_eps=self.spec.norm_eps)
