"""What every sampler is: its options (a `SamplerSpec` subclass, in the sampler's module) and
how it draws the task of the next optimizer step in `sampled` step mode.

A sampler decides how much of each task is trained; how a task's batches are formed is the
business of data/batching.py. A sampler's module is imported whenever a config is validated
(its options live there), so it imports numpy inside the methods that use it.
"""

from __future__ import annotations

from abc import ABC
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from mtlm.tasks.spec import StrictModel

if TYPE_CHECKING:
    import numpy as np

    from mtlm.tasks.base import TaskKind


class SamplerSpec(StrictModel):
    """The options every sampler takes. Each sampler's module declares a subclass with its
    `kind` as a one-value Literal and the options of its own."""

    kind: str

    def check_tasks(self, names: list[str]) -> None:
        """Refuse options that do not fit the experiment's tasks (a ValueError whose message
        names the key); the config calls this with the task names."""

    def for_tasks(self, names: list[str]) -> SamplerSpec:
        """These options for an experiment of only the tasks `names` (of the ones they were
        written for)."""
        return self


class SizeSpec(SamplerSpec):
    """The options of a sampler that draws tasks by their training sizes."""

    #: Count no task as larger than this many examples.
    size_cap: int | None = Field(None, gt=0)


class Sampler(ABC):
    """Draws task names from a seeded, checkpointable generator with `probabilities` (uniform
    unless the sampler says otherwise)."""

    name: ClassVar[str]
    #: The model of the sampler's options, a `SamplerSpec` whose `kind` is `name`.
    options: ClassVar[type[SamplerSpec]]

    def __init__(self, sizes: dict[str, int], spec: SamplerSpec, seed: int) -> None:
        import numpy as np

        self.sizes = dict(sizes)
        self.spec = spec
        self._names = list(sizes)
        self._rng = np.random.default_rng(seed)
        self.probabilities = self.first_probabilities()

    def first_probabilities(self) -> dict[str, float]:
        """p_i before training starts."""
        return {name: 1.0 / len(self._names) for name in self._names}

    def set_progress(self, progress: float) -> None:
        """How far (0..1) training has gone, before each step."""

    def observe(self, results: dict[str, Any], tasks: dict[str, TaskKind]) -> None:
        """A validation's results (`mtlm.evaluation.evaluate`), with the tasks that read them."""

    def sample(self) -> str:
        """The next task."""
        import numpy as np

        p = np.array([self.probabilities[name] for name in self._names])
        return self._names[self._rng.choice(len(self._names), p=p / p.sum())]

    def state_dict(self) -> dict[str, Any]:
        """Generator and current probabilities, as JSON-compatible data."""
        return {"rng": self._rng.bit_generator.state, "probabilities": self.probabilities}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly where `state_dict` was taken."""
        self._rng.bit_generator.state = state["rng"]
        self.probabilities = state.get("probabilities", self.probabilities)


class SizeSampler(Sampler):
    """p_i ∝ weight(min(N_i, size_cap)), from the tasks' training sizes N_i."""

    spec: SizeSpec

    def weights(self, counts: np.ndarray, progress: float) -> np.ndarray:
        """Each task's unnormalised weight from its (capped) size, `progress` into training."""
        return counts

    def first_probabilities(self) -> dict[str, float]:
        """The size-based probabilities at the start of training."""
        return self.probabilities_at(0.0)

    def probabilities_at(self, progress: float) -> dict[str, float]:
        """The size-based probabilities `progress` (0..1) into training."""
        import numpy as np

        counts = np.array([self.sizes[name] for name in self._names], dtype=float)
        if self.spec.size_cap is not None:
            counts = np.minimum(counts, self.spec.size_cap)
        weights = self.weights(counts, progress)
        weights = weights / weights.sum()
        return dict(zip(self._names, weights.tolist(), strict=True))
