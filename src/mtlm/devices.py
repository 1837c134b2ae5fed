"""Where a loaded model runs.

A device is given as transformers' pipelines take one: an index (an accelerator's; -1 is the
CPU), a name such as "cpu", "cuda" or "cuda:1", or a `torch.device`. None means the machine's
accelerator if it has one, else the CPU. A device this machine does not have is a ConfigError
naming the argument or flag, before any weights are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtlm.errors import ConfigError

#: What may name a device (None: the default).
DeviceLike = int | str | torch.device | None

#: Where a loaded backbone's layers go, as transformers' `from_pretrained` takes it: "auto",
#: "balanced", ... or a map of module names to devices (None: all on one device).
DeviceMap = str | dict[str, Any] | None


@dataclass(frozen=True)
class Placement:
    """How a saved backbone's layers are spread as it loads: transformers' `device_map`, and
    the folder that holds the layers the map sends to disk."""

    device_map: str | dict[str, Any]
    offload_folder: Path | None = None

    def within(self, name: str) -> Placement:
        """The placement of one of several backbones loaded side by side: its offloaded layers
        in a subfolder of its own, since every backbone's weights have the same names."""
        if self.offload_folder is None:
            return self
        return Placement(self.device_map, self.offload_folder / name)

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        """The keywords transformers' `from_pretrained` takes for this placement."""
        kwargs: dict[str, Any] = {"device_map": self.device_map}
        if self.offload_folder is not None:
            kwargs["offload_folder"] = self.offload_folder
        return kwargs


def placement(
    device_map: DeviceMap, offload_folder: str | Path | None, key: str = "offload_folder"
) -> Placement | None:
    """The placement `device_map` and `offload_folder` ask for (None: no map), checked: an
    offload folder means nothing without a map that sends layers to disk (`key` names it)."""
    if device_map is None:
        if offload_folder is not None:
            raise ConfigError(
                f"{key}: holds the layers a device map sends to disk; give a device map too"
            )
        return None
    return Placement(device_map, None if offload_folder is None else Path(offload_folder))


_KINDS = "'cpu', 'cuda', 'cuda:N' (N a GPU index), 'mps', an index, or a torch.device"


def resolve_device(device: DeviceLike, key: str = "device") -> torch.device:
    """The torch.device that `device` names, checked to exist here; `key` (the argument or
    flag) is what an error names."""
    if device is None:
        return default_device()
    if isinstance(device, str) and device.strip().removeprefix("-").isdigit():
        device = int(device)
    if isinstance(device, bool) or not isinstance(device, int | str | torch.device):
        raise ConfigError(f"{key}: expected {_KINDS} (got {device!r})")
    if isinstance(device, int):
        if device < 0:
            return torch.device("cpu")
        accelerator = _accelerator_type()
        if accelerator is None:
            raise ConfigError(
                f"{key}: {device} is an accelerator's index, and this machine has no "
                "accelerator; use 'cpu'"
            )
        device = torch.device(accelerator, device)
    elif isinstance(device, str):
        try:
            device = torch.device(device)
        except RuntimeError:
            raise ConfigError(f"{key}: {device!r} is not a device; give {_KINDS}") from None
    _check_present(device, key)
    return device


def default_device() -> torch.device:
    """The machine's accelerator (its current device) if it has one, else the CPU."""
    accelerator = _accelerator_type()
    return torch.device(accelerator or "cpu")


def input_device(module: nn.Module) -> torch.device:
    """Where a module's inputs go: where accelerate runs it, for a module placed by a
    `device_map` (its outputs come back to where its inputs were), else its weights' device."""
    hook = getattr(module, "_hf_hook", None)
    execution = getattr(hook, "execution_device", None)
    if execution is not None:
        return torch.device(execution)
    return next(module.parameters()).device


def _check_present(device: torch.device, key: str) -> None:
    if device.type == "cpu":
        return
    if device.type == "meta":
        raise ConfigError(f"{key}: 'meta' holds no weights; a model runs on the cpu or a GPU")
    count = _device_count(device.type)
    if count == 0:
        raise ConfigError(
            f"{key}: {str(device)!r} is not available: torch finds no {device.type} device on "
            "this machine; use 'cpu'"
        )
    if device.index is not None and device.index >= count:
        raise ConfigError(
            f"{key}: {str(device)!r} does not exist: this machine has {count} {device.type} "
            f"device{'s' if count > 1 else ''} (0 to {count - 1})"
        )


def _device_count(kind: str) -> int:
    if kind == "mps":
        return int(torch.backends.mps.is_available())
    module = getattr(torch, kind, None)
    if not (hasattr(module, "is_available") and module.is_available()):
        return 0
    return module.device_count() if hasattr(module, "device_count") else 1


def _accelerator_type() -> str | None:
    """The type of the machine's accelerator ("cuda", "mps", ...), or None."""
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6: any kind of accelerator
    if accelerator is not None:
        return accelerator.current_accelerator().type if accelerator.is_available() else None
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if torch.backends.mps.is_available() else None
