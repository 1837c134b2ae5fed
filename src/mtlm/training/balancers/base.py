"""What every balancer is: its options (a `BalancerSpec` subclass, in the balancer's module)
and how it turns the per-task losses of a `joint` step into gradients.

Every balancer returns the effective weight of each task, and aggregators also the Gramian of
the task gradients, from which the trainer logs their cosine similarities.

A balancer's module is imported whenever a config is validated (its options live there), so
it imports torch and torchjd inside the methods that use them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from mtlm.tasks.spec import StrictModel

if TYPE_CHECKING:
    from torch import Tensor, nn


class BalancerSpec(StrictModel):
    """The options every balancer takes. Each balancer's module declares a subclass with its
    `kind` as a one-value Literal and the options of its own."""

    kind: str
    #: Whether it weighs the losses of several tasks in one step, so needs `step_mode: joint`.
    needs_joint_steps: ClassVar[bool] = True
    #: Whether it keeps a learned value or a history per task position: every joint step must
    #: then hold the same tasks, so it does not combine with `joint_groups`.
    keeps_per_task_state: ClassVar[bool] = False
    #: Whether it combines the tasks' gradients (and so can resolve their conflicts), rather
    #: than only weighing their losses.
    aggregates_gradients: ClassVar[bool] = False

    @property
    def reduces_gradients_itself(self) -> bool:
        """Whether its backward computes gradients itself, bypassing DDP's hooks, so that the
        trainer must average them across processes."""
        return False


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

    name: ClassVar[str]
    #: The model of the balancer's options, a `BalancerSpec` whose `kind` is `name`.
    options: ClassVar[type[BalancerSpec]]

    def __init__(self, spec: BalancerSpec, tasks: int) -> None:
        self.spec = spec
        self.tasks = tasks

    @property
    def reduces_gradients_itself(self) -> bool:
        """Whether backward computes gradients itself (no DDP hooks), so the trainer must
        average them across processes (see `BalancerSpec.reduces_gradients_itself`)."""
        return self.spec.reduces_gradients_itself

    def parameter_group(self) -> dict[str, Any] | None:
        """Learnable balancing parameters to train with the model's optimizer, as an optimizer
        parameter group (with their learning rate); None if there are none."""
        return None

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


def backward_with_penalty(total: Tensor, step: JointStep) -> None:
    """The trainer's backward of a balanced total and the step's regulariser, if any."""
    step.backward(total if step.penalty is None else total + step.penalty)


def cosine_matrix(gramian: Tensor) -> Tensor:
    """Cosine similarities between task gradients, from their Gramian."""
    norms = gramian.diagonal().clamp(min=1e-24).sqrt()
    return gramian / (norms[:, None] * norms[None, :])
