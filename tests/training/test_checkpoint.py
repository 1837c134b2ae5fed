"""Checkpoints: the pickled optimizer, scheduler and balancer states load without running code."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from mtlm.training.checkpoint import load_checkpoint, save_checkpoint


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
