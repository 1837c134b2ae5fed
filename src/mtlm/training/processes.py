"""The processes that train together: the Accelerator a config's training runs on."""

from __future__ import annotations

import os

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs

from mtlm.config import TrainingSpec


def training_accelerator(training: TrainingSpec) -> Accelerator:
    """The Accelerator of `training`'s mixed precision, on the processes a launcher started.

    Accelerators share one process state, so building the experiment and training it may each
    make one: the first decides how the processes are joined."""
    return Accelerator(
        mixed_precision=training.mixed_precision,
        cpu=_multi_process_cpu_launch(),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )


def _multi_process_cpu_launch() -> bool:
    """Whether a launcher (torchrun) started several processes on a machine with no accelerator.

    Accelerate joins such processes over gloo only when told `cpu=True` (as `accelerate launch
    --cpu` does); otherwise each process would train alone, all writing to one output folder.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = getattr(torch, "accelerator", None)  # torch >= 2.6: any accelerator at all
    return not (backend.is_available() if backend is not None else torch.cuda.is_available())
