"""The tasks' gradients on the shared parameters, aggregated through torchjd's public API.

In a joint step every task has a batch of its own, so each task's loss depends on the shared
parameters through a forward pass of its own. Each task's gradient is therefore one backward
pass through that task's graph only (the T passes together cost what one backward of the
summed loss costs), written as one row of the shared parameters' `.jac` fields; torchjd's
`jac_to_grad` then aggregates those Jacobians into `.grad`. For an aggregator that weighs the
tasks from the Gramian of their gradients, `jac_to_grad` sums the Gramian parameter by
parameter and never concatenates the Jacobian, so the step holds the T × P Jacobian once.

torchjd's `mtl_backward` (autojac) and its autogram engine assume one forward pass that every
task shares: here they would differentiate every task through every task's graph, vectorised
over the tasks, and the engine keeps each layer's Jacobian until the last task's pass through
that layer has reached it, so both take more memory than this, not less.

Each task's own parameters (its head, its adapter) get that task's gradient, as torchjd's
`mtl_backward` gives them, and a shared parameter no task reached keeps no gradient, as after a
plain backward, so that the optimizer leaves it alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchjd.aggregation import Aggregator, GramianWeightedAggregator
from torchjd.autojac import jac_to_grad

from mtlm.training.balancers.base import Balanced, JointStep, backward_with_penalty


def aggregated_on_parameters(
    aggregator: Aggregator, losses: Sequence[Tensor], step: JointStep
) -> Balanced:
    """Shared parameters: the aggregated gradient; each task's own: its own gradient."""
    tasks = len(losses)
    reached: dict[int, nn.Parameter] = {}
    for row, (loss, own) in enumerate(zip(losses, step.task_parameters, strict=True)):
        # The graph is kept: losses given as one stacked vector share its last nodes.
        grads = torch.autograd.grad(
            loss, [*step.shared, *own], retain_graph=True, allow_unused=True
        )
        for parameter, grad in zip(step.shared, grads, strict=False):
            if grad is None:
                continue
            if id(parameter) not in reached:
                reached[id(parameter)] = parameter
                parameter.jac = parameter.new_zeros((tasks, *parameter.shape))
            parameter.jac[row] = grad
        _accumulate(own, grads[len(step.shared) :])
    shared = list(reached.values())
    gramian = sum(
        (p.jac.reshape(tasks, -1) @ p.jac.reshape(tasks, -1).T for p in shared),
        torch.zeros(tasks, tasks, device=losses[0].device),
    )
    weights = jac_to_grad(
        shared,
        aggregator,
        optimize_gramian_computation=isinstance(aggregator, GramianWeightedAggregator),
    )
    if step.penalty is not None:
        step.penalty.backward()
    # Only a weighted aggregator's update is its weights applied to the Jacobian, and only for
    # one does jac_to_grad return weights (ConFIG combines normalised rows).
    return Balanced(None if weights is None else weights.detach(), gramian)


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


def _accumulate(parameters: Sequence[nn.Parameter], grads: Sequence[Tensor | None]) -> None:
    for parameter, grad in zip(parameters, grads, strict=True):
        if grad is None:
            continue
        if parameter.grad is None:
            parameter.grad = grad
        else:
            parameter.grad.add_(grad)
