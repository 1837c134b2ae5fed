"""TaskSampler: which task feeds the next optimizer step in `sampled` step mode."""

from __future__ import annotations

from typing import Any

import numpy as np

from mtlm.config import SamplerSpec


def sampling_probabilities(sizes: dict[str, int], spec: SamplerSpec) -> dict[str, float]:
    """p_i for each task.

    `proportional`: p_i ∝ min(N_i, cap); `uniform`: p_i = 1/T; `temperature`:
    p_i ∝ min(N_i, cap)^(1/T) (Arivazhagan et al., 2019), so T = 1 is proportional and a large
    T approaches uniform.
    """
    names = list(sizes)
    counts = np.array([sizes[name] for name in names], dtype=float)
    if spec.size_cap is not None:
        counts = np.minimum(counts, spec.size_cap)
    if spec.kind == "uniform":
        weights = np.ones_like(counts)
    elif spec.kind == "temperature":
        weights = counts ** (1.0 / spec.temperature)
    else:
        weights = counts
    weights = weights / weights.sum()
    return dict(zip(names, weights.tolist(), strict=True))


class TaskSampler:
    """Draws task names with fixed probabilities from a seeded, checkpointable generator."""

    def __init__(self, sizes: dict[str, int], spec: SamplerSpec, seed: int) -> None:
        self.probabilities = sampling_probabilities(sizes, spec)
        self._names = list(self.probabilities)
        self._p = np.array([self.probabilities[name] for name in self._names])
        self._rng = np.random.default_rng(seed)

    def sample(self) -> str:
        """The next task."""
        return self._names[self._rng.choice(len(self._names), p=self._p)]

    def state_dict(self) -> dict[str, Any]:
        """The generator state, as JSON-compatible data."""
        return {"rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where `state_dict` was taken."""
        self._rng.bit_generator.state = state["rng"]
