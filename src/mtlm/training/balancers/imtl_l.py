"""IMTL-L, the loss part of Impartial Multi-Task Learning (Liu et al., 2021, "Towards Impartial
Multi-task Learning")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mtlm.training.balancers.loss_weighting import LearnedWeightsSpec, LossWeighting

if TYPE_CHECKING:
    from torchjd.scalarization import Scalarizer


class IMTLLSpec(LearnedWeightsSpec):
    """Σ e^{s_i} L_i - s_i, with one learned scale s_i per task."""

    kind: Literal["imtl_l"]


class IMTLL(LossWeighting):
    """Learned scales make every scaled loss alike (torchjd's IMTLL)."""

    name = "imtl_l"
    options = IMTLLSpec

    def make_scalarizer(self) -> Scalarizer:
        """torchjd's IMTLL over the tasks."""
        from torchjd.scalarization import IMTLL as Scalarizer

        return Scalarizer(self.tasks)
