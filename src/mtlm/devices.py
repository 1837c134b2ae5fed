"""Where a loaded model runs.

A device is given as transformers' pipelines take one: an index (an accelerator's; -1 is the
CPU), a name such as "cpu", "cuda" or "cuda:1", or a `torch.device`. None means the machine's
accelerator if it has one, else the CPU. A device this machine does not have is a ConfigError
naming the argument or flag, before any weights are read.
"""

from __future__ import annotations

import torch
from torch import nn

from mtlm.errors import ConfigError

#: What may name a device (None: the default).
DeviceLike = int | str | torch.device | None

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
