"""IMTL-G, the gradient part of Impartial Multi-Task Learning (Liu et al., 2021, "Towards
Impartial Multi-task Learning")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mtlm.training.balancers.aggregation import AggregatorSpec, GradientAggregation

if TYPE_CHECKING:
    from torchjd.aggregation import Aggregator


class IMTLGSpec(AggregatorSpec):
    """No options."""

    kind: Literal["imtl_g"]
    weighs_representation = True


class IMTLG(GradientAggregation):
    """The update whose projections on every task's unit gradient are equal."""

    name = "imtl_g"
    options = IMTLGSpec
    spec: IMTLGSpec

    def make_aggregator(self) -> Aggregator:
        """torchjd's IMTLG."""
        from torchjd.aggregation import IMTLG as Method

        return Method()
