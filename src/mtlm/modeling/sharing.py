"""How tasks share the language model: hard, soft, or LoRA adapters on a shared base.

A sharing strategy owns the backbone module(s) and answers the questions the rest of mtlm
asks: which encoder serves a task, which parameters every task uses, which belong to one task,
what regulariser ties them, and how to save and restore the backbone(s).
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from mtlm.config import SharingSpec
from mtlm.errors import ConfigError
from mtlm.modeling.backbones import load_backbone


class Sharing(ABC):
    """The backbone(s) of a MultiTaskModel and how tasks use them.

    `module` holds the backbone(s); the model registers it under `module_name`, so that a
    hard-shared model's weights keep the plain `backbone.` prefix.
    """

    module_name = "backbone"

    def __init__(self, spec: SharingSpec, module: nn.Module) -> None:
        self.spec = spec
        self.module = module

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
        found: dict[int, nn.Parameter] = {}
        for module in self._backbones():
            lists = [m for m in module.modules() if isinstance(m, nn.ModuleList) and len(m)]
            last = lists[-1][-1] if lists else module
            found.update({id(p): p for p in last.parameters() if p.requires_grad})
        return list(found.values())

    @abstractmethod
    def _backbones(self) -> list[nn.Module]:
        """Every distinct backbone module."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write the backbone(s) under `directory` (Hugging Face and peft formats)."""

    def task_view(self, task: str) -> dict[str, int]:
        """Parameter counts a task's forward pass uses."""
        encoder_params = {id(p): p.numel() for p in self.encoder(task).parameters()}
        return {"backbone": sum(encoder_params.values())}


class HardSharing(Sharing):
    """One backbone for every task (hard parameter sharing)."""

    def __init__(self, spec: SharingSpec, backbone: PreTrainedModel) -> None:
        super().__init__(spec, backbone)
        self.backbone = backbone

    @property
    def base(self) -> PreTrainedModel:
        """The shared backbone."""
        return self.backbone

    def encoder(self, task: str) -> nn.Module:
        """The shared backbone."""
        return self.backbone

    def shared_parameters(self) -> list[nn.Parameter]:
        """All trainable backbone parameters."""
        return [p for p in self.backbone.parameters() if p.requires_grad]

    def _backbones(self) -> list[nn.Module]:
        return [self.backbone]

    def save(self, directory: Path) -> None:
        """The backbone at the top of the model folder."""
        self.backbone.save_pretrained(directory)

    @classmethod
    def load(cls, spec: SharingSpec, directory: Path, tasks: list[str]) -> HardSharing:
        """Read what `save` wrote."""
        return cls(spec, load_backbone(directory))


class SoftSharing(Sharing):
    """One backbone per task, all from the same weights, pulled toward their mean.

    The penalty is λ Σ_i Σ_j ||θ_ij − θ̄_j||² over the softly shared parameters j (Duong et
    al., 2015, "Low Resource Dependency Parsing: Cross-lingual Parameter Sharing in a Neural
    Network Parser"; Yang & Hospedales, 2017). Modules named in `hard_modules` and the layers in
    `hard_layers` are the same module objects in every task's backbone (hard-shared). The
    penalty is computed with foreach kernels over all tensors at once, looping only over tasks.
    """

    module_name = "backbones"

    def __init__(self, spec: SharingSpec, backbones: dict[str, PreTrainedModel]) -> None:
        super().__init__(spec, nn.ModuleDict(backbones))
        self.backbones = self.module
        self._tie(hard_module_paths(spec, next(iter(backbones.values()))))
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
        lists = list(self._soft.values())
        if not lists[0]:
            return None
        total = list(lists[0])
        for parameters in lists[1:]:
            total = torch._foreach_add(total, parameters)
        mean = torch._foreach_div(total, float(len(lists)))
        squared = torch.stack(
            [
                torch.stack(torch._foreach_norm(torch._foreach_sub(parameters, mean))).pow(2).sum()
                for parameters in lists
            ]
        ).sum()
        return strength * squared, (squared.detach() / len(lists)).sqrt()

    def _backbones(self) -> list[nn.Module]:
        return list(self.backbones.values())

    def save(self, directory: Path) -> None:
        """Each task's backbone in Hugging Face format under `backbones/<task>/`."""
        for task, backbone in self.backbones.items():
            backbone.save_pretrained(directory / "backbones" / task)

    @classmethod
    def load(cls, spec: SharingSpec, directory: Path, tasks: list[str]) -> SoftSharing:
        """Read what `save` wrote; hard-shared modules are tied again (their copies are equal)."""
        return cls(
            spec,
            {task: load_backbone(directory / "backbones" / task) for task in tasks},
        )


class LoraSharing(Sharing):
    """A shared base model with one LoRA adapter per task (Hu et al., 2022, "LoRA: Low-Rank
    Adaptation of Large Language Models"), through Hugging Face peft.

    The adapter of the task being encoded is switched on before each pass. peft's switch also
    freezes the other adapters; they are made trainable again at once, so the set of trainable
    parameters never changes (DDP requires that).
    """

    def __init__(self, spec: SharingSpec, model: Any, tasks: list[str]) -> None:
        super().__init__(spec, model)
        self.backbone = model
        self.tasks = list(tasks)
        self._adapters = {
            task: [
                p
                for n, p in model.named_parameters()
                if f"lora_A.{task}." in n or f"lora_B.{task}." in n
            ]
            for task in tasks
        }
        self._active: str | None = None
        for parameter in self.backbone.get_base_model().parameters():
            parameter.requires_grad_(spec.train_base)
        self._keep_adapters_trainable()

    @classmethod
    def from_one(
        cls, spec: SharingSpec, backbone: PreTrainedModel, tasks: list[str]
    ) -> LoraSharing:
        """New adapters, one per task, on a pretrained backbone."""
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=spec.r,
            lora_alpha=spec.alpha,
            lora_dropout=spec.dropout,
            target_modules=spec.target_modules,
        )
        try:
            model = get_peft_model(backbone, config, adapter_name=tasks[0])
        except ValueError as error:
            raise ConfigError(f"sharing.target_modules: {error}") from None
        for task in tasks[1:]:
            model.add_adapter(task, config)
        return cls(spec, model, tasks)

    def _keep_adapters_trainable(self) -> None:
        for parameters in self._adapters.values():
            for parameter in parameters:
                parameter.requires_grad_(True)

    @property
    def base(self) -> PreTrainedModel:
        """The base model (with the adapters' layers inside)."""
        return self.backbone.get_base_model()

    def encoder(self, task: str) -> nn.Module:
        """The base model with `task`'s adapter switched on."""
        if self._active != task:
            self.backbone.base_model.set_adapter(task)
            self._keep_adapters_trainable()
            self._active = task
        return self.backbone

    def pass_key(self, task: str) -> str | None:
        """Each task's adapter changes the encoder."""
        return task

    def shared_parameters(self) -> list[nn.Parameter]:
        """The base model's parameters when `train_base` is set; else none."""
        adapter_ids = {id(p) for ps in self._adapters.values() for p in ps}
        return [
            p for p in self.backbone.parameters() if p.requires_grad and id(p) not in adapter_ids
        ]

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """The task's adapter."""
        return list(self._adapters[task])

    def _backbones(self) -> list[nn.Module]:
        return [self.backbone]

    def task_view(self, task: str) -> dict[str, int]:
        """The base and the task's own adapter."""
        adapter_ids = {id(p) for ps in self._adapters.values() for p in ps}
        base = sum(p.numel() for p in self.backbone.parameters() if id(p) not in adapter_ids)
        return {"backbone": base + sum(p.numel() for p in self._adapters[task])}

    def save(self, directory: Path) -> None:
        """The base model at the top of the model folder and `adapters/<task>/`, each a folder
        that peft loads on its own."""
        copy.deepcopy(self.backbone).unload().save_pretrained(directory)
        for task in self.tasks:
            with tempfile.TemporaryDirectory(dir=directory) as scratch:
                self.backbone.save_pretrained(scratch, selected_adapters=[task])
                written = Path(scratch) / task if (Path(scratch) / task).is_dir() else Path(scratch)
                shutil.copytree(written, directory / "adapters" / task)

    @classmethod
    def load(cls, spec: SharingSpec, directory: Path, tasks: list[str]) -> LoraSharing:
        """Read what `save` wrote."""
        from peft import PeftModel

        base = load_backbone(directory)
        model = PeftModel.from_pretrained(
            base, directory / "adapters" / tasks[0], adapter_name=tasks[0], is_trainable=True
        )
        for task in tasks[1:]:
            model.load_adapter(directory / "adapters" / task, adapter_name=task, is_trainable=True)
        return cls(spec, model, tasks)


def build_sharing(spec: SharingSpec, backbone: PreTrainedModel, tasks: list[str]) -> Sharing:
    """The sharing strategy a config names, around a freshly loaded backbone."""
    if spec.kind == "soft":
        return SoftSharing.from_one(spec, backbone, tasks)
    if spec.kind == "lora":
        return LoraSharing.from_one(spec, backbone, tasks)
    return HardSharing(spec, backbone)


def load_sharing(spec: SharingSpec, directory: Path, tasks: list[str]) -> Sharing:
    """The strategy and its backbone(s) as `Sharing.save` wrote them."""
    kinds = {"hard": HardSharing, "soft": SoftSharing, "lora": LoraSharing}
    return kinds[spec.kind].load(spec, directory, tasks)


def hard_module_paths(spec: SharingSpec, backbone: nn.Module) -> list[str]:
    """Module paths to hard-share under soft sharing: `hard_modules` and the `hard_layers`
    range of the backbone's layer list."""
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
