"""Two training processes on CPU (torchrun, gloo) keep one model: identical weights on both;
killed and resumed, they end as if never stopped."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import torch
from conftest import torchrun
from safetensors.torch import load_file
from test_resume import (
    assert_same_tensors,
    killed_and_reference,
    log_rows,
    weights,
    write_config,
)

from mtlm import MultiTaskModel, Trainer
from mtlm.cli import main
from mtlm.evaluation.evaluate import evaluate

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
    process = torchrun(_WORKER, [str(config_file)], tmp_path)
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
    # Searched, not split into lines: the two ranks share one stdout, and one rank's line can
    # land inside the other's before its newline.
    assert sorted(re.findall(r"rank \d of \d: DistributedType\.[A-Z_]+", process.stdout)) == [
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
    """Gradients a balancer computes itself are averaged by hand, as are those of a balancer's
    learned weights; the soft penalty and LoRA's adapter switching must not confuse DDP."""
    run = tmp_path / "run"
    config = make_config(
        max_steps=6, eval_steps=None, save_steps=6, output_dir=str(run), **training
    )
    raw = json.loads(config.to_json())
    raw["sharing"] = sharing
    run_two_processes(raw, tmp_path)
    ranks = [load_file(run / f"rank{index}.safetensors") for index in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    assert all(torch.equal(ranks[0][key], ranks[1][key]) for key in ranks[0])
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["model"]["sharing"] == sharing["kind"]
    if "balancer" in training:
        # The checkpoint holds each process's balancer: uncertainty's learned weights agree.
        states = torch.load(run / "checkpoints" / "step-6" / "balancer.pt", weights_only=True)
        assert len(states) == 2 and states[0].keys() == states[1].keys()
        for name, tensor in states[0].get("module", {}).items():
            assert torch.equal(tensor, states[1]["module"][name])


def test_two_processes_fine_tune_every_task_after_the_multi_task_stage(make_config, tmp_path):
    """Each task's fine-tuning is a distributed run like the first: every process takes part,
    so none waits alone for the others, and the main process writes the fine-tuned model."""
    run = tmp_path / "run"
    config = make_config(
        max_steps=6,
        eval_steps=None,
        save_steps=6,
        output_dir=str(run),
        finetune={"num_epochs": 1, "r": 4, "alpha": 8},
    )
    run_two_processes(json.loads(config.to_json()), tmp_path)
    folder = run / "finetuned"
    summary = json.loads((folder / "train_summary.json").read_text())
    tasks = set(json.loads((run / "eval_results.json").read_text())["tasks"])
    assert set(summary["tasks"]) == tasks and all(t["steps"] > 0 for t in summary["tasks"].values())
    for task in tasks:
        task_summary = json.loads((folder / "tasks" / task / "train_summary.json").read_text())
        assert task_summary["num_processes"] == 2
    # The scores the processes gathered are those of the saved model scored by one process.
    tuned = MultiTaskModel.from_pretrained(folder / "model")
    data = Trainer(config, tmp_path / "scoring", model=tuned).data
    alone = evaluate(tuned, data, "test", config.training.eval_batch_size)
    gathered = json.loads((folder / "eval_results.json").read_text())
    for task in tasks:
        for metric, value in alone["tasks"][task].items():
            expected = pytest.approx(value) if isinstance(value, float) else value
            assert gathered["tasks"][task][metric] == expected, (task, metric)


#: `mtlm train ARGS...` on each process; with `kill` first, the main process SIGKILLs itself
#: while its third checkpoint is half written (the RNG file, after the model and optimizer).
_CLI = """
import os, signal, sys
import mtlm.training.checkpoint as checkpoint
from mtlm.cli import main

arguments = sys.argv[1:]
if arguments[0] == "kill":
    arguments = arguments[1:]
    saves = []
    real_save_file = checkpoint.save_file

    def save_file_or_die(*args, **kwargs):
        saves.append(args)
        if len(saves) == 3 and os.environ["RANK"] == "0":
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save_file(*args, **kwargs)

    checkpoint.save_file = save_file_or_die
sys.exit(main(["train", *arguments]))
"""


def test_two_processes_resumed_after_sigkill_end_as_an_uninterrupted_run(
    make_config, tmp_path, capsys
):
    """Each process's random generators (its dropout masks) are saved and restored: a resume
    that gave both the main process's would differ. The same checkpoint also resumes on one
    process."""
    settings = {
        "max_steps": 16,
        "save_steps": 4,
        "eval_steps": 4,
        "logging_steps": 2,
        "save_total_limit": 2,
        # Keep the last weights, so that the comparison covers every step after the resume.
        "load_best_model_at_end": False,
    }
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    killed_config, reference_config = killed_and_reference(make_config, tmp_path, settings)

    process = torchrun(_CLI, ["kill", str(killed_config)], tmp_path)
    assert process.returncode != 0 and "Signal 9 (SIGKILL)" in process.stderr, process.stderr
    assert not (killed / "model").exists()
    staging, *complete = sorted(path.name for path in (killed / "checkpoints").iterdir())
    assert staging.startswith(".step-12.staging-") and complete == ["best", "step-4", "step-8"]
    shutil.copytree(killed, tmp_path / "alone")

    resumed = torchrun(_CLI, [str(killed_config), "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert f"resumed from {killed / 'checkpoints' / 'step-8'} at step 8" in resumed.stdout
    uninterrupted = torchrun(_CLI, [str(reference_config)], tmp_path)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-4000:]

    for file in ("model/model.safetensors", "model/heads.safetensors"):
        assert_same_tensors(weights(killed, file), weights(reference, file))
    assert log_rows(killed) == log_rows(reference)
    summaries = [
        json.loads((run / "train_summary.json").read_text()) for run in (killed, reference)
    ]
    assert summaries[0]["num_processes"] == summaries[1]["num_processes"] == 2
    assert summaries[0]["steps_this_session"] == 8 and summaries[1]["steps_this_session"] == 16
    assert not [path for path in killed.rglob(".*")], "staging files were left behind"
    # The processes' generators had drifted apart: restoring one process's to both would not do.
    generators = load_file(reference / "checkpoints" / "step-16" / "rng.safetensors")
    assert not torch.equal(generators["0.torch"], generators["1.torch"])

    # On one process: it continues from the same checkpoint, and says how.
    alone = tmp_path / "alone"
    alone_config = write_config(
        make_config(output_dir=str(alone), **settings), tmp_path / "alone.yaml"
    )
    assert main(["train", str(alone_config), "--resume"]) == 0
    printed = capsys.readouterr().out
    note = f"note: {alone / 'checkpoints' / 'step-8'} was written by 2 processes and resumes on 1"
    assert note in printed
    summary = json.loads((alone / "train_summary.json").read_text())
    assert summary["num_processes"] == 1 and summary["steps"] == 16
    assert summary["steps_this_session"] == 8
