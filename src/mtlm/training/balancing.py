"""Balancers: how the per-task losses of a `joint` step become one update.

Three families, each a small class:
- loss weighting: a `torchjd.scalarization` scalarizer turns the loss vector into one loss,
  then one ordinary backward pass (static λ_i, uncertainty, DWA, RLW, FAMO, IMTL-L, ...);
- GradNorm (Chen et al., 2018), which torchjd does not provide;
- gradient aggregation: a `torchjd.aggregation` aggregator combines the per-task gradients of
  the shared parameters (`gradients: parameters`), or derives task weights from the gradients with
  respect to the shared representation (`gradients: representation`, MGDA-UB style, Sener & Koltun,
  2018) and then needs only one backward pass.

Every balancer returns the effective weight of each task, and aggregators also the Gramian of
the task gradients, from which the trainer logs their cosine similarities.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torchjd import aggregation, scalarization

from mtlm.config import BalancerSpec
from mtlm.errors import ConfigError


@dataclass
class JointStep:
    """What a balancer may need from one joint step besides the losses."""

    features: Sequence[Tensor]  # each task's shared representation (backbone output)
    shared: Sequence[nn.Parameter]  # parameters every task uses
    task_parameters: Sequence[Sequence[nn.Parameter]]  # each task's own parameters
    last_shared: Sequence[nn.Parameter]  # the last shared layer (GradNorm's W)
    backward: Callable[[Tensor], None]  # the trainer's backward (mixed precision, DDP)
    penalty: Tensor | None = None  # a regulariser added outside the balancing


@dataclass
class Balanced:
    """What one balancing did: per-task effective weights (None for aggregators that do not
    combine the task gradients linearly) and, if known, the Gramian of the task gradients."""

    weights: Tensor | None
    gramian: Tensor | None = None


class Balancer(ABC):
    """Turns a vector of per-task losses into gradients on the model's parameters."""

    #: Whether backward computes gradients itself (no DDP hooks), so the trainer must
    #: average them across processes.
    reduces_gradients_itself = False

    def parameters(self) -> list[nn.Parameter]:
        """Learnable balancing parameters to train with the model's optimizer."""
        return []

    @abstractmethod
    def backward(self, losses: Sequence[Tensor], step: JointStep) -> Balanced:
        """Accumulate the balanced gradient into `.grad`; `losses` (one scalar per task, not
        stacked, so that differentiating one does not walk the others' graphs) already
        include λ_i."""

    def after_step(self, recompute_losses: Callable[[], Tensor]) -> None:
        """Called after the optimizer step (FAMO updates its weights here)."""

    def end_epoch(self) -> None:
        """Called at each epoch boundary (DWA rolls its loss history here)."""

    def state_dict(self) -> dict[str, Any]:
        """Learned state, for checkpoints (tensors and plain values only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""


# --- loss weighting ------------------------------------------------------------------------
_SCALARIZERS: dict[str, Callable[[int, dict[str, Any]], scalarization.Scalarizer]] = {
    "static": lambda tasks, options: scalarization.Sum(**options),
    "uncertainty": lambda tasks, options: scalarization.UW(tasks, **options),
    "dwa": lambda tasks, options: scalarization.DWA(**options),
    "random": lambda tasks, options: scalarization.Random(**options),
    "famo": lambda tasks, options: scalarization.FAMO(tasks, **options),
    "imtl_l": lambda tasks, options: scalarization.IMTLL(tasks, **options),
    "geometric_mean": lambda tasks, options: scalarization.GeometricMean(**options),
    "stch": lambda tasks, options: scalarization.STCH(**{"mu": 1.0, **options}),
}
#: Attributes of stateful scalarizers that are not parameters or buffers but must survive a
#: resume (FAMO's loss memory and inner optimizer, DWA's loss history).
_EXTRA_STATE = {
    "famo": ("_prev_losses",),
    "dwa": ("_loss_sum", "_n_batches", "_previous_averages"),
}


class ScalarizerBalancer(Balancer):
    """Loss weighting: total = scalarizer(λ ⊙ L); one backward pass."""

    def __init__(self, kind: str, scalarizer: scalarization.Scalarizer) -> None:
        self.kind = kind
        self.scalarizer = scalarizer

    def parameters(self) -> list[nn.Parameter]:
        """UW's log-variances and IMTL-L's scales (FAMO steps its own logits)."""
        if self.kind == "famo":
            return []
        return list(self.scalarizer.parameters())

    def backward(self, losses: Sequence[Tensor], step: JointStep) -> Balanced:
        """One backward pass of the scalarized loss; weights are d total / d L_i."""
        vector = torch.stack(list(losses))
        total = self.scalarizer(vector)
        (weights,) = torch.autograd.grad(total, vector, retain_graph=True)
        step.backward(total if step.penalty is None else total + step.penalty)
        return Balanced(weights.detach())

    def after_step(self, recompute_losses: Callable[[], Tensor]) -> None:
        """FAMO adapts its task logits to how much each loss fell during the step."""
        if self.kind == "famo":
            self.scalarizer.update(recompute_losses())

    def end_epoch(self) -> None:
        """DWA weighs tasks by how fast their losses fell over the last two epochs."""
        if self.kind == "dwa":
            self.scalarizer.step()

    def state_dict(self) -> dict[str, Any]:
        """Parameters, buffers and the stateful attributes listed in _EXTRA_STATE."""
        state: dict[str, Any] = {"module": self.scalarizer.state_dict()}
        for name in _EXTRA_STATE.get(self.kind, ()):
            state[name] = getattr(self.scalarizer, name)
        inner = getattr(self.scalarizer, "_optimizer", None)
        if inner is not None:
            state["optimizer"] = inner.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore parameters, inner optimizer and loss history."""
        self.scalarizer.load_state_dict(state["module"])
        for name in _EXTRA_STATE.get(self.kind, ()):
            setattr(self.scalarizer, name, state[name])
        if "optimizer" in state:
            logits = next(iter(self.scalarizer.parameters()))
            self.scalarizer._optimizer = torch.optim.Adam(
                [logits], lr=self.scalarizer.lr, weight_decay=self.scalarizer.weight_decay
            )
            self.scalarizer._optimizer.load_state_dict(state["optimizer"])


# --- GradNorm ------------------------------------------------------------------------------
class GradNormBalancer(Balancer):
    """GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, 2018, ICML).

    Learns task weights w_i so that the gradient norms G_i = ||∇_W w_i L_i|| on the last shared
    layer W move toward mean(G) · r_i^α, where r_i is task i's loss ratio L_i(t)/L_i(0) relative
    to the mean ratio: tasks that learn slower get larger gradients. The weights are renormalised
    to sum to the number of tasks after each update.
    """

    def __init__(self, tasks: int, alpha: float = 1.5, learning_rate: float = 0.025) -> None:
        self.alpha = alpha
        self.weights = nn.Parameter(torch.ones(tasks))
        self.optimizer = torch.optim.Adam([self.weights], lr=learning_rate)
        self.initial_losses: Tensor | None = None

    def backward(self, losses: Sequence[Tensor], step: JointStep) -> Balanced:
        """Update the weights from the norms, then one backward of Σ w_i L_i."""
        separate = list(losses)
        losses = torch.stack(separate)
        detached = losses.detach()
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
        weights = self.weights.to(losses.device)
        scaled_norms = weights * norms
        ratios = detached / self.initial_losses.clamp(min=1e-12)
        target = (scaled_norms.mean() * (ratios / ratios.mean()) ** self.alpha).detach()
        self.optimizer.zero_grad()
        (grad,) = torch.autograd.grad((scaled_norms - target).abs().sum(), self.weights)
        self.weights.grad = grad
        used = weights.detach()
        total = (used * losses).sum()
        step.backward(total if step.penalty is None else total + step.penalty)
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
        with torch.no_grad():
            self.weights.copy_(state["weights"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.initial_losses = state["initial_losses"]


# --- gradient aggregation ------------------------------------------------------------------
_AGGREGATORS: dict[str, Callable[..., aggregation.Aggregator]] = {
    "pcgrad": aggregation.PCGrad,
    "upgrad": aggregation.UPGrad,
    "mgda": aggregation.MGDA,
    "cagrad": lambda c=0.5, **options: aggregation.CAGrad(c=c, **options),
    "nash_mtl": aggregation.NashMTL,
    "imtl_g": aggregation.IMTLG,
    "aligned_mtl": aggregation.AlignedMTL,
    "dualproj": aggregation.DualProj,
    "graddrop": aggregation.GradDrop,
    "gradvac": aggregation.GradVac,
    "config": aggregation.ConFIG,
}


class ParameterAggregator(Balancer):
    """Aggregates the per-task gradients of the shared parameters with a torchjd aggregator.

    Each task's gradient comes from its own backward pass through its own batch's graph, so the
    T passes together cost what one backward of the summed loss costs; the Jacobian (T rows, one
    column per shared parameter) is then aggregated into one update.
    """

    reduces_gradients_itself = True

    def __init__(self, aggregator: aggregation.Aggregator) -> None:
        self.aggregator = aggregator

    def backward(self, losses: Sequence[Tensor], step: JointStep) -> Balanced:
        """Per-task gradients, aggregation on the shared parameters, heads' gradients as usual."""
        rows = []
        reached = [False] * len(step.shared)
        for loss, own in zip(losses, step.task_parameters, strict=True):
            # The graph is kept: losses given as one stacked vector share its last nodes.
            grads = torch.autograd.grad(
                loss, [*step.shared, *own], retain_graph=True, allow_unused=True
            )
            shared_grads = grads[: len(step.shared)]
            rows.append(_flatten(shared_grads, step.shared))
            reached = [hit or g is not None for hit, g in zip(reached, shared_grads, strict=True)]
            _accumulate(own, grads[len(step.shared) :])
        jacobian = torch.stack(rows)
        gramian = jacobian @ jacobian.T
        # Only a weighted aggregator's result is its weighting applied to the Jacobian (ConFIG
        # has a `weighting` too, but combines normalised rows).
        if isinstance(self.aggregator, aggregation.WeightedAggregator):
            task_weights = self.aggregator.weighting(jacobian)
            update = task_weights @ jacobian
        else:
            task_weights = None
            update = self.aggregator(jacobian)
        # Parameters no task used (an unused pooler) keep no gradient, as after a plain backward,
        # so that the optimizer leaves them alone (no weight decay on a zero gradient).
        parts = _unflatten(update, step.shared)
        _accumulate(
            step.shared, [part if hit else None for part, hit in zip(parts, reached, strict=True)]
        )
        if step.penalty is not None:
            step.penalty.backward()
        return Balanced(None if task_weights is None else task_weights.detach(), gramian.detach())

    def state_dict(self) -> dict[str, Any]:
        """GradVac's moving targets; other aggregators keep no state worth restoring."""
        weighting = getattr(self.aggregator, "gramian_weighting", None)
        if isinstance(weighting, aggregation.GradVacWeighting):
            return {"phi_t": weighting._phi_t, "state_key": weighting._state_key}
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore GradVac's moving targets."""
        if state:
            weighting = self.aggregator.gramian_weighting
            weighting._phi_t, weighting._state_key = state["phi_t"], state["state_key"]


class RepresentationAggregator(Balancer):
    """Task weights from the gradients with respect to the shared representation.

    The weighting of a torchjd aggregator is applied to the Jacobian of the losses with respect
    to each task's backbone output (cheap: it stops at the heads), then one backward pass of
    Σ w_i L_i trains everything (MGDA-UB, Sener & Koltun, 2018, "Multi-Task Learning as
    Multi-Objective Optimization"). With one batch per task these gradients are orthogonal, so
    only weightings driven by gradient norms (MGDA, IMTL-G, Aligned-MTL, Nash-MTL, CAGrad) are
    offered here.
    """

    def __init__(self, aggregator: aggregation.Aggregator) -> None:
        self.weighting = aggregator.weighting

    def backward(self, losses: Sequence[Tensor], step: JointStep) -> Balanced:
        """Weights from the representation Jacobian, then one backward of the weighted sum."""
        rows = []
        for loss in losses:
            grads = torch.autograd.grad(
                loss, list(step.features), retain_graph=True, allow_unused=True
            )
            rows.append(_flatten(grads, step.features))
        jacobian = torch.stack(rows)
        weights = self.weighting(jacobian).detach()
        total = (weights * torch.stack(list(losses))).sum()
        step.backward(total if step.penalty is None else total + step.penalty)
        return Balanced(weights, (jacobian @ jacobian.T).detach())


def build_balancer(spec: BalancerSpec, tasks: int) -> Balancer:
    """The balancer a config names; bad options are a ConfigError naming the key."""
    options = dict(spec.options)
    try:
        if spec.kind == "gradnorm":
            return GradNormBalancer(tasks, learning_rate=spec.learning_rate, **options)
        if spec.kind in _SCALARIZERS:
            return ScalarizerBalancer(spec.kind, _SCALARIZERS[spec.kind](tasks, options))
        if spec.kind == "nash_mtl":
            options.setdefault("n_tasks", tasks)
        aggregator = _AGGREGATORS[spec.kind](**options)
    except (TypeError, ValueError, ImportError) as error:
        raise ConfigError(f"training.balancer.options: {spec.kind}: {error}") from None
    if spec.gradients == "representation":
        return RepresentationAggregator(aggregator)
    return ParameterAggregator(aggregator)


def cosine_matrix(gramian: Tensor) -> Tensor:
    """Cosine similarities between task gradients, from their Gramian."""
    norms = gramian.diagonal().clamp(min=1e-24).sqrt()
    return gramian / (norms[:, None] * norms[None, :])


def _norm(grads: Sequence[Tensor | None]) -> Tensor:
    squares = [grad.pow(2).sum() for grad in grads if grad is not None]
    return torch.stack(squares).sum().sqrt() if squares else torch.zeros(())


def _flatten(grads: Sequence[Tensor | None], like: Sequence[Tensor]) -> Tensor:
    return torch.cat(
        [
            (grad if grad is not None else torch.zeros_like(tensor)).reshape(-1)
            for grad, tensor in zip(grads, like, strict=True)
        ]
    )


def _unflatten(vector: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    parts, start = [], 0
    for tensor in like:
        parts.append(vector[start : start + tensor.numel()].view_as(tensor))
        start += tensor.numel()
    return parts


def _accumulate(parameters: Sequence[nn.Parameter], grads: Sequence[Tensor | None]) -> None:
    for parameter, grad in zip(parameters, grads, strict=True):
        if grad is None:
            continue
        if parameter.grad is None:
            parameter.grad = grad.detach().clone()
        else:
            parameter.grad.add_(grad)
