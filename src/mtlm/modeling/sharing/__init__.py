"""Sharing kinds, by the name a config uses for them: the one list of sharing kinds.

A kind is one module, with its options (a `SharingSpec` subclass) and its behaviour (a
`Sharing`), and one line below.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mtlm.modeling.sharing.base import Sharing, SharingSpec
from mtlm.modeling.sharing.hard import HardSharing
from mtlm.modeling.sharing.lora import LoraSharing
from mtlm.modeling.sharing.soft import SoftSharing

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from mtlm.devices import Placement

SHARING: dict[str, type[Sharing]] = {
    kind.name: kind for kind in (HardSharing, SoftSharing, LoraSharing)
}


def build_sharing(spec: SharingSpec, backbone: PreTrainedModel, tasks: list[str]) -> Sharing:
    """The sharing strategy a config names, around a freshly loaded backbone."""
    return SHARING[spec.kind].from_one(spec, backbone, tasks)


def load_sharing(
    spec: SharingSpec, directory: Path, tasks: list[str], placement: Placement | None = None
) -> Sharing:
    """The strategy and its backbone(s) as `Sharing.save` wrote them, spread by `placement`."""
    return SHARING[spec.kind].load(spec, directory, tasks, placement)


__all__ = [
    "SHARING",
    "HardSharing",
    "LoraSharing",
    "Sharing",
    "SharingSpec",
    "SoftSharing",
    "build_sharing",
    "load_sharing",
]
