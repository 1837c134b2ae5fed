"""A training's output folder: whether a run starts fresh in it, resumes from its newest
checkpoint, or first clears an earlier run out of it; and what a run writes there
(`RunFolder`): its checkpoints, its best weights, its model, results, summary and report.

mtlm clears only a folder that holds an mtlm run and nothing else (see `mtlm.outputs`); a
run stopped before its first checkpoint can be started again with `--resume`, and a run whose
multi-task stage finished but not its fine-tuning (`training.finetune`) fine-tunes from the
multi-task model it saved.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object, send_to_device
from torch import nn

from mtlm.config import ExperimentConfig
from mtlm.errors import ConfigError
from mtlm.evaluation.evaluate import EvalResults
from mtlm.evaluation.run_report import write_report
from mtlm.files import (
    discard_staging,
    is_staging,
    read_json,
    remove_path,
    write_json,
    write_text,
)
from mtlm.modeling.model_card import multitask_card, write_card
from mtlm.modeling.multitask_model import MultiTaskModel
from mtlm.outputs import RUN_MARKER, check_run_folder, check_writable
from mtlm.training.balancers import Balancer
from mtlm.training.checkpoint import (
    discard_partial,
    list_checkpoints,
    load_checkpoint,
    load_weights,
    random_state,
    save_checkpoint,
    save_weights,
)
from mtlm.training.run_log import RunLog
from mtlm.training.samplers import Sampler
from mtlm.training.streams import TaskBatchStream

#: The file a run writes once it has finished.
FINISHED_MARKER = "train_summary.json"
#: The folder of a run that holds the fine-tuned model and its results.
FINETUNED = "finetuned"


class Start(Enum):
    """How a training begins in its output folder."""

    FRESH = "fresh"  # the folder is missing or empty
    RESUME = "resume"  # from the newest checkpoint
    CLEAR = "clear"  # an earlier mtlm run is removed first
    FINETUNE = "finetune"  # the multi-task stage has finished: only fine-tuning is left


def plan_start(
    directory: Path, key: str, *, overwrite: bool, resume: bool, finetune: bool = False
) -> Start:
    """How a training with `overwrite` (training.overwrite_output_dir), `resume` and (with
    `finetune`) a fine-tuning stage begins in `directory`; a ConfigError naming `key` when it
    cannot without losing the user's files, or a finished run that it was not told to replace.
    Changes nothing."""
    check_writable(directory, key)
    if resume and fine_tuning_left(directory, finetune):
        return Start.FINETUNE
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
    if fine_tuning_left(directory, finetune):
        raise ConfigError(
            f"{key}: {directory} holds a run whose multi-task stage finished and whose "
            f"fine-tuning did not; pass --resume to fine-tune from its multi-task model, or "
            f"{replace}"
        )
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


def fine_tuning_left(directory: Path, finetune: bool) -> bool:
    """Whether the run in `directory` finished its multi-task stage and has a fine-tuning stage
    (`finetune`) that did not finish."""
    return (
        finetune
        and (directory / FINISHED_MARKER).is_file()
        and not (directory / FINETUNED / FINISHED_MARKER).is_file()
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


class TrainingParts(NamedTuple):
    """What a checkpoint holds besides the trainer's counters: the model (unwrapped from any
    distributed wrapper), optimizer, schedule, sampler, each task's batch stream, the
    balancer (None in sampled mode) and the fp16 gradient scaler (None without one)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    sampler: Sampler
    streams: dict[str, TaskBatchStream]
    balancer: Balancer | None
    scaler: Any = None


class RunFolder:
    """The output folder of one training, as the Trainer's processes write it: the main
    process writes, and every process waits for it where the others must see its files.

    `key` (the config key or flag that named the folder) is what its errors name; `say` prints
    a line once."""

    def __init__(
        self, directory: Path, key: str, accelerator: Accelerator, say: Callable[[str], None]
    ) -> None:
        self.directory = directory
        self.key = key
        self.checkpoints = directory / "checkpoints"
        self.best = self.checkpoints / "best"
        self._accelerator = accelerator
        self._is_main = accelerator.is_main_process
        self._say = say

    def check_writable(self) -> None:
        """A ConfigError naming the key unless the folder can be written."""
        check_writable(self.directory, self.key)

    def prepare(self, config: ExperimentConfig, resume: bool) -> Start:
        """Make the folder ready for a run of `config` (see `plan_start`), clearing an earlier
        run or, where only fine-tuning is left, its unfinished fine-tuning; return how it
        starts."""
        training = config.training
        start = plan_start(
            self.directory,
            self.key,
            overwrite=training.overwrite_output_dir,
            resume=resume,
            finetune=training.finetune is not None,
        )
        if resume and start in (Start.FRESH, Start.CLEAR):
            self._say(f"no checkpoint in {self.checkpoints}: training from the start")
        # Every process decides on the folder as it was, before the main process clears it.
        self._accelerator.wait_for_everyone()
        if self._is_main and start is Start.CLEAR:
            clear_run(self.directory)
        if self._is_main and start is Start.FINETUNE:
            discard_killed_writes(self.directory)
            remove_path(self.directory / FINETUNED)
        self._accelerator.wait_for_everyone()
        if self._is_main:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_text(self.directory / RUN_MARKER, config.to_json())
        if start is Start.FINETUNE:
            self._say(
                f"resuming {self.directory} after its multi-task stage: fine-tuning each task "
                "from its multi-task model"
            )
        return start

    def log(self) -> RunLog:
        """The run's metrics.jsonl and TensorBoard logs (written by the main process)."""
        return RunLog(self.directory, self._is_main)

    def resume(self, parts: TrainingParts, run_log: RunLog) -> tuple[int, dict[str, Any]]:
        """Restore `parts` from the newest checkpoint and drop what was written after it;
        return its step and the trainer's counters."""
        folder = list_checkpoints(self.checkpoints)[-1]
        state = load_checkpoint(
            folder,
            parts.model,
            parts.optimizer,
            parts.scheduler,
            parts.balancer,
            scaler=parts.scaler,
            process=self._accelerator.process_index,
            device=self._accelerator.device,
        )
        parts.sampler.load_state_dict(state.pop("sampler"))
        for name, stream_state in state.pop("streams").items():
            parts.streams[name].load_state_dict(stream_state)
        step = state.pop("step")
        processes, now = state.pop("processes"), self._accelerator.num_processes
        if processes != now:
            self._say(
                f"note: {folder} was written by {processes} processes and resumes on {now}: "
                "the model, optimizer, schedule, sampler and balancer continue as saved, each "
                f"task's data where its epoch was, and process r takes the random generators of "
                f"process r mod {processes}; the run differs from an uninterrupted one"
            )
        best_info = self.best / "info.json"
        if best_info.is_file():
            # A killed run may have kept a newer best after this checkpoint; its weights are on
            # disk, so the record follows them rather than pointing at overwritten weights.
            best = json.loads(best_info.read_text())
            if best["step"] > step:
                state["best_score"], state["best_step"] = best["aggregate"], best["step"]
        if self._is_main:
            discard_killed_writes(self.directory)
            run_log.truncate(step)
        self._say(f"resumed from {folder} at step {step}")
        return step, state

    def checkpoint(self, step: int, parts: TrainingParts, state: dict[str, Any], keep: int) -> None:
        """Write the checkpoint of `step`, keeping the newest `keep`."""
        # Every process's generators and balancer state, written by the main process.
        random_states = gather_object([random_state()])
        balancer_states = None
        if parts.balancer is not None:
            balancer_states = gather_object([send_to_device(parts.balancer.state_dict(), "cpu")])
        if self._is_main:
            trainer_state = {
                **state,
                "processes": self._accelerator.num_processes,
                "sampler": parts.sampler.state_dict(),
                "streams": {name: stream.state_dict() for name, stream in parts.streams.items()},
            }
            save_checkpoint(
                self.checkpoints,
                step,
                parts.model,
                parts.optimizer,
                parts.scheduler,
                trainer_state,
                keep,
                balancer_states=balancer_states,
                scaler=parts.scaler,
                random_states=random_states,
            )
        self._accelerator.wait_for_everyone()

    def save_best(self, model: nn.Module, info: dict[str, Any]) -> None:
        """Keep `model`'s weights as the best so far, with `info` (step, aggregate, split)."""
        save_weights(self.best, model, info)

    def load_best(self, model: nn.Module) -> None:
        """Load the best weights kept, if any, into `model`, once the main process has
        written them."""
        self._accelerator.wait_for_everyone()
        if (self.best / "model.safetensors").is_file():
            load_weights(self.best, model)

    def finish(
        self, model: MultiTaskModel, results: TrainedResults, summary: dict[str, Any]
    ) -> None:
        """Write the trained model with its results (see `write_trained_model`), then the
        summary that marks the run finished, then its report."""
        write_trained_model(self.directory, model, results, summary)
        write_report(self.directory)

    def finished_results(self) -> tuple[EvalResults, dict[str, Any]]:
        """The final-split results and the summary of the finished multi-task stage."""
        return (
            read_json(self.directory / "eval_results.json"),
            read_json(self.directory / FINISHED_MARKER),
        )

    def drop_weights(self) -> None:
        """Remove the model and checkpoints of a finished run, keeping its log and results."""
        remove_path(self.directory / "model")
        remove_path(self.checkpoints)


class TrainedResults(NamedTuple):
    """A trained model's scores: on the final split, on the validation split (what choices
    between models may read), and those of input-blind predictions on the final split (a model
    that does not beat them has learned nothing; read by compare and plan)."""

    final: EvalResults
    validation: EvalResults
    trivial: EvalResults


def write_trained_model(
    folder: Path, model: MultiTaskModel, results: TrainedResults, summary: dict[str, Any]
) -> None:
    """Write `model/`, `eval_results.json`, `validation_results.json`, `trivial_results.json`
    and, last, `train_summary.json` into `folder`."""
    model.save_pretrained(folder / "model")
    write_json(folder / "eval_results.json", results.final)
    # The card written with the model again, now with the scores it was tested to.
    write_card(
        folder / "model", multitask_card(model.describe(), str(folder / "model"), results.final)
    )
    write_json(folder / "validation_results.json", results.validation)
    write_json(folder / "trivial_results.json", results.trivial)
    write_json(folder / FINISHED_MARKER, summary)
