"""The processes that train together: the Accelerator a config's training runs on, and the
averaging of the gradients that DDP does not average."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs

from mtlm.config import TrainingSpec

#: Gradients that the trainer averages itself go in collectives of about this size (DDP's own
#: bucket size): few calls, whose latencies do not add up over hundreds of tensors, each packing
#: a bounded copy of the gradients.
BUCKET_BYTES = 25 * 2**20


def training_accelerator(training: TrainingSpec) -> Accelerator:
    """The Accelerator of `training`'s mixed precision, on the processes a launcher started.

    Accelerators share one process state, so building the experiment and training it may each
    make one: the first decides how the processes are joined."""
    ddp = DistributedDataParallelKwargs(find_unused_parameters=ddp_averages_gradients(training))
    return Accelerator(
        mixed_precision=training.mixed_precision,
        cpu=_multi_process_cpu_launch(),
        kwargs_handlers=[ddp],
    )


def ddp_averages_gradients(training: TrainingSpec) -> bool:
    """Whether DDP averages the gradients of `training`'s steps, and must then look for the
    parameters each step leaves unused (`find_unused_parameters`).

    Every step it averages leaves some: a sampled step, the other tasks' heads (and with soft or
    LoRA sharing their parts of the backbone); any step, an encoder's pooler, whose weights the
    heads copy and never read. Looking for them walks the step's autograd graph after each
    forward, and costs little beside what DDP gains by averaging while backward runs: averaging
    after backward instead (as below) would save the walk and the unused heads' zeros, but not
    overlap the communication with backward. Where a balancer computes the gradients itself,
    every backward runs outside DDP's synchronisation: DDP averages nothing, and looks for
    nothing."""
    return not (training.step_mode == "joint" and training.balancer.reduces_gradients_itself)


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Replace the gradient of each of `parameters` by its mean across the processes, in few
    collectives: packed into flat buckets of about `BUCKET_BYTES`, each summed by one
    all-reduce that runs while the next is packed. Does nothing in a single process.

    Every process must hold gradients for the same parameters, in the same order: the
    processes draw the same tasks, so their steps reach the same parameters."""
    if not (torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1):
        return
    processes = torch.distributed.get_world_size()
    gradients = [p.grad for p in parameters if p.grad is not None]
    pending = None
    for bucket in _buckets(gradients, BUCKET_BYTES):
        flat = torch.cat([gradient.reshape(-1) for gradient in bucket])
        summing = torch.distributed.all_reduce(flat, async_op=True)
        if pending is not None:
            _unpack_mean(*pending, processes)
        pending = (summing, flat, bucket)
    if pending is not None:
        _unpack_mean(*pending, processes)


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
        filled += gradient.numel() * gradient.element_size()
    if bucket:
        yield bucket


def _unpack_mean(summing, flat: torch.Tensor, bucket: list[torch.Tensor], processes: int) -> None:
    """Wait for a bucket's sum, and write its mean back into the gradients it packed."""
    summing.wait()
    flat /= processes
    for gradient, mean in zip(bucket, flat.split([g.numel() for g in bucket]), strict=True):
        gradient.copy_(mean.view_as(gradient))


def _multi_process_cpu_launch() -> bool:
    """Whether a launcher (torchrun) started several processes on a machine with no accelerator.

    Accelerate joins such processes over gloo only when told `cpu=True` (as `accelerate launch
    --cpu` does); otherwise each process would train alone, all writing to one output folder.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = getattr(torch, "accelerator", None)  # torch >= 2.6: any accelerator at all
    return not (backend.is_available() if backend is not None else torch.cuda.is_available())
