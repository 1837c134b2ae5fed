"""Checkpoints that are written atomically and resume exactly.

A checkpoint folder holds the model and the random number generators (safetensors), the
trainer's own state (JSON), and the optimizer, scheduler and balancer state: `optimizer.pt`,
`scheduler.pt` and `balancer.pt`. These three are the one pickle mtlm writes: `torch.save` of
the state dicts that `load_state_dict` takes back (nested dicts and lists of tensors, numbers
and strings, whose shape differs per optimizer and balancer). They are read only with
`torch.load(weights_only=True)`, whose unpickler builds tensors and plain containers and
refuses any other object, so a crafted checkpoint cannot run code when it is loaded.

A checkpoint is written under a staging name and renamed into place, so a run killed at any
moment leaves either the whole checkpoint or none.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from mtlm.files import staged_directory
from mtlm.training.balancers import Balancer

_STEP_FOLDER = re.compile(r"^step-(\d+)$")
TRAINER_STATE = "trainer_state.json"


def save_checkpoint(
    checkpoints: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    trainer_state: dict[str, Any],
    keep: int,
    balancer: Balancer | None = None,
) -> Path:
    """Write `checkpoints/step-N` atomically and keep only the newest `keep` of them."""
    target = checkpoints / f"step-{step}"
    with staged_directory(target) as staging:
        save_model(model, str(staging / "model.safetensors"))
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        torch.save(scheduler.state_dict(), staging / "scheduler.pt")
        if balancer is not None:
            torch.save(balancer.state_dict(), staging / "balancer.pt")
        save_file(_rng_tensors(), staging / "rng.safetensors")
        state = {**trainer_state, "step": step, "python_rng": _python_rng_state()}
        (staging / TRAINER_STATE).write_text(json.dumps(state))
    for old in list_checkpoints(checkpoints)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(checkpoints: Path) -> list[Path]:
    """Complete step checkpoints, oldest first."""
    if not checkpoints.is_dir():
        return []
    found = [
        (int(match.group(1)), path)
        for path in checkpoints.iterdir()
        if (match := _STEP_FOLDER.match(path.name)) and (path / TRAINER_STATE).is_file()
    ]
    return [path for _, path in sorted(found)]


def discard_partial(checkpoints: Path) -> list[Path]:
    """Remove what a killed save left behind (hidden staging folders); return what was removed."""
    if not checkpoints.is_dir():
        return []
    partial = [path for path in checkpoints.iterdir() if path.name.startswith(".")]
    for path in partial:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return partial


def load_checkpoint(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    balancer: Balancer | None = None,
) -> dict[str, Any]:
    """Restore model, optimizer, scheduler, balancer and generators; return the trainer's
    state."""
    load_model(model, str(folder / "model.safetensors"))
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
    if balancer is not None:
        balancer.load_state_dict(torch.load(folder / "balancer.pt", weights_only=True))
    state = json.loads((folder / TRAINER_STATE).read_text())
    _restore_rng(load_file(folder / "rng.safetensors"), state.pop("python_rng"))
    return state


def save_weights(folder: Path, model: nn.Module, info: dict[str, Any]) -> None:
    """Write only the model's weights and a JSON note, atomically (the best model so far)."""
    with staged_directory(folder) as staging:
        save_model(model, str(staging / "model.safetensors"))
        (staging / "info.json").write_text(json.dumps(info))


def load_weights(folder: Path, model: nn.Module) -> None:
    """Load weights written by `save_weights`."""
    load_model(model, str(folder / "model.safetensors"))


def _rng_tensors() -> dict[str, torch.Tensor]:
    tensors = {"torch": torch.get_rng_state()}
    numpy_state = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(numpy_state[1].astype(np.int64))
    tensors["numpy_rest"] = torch.tensor([numpy_state[2], numpy_state[3]], dtype=torch.int64)
    tensors["numpy_gauss"] = torch.tensor([numpy_state[4]], dtype=torch.float64)
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{index}"] = state
    return tensors


def _python_rng_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _restore_rng(tensors: dict[str, torch.Tensor], python_state: list[Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    position, has_gauss = tensors["numpy_rest"].tolist()
    np.random.set_state(
        (
            "MT19937",
            tensors["numpy_keys"].numpy().astype(np.uint32),
            position,
            has_gauss,
            float(tensors["numpy_gauss"][0]),
        )
    )
    cuda_states = [tensors[key] for key in sorted(tensors) if key.startswith("cuda_")]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    version, internal, gauss = python_state
    random.setstate((version, tuple(internal), gauss))
