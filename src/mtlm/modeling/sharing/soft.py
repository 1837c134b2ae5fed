"""Soft sharing: one backbone per task, all from the same weights, pulled toward their mean.

The penalty is λ Σ_i Σ_j ||θ_ij − θ̄_j||² over the softly shared parameters j (Duong et al.,
2015, "Low Resource Dependency Parsing: Cross-lingual Parameter Sharing in a Neural Network
Parser"; Yang & Hospedales, 2017).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from mtlm.errors import ConfigError
from mtlm.modeling.sharing.base import Sharing, SharingSpec

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedModel

    from mtlm.devices import Placement


class SoftSharingSpec(SharingSpec):
    """The penalty's strength λ (constant, or warmed up linearly over the first
    `strength_warmup_ratio` of training), and the modules that stay hard-shared: `hard_modules`
    by path and the layers `hard_layers: [first, last]` of the backbone's layer list."""

    kind: Literal["soft"]
    strength: float = Field(1e-3, ge=0.0)
    strength_schedule: Literal["constant", "linear_warmup"] = "constant"
    strength_warmup_ratio: float = Field(0.1, gt=0.0, le=1.0)
    hard_modules: list[str] = Field(default_factory=list)
    hard_layers: list[int] | None = Field(None, min_length=2, max_length=2)
    backbone_per_task = True

    @model_validator(mode="after")
    def _ordered_layers(self) -> SoftSharingSpec:
        if self.hard_layers is not None and not 0 <= self.hard_layers[0] <= self.hard_layers[1]:
            raise ValueError("hard_layers is [first, last] with 0 <= first <= last")
        return self

    def penalty_strength(self, step: int, total_steps: int) -> float | None:
        """λ, or λ warmed up linearly from 0."""
        if self.strength_schedule == "constant":
            return self.strength
        warmup = max(1.0, self.strength_warmup_ratio * total_steps)
        return self.strength * min(1.0, step / warmup)

    def less_sharing(self) -> str:
        """Tie the tasks less."""
        return f"tie it less: sharing.strength below {self.strength:g}, or sharing: {{kind: lora}}"


class SoftSharing(Sharing):
    """One backbone per task. Modules named in `hard_modules` and the layers in `hard_layers`
    are the same module objects in every task's backbone (hard-shared). The penalty is one
    autograd node over all tensors at once (`TiedDistance`), looping only over tasks."""

    name = "soft"
    options = SoftSharingSpec
    module_name = "backbones"
    spec: SoftSharingSpec

    def __init__(self, spec: SharingSpec, backbones: dict[str, PreTrainedModel]) -> None:
        from torch import nn

        super().__init__(spec, nn.ModuleDict(backbones))
        self.backbones = self.module
        self._tie(hard_module_paths(self.spec, next(iter(backbones.values()))))
        first = next(iter(self.backbones.values()))
        shared_ids = {id(p) for p in first.parameters()}
        for backbone in self.backbones.values():
            shared_ids &= {id(p) for p in backbone.parameters()}
        names = [name for name, p in first.named_parameters() if id(p) not in shared_ids]
        self._soft = {
            task: [backbone.get_parameter(name) for name in names]
            for task, backbone in self.backbones.items()
        }
        self._shared_ids = shared_ids

    @classmethod
    def from_one(
        cls, spec: SharingSpec, backbone: PreTrainedModel, tasks: list[str]
    ) -> SoftSharing:
        """Copies of one pretrained backbone, one per task."""
        return cls(spec, {task: copy.deepcopy(backbone) for task in tasks})

    def _tie(self, paths: list[str]) -> None:
        backbones = list(self.backbones.values())
        for path in paths:
            module = backbones[0].get_submodule(path)
            for other in backbones[1:]:
                other.set_submodule(path, module)

    @property
    def base(self) -> PreTrainedModel:
        """The first task's backbone."""
        return next(iter(self.backbones.values()))

    def encoder(self, task: str) -> nn.Module:
        """The task's own backbone."""
        return self.backbones[task]

    def pass_key(self, task: str) -> str | None:
        """Every task has its own encoder."""
        return task

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters of the hard-shared modules."""
        return [p for p in self.base.parameters() if id(p) in self._shared_ids and p.requires_grad]

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """The task's softly shared parameters."""
        return [p for p in self._soft[task] if p.requires_grad]

    def penalty(self, strength: float) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(λ Σ_i ||θ_i − θ̄||², RMS distance of a task's parameters from the mean)."""
        from mtlm.modeling.sharing.tied_distance import TiedDistance

        lists = list(self._soft.values())
        if not lists[0]:
            return None
        squared = TiedDistance.apply(len(lists), *(p for parameters in lists for p in parameters))
        return strength * squared, (squared.detach() / len(lists)).sqrt()

    def _backbones(self) -> list[nn.Module]:
        return list(self.backbones.values())

    def save(self, directory: Path) -> None:
        """Each task's backbone in Hugging Face format under `backbones/<task>/`."""
        for task, backbone in self.backbones.items():
            backbone.save_pretrained(directory / "backbones" / task)

    @classmethod
    def load(
        cls,
        spec: SharingSpec,
        directory: Path,
        tasks: list[str],
        placement: Placement | None = None,
    ) -> SoftSharing:
        """Read what `save` wrote; hard-shared modules are tied again (their copies are equal)."""
        from mtlm.modeling.backbones import load_backbone

        return cls(
            spec,
            {
                task: load_backbone(
                    directory / "backbones" / task,
                    dtype="auto",
                    placement=placement and placement.within(task),
                )
                for task in tasks
            },
        )


def hard_module_paths(spec: SoftSharingSpec, backbone: nn.Module) -> list[str]:
    """Module paths to hard-share under soft sharing: `hard_modules` and the `hard_layers`
    range of the backbone's layer list."""
    from torch import nn

    paths = list(spec.hard_modules)
    for path in paths:
        try:
            backbone.get_submodule(path)
        except AttributeError:
            raise ConfigError(
                f"sharing.hard_modules: the backbone has no module {path!r} (top-level modules: "
                f"{', '.join(name for name, _ in backbone.named_children())})"
            ) from None
    if spec.hard_layers is not None:
        lists = [
            (n, m) for n, m in backbone.named_modules() if isinstance(m, nn.ModuleList) and len(m)
        ]
        if not lists:
            raise ConfigError("sharing.hard_layers: the backbone has no list of layers")
        name, layers = lists[-1]
        first, last = spec.hard_layers
        if last >= len(layers):
            raise ConfigError(
                f"sharing.hard_layers: the backbone has {len(layers)} layers "
                f"(0 to {len(layers) - 1})"
            )
        paths += [f"{name}.{index}" for index in range(first, last + 1)]
    return paths
