"""Hard sharing: one backbone for every task (hard parameter sharing, Caruana, 1997,
"Multitask Learning")."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mtlm.modeling.sharing.base import Sharing, SharingSpec

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedModel

    from mtlm.devices import Placement


class HardSharingSpec(SharingSpec):
    """One backbone for all tasks; no options."""

    kind: Literal["hard"]

    def less_sharing(self) -> str:
        """Give the task parameters of its own."""
        return "give it its own parameters: sharing: {kind: lora} or {kind: soft}"


class HardSharing(Sharing):
    """One backbone for every task."""

    name = "hard"
    options = HardSharingSpec

    def __init__(self, spec: SharingSpec, backbone: PreTrainedModel) -> None:
        super().__init__(spec, backbone)
        self.backbone = backbone

    @classmethod
    def from_one(
        cls, spec: SharingSpec, backbone: PreTrainedModel, tasks: list[str]
    ) -> HardSharing:
        """The backbone, as it is."""
        return cls(spec, backbone)

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
    def load(
        cls,
        spec: SharingSpec,
        directory: Path,
        tasks: list[str],
        placement: Placement | None = None,
    ) -> HardSharing:
        """Read what `save` wrote."""
        from mtlm.modeling.backbones import load_backbone

        return cls(spec, load_backbone(directory, dtype="auto", placement=placement))
