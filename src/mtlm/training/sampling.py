"""TaskSampler: which task feeds the next optimizer step in `sampled` step mode.

How much of each task is trained is decided here; how a task's batches are formed is the
business of data/batching.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mtlm.config import SamplerSpec


def sampling_probabilities(
    sizes: dict[str, int], spec: SamplerSpec, progress: float = 0.0
) -> dict[str, float]:
    """p_i for each task of a size-based sampler, `progress` (0..1) into training.

    - `proportional`: p_i ∝ min(N_i, cap).
    - `uniform`: p_i = 1/T.
    - `temperature`: p_i ∝ min(N_i, cap)^(1/T) (Arivazhagan et al., 2019, "Massively
      Multilingual Neural Machine Translation in the Wild"); T = 1 is proportional, a large T
      approaches uniform.
    - `annealed`: p_i ∝ N_i^α with α going linearly from 1 to `alpha_floor` over training
      (Stickland & Murray, 2019, "BERT and PALs"), so sampling moves from proportional toward
      uniform.
    - `round_robin` and `dynamic` start uniform; see TaskSampler.
    """
    names = list(sizes)
    counts = np.array([sizes[name] for name in names], dtype=float)
    if spec.size_cap is not None:
        counts = np.minimum(counts, spec.size_cap)
    if spec.kind == "temperature":
        weights = counts ** (1.0 / spec.temperature)
    elif spec.kind == "annealed":
        alpha = 1.0 - (1.0 - spec.alpha_floor) * min(max(progress, 0.0), 1.0)
        weights = counts**alpha
    elif spec.kind == "proportional":
        weights = counts
    else:
        weights = np.ones_like(counts)
    weights = weights / weights.sum()
    return dict(zip(names, weights.tolist(), strict=True))


def dynamic_probabilities(gaps: dict[str, float], floor: float) -> dict[str, float]:
    """p_i = floor + (1 - T·floor) · gap_i / Σ gap: more steps for tasks furthest from target.

    Sampling in proportion to the gap between a task's score and its target follows
    Gottumukkala et al., 2020 ("Dynamic Sampling Strategies for Multi-Task Reading
    Comprehension"); the floor keeps every task in training. With every gap at zero, all
    tasks get the same share.
    """
    total = sum(gaps.values())
    share = 1.0 - floor * len(gaps)
    if total <= 0:
        return {name: 1.0 / len(gaps) for name in gaps}
    return {name: floor + share * gap / total for name, gap in gaps.items()}


class TaskSampler:
    """Draws task names from a seeded, checkpointable generator.

    `set_progress` moves the annealed schedule; `observe` feeds the dynamic sampler each
    validation's per-task gaps to target; `round_robin` cycles tasks in config order.
    """

    def __init__(self, sizes: dict[str, int], spec: SamplerSpec, seed: int) -> None:
        self.sizes = dict(sizes)
        self.spec = spec
        self.probabilities = sampling_probabilities(sizes, spec)
        self._names = list(self.probabilities)
        self._rng = np.random.default_rng(seed)
        self._turn = 0

    def set_progress(self, progress: float) -> None:
        """Tell the sampler how far (0..1) training has gone; only `annealed` uses it."""
        if self.spec.kind == "annealed":
            self.probabilities = sampling_probabilities(self.sizes, self.spec, progress)

    def observe(self, gaps: dict[str, float]) -> None:
        """How far each task's primary metric is from its target; only `dynamic` uses it."""
        if self.spec.kind == "dynamic" and gaps:
            known = {name: max(gaps.get(name, 0.0), 0.0) for name in self._names}
            self.probabilities = dynamic_probabilities(known, self.spec.floor)

    def sample(self) -> str:
        """The next task."""
        if self.spec.kind == "round_robin":
            name = self._names[self._turn % len(self._names)]
            self._turn += 1
            return name
        p = np.array([self.probabilities[name] for name in self._names])
        return self._names[self._rng.choice(len(self._names), p=p / p.sum())]

    def state_dict(self) -> dict[str, Any]:
        """Generator, turn and current probabilities, as JSON-compatible data."""
        return {
            "rng": self._rng.bit_generator.state,
            "turn": self._turn,
            "probabilities": self.probabilities,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where `state_dict` was taken."""
        self._rng.bit_generator.state = state["rng"]
        self._turn = state.get("turn", 0)
        self.probabilities = state.get("probabilities", self.probabilities)


def metric_gaps(
    results: dict[str, Any], tasks: dict[str, Any], targets: dict[str, float]
) -> dict[str, float]:
    """How far each task's primary validation metric is from its target (never negative).

    The target is `targets[task]` when configured (for example a single-task model's score),
    else the metric's ideal: 1 for higher-is-better metrics, 0 for lower-is-better ones.
    """
    gaps = {}
    for name, metrics in results["tasks"].items():
        metric = metrics["primary"]
        higher = tasks[name].higher_is_better(metric)
        target = targets.get(name, 1.0 if higher else 0.0)
        value = metrics[metric]
        gaps[name] = max(target - value if higher else value - target, 0.0)
    return gaps
