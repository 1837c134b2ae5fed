"""Uncertainty weighting (Kendall, Gal & Cipolla, 2018, "Multi-Task Learning Using Uncertainty
to Weigh Losses for Scene Geometry and Semantics")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mtlm.training.balancers.loss_weighting import LearnedWeightsSpec, LossWeighting

if TYPE_CHECKING:
    from torchjd.scalarization import Scalarizer


class UncertaintySpec(LearnedWeightsSpec):
    """Σ ½ e^{-s_i} L_i + ½ s_i, with one learned log-variance s_i per task."""

    kind: Literal["uncertainty"]


class Uncertainty(LossWeighting):
    """Learned log-variances weigh the losses (torchjd's UW)."""

    name = "uncertainty"
    options = UncertaintySpec

    def make_scalarizer(self) -> Scalarizer:
        """torchjd's UW over the tasks."""
        from torchjd.scalarization import UW

        return UW(self.tasks)
