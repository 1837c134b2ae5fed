"""Aligned-MTL (Senushkin, Patakin, Kuznetsov & Konushin, 2023, "Independent Component Alignment
for Multi-Task Learning")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mtlm.training.balancers.aggregation import AggregatorSpec, GradientAggregation

if TYPE_CHECKING:
    from torchjd.aggregation import Aggregator


class AlignedMTLSpec(AggregatorSpec):
    """`scale_mode`: which eigenvalue of the gradients' Gramian sets the scale of the update."""

    kind: Literal["aligned_mtl"]
    scale_mode: Literal["min", "median", "rmse"] = "min"
    weighs_representation = True


class AlignedMTL(GradientAggregation):
    """Aligns the principal components of the gradients (makes their matrix well conditioned)."""

    name = "aligned_mtl"
    options = AlignedMTLSpec
    spec: AlignedMTLSpec

    def make_aggregator(self) -> Aggregator:
        """torchjd's AlignedMTL."""
        from torchjd.aggregation import AlignedMTL as Method

        return Method(scale_mode=self.spec.scale_mode)
