"""The geometric mean of the losses (Chennupati et al., 2019, "MultiNet++"): each loss counts
by how far it falls relatively, not absolutely."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mtlm.training.balancers.base import BalancerSpec
from mtlm.training.balancers.loss_weighting import LossWeighting

if TYPE_CHECKING:
    from torchjd.scalarization import Scalarizer


class GeometricMeanSpec(BalancerSpec):
    """(Π L_i)^(1/T); no options."""

    kind: Literal["geometric_mean"]


class GeometricMean(LossWeighting):
    """(Π L_i)^(1/T) (torchjd's GeometricMean)."""

    name = "geometric_mean"
    options = GeometricMeanSpec

    def make_scalarizer(self) -> Scalarizer:
        """torchjd's GeometricMean."""
        from torchjd.scalarization import GeometricMean as Scalarizer

        return Scalarizer()
