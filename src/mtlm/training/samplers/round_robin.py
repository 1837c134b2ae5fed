"""Round-robin sampling: the tasks in config order, one step each, over and over."""

from __future__ import annotations

from typing import Any, Literal

from mtlm.training.samplers.base import Sampler, SamplerSpec


class RoundRobinSpec(SamplerSpec):
    """Tasks in turn; no options."""

    kind: Literal["round_robin"]


class RoundRobin(Sampler):
    """Cycles through the tasks in config order; its turn is checkpointed."""

    name = "round_robin"
    options = RoundRobinSpec

    def __init__(self, sizes: dict[str, int], spec: SamplerSpec, seed: int) -> None:
        super().__init__(sizes, spec, seed)
        self._turn = 0

    def sample(self) -> str:
        """The task whose turn it is."""
        name = self._names[self._turn % len(self._names)]
        self._turn += 1
        return name

    def state_dict(self) -> dict[str, Any]:
        """The turn, besides the generator."""
        return {**super().state_dict(), "turn": self._turn}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue at the saved turn."""
        super().load_state_dict(state)
        self._turn = state.get("turn", 0)
