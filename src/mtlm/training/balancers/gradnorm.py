"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, 2018, "GradNorm: Gradient Normalization for
Adaptive Loss Balancing in Deep Multitask Networks"), which torchjd does not provide."""

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


class GradNormSpec(BalancerSpec):
    """The asymmetry α and the learning rate of the weights' own Adam."""

    kind: Literal["gradnorm"]
    alpha: float = Field(1.5, ge=0.0)
    learning_rate: float = Field(0.025, gt=0.0)
    keeps_per_task_state = True


class GradNorm(Balancer):
    """Learns task weights w_i so that the gradient norms G_i = ||∇_W w_i L_i|| on the last
    shared layer W move toward mean(G) · r_i^α, where r_i is task i's loss ratio L_i(t)/L_i(0)
    relative to the mean ratio: tasks that learn slower get larger gradients. The weights are
    renormalised to sum to the number of tasks after each update."""

    name = "gradnorm"
    options = GradNormSpec
    spec: GradNormSpec

    def __init__(self, spec: BalancerSpec, tasks: int) -> None:
        import torch

        super().__init__(spec, tasks)
        self.weights = torch.nn.Parameter(torch.ones(tasks))
        self.optimizer = torch.optim.Adam([self.weights], lr=self.spec.learning_rate)
        self.initial_losses: Tensor | None = None

    def backward(self, losses: Sequence[Tensor], step: JointStep) -> Balanced:
        """Update the weights from the norms, then one backward of Σ w_i L_i."""
        import torch

        separate = list(losses)
        stacked = torch.stack(separate)
        detached = stacked.detach()
        if self.initial_losses is None:
            self.initial_losses = detached.clone()
        norms = torch.stack(
            [
                _norm(
                    torch.autograd.grad(
                        loss, step.last_shared, retain_graph=True, allow_unused=True
                    )
                )
                for loss in separate
            ]
        )
        weights = self.weights.to(stacked.device)
        scaled_norms = weights * norms
        ratios = detached / self.initial_losses.clamp(min=1e-12)
        target = (scaled_norms.mean() * (ratios / ratios.mean()) ** self.spec.alpha).detach()
        self.optimizer.zero_grad()
        (grad,) = torch.autograd.grad((scaled_norms - target).abs().sum(), self.weights)
        self.weights.grad = grad
        used = weights.detach()
        backward_with_penalty((used * stacked).sum(), step)
        self.optimizer.step()
        with torch.no_grad():
            self.weights.clamp_(min=1e-6)
            self.weights.mul_(len(self.weights) / self.weights.sum())
        return Balanced(used)

    def state_dict(self) -> dict[str, Any]:
        """Weights, their optimizer and the initial losses."""
        return {
            "weights": self.weights.detach().clone(),
            "optimizer": self.optimizer.state_dict(),
            "initial_losses": self.initial_losses,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore weights, optimizer and initial losses."""
        import torch

        with torch.no_grad():
            self.weights.copy_(state["weights"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.initial_losses = state["initial_losses"]


def _norm(grads: Sequence[Tensor | None]) -> Tensor:
    import torch

    squares = [grad.pow(2).sum() for grad in grads if grad is not None]
    return torch.stack(squares).sum().sqrt() if squares else torch.zeros(())
