"""The processes that train together: the Accelerator a config's training runs on, and the
averaging of the gradients that DDP does not average."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs

from mtlm.config import TrainingSpec
from mtlm.errors import ConfigError

#: Gradients that the trainer averages itself are summed across processes in few collectives:
#: those under `ALONE_BYTES` are packed into flat buckets of about `BUCKET_BYTES` (DDP's bucket
#: size), so that hundreds of small tensors (biases, norms, LoRA adapters) do not each pay a
#: collective's latency; larger ones are summed where they lie, as copying them into a bucket
#: and back costs more than the call it saves (measured with gloo: `benchmarks/distributed_steps.py
#: --averaging`).
BUCKET_BYTES = 25 * 2**20
ALONE_BYTES = 2**20


def training_accelerator(training: TrainingSpec) -> Accelerator:
    """The Accelerator of `training`'s mixed precision, on the processes a launcher started.

    Accelerators share one process state, so building the experiment and training it may each
    make one: the first decides how the processes are joined."""
    _refuse_sharded_launch()
    ddp = DistributedDataParallelKwargs(find_unused_parameters=ddp_averages_gradients(training))
    accelerator = Accelerator(
        mixed_precision=training.mixed_precision,
        cpu=_multi_process_cpu_launch(),
        kwargs_handlers=[ddp],
    )
    kind = accelerator.distributed_type.name
    if kind in _SHARDED:
        raise ConfigError(_sharded_message(_SHARDED[kind], f"distributed type {kind}"))
    return accelerator


@contextlib.contextmanager
def main_process_first(accelerator: Accelerator | None) -> Iterator[None]:
    """The block runs on the main process first, then on the others: those of `accelerator`,
    or without one, those already joined in `torch.distributed` (by any launcher); a process
    alone just runs it."""
    if accelerator is not None:
        with accelerator.main_process_first():
            yield
        return
    joined = torch.distributed.is_available() and torch.distributed.is_initialized()
    main = not joined or torch.distributed.get_rank() == 0
    if joined and not main:
        torch.distributed.barrier()
    yield
    if joined and main:
        torch.distributed.barrier()


#: Launches that would split the model's weights over the processes, by the Accelerate
#: distributed type (and `ACCELERATE_USE_<TYPE>` variable, as `accelerate launch` sets it).
_SHARDED = {"FSDP": "FSDP", "DEEPSPEED": "DeepSpeed", "MEGATRON_LM": "Megatron-LM"}


def _refuse_sharded_launch() -> None:
    """A ConfigError for an FSDP, DeepSpeed or Megatron-LM launch, which mtlm does not support:
    every process evaluates with the whole model, and the main process keeps the best weights
    and saves the model, which needs the whole model there. Accelerate ignores such a config
    on CPUs (it would train with DDP instead, unlike what was asked), so the launcher's
    variables are read, not only the Accelerator's type."""
    for kind, name in _SHARDED.items():
        variable = f"ACCELERATE_USE_{kind}"
        value = os.environ.get(variable, "false")
        if value.lower() in ("true", "1", "yes"):
            raise ConfigError(_sharded_message(name, f"{variable}={value}"))


def _sharded_message(name: str, source: str) -> str:
    return (
        f"accelerate launch ({source}): {name} is not supported, as mtlm evaluates with the "
        "whole model on every process and saves it from the main one; launch with --multi_gpu "
        "(DDP) or torchrun instead"
    )


def ddp_averages_gradients(training: TrainingSpec) -> bool:
    """Whether DDP averages the gradients of `training`'s steps, and must then look for the
    parameters each step leaves unused (`find_unused_parameters`).

    Every step it averages leaves some: a sampled step, the other tasks' heads (and with soft or
    LoRA sharing their parts of the backbone); any step, an encoder's pooler, whose weights the
    heads copy and never read, or a decoder's own language model head (untied from its
    embeddings) when the step's tasks have heads of their own. Looking for them walks the
    step's autograd graph after each forward (about 30 ms on one CPU thread for a 12-layer
    BERT-base, whatever the batch). The alternative for sampled steps, averaging after backward
    what the step reached (as `average_gradients` does), would save that walk and the other
    heads' zero gradients, but would no longer overlap the communication with backward, which
    for a large shared backbone on GPUs is likely worth more (not measured: no GPU here); so DDP
    keeps it. Where a balancer computes the gradients itself, every backward runs outside DDP's
    synchronisation: DDP averages nothing, and looks for nothing."""
    return not (training.step_mode == "joint" and training.balancer.reduces_gradients_itself)


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Replace the gradient of each of `parameters` by its mean across the processes, in few
    collectives (see `BUCKET_BYTES`), all started before the first is awaited. Does nothing in
    a single process.

    Every process must hold gradients for the same parameters, in the same order: the
    processes draw the same tasks, so their steps reach the same parameters."""
    if not (torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1):
        return
    gradients = [p.grad for p in parameters if p.grad is not None]
    large = [g for g in gradients if _size(g) >= ALONE_BYTES]
    small = [g for g in gradients if _size(g) < ALONE_BYTES]
    summing = [(torch.distributed.all_reduce(g, async_op=True), g, None) for g in large]
    for bucket in _buckets(small, BUCKET_BYTES):
        flat = torch.cat([gradient.reshape(-1) for gradient in bucket])
        summing.append((torch.distributed.all_reduce(flat, async_op=True), flat, bucket))
    processes = torch.distributed.get_world_size()
    for work, summed, bucket in summing:
        work.wait()
        summed /= processes
        if bucket is not None:
            means = summed.split([gradient.numel() for gradient in bucket])
            for gradient, mean in zip(bucket, means, strict=True):
                gradient.copy_(mean.view_as(gradient))


def _size(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _buckets(gradients: list[torch.Tensor], size: int) -> Iterator[list[torch.Tensor]]:
    """`gradients` in order, grouped into runs of one dtype and device of about `size` bytes."""
    bucket: list[torch.Tensor] = []
    filled = 0
    for gradient in gradients:
        if bucket and (
            filled >= size
            or gradient.dtype != bucket[0].dtype
            or gradient.device != bucket[0].device
        ):
            yield bucket
            bucket, filled = [], 0
        bucket.append(gradient)
        filled += _size(gradient)
    if bucket:
        yield bucket


def _multi_process_cpu_launch() -> bool:
    """Whether a launcher (torchrun) started several processes on a machine with no accelerator.

    Accelerate joins such processes over gloo only when told `cpu=True` (as `accelerate launch
    --cpu` does); otherwise each process would train alone, all writing to one output folder.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = getattr(torch, "accelerator", None)  # torch >= 2.6: any accelerator at all
    return not (backend.is_available() if backend is not None else torch.cuda.is_available())
