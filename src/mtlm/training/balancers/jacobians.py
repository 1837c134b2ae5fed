"""The tasks' gradients on the shared parameters, aggregated through torchjd's public API.

Two ways, the first where it can:
- torchjd's autogram engine computes the Gramian of the task gradients module by module,
  never holding the whole Jacobian (T rows, one column per shared parameter); the aggregator's
  Gramian weighting turns it into task weights, and one backward pass of Σ w_i L_i onto the
  shared parameters gives the update (Quinton & Rey, 2024, "Jacobian Descent for Multi-
  Objective Optimization", section 6).
- torchjd's autojac puts the Jacobian in the shared parameters' `.jac` fields and `jac_to_grad`
  aggregates it: for aggregators that need the Jacobian itself (GradDrop, ConFIG, Nash-MTL),
  and for models whose shared parameters the engine cannot see module by module (weights tied
  between modules, say).

Either way each task's own parameters (its head, its adapter) get that task's gradient, as
torchjd's `mtl_backward` gives them, and a shared parameter no task reached keeps no gradient,
as after a plain backward, so that the optimizer leaves it alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchjd.aggregation import Aggregator, GramianWeightedAggregator
from torchjd.autogram import Engine
from torchjd.autojac import backward as jacobian_backward
from torchjd.autojac import jac_to_grad

from mtlm.training.balancers.base import Balanced, JointStep, backward_with_penalty

#: How far ||Σ w_i g_i||² may be from wᵀ G w, relative to Σ |w_i w_j G_ij|, before the engine's
#: Gramian is judged to miss part of the model.
_GRAMIAN_TOLERANCE = 1e-3


class SharedGradients:
    """The aggregated gradient of the shared parameters of one model, step after step."""

    def __init__(
        self,
        aggregator: Aggregator,
        model: nn.Module | None = None,
        shared: Sequence[nn.Parameter] = (),
    ) -> None:
        self.aggregator = aggregator
        modules = None
        if model is not None and isinstance(aggregator, GramianWeightedAggregator):
            modules = engine_modules(model, shared)
        # The engine hooks the modules now, so that it sees the forward passes of every step.
        self.engine = Engine(*modules, batch_dim=None) if modules else None

    def backward(self, losses: Sequence[Tensor], step: JointStep) -> Balanced:
        """Shared parameters: the aggregated gradient; each task's own: its own gradient."""
        stacked = torch.stack(list(losses))
        balanced = self._through_gramian(stacked, step) if self.engine is not None else None
        if balanced is None:
            balanced = self._through_jacobian(stacked, step)
        own = [parameter for parameters in step.task_parameters for parameter in parameters]
        if own:
            torch.autograd.backward(stacked.sum(), inputs=own)
        if step.penalty is not None:
            step.penalty.backward()
        return balanced

    def _through_gramian(self, stacked: Tensor, step: JointStep) -> Balanced | None:
        """The update from the engine's Gramian; None (and the engine dropped) if the engine
        cannot compute it, or its Gramian disagrees with the update it gives."""
        try:
            with warnings.catch_warnings():
                # Some backward kernels (CPU attention) have no batching rule: torch runs them
                # once per task instead, which is what the engine needs.
                warnings.filterwarnings("ignore", message="There is a performance drop")
                gramian = self.engine.compute_gramian(stacked)
        except (ValueError, RuntimeError) as error:
            return self._give_up(str(error))
        weights = self.aggregator.gramian_weighting(gramian)
        grads = torch.autograd.grad(
            stacked,
            step.shared,
            grad_outputs=weights.to(stacked.dtype),
            retain_graph=True,
            allow_unused=True,
        )
        squared = sum(grad.pow(2).sum() for grad in grads if grad is not None)
        expected = weights @ gramian @ weights
        scale = weights.abs() @ gramian.abs() @ weights.abs()
        if abs(float(squared) - float(expected)) > _GRAMIAN_TOLERANCE * float(scale) + 1e-30:
            return self._give_up("its Gramian disagrees with the gradients")
        _accumulate(step.shared, grads)
        return Balanced(weights.detach(), gramian.detach())

    def _through_jacobian(self, stacked: Tensor, step: JointStep) -> Balanced:
        """The update from the Jacobian in the `.jac` fields of the shared parameters."""
        reached = reached_parameters(stacked, step.shared)
        jacobian_backward(stacked, inputs=reached, retain_graph=True)
        rows = len(stacked)
        gramian = sum(
            parameter.jac.reshape(rows, -1) @ parameter.jac.reshape(rows, -1).T
            for parameter in reached
        )
        weights = jac_to_grad(
            reached,
            self.aggregator,
            optimize_gramian_computation=isinstance(self.aggregator, GramianWeightedAggregator),
        )
        # Only a weighted aggregator's update is its weights applied to the Jacobian, and only
        # for one does jac_to_grad return weights (ConFIG combines normalised rows).
        return Balanced(None if weights is None else weights.detach(), gramian.detach())

    def _give_up(self, reason: str) -> None:
        warnings.warn(
            f"torchjd's autogram engine cannot compute the Gramian of this model's shared "
            f"parameters ({reason}); aggregating their whole Jacobian instead, which takes "
            "more memory",
            stacklevel=4,
        )
        # Freeing the engine removes its hooks from the model.
        self.engine = None
        return None


def representation_weighted(
    aggregator: Aggregator, losses: Sequence[Tensor], step: JointStep
) -> Balanced:
    """Weights from the aggregator's weighting of the Jacobian of the losses with respect to
    each task's representation (cheap: it stops at the heads), then one backward pass of
    Σ w_i L_i that trains everything."""
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, list(step.features), retain_graph=True, allow_unused=True)
        rows.append(
            torch.cat(
                [
                    (grad if grad is not None else torch.zeros_like(feature)).reshape(-1)
                    for grad, feature in zip(grads, step.features, strict=True)
                ]
            )
        )
    jacobian = torch.stack(rows)
    weights = aggregator.weighting(jacobian).detach()
    backward_with_penalty((weights * torch.stack(list(losses))).sum(), step)
    return Balanced(weights, (jacobian @ jacobian.T).detach())


def engine_modules(root: nn.Module, shared: Sequence[nn.Parameter]) -> list[nn.Module] | None:
    """The outermost modules of `root` whose trainable parameters are all shared, each shared
    parameter in exactly one of them: what the autogram engine differentiates. None where the
    shared parameters cannot be read that way (a parameter tied between two modules, or a
    module holding shared and other trainable parameters directly)."""
    wanted = {id(parameter) for parameter in shared}
    found: dict[int, nn.Module] = {}

    def visit(module: nn.Module) -> bool:
        if any(p.requires_grad for p in module.parameters(recurse=False)):
            inside = [p for p in module.parameters() if p.requires_grad]
            mine = [p for p in inside if id(p) in wanted]
            if mine:
                found[id(module)] = module
            return len(mine) in (0, len(inside))
        return all(visit(child) for child in module.children())

    if not visit(root):
        return None
    covered = [id(p) for module in found.values() for p in module.parameters() if p.requires_grad]
    if len(covered) != len(set(covered)) or set(covered) != wanted:
        return None
    return list(found.values())


def reached_parameters(output: Tensor, parameters: Sequence[nn.Parameter]) -> list[nn.Parameter]:
    """The parameters that `output`'s graph reaches (an unused pooler is not among them)."""
    wanted = {id(parameter) for parameter in parameters}
    reached: set[int] = set()
    seen: set[object] = set()
    pending = [output.grad_fn] if output.grad_fn is not None else []
    while pending:
        node = pending.pop()
        if node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)  # the leaf of an AccumulateGrad node
        if variable is not None and id(variable) in wanted:
            reached.add(id(variable))
        pending.extend(child for child, _ in node.next_functions if child is not None)
    return [parameter for parameter in parameters if id(parameter) in reached]


def _accumulate(parameters: Sequence[nn.Parameter], grads: Sequence[Tensor | None]) -> None:
    for parameter, grad in zip(parameters, grads, strict=True):
        if grad is None:
            continue
        if parameter.grad is None:
            parameter.grad = grad
        else:
            parameter.grad.add_(grad)
