"""What every sharing kind is: its options (a `SharingSpec` subclass, in the kind's module) and
how it holds the backbone(s) of a MultiTaskModel.

A sharing strategy owns the backbone module(s) and answers the questions the rest of mtlm
asks: which encoder serves a task, which parameters every task uses, which belong to one task,
what regulariser ties them, and how to save and restore the backbone(s).

A kind's module is imported whenever a config is validated (its options live there), so it
imports torch, transformers and peft inside the methods that use them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from mtlm.tasks.spec import StrictModel

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedModel

    from mtlm.devices import Placement


class SharingSpec(StrictModel):
    """The options every sharing kind takes. Each kind's module declares a subclass with its
    `kind` as a one-value Literal and the options of its own."""

    kind: str
    #: Whether every task gets a backbone of its own (so no task can be fine-tuned alone in
    #: an adapter over a shared one).
    backbone_per_task: ClassVar[bool] = False
    #: Whether a task's single-task baseline (`mtlm compare`) keeps this sharing; else it is
    #: plain fine-tuning (hard sharing of one task).
    baseline_keeps_sharing: ClassVar[bool] = False

    @property
    def shares_trained_weights(self) -> bool:
        """Whether the tasks train weights in common (or tied together)."""
        return True

    def penalty_strength(self, step: int, total_steps: int) -> float | None:
        """The strength of the regulariser between the tasks' parameters at `step` of
        `total_steps`; None for a kind without one."""
        return None

    @abstractmethod
    def less_sharing(self) -> str:
        """How to share less with a task that the other tasks make worse, as config advice."""


class Sharing(ABC):
    """The backbone(s) of a MultiTaskModel and how tasks use them.

    `module` holds the backbone(s); the model registers it under `module_name`, so that a
    hard-shared model's weights keep the plain `backbone.` prefix.
    """

    name: ClassVar[str]
    #: The model of the kind's options, a `SharingSpec` whose `kind` is `name`.
    options: ClassVar[type[SharingSpec]]
    module_name = "backbone"

    def __init__(self, spec: SharingSpec, module: nn.Module) -> None:
        self.spec = spec
        self.module = module

    @classmethod
    @abstractmethod
    def from_one(cls, spec: SharingSpec, backbone: PreTrainedModel, tasks: list[str]) -> Sharing:
        """The strategy around one freshly loaded pretrained backbone."""

    @classmethod
    @abstractmethod
    def load(
        cls,
        spec: SharingSpec,
        directory: Path,
        tasks: list[str],
        placement: Placement | None = None,
    ) -> Sharing:
        """Read what `save` wrote, the backbone(s) spread by `placement` if given (see
        `load_backbone`)."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write the backbone(s) under `directory` (Hugging Face and peft formats)."""

    @abstractmethod
    def encoder(self, task: str) -> nn.Module:
        """The module that encodes a batch for `task` (ready to be called)."""

    @property
    @abstractmethod
    def base(self) -> PreTrainedModel:
        """A plain Hugging Face backbone (its config and forward signature)."""

    def pass_key(self, task: str) -> str | None:
        """Tasks with the same key run on the same encoder, so can share one pass."""
        return None

    @abstractmethod
    def shared_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters that every task uses."""

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """Trainable backbone parameters that only `task` uses."""
        return []

    def penalty(self, strength: float) -> tuple[torch.Tensor, torch.Tensor] | None:
        """A regulariser between tasks' parameters and a distance to log, or None."""
        return None

    def last_layer_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters of the last layer of every backbone (GradNorm's W)."""
        from torch import nn

        found: dict[int, nn.Parameter] = {}
        for module in self._backbones():
            lists = [m for m in module.modules() if isinstance(m, nn.ModuleList) and len(m)]
            last = lists[-1][-1] if lists else module
            found.update({id(p): p for p in last.parameters() if p.requires_grad})
        return list(found.values())

    @abstractmethod
    def _backbones(self) -> list[nn.Module]:
        """Every distinct backbone module."""

    def task_view(self, task: str) -> dict[str, int]:
        """Parameter counts a task's forward pass uses."""
        encoder_params = {id(p): p.numel() for p in self.encoder(task).parameters()}
        return {"backbone": sum(encoder_params.values())}
