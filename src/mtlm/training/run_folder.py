"""A training's output folder: whether a run starts fresh in it, resumes from its newest
checkpoint, or first clears an earlier run out of it; and the clearing itself.

mtlm clears only a folder that holds an mtlm run and nothing else (see `mtlm.outputs`); a
run stopped before its first checkpoint can be started again with `--resume`.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path

from mtlm.errors import ConfigError
from mtlm.files import discard_staging, is_staging, remove_path
from mtlm.outputs import RUN_MARKER, check_run_folder, check_writable
from mtlm.training.checkpoint import discard_partial, list_checkpoints

#: The file a run writes once it has finished.
FINISHED_MARKER = "train_summary.json"


class Start(Enum):
    """How a training begins in its output folder."""

    FRESH = "fresh"  # the folder is missing or empty
    RESUME = "resume"  # from the newest checkpoint
    CLEAR = "clear"  # an earlier mtlm run is removed first


def plan_start(directory: Path, key: str, *, overwrite: bool, resume: bool) -> Start:
    """How a training with `overwrite` (training.overwrite_output_dir) and `resume` begins in
    `directory`; a ConfigError naming `key` when it cannot without losing the user's files,
    or a finished run that it was not told to replace. Changes nothing."""
    check_writable(directory, key)
    if resume and list_checkpoints(directory / "checkpoints"):
        return Start.RESUME
    if not (directory.is_dir() and any(directory.iterdir())):
        return Start.FRESH
    if resume:
        check_run_folder(directory, key, "restart")
        if (directory / FINISHED_MARKER).is_file():
            raise ConfigError(
                f"--resume: {directory} holds a finished run without a checkpoint; set "
                "training.overwrite_output_dir: true to train it again"
            )
        return Start.CLEAR
    if overwrite:
        check_run_folder(directory, key, "replace")
        return Start.CLEAR
    if not (directory / RUN_MARKER).is_file():
        check_run_folder(directory, key, "train into")
    replace = "set training.overwrite_output_dir: true to replace it"
    if list_checkpoints(directory / "checkpoints"):
        raise ConfigError(
            f"{key}: {directory} already holds a run; pass --resume to continue it from its "
            f"newest checkpoint, or {replace}"
        )
    if (directory / FINISHED_MARKER).is_file():
        raise ConfigError(f"{key}: {directory} already holds a finished run; {replace}")
    raise ConfigError(
        f"{key}: {directory} holds a run stopped before its first checkpoint; pass --resume "
        f"to train it again from the start, or {replace}"
    )


def clear_run(directory: Path) -> None:
    """Remove what an earlier run wrote to `directory` (checked by `plan_start`), keeping the
    folder itself (it may be a link, or have the user's permissions)."""
    for entry in directory.iterdir():
        remove_path(entry)


def discard_killed_writes(directory: Path) -> list[Path]:
    """Remove what writes killed mid-way left anywhere in a run folder: staging files and
    folders, and partial checkpoints; return what was removed."""
    removed = discard_partial(directory / "checkpoints")
    for root, folders, _files in os.walk(directory):
        removed += discard_staging(Path(root))
        folders[:] = [name for name in folders if not is_staging(Path(name))]
    return removed
