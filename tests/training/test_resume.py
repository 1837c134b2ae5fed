"""Resuming a run killed with SIGKILL ends with exactly the weights of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file
from test_cli import one_line_error

from mtlm.cli import main

#: Timing fields of a log row; every other field must match between the two runs.
_TIMING = ("examples_per_second", "tokens_per_second")


def write_config(config, path: Path) -> Path:
    """The config as the YAML file a user would write."""
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")
    return path


#: Runs `mtlm train CONFIG` and SIGKILLs itself while the third checkpoint is half written:
#: its model, optimizer and scheduler files are in the staging folder, its RNG file is not.
_KILLED_TRAINING = """
import os, signal, sys
import mtlm.training.checkpoint as checkpoint
from mtlm.cli import main

saves = []
real_save_file = checkpoint.save_file

def save_file_or_die(*args, **kwargs):
    saves.append(args)
    if len(saves) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save_file(*args, **kwargs)

checkpoint.save_file = save_file_or_die
sys.exit(main(["train", sys.argv[1]]))
"""


def train_until_killed(config_file: Path) -> subprocess.CompletedProcess:
    """`mtlm train` in a new process that is killed with SIGKILL in its third checkpoint."""
    return subprocess.run(
        [sys.executable, "-c", _KILLED_TRAINING, str(config_file)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def weights(run: Path, file: str) -> dict[str, torch.Tensor]:
    return load_file(run / file)


def assert_same_tensors(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> None:
    assert left.keys() == right.keys()
    different = [key for key in left if not torch.equal(left[key], right[key])]
    assert not different, f"tensors differ: {different[:5]}"


def log_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{key: value for key, value in row.items() if key not in _TIMING} for row in rows]


def killed_and_reference(make_config, tmp_path: Path, settings: dict) -> tuple[Path, Path]:
    """Config files of two runs with the same `settings`, into `tmp_path/killed` (to be killed
    and resumed) and `tmp_path/reference` (to run uninterrupted)."""
    return tuple(
        write_config(
            make_config(output_dir=str(tmp_path / name), **settings), tmp_path / f"{name}.yaml"
        )
        for name in ("killed", "reference")
    )


def test_resume_after_sigkill_matches_an_uninterrupted_run(make_config, tmp_path):
    # The killed child runs with OMP_NUM_THREADS=1, like this process (conftest's one_torch_thread):
    # the thread count changes float sums, and a resume is exact only with the same count.
    settings = {
        "max_steps": 40,
        "save_steps": 5,
        "eval_steps": 10,
        "save_total_limit": 2,
        # Keep the last weights, so that the comparison covers every step after the resume.
        "load_best_model_at_end": False,
    }
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    killed_config, reference_config = killed_and_reference(make_config, tmp_path, settings)

    process = train_until_killed(killed_config)
    assert process.returncode == -signal.SIGKILL, process.stderr
    assert not (killed / "model").exists()
    staging, *complete = sorted(path.name for path in (killed / "checkpoints").iterdir())
    assert staging.startswith(".step-15.staging-") and complete == ["best", "step-10", "step-5"]

    assert main(["train", str(killed_config), "--resume"]) == 0
    assert main(["train", str(reference_config)]) == 0

    for file in ("model/model.safetensors", "model/heads.safetensors"):
        assert_same_tensors(weights(killed, file), weights(reference, file))
    assert_same_tensors(
        weights(killed, "checkpoints/best/model.safetensors"),
        weights(reference, "checkpoints/best/model.safetensors"),
    )
    assert sorted(path.name for path in (killed / "checkpoints").iterdir()) == [
        "best",
        "step-35",
        "step-40",
    ]
    assert log_rows(killed) == log_rows(reference)
    summaries = [
        json.loads((run / "train_summary.json").read_text()) for run in (killed, reference)
    ]
    assert summaries[0]["best_step"] == summaries[1]["best_step"]
    assert summaries[0]["steps_this_session"] < summaries[1]["steps_this_session"] == 40
    assert not [path for path in killed.rglob(".*")], "staging files were left behind"


#: Runs `mtlm train CONFIG` and SIGKILLs itself at its first validation, before any checkpoint.
_KILLED_AT_FIRST_VALIDATION = """
import os, signal, sys
from mtlm.cli import main
from mtlm.training.trainer import Trainer

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

Trainer._validate = die
sys.exit(main(["train", sys.argv[1]]))
"""

#: Runs `mtlm train CONFIG` and SIGKILLs itself while the final model is half saved.
_KILLED_IN_FINAL_SAVE = """
import os, signal, sys
import mtlm.modeling.multitask_model as multitask_model
from mtlm.cli import main

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

multitask_model.save_file = die
sys.exit(main(["train", sys.argv[1]]))
"""


def run_until_killed(script: str, config_file: Path) -> subprocess.CompletedProcess:
    """`mtlm train` in a new process that `script` kills with SIGKILL."""
    process = subprocess.run(
        [sys.executable, "-c", script, str(config_file)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert process.returncode == -signal.SIGKILL, process.stderr
    return process


def test_a_run_killed_before_its_first_checkpoint_says_how_to_restart_and_resume_restarts_it(
    make_config, tmp_path, capsys
):
    settings = {"max_steps": 20, "save_steps": 10, "eval_steps": 5}
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    killed_config = write_config(
        make_config(output_dir=str(killed), **settings), tmp_path / "killed.yaml"
    )
    run_until_killed(_KILLED_AT_FIRST_VALIDATION, killed_config)
    left = sorted(path.name for path in killed.iterdir())
    assert "experiment_config.json" in left and "checkpoints" not in left

    assert main(["train", str(killed_config)]) == 2
    error = one_line_error(capsys.readouterr().err)
    assert error == (
        f"mtlm: error: training.output_dir: {killed} holds a run stopped before its first "
        "checkpoint; pass --resume to train it again from the start, or set "
        "training.overwrite_output_dir: true to replace it\n"
    )
    assert sorted(path.name for path in killed.iterdir()) == left

    assert main(["train", str(killed_config), "--resume"]) == 0
    printed = capsys.readouterr().out
    assert f"no checkpoint in {killed / 'checkpoints'}: training from the start" in printed
    reference_config = write_config(
        make_config(output_dir=str(reference), **settings), tmp_path / "reference.yaml"
    )
    assert main(["train", str(reference_config)]) == 0
    for file in ("model/model.safetensors", "model/heads.safetensors"):
        assert_same_tensors(weights(killed, file), weights(reference, file))
    assert log_rows(killed) == log_rows(reference)


def test_resume_in_a_new_folder_trains_from_the_start(make_config, tmp_path, capsys):
    config_file = write_config(make_config(max_steps=4, eval_steps=None), tmp_path / "config.yaml")
    assert main(["train", str(config_file), "--resume"]) == 0
    assert "training from the start" in capsys.readouterr().out
    assert (tmp_path / "run" / "model" / "heads.safetensors").is_file()


def test_resume_of_a_finished_run_without_checkpoints_exits_2_and_keeps_it(
    make_config, tmp_path, capsys
):
    config_file = write_config(make_config(max_steps=4, eval_steps=None), tmp_path / "config.yaml")
    assert main(["train", str(config_file)]) == 0
    run = tmp_path / "run"
    before = {path: path.stat().st_mtime_ns for path in run.rglob("*")}
    capsys.readouterr()
    assert main(["train", str(config_file), "--resume"]) == 2
    error = one_line_error(capsys.readouterr().err)
    assert error.startswith(f"mtlm: error: --resume: {run} holds a finished run without a ")
    assert {path: path.stat().st_mtime_ns for path in run.rglob("*")} == before


def test_resume_removes_the_model_staging_folder_of_a_killed_final_save(make_config, tmp_path):
    run = tmp_path / "run"
    config_file = write_config(
        make_config(max_steps=10, save_steps=5, eval_steps=None), tmp_path / "config.yaml"
    )
    run_until_killed(_KILLED_IN_FINAL_SAVE, config_file)
    staging = [path.name for path in run.iterdir() if path.name.startswith(".")]
    assert len(staging) == 1 and staging[0].startswith(".model.staging-")

    assert main(["train", str(config_file), "--resume"]) == 0
    assert not [path for path in run.rglob(".*")], "staging files were left behind"
    assert (run / "model" / "heads.safetensors").is_file()


#: Runs `mtlm train CONFIG` and SIGKILLs itself as the second task's fine-tuning begins.
_KILLED_IN_FINE_TUNING = """
import os, signal, sys
import mtlm.training.finetune as finetune
from mtlm.cli import main

begun = []
real_task_config = finetune.task_config

def task_config_or_die(*args, **kwargs):
    begun.append(args)
    if len(begun) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_task_config(*args, **kwargs)

finetune.task_config = task_config_or_die
sys.exit(main(["train", sys.argv[1]]))
"""


def multi_task_stage(run: Path) -> dict[str, bytes | None]:
    """What the run holds outside its fine-tuning folder."""
    from conftest import snapshot

    return {path: data for path, data in snapshot(run).items() if not path.startswith("finetuned")}


def test_a_run_killed_in_its_fine_tuning_resumes_to_the_model_of_an_uninterrupted_run(
    make_config, tmp_path, capsys
):
    finetune = {"num_epochs": 1, "early_stopping_patience": 1, "r": 4, "alpha": 8}
    settings = {"max_steps": 16, "eval_steps": 8, "finetune": finetune}
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    killed_config = write_config(
        make_config(output_dir=str(killed), **settings), tmp_path / "killed.yaml"
    )
    run_until_killed(_KILLED_IN_FINE_TUNING, killed_config)
    assert (killed / "train_summary.json").is_file()
    # No step checkpoint to resume from: only the best weights are kept.
    assert [path.name for path in (killed / "checkpoints").iterdir()] == ["best"]
    assert (killed / "finetuned" / "tasks" / "sentiment" / "train_summary.json").is_file()
    assert not (killed / "finetuned" / "model").exists()
    trained = multi_task_stage(killed)

    assert main(["train", str(killed_config)]) == 2
    error = one_line_error(capsys.readouterr().err)
    assert error.startswith(f"mtlm: error: training.output_dir: {killed} holds a run whose ")
    assert "pass --resume to fine-tune from its multi-task model" in error

    assert main(["train", str(killed_config), "--resume"]) == 0
    printed = capsys.readouterr().out
    assert f"resuming {killed} after its multi-task stage" in printed
    assert "training 16 steps" not in printed
    assert multi_task_stage(killed) == trained, "the multi-task stage was trained again"

    reference_config = write_config(
        make_config(output_dir=str(reference), **settings), tmp_path / "reference.yaml"
    )
    assert main(["train", str(reference_config)]) == 0
    tuned = [run / "finetuned" for run in (killed, reference)]
    files = sorted(str(path.relative_to(tuned[1])) for path in tuned[1].rglob("*.safetensors"))
    assert "model/heads.safetensors" in files
    assert files == sorted(
        str(path.relative_to(tuned[0])) for path in tuned[0].rglob("*.safetensors")
    )
    for file in files:
        assert_same_tensors(weights(tuned[0], file), weights(tuned[1], file))
    results = [json.loads((folder / "eval_results.json").read_text()) for folder in tuned]
    assert results[0] == results[1]
    for task in ("sentiment", "score", "tagging"):
        assert log_rows(tuned[0] / "tasks" / task) == log_rows(tuned[1] / "tasks" / task)
