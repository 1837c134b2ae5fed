"""Temperature sampling (Arivazhagan et al., 2019, "Massively Multilingual Neural Machine
Translation in the Wild"): between proportional and uniform."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from mtlm.training.samplers.base import SizeSampler, SizeSpec

if TYPE_CHECKING:
    import numpy as np


class TemperatureSpec(SizeSpec):
    """p_i ∝ min(N_i, size_cap)^(1/temperature)."""

    kind: Literal["temperature"]
    temperature: float = Field(2.0, gt=0.0)


class Temperature(SizeSampler):
    """p_i ∝ min(N_i, cap)^(1/T): T = 1 is proportional, a large T approaches uniform."""

    name = "temperature"
    options = TemperatureSpec
    spec: TemperatureSpec

    def weights(self, counts: np.ndarray, progress: float) -> np.ndarray:
        """Sizes to the power 1/T."""
        return counts ** (1.0 / self.spec.temperature)
