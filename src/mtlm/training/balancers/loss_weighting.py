"""Loss weighting: a `torchjd.scalarization` scalarizer turns the loss vector into one loss,
then one ordinary backward pass. Each method is a subclass that names its scalarizer."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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
    from torchjd.scalarization import Scalarizer


class LearnedWeightsSpec(BalancerSpec):
    """The options of a loss weighting whose weights are parameters trained with the model."""

    #: The learning rate of the balancing parameters (no weight decay).
    learning_rate: float = Field(0.025, gt=0.0)
    keeps_per_task_state = True


class LossWeighting(Balancer):
    """total = scalarizer(λ ⊙ L); one backward pass; weights are d total / d L_i."""

    def __init__(self, spec: BalancerSpec, tasks: int) -> None:
        super().__init__(spec, tasks)
        self.scalarizer = self.make_scalarizer()

    @abstractmethod
    def make_scalarizer(self) -> Scalarizer:
        """The torchjd scalarizer of this method, for `self.tasks` tasks."""

    def parameter_group(self) -> dict[str, Any] | None:
        """The scalarizer's parameters, when its options give them a learning rate."""
        parameters = list(self.scalarizer.parameters())
        if not parameters or not isinstance(self.spec, LearnedWeightsSpec):
            return None
        return {"params": parameters, "weight_decay": 0.0, "lr": self.spec.learning_rate}

    def backward(self, losses: Sequence[Tensor], step: JointStep) -> Balanced:
        """One backward pass of the scalarized loss."""
        import torch

        vector = torch.stack(list(losses))
        total = self.scalarizer(vector)
        (weights,) = torch.autograd.grad(total, vector, retain_graph=True)
        backward_with_penalty(total, step)
        return Balanced(weights.detach())

    def state_dict(self) -> dict[str, Any]:
        """The scalarizer's parameters and buffers."""
        return {"module": self.scalarizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the scalarizer's parameters and buffers."""
        self.scalarizer.load_state_dict(state["module"])
