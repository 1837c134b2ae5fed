"""LoRA sharing: a shared base model with one LoRA adapter per task (Hu et al., 2022, "LoRA:
Low-Rank Adaptation of Large Language Models"), through Hugging Face peft."""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from mtlm.errors import ConfigError
from mtlm.modeling.sharing.base import Sharing, SharingSpec

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedModel

    from mtlm.devices import Placement


class LoraSharingSpec(SharingSpec):
    """The adapters' rank `r`, scale `alpha`, dropout and target modules (peft's names, or
    "all-linear"); `train_base` trains the base model too, shared by every task."""

    kind: Literal["lora"]
    r: int = Field(8, gt=0)
    alpha: float = Field(16.0, gt=0.0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] | None = None
    train_base: bool = False
    # One adapter on the same base is the matching baseline of a task.
    baseline_keeps_sharing = True

    @property
    def shares_trained_weights(self) -> bool:
        """Only a trained base is shared: each task's adapter is its own."""
        return self.train_base

    def less_sharing(self) -> str:
        """Keep the base frozen."""
        return "keep the other tasks off its base: sharing.train_base: false"


class LoraSharing(Sharing):
    """The adapter of the task being encoded is switched on before each pass. peft's switch
    also freezes the other adapters; they are made trainable again at once, so the set of
    trainable parameters never changes (DDP requires that)."""

    name = "lora"
    options = LoraSharingSpec
    spec: LoraSharingSpec

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
            parameter.requires_grad_(self.spec.train_base)
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
    def load(
        cls,
        spec: SharingSpec,
        directory: Path,
        tasks: list[str],
        placement: Placement | None = None,
    ) -> LoraSharing:
        """Read what `save` wrote."""
        from peft import PeftModel

        from mtlm.modeling.backbones import load_backbone

        base = load_backbone(directory, dtype="auto", placement=placement)
        if "disk" in getattr(base, "hf_device_map", {}).values():
            # peft re-dispatches the base as each adapter loads and cannot read the layers
            # transformers left on disk (it fails deep inside accelerate).
            raise ConfigError(
                "device_map: LoRA adapters cannot load over layers placed on disk; give the "
                "base model room on the GPUs and in CPU memory"
            )
        model = PeftModel.from_pretrained(
            base, directory / "adapters" / tasks[0], adapter_name=tasks[0], is_trainable=True
        )
        for task in tasks[1:]:
            model.load_adapter(directory / "adapters" / task, adapter_name=task, is_trainable=True)
        return cls(spec, model, tasks)
