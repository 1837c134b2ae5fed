"""Averaging gradients across processes: few collectives, each gradient back in its place."""

from __future__ import annotations

import torch

from mtlm.training import processes
from mtlm.training.processes import average_gradients, ddp_averages_gradients


class Summed:
    """What an asynchronous all-reduce returns."""

    def wait(self) -> None:
        pass


def test_gradients_are_averaged_in_few_collectives(monkeypatch):
    """Two processes whose gradients differ by a known amount: process 0's are `g`, the other's
    `g + 2`, so the mean is `g + 1`."""
    calls = []

    def all_reduce(tensor, async_op):
        calls.append((tensor.dtype, tensor.numel()))
        tensor.mul_(2).add_(2)  # g + (g + 2)
        return Summed()

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    monkeypatch.setattr(processes, "BUCKET_BYTES", 4 * 100)  # 100 float32 values
    monkeypatch.setattr(processes, "ALONE_BYTES", 4 * 200)

    shapes = [(10, 6), (300,), (50,), (3,), (7, 2)]
    parameters = [torch.nn.Parameter(torch.zeros(shape)) for shape in shapes]
    parameters.append(torch.nn.Parameter(torch.zeros(4, dtype=torch.bfloat16)))
    parameters.append(torch.nn.Parameter(torch.zeros(5)))  # no gradient: left alone
    for index, parameter in enumerate(parameters[:-1]):
        parameter.grad = torch.arange(parameter.numel(), dtype=parameter.dtype).view_as(parameter)
        parameter.grad += index
    large = parameters[1].grad
    expected = [parameter.grad + 1 for parameter in parameters[:-1]]

    average_gradients(parameters)

    # The 300 values are summed where they lie; of the others, 60 + 50 fill the first bucket
    # past 100, 3 + 14 make the second, and the bf16 gradient goes alone.
    assert calls == [
        (torch.float32, 300),
        (torch.float32, 110),
        (torch.float32, 17),
        (torch.bfloat16, 4),
    ]
    assert parameters[1].grad is large
    for parameter, mean in zip(parameters, expected, strict=False):
        assert torch.equal(parameter.grad, mean)
    assert parameters[-1].grad is None


def test_a_single_process_averages_nothing(monkeypatch):
    monkeypatch.setattr(torch.distributed, "all_reduce", None)  # would fail if called
    parameter = torch.nn.Parameter(torch.ones(3))
    parameter.grad = torch.full((3,), 5.0)
    average_gradients([parameter])
    assert torch.equal(parameter.grad, torch.full((3,), 5.0))


def test_ddp_looks_for_unused_parameters_only_where_it_averages_the_gradients(make_config):
    assert ddp_averages_gradients(make_config().training)  # sampled
    uncertainty = make_config(step_mode="joint", balancer={"kind": "uncertainty"})
    assert ddp_averages_gradients(uncertainty.training)
    on_features = make_config(
        step_mode="joint", balancer={"kind": "mgda", "gradients": "representation"}
    )
    assert ddp_averages_gradients(on_features.training)
    pcgrad = make_config(step_mode="joint", balancer={"kind": "pcgrad"})
    assert not ddp_averages_gradients(pcgrad.training)
