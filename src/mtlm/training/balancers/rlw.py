"""Random loss weighting (Lin et al., 2022, "Reasonable Effectiveness of Random Weighting: A
Litmus Test for Multi-Task Learning")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mtlm.training.balancers.base import BalancerSpec
from mtlm.training.balancers.loss_weighting import LossWeighting

if TYPE_CHECKING:
    from torchjd.scalarization import Scalarizer


class RandomSpec(BalancerSpec):
    """Weights drawn afresh at every step; no options."""

    kind: Literal["random"]


class RandomWeights(LossWeighting):
    """Softmax of normal draws weighs the losses at each step (torchjd's Random)."""

    name = "random"
    options = RandomSpec

    def make_scalarizer(self) -> Scalarizer:
        """torchjd's Random."""
        from torchjd.scalarization import Random

        return Random()
