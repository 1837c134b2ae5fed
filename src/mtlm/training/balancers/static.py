"""Static weighting: the sum of the λ_i-weighted losses (the task's `loss_weight`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mtlm.training.balancers.base import BalancerSpec
from mtlm.training.balancers.loss_weighting import LossWeighting

if TYPE_CHECKING:
    from torchjd.scalarization import Scalarizer


class StaticSpec(BalancerSpec):
    """Σ λ_i L_i; no options. The only balancer of `sampled` steps."""

    kind: Literal["static"]
    needs_joint_steps = False


class Static(LossWeighting):
    """Σ λ_i L_i."""

    name = "static"
    options = StaticSpec

    def make_scalarizer(self) -> Scalarizer:
        """torchjd's sum."""
        from torchjd.scalarization import Sum

        return Sum()
