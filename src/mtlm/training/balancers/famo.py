"""FAMO (Liu, Liu, Jin, Stone & Liu, 2023, "FAMO: Fast Adaptive Multitask Optimization"):
loss weights that make every loss fall at about the same rate, learned from the losses alone.

The scalarization is torchjd's FAMO. Its update of the task logits keeps its optimizer in
private attributes, which a checkpoint could not restore; the update is mtlm's own here, the
paper's: after the model step, one Adam step on the logits along the fall of each log-loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from mtlm.training.balancers.base import Balanced, BalancerSpec, JointStep
from mtlm.training.balancers.loss_weighting import LossWeighting

if TYPE_CHECKING:
    from torch import Tensor
    from torchjd.scalarization import Scalarizer

#: Keeps the logarithm of a loss at zero finite (torchjd's FAMO adds the same).
_EPSILON = 1e-8


class FAMOSpec(BalancerSpec):
    """The learning rate and weight decay of the Adam step on the task logits."""

    kind: Literal["famo"]
    lr: float = Field(0.025, ge=0.0)
    weight_decay: float = Field(1e-3, ge=0.0)
    keeps_per_task_state = True


class FAMO(LossWeighting):
    """torchjd's FAMO scalarization; the logits step after each optimizer step."""

    name = "famo"
    options = FAMOSpec
    spec: FAMOSpec

    def __init__(self, spec: BalancerSpec, tasks: int) -> None:
        import torch

        super().__init__(spec, tasks)
        (self.logits,) = self.scalarizer.parameters()
        self.optimizer = torch.optim.Adam(
            [self.logits], lr=self.spec.lr, weight_decay=self.spec.weight_decay
        )
        self.before: Tensor | None = None

    def make_scalarizer(self) -> Scalarizer:
        """torchjd's FAMO over the tasks."""
        from torchjd.scalarization import FAMO as Scalarizer

        return Scalarizer(self.tasks, lr=self.spec.lr, weight_decay=self.spec.weight_decay)

    def backward(self, losses: Sequence[Tensor], step: JointStep) -> Balanced:
        """The scalarized backward; the losses are kept for the update."""
        import torch

        self.before = torch.stack(list(losses)).detach()
        return super().backward(losses, step)

    def after_step(self, recompute_losses: Callable[[], Tensor]) -> None:
        """δ_i = log L_i(before) - log L_i(after) on the same batches; one Adam step on the
        logits w along -(∂ softmax(w) / ∂w)ᵀ δ, as the paper's Algorithm 2."""
        import torch

        after = recompute_losses().detach()
        floor = self.scalarizer.min_losses
        delta = torch.log(self.before - floor + _EPSILON) - torch.log(after - floor + _EPSILON)
        with torch.enable_grad():
            weights = torch.softmax(self.logits.flatten(), dim=0)
            (gradient,) = torch.autograd.grad(weights, self.logits, grad_outputs=delta.flatten())
        self.logits.grad = gradient
        self.optimizer.step()
        self.logits.grad = None

    def state_dict(self) -> dict[str, Any]:
        """The logits and their optimizer."""
        return {**super().state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the logits and their optimizer."""
        super().load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])
