"""Two training processes on CPU (torchrun, gloo) keep one model: identical weights on both."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

#: Each rank trains, then saves its own copy of the weights as rank{N}.safetensors.
_WORKER = """
import json, sys
from pathlib import Path
from safetensors.torch import save_model
from mtlm import Trainer
from mtlm.config import config_from_dict

config = config_from_dict(json.loads(Path(sys.argv[1]).read_text()))
trainer = Trainer(config)
trainer.train()
accelerator = trainer.accelerator
model = accelerator.unwrap_model(trainer.model)
rank = accelerator.process_index
# save_model keeps one name for tensors that tied modules share (soft sharing's hard layers).
save_model(model, str(Path(config.training.output_dir) / f"rank{rank}.safetensors"))
print(f"rank {rank} of {accelerator.num_processes}: {accelerator.distributed_type}", flush=True)
"""


def run_two_processes(raw_config: dict, tmp_path) -> subprocess.CompletedProcess:
    """Train `raw_config` with torchrun on 2 CPU processes; fail the test if it fails."""
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(raw_config))
    worker = tmp_path / "worker.py"
    worker.write_text(_WORKER)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", str(worker), str(config_file)]
    process = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert process.returncode == 0, process.stderr[-4000:]
    return process


def test_two_processes_train_one_model(make_config, tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    config = make_config(
        max_steps=12,
        eval_steps=5,
        save_steps=5,
        # The best weights are read from disk by every rank; the last ones test the all-reduce.
        load_best_model_at_end=False,
        output_dir=str(run),
    )
    process = run_two_processes(json.loads(config.to_json()), tmp_path)
    assert sorted(line for line in process.stdout.splitlines() if line.startswith("rank ")) == [
        "rank 0 of 2: DistributedType.MULTI_CPU",
        "rank 1 of 2: DistributedType.MULTI_CPU",
    ]

    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["steps"] == 12
    assert json.loads((run / "eval_results.json").read_text())["split"] == "test"
    assert sorted(path.name for path in (run / "checkpoints").iterdir()) == [
        "best",
        "step-10",
        "step-5",
    ]

    ranks = [load_file(run / f"rank{index}.safetensors") for index in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    assert all(torch.equal(ranks[0][key], ranks[1][key]) for key in ranks[0])
    # The model the main process saved is that same model, and it did train.
    saved = {f"backbone.{k}": v for k, v in load_file(run / "model/model.safetensors").items()}
    saved |= {f"heads.{k}": v for k, v in load_file(run / "model/heads.safetensors").items()}
    assert saved.keys() == ranks[0].keys()
    assert all(torch.equal(saved[key], ranks[0][key]) for key in saved)
    initial = load_file(tiny_model_dir / "model.safetensors")
    unchanged = [k for k in initial if torch.equal(initial[k], saved[f"backbone.{k}"])]
    assert all(key.startswith("pooler.") for key in unchanged)  # only the unused pooler


@pytest.mark.parametrize(
    ("training", "sharing"),
    [
        ({"step_mode": "joint", "balancer": {"kind": "pcgrad"}}, {"kind": "hard"}),
        ({"step_mode": "joint", "balancer": {"kind": "uncertainty"}}, {"kind": "soft"}),
        ({}, {"kind": "soft", "strength": 0.1, "hard_layers": [0, 0]}),
        ({}, {"kind": "lora", "r": 4}),
    ],
    ids=["pcgrad-hard", "uncertainty-soft", "sampled-soft", "sampled-lora"],
)
def test_two_processes_agree_in_every_mode(make_config, tmp_path, training, sharing):
    """Gradients a balancer computes itself are averaged by hand; the soft penalty and LoRA's
    adapter switching must not confuse DDP."""
    run = tmp_path / "run"
    config = make_config(max_steps=6, eval_steps=None, output_dir=str(run), **training)
    raw = json.loads(config.to_json())
    raw["sharing"] = sharing
    run_two_processes(raw, tmp_path)
    ranks = [load_file(run / f"rank{index}.safetensors") for index in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    assert all(torch.equal(ranks[0][key], ranks[1][key]) for key in ranks[0])
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["model"]["sharing"] == sharing["kind"]
