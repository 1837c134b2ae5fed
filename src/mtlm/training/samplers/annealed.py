"""Annealed sampling (Stickland & Murray, 2019, "BERT and PALs"): from proportional toward
uniform over training."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from mtlm.training.samplers.base import SizeSampler, SizeSpec

if TYPE_CHECKING:
    import numpy as np


class AnnealedSpec(SizeSpec):
    """p_i ∝ min(N_i, size_cap)^α, α going linearly from 1 to `alpha_floor`."""

    kind: Literal["annealed"]
    alpha_floor: float = Field(0.2, ge=0.0, le=1.0)


class Annealed(SizeSampler):
    """p_i ∝ N_i^α with α going linearly from 1 to `alpha_floor` over training, so sampling
    moves from proportional toward uniform."""

    name = "annealed"
    options = AnnealedSpec
    spec: AnnealedSpec

    def weights(self, counts: np.ndarray, progress: float) -> np.ndarray:
        """Sizes to the power α(progress)."""
        alpha = 1.0 - (1.0 - self.spec.alpha_floor) * min(max(progress, 0.0), 1.0)
        return counts**alpha

    def set_progress(self, progress: float) -> None:
        """Move α along the schedule."""
        self.probabilities = self.probabilities_at(progress)
