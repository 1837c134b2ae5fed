"""Checkpoints: the pickled optimizer, scheduler and balancer states load without running code;
the gradient scaler and every process's generators come back."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mtlm.errors import ConfigError
from mtlm.training.balancers import build_balancer
from mtlm.training.balancers.dwa import DWASpec
from mtlm.training.checkpoint import (
    RandomState,
    load_checkpoint,
    random_state,
    restore_random_state,
    save_checkpoint,
)


class RunsCodeWhenUnpickled:
    """What a crafted checkpoint would hold: unpickling it creates a file."""

    def __init__(self, witness: Path) -> None:
        self.witness = witness

    def __reduce__(self):
        return (Path.touch, (self.witness,))


def small_checkpoint(folder: Path) -> tuple[Path, nn.Module, torch.optim.Optimizer, object]:
    model = nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    saved = save_checkpoint(folder, 1, model, optimizer, scheduler, {}, keep=1)
    return saved, model, optimizer, scheduler


@pytest.mark.parametrize("file", ["optimizer.pt", "scheduler.pt"])
def test_a_checkpoint_file_that_would_run_code_is_refused_unrun(tmp_path, file):
    saved, model, optimizer, scheduler = small_checkpoint(tmp_path / "checkpoints")
    assert load_checkpoint(saved, model, optimizer, scheduler)["step"] == 1
    witness = tmp_path / "code-ran"
    torch.save({"state": RunsCodeWhenUnpickled(witness)}, saved / file)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_checkpoint(saved, model, optimizer, scheduler)
    assert not witness.exists()


def test_a_balancer_state_of_another_version_is_a_one_line_error(tmp_path):
    model = nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    old_dwa = {"history": torch.ones(2, 3)}
    saved = save_checkpoint(
        tmp_path, 1, model, optimizer, scheduler, {}, keep=1, balancer_states=[old_dwa]
    )
    dwa = build_balancer(DWASpec(kind="dwa"), tasks=3)
    with pytest.raises(ConfigError, match=r"balancer\.pt: not the state .* dwa balancer keeps"):
        load_checkpoint(saved, model, optimizer, scheduler, dwa)


def test_the_fp16_gradient_scaler_is_saved_and_restored(tmp_path):
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=3)
    # An overflow halves the scale; a good step then counts towards growing it again.
    for factor in (float("inf"), 1.0):
        scaler.scale(factor * model(torch.ones(1, 3)).sum()).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
    saved = save_checkpoint(tmp_path, 2, model, optimizer, scheduler, {}, keep=1, scaler=scaler)

    fresh = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=3)
    load_checkpoint(saved, model, optimizer, scheduler, scaler=fresh)
    assert fresh.state_dict() == scaler.state_dict()
    assert fresh.state_dict()["scale"] == 512.0 and fresh.state_dict()["_growth_tracker"] == 1


def generators_after(draws: int) -> RandomState:
    """The generators of a process that drew `draws` numbers from each after seeding them."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    torch.rand(draws), np.random.rand(draws), [random.random() for _ in range(draws)]
    return random_state()


def next_draws() -> tuple[float, float, float]:
    return torch.rand(1).item(), float(np.random.rand()), random.random()


def test_each_process_restores_its_own_generators_whatever_the_process_count(tmp_path):
    processes = [generators_after(3), generators_after(5)]
    expected = []
    for state in processes:
        restore_random_state(state)
        expected.append(next_draws())
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    saved = save_checkpoint(
        tmp_path, 1, model, optimizer, scheduler, {}, keep=1, random_states=processes
    )

    # Process r of a resume on 3 processes takes what process r mod 2 saved.
    for process, source in ((0, 0), (1, 1), (2, 0)):
        generators_after(11)
        load_checkpoint(saved, model, optimizer, scheduler, process=process)
        assert next_draws() == expected[source]
