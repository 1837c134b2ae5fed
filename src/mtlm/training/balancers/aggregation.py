"""Gradient aggregation: a `torchjd.aggregation` aggregator combines the tasks' gradients into
one update. Each method is a subclass that names its aggregator.

- `gradients: parameters`: the per-task gradients of the shared parameters are aggregated
  (see `mtlm.training.balancers.jacobians`); each task's own parameters (its head) get its own
  gradient, as torchjd's `mtl_backward` gives them.
- `gradients: representation`: task weights come from the gradients with respect to each task's
  shared representation, then one backward pass of Σ w_i L_i (MGDA-UB, Sener & Koltun, 2018,
  "Multi-Task Learning as Multi-Objective Optimization"). With one batch per task these
  gradients are orthogonal, so only weightings driven by gradient norms take this mode.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import model_validator

from mtlm.tasks.spec import option_error
from mtlm.training.balancers.base import Balanced, Balancer, BalancerSpec, JointStep

if TYPE_CHECKING:
    from torch import Tensor
    from torchjd.aggregation import Aggregator


class AggregatorSpec(BalancerSpec):
    """The options every gradient aggregation takes: which gradients it aggregates."""

    # Not `on`: YAML 1.1 reads a bare `on` key as the boolean true.
    gradients: Literal["parameters", "representation"] = "parameters"
    aggregates_gradients = True
    #: Whether its weights still mean something when computed from the (orthogonal) gradients
    #: with respect to the tasks' own representations: true of weightings driven by gradient
    #: norms, not of methods that react to conflicts between gradients.
    weighs_representation: ClassVar[bool] = False

    @property
    def reduces_gradients_itself(self) -> bool:
        """On parameters, the shared gradients bypass DDP's hooks."""
        return self.gradients == "parameters"

    @model_validator(mode="after")
    def _representation_needs_a_norm_weighting(self) -> AggregatorSpec:
        if self.gradients == "representation" and not self.weighs_representation:
            raise option_error(
                "gradients",
                f"{self.kind!r} reacts to conflicts between the tasks' gradients, and the "
                "gradients of the tasks' own representations never conflict; use gradients: "
                "parameters",
            )
        return self


class GradientAggregation(Balancer):
    """Aggregates the tasks' gradients with a torchjd aggregator."""

    spec: AggregatorSpec

    def __init__(self, spec: BalancerSpec, tasks: int) -> None:
        super().__init__(spec, tasks)
        self.aggregator = self.make_aggregator()

    @abstractmethod
    def make_aggregator(self) -> Aggregator:
        """The torchjd aggregator of this method, for `self.tasks` tasks."""

    def backward(self, losses: Sequence[Tensor], step: JointStep) -> Balanced:
        """Aggregate the gradients of the shared parameters, or weigh the losses by the
        gradients of the representation."""
        from mtlm.training.balancers.jacobians import (
            aggregated_on_parameters,
            representation_weighted,
        )

        if self.spec.gradients == "representation":
            return representation_weighted(self.aggregator, losses, step)
        return aggregated_on_parameters(self.aggregator, losses, step)

    def state_dict(self) -> dict[str, Any]:
        """The aggregator's buffers (GradVac's moving targets); empty for the others."""
        return {"aggregator": self.aggregator.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the aggregator's buffers."""
        if "aggregator" in state:
            self.aggregator.load_state_dict(state["aggregator"])
