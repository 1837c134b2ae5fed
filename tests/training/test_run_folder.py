"""A training's output folder: fresh, resumed or cleared, and never a folder of the user's."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlm.errors import ConfigError
from mtlm.files import staging_path
from mtlm.training.run_folder import Start, clear_run, discard_killed_writes, plan_start

KEY = "training.output_dir"


def stopped_run(folder: Path, checkpoint: bool = False, finished: bool = False) -> Path:
    """A run folder as a run killed at some point leaves it."""
    (folder / "logs").mkdir(parents=True)
    (folder / "experiment_config.json").write_text("{}")
    (folder / "metrics.jsonl").write_text('{"step": 5}\n')
    if checkpoint:
        (folder / "checkpoints" / "step-5").mkdir(parents=True)
        (folder / "checkpoints" / "step-5" / "trainer_state.json").write_text("{}")
    if finished:
        (folder / "train_summary.json").write_text("{}")
    return folder


@pytest.mark.parametrize(
    ("overwrite", "resume", "expected"),
    [(False, False, Start.FRESH), (True, False, Start.FRESH), (False, True, Start.FRESH)],
)
def test_a_missing_or_empty_folder_starts_fresh(tmp_path, overwrite, resume, expected):
    assert plan_start(tmp_path / "new", KEY, overwrite=overwrite, resume=resume) is expected
    assert plan_start(tmp_path, KEY, overwrite=overwrite, resume=resume) is expected
    assert not (tmp_path / "new").exists()


def test_a_run_with_a_checkpoint_resumes_or_is_replaced_or_refused(tmp_path):
    run = stopped_run(tmp_path / "run", checkpoint=True)
    assert plan_start(run, KEY, overwrite=False, resume=True) is Start.RESUME
    assert plan_start(run, KEY, overwrite=True, resume=False) is Start.CLEAR
    with pytest.raises(ConfigError, match="pass --resume to continue it from its newest"):
        plan_start(run, KEY, overwrite=False, resume=False)


def test_a_run_without_a_checkpoint_restarts_with_resume(tmp_path):
    run = stopped_run(tmp_path / "run")
    assert plan_start(run, KEY, overwrite=False, resume=True) is Start.CLEAR
    with pytest.raises(ConfigError, match="stopped before its first checkpoint; pass --resume"):
        plan_start(run, KEY, overwrite=False, resume=False)


def test_a_finished_run_without_checkpoints_is_replaced_only_when_told(tmp_path):
    run = stopped_run(tmp_path / "run", finished=True)
    assert plan_start(run, KEY, overwrite=True, resume=False) is Start.CLEAR
    for resume in (False, True):
        with pytest.raises(ConfigError, match="finished run"):
            plan_start(run, KEY, overwrite=False, resume=resume)


@pytest.mark.parametrize("checkpoint", [False, True])
def test_a_run_whose_fine_tuning_did_not_finish_fine_tunes_with_resume(tmp_path, checkpoint):
    run = stopped_run(tmp_path / "run", checkpoint=checkpoint, finished=True)
    (run / "finetuned" / "tasks" / "sentiment").mkdir(parents=True)
    assert plan_start(run, KEY, overwrite=False, resume=True, finetune=True) is Start.FINETUNE
    assert plan_start(run, KEY, overwrite=True, resume=False, finetune=True) is Start.CLEAR
    with pytest.raises(ConfigError, match="pass --resume to fine-tune from its multi-task model"):
        plan_start(run, KEY, overwrite=False, resume=False, finetune=True)
    # Without a fine-tuning stage in the config, or once it has finished, the run is done.
    with pytest.raises(ConfigError, match="already holds a"):
        plan_start(run, KEY, overwrite=False, resume=False)
    (run / "finetuned" / "train_summary.json").write_text("{}")
    with pytest.raises(ConfigError, match="already holds a"):
        plan_start(run, KEY, overwrite=False, resume=False, finetune=True)


@pytest.mark.parametrize(("overwrite", "resume"), [(True, False), (False, True), (False, False)])
def test_a_folder_holding_anything_but_a_run_is_never_cleared(tmp_path, overwrite, resume):
    users = tmp_path / "users"
    users.mkdir()
    (users / "thesis.tex").write_text("mine")
    with pytest.raises(ConfigError, match=r"users holds files that are not an mtlm run \(thesis"):
        plan_start(users, KEY, overwrite=overwrite, resume=resume)
    run = stopped_run(tmp_path / "run")
    (run / ".gitignore").write_text("*")
    if overwrite or resume:
        with pytest.raises(ConfigError, match=r"files that no run writes \(\.gitignore\)"):
            plan_start(run, KEY, overwrite=overwrite, resume=resume)


def test_clearing_keeps_the_folder_and_removes_the_run(tmp_path):
    run = stopped_run(tmp_path / "run", checkpoint=True)
    clear_run(run)
    assert run.is_dir() and not list(run.iterdir())


def test_resume_discards_staging_left_anywhere_in_the_run_but_nothing_else(tmp_path):
    run = stopped_run(tmp_path / "run", checkpoint=True)
    (run / "plots").mkdir()
    (run / "finetuned").mkdir()
    leftovers = [
        staging_path(run / "model"),
        staging_path(run / "finetuned" / "model"),
        staging_path(run / "checkpoints" / "step-10"),
    ]
    for folder in leftovers:
        folder.mkdir()
        (folder / "heads.safetensors").write_bytes(b"half")
    staging_path(run / "plots" / "loss.png").write_bytes(b"half")
    (run / "logs" / ".events-of-tensorboard").write_text("kept")
    removed = discard_killed_writes(run)
    assert len(removed) == 4
    assert not [path for path in run.rglob("*staging*")]
    assert (run / "logs" / ".events-of-tensorboard").is_file()
    assert (run / "checkpoints" / "step-5" / "trainer_state.json").is_file()
