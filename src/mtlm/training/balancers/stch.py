"""Smooth Tchebycheff scalarization (Lin et al., 2024, "Smooth Tchebycheff Scalarization for
Multi-Objective Optimization")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from mtlm.training.balancers.base import BalancerSpec
from mtlm.training.balancers.loss_weighting import LossWeighting

if TYPE_CHECKING:
    from torchjd.scalarization import Scalarizer


class STCHSpec(BalancerSpec):
    """μ log Σ e^{L_i / μ}: a smooth maximum of the losses, the sharper the smaller μ."""

    kind: Literal["stch"]
    mu: float = Field(1.0, gt=0.0)


class STCH(LossWeighting):
    """A smooth maximum of the losses (torchjd's STCH)."""

    name = "stch"
    options = STCHSpec
    spec: STCHSpec

    def make_scalarizer(self) -> Scalarizer:
        """torchjd's STCH with the configured μ."""
        from torchjd.scalarization import STCH as Scalarizer

        return Scalarizer(mu=self.spec.mu)
