"""Dynamic Weight Average (Liu, Johns & Davison, 2019, "End-to-End Multi-Task Learning with
Attention"): each task weighs by how slowly its loss has fallen over the last two epochs.

torchjd's DWA keeps its epoch history in private attributes, which a checkpoint could not
restore; the history is mtlm's own here, and the formula the paper's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from mtlm.training.balancers.base import (
    Balanced,
    Balancer,
    BalancerSpec,
    JointStep,
    backward_with_penalty,
)

if TYPE_CHECKING:
    from torch import Tensor


class DWASpec(BalancerSpec):
    """λ_i(t) = T · softmax(w(t-1) / temperature)_i, w_i(t-1) = L_i(t-1) / L_i(t-2) from the
    epochs' average losses; uniform for the first two epochs."""

    kind: Literal["dwa"]
    temperature: float = Field(2.0, gt=0.0)
    keeps_per_task_state = True


class DWA(Balancer):
    """Weights from the ratio of each task's average loss over the last two epochs."""

    name = "dwa"
    options = DWASpec
    spec: DWASpec

    def __init__(self, spec: BalancerSpec, tasks: int) -> None:
        super().__init__(spec, tasks)
        self.loss_sum: Tensor | None = None
        self.batches = 0
        #: The average losses of the last two finished epochs, oldest first.
        self.averages: list[Tensor] = []

    def weights(self, like: Tensor) -> Tensor:
        """The weights of the current epoch (ones until two epochs have finished)."""
        import torch

        if len(self.averages) < 2:
            return torch.ones_like(like)
        rates = self.averages[1] / self.averages[0]
        return len(rates) * torch.softmax(rates / self.spec.temperature, dim=0)

    def backward(self, losses: Sequence[Tensor], step: JointStep) -> Balanced:
        """One backward of Σ λ_i L_i; the losses join the epoch's sum."""
        import torch

        vector = torch.stack(list(losses))
        weights = self.weights(vector)
        detached = vector.detach()
        self.loss_sum = detached.clone() if self.loss_sum is None else self.loss_sum + detached
        self.batches += 1
        backward_with_penalty((weights * vector).sum(), step)
        return Balanced(weights.detach())

    def end_epoch(self) -> None:
        """The epoch's average loss becomes the newest of the history."""
        if self.loss_sum is None:
            return
        self.averages = [*self.averages, self.loss_sum / self.batches][-2:]
        self.loss_sum, self.batches = None, 0

    def state_dict(self) -> dict[str, Any]:
        """The epoch's partial sum and the last two epochs' averages."""
        return {"loss_sum": self.loss_sum, "batches": self.batches, "averages": self.averages}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the sum and the history."""
        self.loss_sum, self.batches = state["loss_sum"], state["batches"]
        self.averages = list(state["averages"])
