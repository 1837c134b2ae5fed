"""Checkpoints that are written atomically and resume exactly.

A checkpoint folder holds the model and every process's random number generators
(safetensors), the trainer's own state and the fp16 gradient scaler's (JSON), and the
optimizer, scheduler and balancer state: `optimizer.pt`,
`scheduler.pt` and `balancer.pt`. These three are the one pickle mtlm writes: `torch.save` of
the state dicts that `load_state_dict` takes back (nested dicts and lists of tensors, numbers
and strings, whose shape differs per optimizer and balancer). They are read only with
`torch.load(weights_only=True)`, whose unpickler builds tensors and plain containers and
refuses any other object, so a crafted checkpoint cannot run code when it is loaded. They are
loaded onto the CPU (`map_location`) whatever device wrote them, and placed from there: the
optimizer's state on its parameters' devices, the balancer's on the device it computes on, so a
checkpoint resumes on another device or another number of them.

Each process has its own generators (dropout masks differ across processes) and its own
balancer state (a balancer that follows the losses, as DWA, FAMO or GradNorm do, sees those of
its process's batches), so a checkpoint holds those of every process, and a resume on as many
processes restores each its own. A resume on another number of processes M gives process r
those that process r mod N saved (N the number that wrote the checkpoint): the run continues,
though not as either count would have run it uninterrupted.

The fp16 gradient scaler's state (its scale and growth counter) is saved when the run has one
(fp16 on a GPU) and restored when the resumed run has one too; a run resumed on a GPU from a
checkpoint written without one starts its scaler afresh.

A checkpoint is written under a staging name and renamed into place, so a run killed at any
moment leaves either the whole checkpoint or none.

Accelerate's `save_state`/`load_state` would not do: they write in place (a kill leaves a
partial checkpoint that looks whole), load the objects registered with them with
`weights_only=False`, skip a process's generators silently when they cannot be read, and know
nothing of the sampler, the task streams or the balancer.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from accelerate.utils import send_to_device
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from mtlm.errors import ConfigError
from mtlm.files import staged_directory
from mtlm.training.balancers import Balancer

_STEP_FOLDER = re.compile(r"^step-(\d+)$")
TRAINER_STATE = "trainer_state.json"


class RandomState(NamedTuple):
    """One process's random number generators: torch's (and its accelerator's), numpy's, and
    Python's."""

    tensors: dict[str, torch.Tensor]
    python: list[Any]


def save_checkpoint(
    checkpoints: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    trainer_state: dict[str, Any],
    keep: int,
    *,
    balancer_states: list[dict[str, Any]] | None = None,
    scaler: Any = None,
    random_states: list[RandomState] | None = None,
) -> Path:
    """Write `checkpoints/step-N` atomically and keep only the newest `keep` of them.

    `balancer_states` and `random_states` hold every process's balancer state (None in sampled
    mode) and generators, in process order (by default, this process's generators alone);
    `scaler` is the fp16 gradient scaler, if the run has one."""
    target = checkpoints / f"step-{step}"
    states = random_states if random_states is not None else [random_state()]
    with staged_directory(target) as staging:
        save_model(model, str(staging / "model.safetensors"))
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        torch.save(scheduler.state_dict(), staging / "scheduler.pt")
        if balancer_states is not None:
            torch.save(balancer_states, staging / "balancer.pt")
        tensors = {
            f"{process}.{name}": tensor
            for process, state in enumerate(states)
            for name, tensor in state.tensors.items()
        }
        save_file(tensors, staging / "rng.safetensors")
        state = {**trainer_state, "step": step, "python_rng": [s.python for s in states]}
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
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
    *,
    scaler: Any = None,
    process: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Restore model, optimizer, scheduler, the gradient scaler (if both the run and the
    checkpoint have one), and the balancer state (its tensors onto `device`) and generators of
    process number `process`; return the trainer's state."""
    load_model(model, str(folder / "model.safetensors"))
    optimizer.load_state_dict(_load_pickled(folder / "optimizer.pt"))
    scheduler.load_state_dict(_load_pickled(folder / "scheduler.pt"))
    state = json.loads((folder / TRAINER_STATE).read_text())
    python_states = state.pop("python_rng")
    saved = process % len(python_states)
    if balancer is not None:
        balancer_file = folder / "balancer.pt"
        balancer_states = _load_pickled(balancer_file)
        try:
            balancer.load_state_dict(send_to_device(balancer_states[saved], device))
        except (KeyError, IndexError, TypeError) as error:
            # A checkpoint from an mtlm whose balancer kept other state (DWA's, before the
            # balancer registry) cannot continue the run exactly: it has to start again.
            raise ConfigError(
                f"{balancer_file}: not the state this version's {balancer.name} balancer keeps "
                f"({type(error).__name__}: {error}); train again with overwrite_output_dir: true"
            ) from None
    scaler_state = state.pop("scaler", None)
    if scaler is not None and scaler_state is not None:
        scaler.load_state_dict(scaler_state)
    prefix = f"{saved}."
    tensors = {
        name.removeprefix(prefix): tensor
        for name, tensor in load_file(folder / "rng.safetensors").items()
        if name.startswith(prefix)
    }
    restore_random_state(RandomState(tensors, python_states[saved]))
    return state


def _load_pickled(file: Path) -> Any:
    """A state dict that `torch.save` wrote, loaded onto the CPU without running code."""
    return torch.load(file, map_location="cpu", weights_only=True)


def save_weights(folder: Path, model: nn.Module, info: dict[str, Any]) -> None:
    """Write only the model's weights and a JSON note, atomically (the best model so far)."""
    with staged_directory(folder) as staging:
        save_model(model, str(staging / "model.safetensors"))
        (staging / "info.json").write_text(json.dumps(info))


def load_weights(folder: Path, model: nn.Module) -> None:
    """Load weights written by `save_weights`."""
    load_model(model, str(folder / "model.safetensors"))


def random_state() -> RandomState:
    """This process's generators, as a checkpoint holds them."""
    tensors = {"torch": torch.get_rng_state()}
    numpy_state = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(numpy_state[1].astype(np.int64))
    tensors["numpy_rest"] = torch.tensor([numpy_state[2], numpy_state[3]], dtype=torch.int64)
    tensors["numpy_gauss"] = torch.tensor([numpy_state[4]], dtype=torch.float64)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # The generator of this process's own device, the one its dropout draws from.
        tensors["cuda"] = torch.cuda.get_rng_state()
    version, internal, gauss = random.getstate()
    return RandomState(tensors, [version, list(internal), gauss])


def restore_random_state(state: RandomState) -> None:
    """Set this process's generators to `state`."""
    tensors = state.tensors
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
    # A checkpoint written on CPUs leaves a GPU's generator as the seed set it, and one written
    # on GPUs resumed on CPUs has no use for it.
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"])
    version, internal, gauss = state.python
    random.setstate((version, tuple(internal), gauss))
