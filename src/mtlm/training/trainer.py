"""The training loop, on Hugging Face Accelerate.

It reads like the loop one would write by hand; the multi-task parts are named calls: the
sampler picks a task, that task's stream gives a batch, the task computes its loss.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from mtlm.assets import cache_dir, resolve_model_name
from mtlm.config import ExperimentConfig
from mtlm.data.features import TaskData, load_task_data
from mtlm.errors import ConfigError
from mtlm.evaluation.evaluate import EvalResults, evaluate
from mtlm.files import write_json, write_text
from mtlm.modeling.multitask_model import MultiTaskModel, load_tokenizer
from mtlm.training.checkpoint import (
    discard_partial,
    list_checkpoints,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    save_weights,
)
from mtlm.training.sampling import TaskSampler
from mtlm.training.streams import TaskBatchStream

_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


class Trainer:
    """Trains a MultiTaskModel on the tasks of an experiment config.

    Building it reads and tokenizes all data (so bad data fails before anything is written)
    and builds the model from a fixed seed.
    """

    def __init__(self, config: ExperimentConfig, output_dir: str | Path | None = None) -> None:
        self.config = config
        self.args = config.training
        self.output_dir = Path(output_dir or self.args.output_dir)
        self.accelerator = Accelerator(
            mixed_precision=self.args.mixed_precision,
            cpu=_multi_process_cpu_launch(),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        set_seed(self.args.seed)
        location = resolve_model_name(config.model.name_or_path)
        tokenizer = load_tokenizer(location, config.model.revision)
        features_cache = Path(config.cache_dir) if config.cache_dir else cache_dir() / "features"
        # The main process fills the features cache; the others then read it, not race to write.
        with self.accelerator.main_process_first():
            self.data: dict[str, TaskData] = {
                spec.name: load_task_data(spec, tokenizer, features_cache) for spec in config.tasks
            }
        for task_data in self.data.values():
            for note in task_data.notes:
                self._print(f"note: {note}")
        # Seed again so the heads start the same whatever loading the data consumed.
        set_seed(self.args.seed)
        self.model = MultiTaskModel.from_backbone(
            location,
            {name: d.task for name, d in self.data.items()},
            config.model.revision,
            tokenizer,
        )

    # --- public API -----------------------------------------------------------------------
    def evaluate(self, split: str | None = None) -> EvalResults:
        """Metrics of the current model on a split (the validation split by default)."""
        model = self.accelerator.unwrap_model(self.model)
        return evaluate(model, self.data, split or self.args.eval_split, self.args.eval_batch_size)

    def train(self, resume: bool = False) -> EvalResults:
        """Train, keep the best model, evaluate it on the final split; return those results."""
        args, accelerator = self.args, self.accelerator
        self._prepare_output_dir(resume)
        optimizer = torch.optim.AdamW(self._parameter_groups(), lr=args.learning_rate)
        scheduler = get_linear_schedule_with_warmup(
            optimizer, math.ceil(args.warmup_ratio * args.max_steps), args.max_steps
        )
        model, optimizer = accelerator.prepare(self.model, optimizer)
        pad_id = self.model.tokenizer.pad_token_id or 0
        streams = {
            name: TaskBatchStream(
                d.task,
                d.splits["train"],
                args.batch_size,
                args.seed + index,
                pad_id,
                args.length_group_chunk,
                accelerator.num_processes,
                accelerator.process_index,
            )
            for index, (name, d) in enumerate(self.data.items())
        }
        sampler = TaskSampler(
            {name: len(d.splits["train"]) for name, d in self.data.items()},
            args.sampler,
            args.seed,
        )
        state: dict[str, Any] = {"best_score": None, "best_step": None, "tokens": 0, "padded": 0}
        step = 0
        checkpoints = self.output_dir / "checkpoints"
        if resume:
            step, state = self._resume(checkpoints, model, optimizer, scheduler, sampler, streams)
        log = _LogWindow()
        writer = SummaryWriter(str(self.output_dir / "logs")) if self._is_main else None
        progress = tqdm(
            total=args.max_steps,
            initial=step,
            disable=not (self._is_main and args.progress_bar),
            dynamic_ncols=True,
        )
        started = time.perf_counter()
        examples_at_start, steps_at_start = state.get("examples", 0), step
        model.train()
        while step < args.max_steps:
            task = sampler.sample()
            stream = streams[task]
            for micro in range(args.gradient_accumulation_steps):
                batch = stream.next_batch()
                real_tokens = int(batch["attention_mask"].sum())
                log.add_batch(task, len(batch["input_ids"]), real_tokens)
                state["tokens"] += real_tokens
                state["padded"] += batch["input_ids"].numel()
                state["examples"] = state.get("examples", 0) + len(batch["input_ids"])
                batch = {key: value.to(accelerator.device) for key, value in batch.items()}
                last = micro == args.gradient_accumulation_steps - 1
                with _maybe_no_sync(accelerator, model, not last):
                    with accelerator.autocast():
                        loss = stream.task.loss(model(task, batch), batch)
                    weighted = stream.task.spec.loss_weight * loss
                    accelerator.backward(weighted / args.gradient_accumulation_steps)
                log.add_loss(task, loss.detach())
            if args.max_grad_norm is not None:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            progress.update(1)
            if step % args.logging_steps == 0 or step == args.max_steps:
                row = log.flush(step, scheduler.get_last_lr()[0], sampler.probabilities)
                progress.set_postfix(task=task, loss=f"{row['loss']:.4f}")
                self._write_metrics(row, writer)
            evaluate_now = args.eval_steps is not None and step % args.eval_steps == 0
            if evaluate_now or step == args.max_steps:
                self._validate(step, model, state, writer)
            if args.save_steps is not None and step % args.save_steps == 0:
                self._checkpoint(
                    checkpoints, step, model, optimizer, scheduler, sampler, streams, state
                )
        progress.close()
        elapsed = time.perf_counter() - started
        final = self._finish(model, state, elapsed, step - steps_at_start, examples_at_start)
        if writer is not None:
            writer.close()
        return final

    # --- pieces of the loop ---------------------------------------------------------------
    @property
    def _is_main(self) -> bool:
        return self.accelerator.is_main_process

    def _print(self, message: str) -> None:
        if self._is_main:
            print(message, flush=True)

    def _parameter_groups(self) -> list[dict[str, Any]]:
        """Weight decay except on biases and norms; heads may have their own learning rate."""
        groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = defaultdict(list)
        for name, parameter in self.model.named_parameters():
            is_head = name.startswith("heads.")
            decays = not any(name.endswith(suffix) for suffix in _NO_DECAY)
            groups[(is_head, decays)].append(parameter)
        head_lr = self.args.head_learning_rate or self.args.learning_rate
        return [
            {
                "params": parameters,
                "weight_decay": self.args.weight_decay if decays else 0.0,
                "lr": head_lr if is_head else self.args.learning_rate,
            }
            for (is_head, decays), parameters in sorted(groups.items())
        ]

    def _prepare_output_dir(self, resume: bool) -> None:
        directory = self.output_dir
        occupied = directory.is_dir() and any(directory.iterdir())
        if resume and not list_checkpoints(directory / "checkpoints"):
            raise ConfigError(f"--resume: no checkpoint in {directory / 'checkpoints'}")
        if occupied and not resume:
            if not self.args.overwrite_output_dir:
                raise ConfigError(
                    f"training.output_dir: {directory} already holds files; pass --resume to "
                    "continue that run or set training.overwrite_output_dir: true"
                )
            if self._is_main:
                shutil.rmtree(directory)
        self.accelerator.wait_for_everyone()
        if self._is_main:
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "experiment_config.json").write_text(self.config.to_json())

    def _resume(self, checkpoints, model, optimizer, scheduler, sampler, streams):
        folder = list_checkpoints(checkpoints)[-1]
        unwrapped = self.accelerator.unwrap_model(model)
        state = load_checkpoint(folder, unwrapped, optimizer, scheduler)
        sampler.load_state_dict(state.pop("sampler"))
        for name, stream_state in state.pop("streams").items():
            streams[name].load_state_dict(stream_state)
        step = state.pop("step")
        best_info = checkpoints / "best" / "info.json"
        if best_info.is_file():
            # A killed run may have kept a newer best after this checkpoint; its weights are on
            # disk, so the record follows them rather than pointing at overwritten weights.
            best = json.loads(best_info.read_text())
            if best["step"] > step:
                state["best_score"], state["best_step"] = best["aggregate"], best["step"]
        if self._is_main:
            discard_partial(checkpoints)
            _truncate_metrics(self.output_dir / "metrics.jsonl", step)
        self._print(f"resumed from {folder} at step {step}")
        return step, state

    def _checkpoint(self, checkpoints, step, model, optimizer, scheduler, sampler, streams, state):
        if self._is_main:
            trainer_state = {
                **state,
                "sampler": sampler.state_dict(),
                "streams": {name: stream.state_dict() for name, stream in streams.items()},
            }
            save_checkpoint(
                checkpoints,
                step,
                self.accelerator.unwrap_model(model),
                optimizer,
                scheduler,
                trainer_state,
                self.args.save_total_limit,
            )
        self.accelerator.wait_for_everyone()

    def _validate(self, step: int, model, state: dict[str, Any], writer) -> None:
        """Evaluate on the validation split; keep the weights if the aggregate is the best."""
        if self._is_main:
            results = self.evaluate(self.args.eval_split)
            score = results["aggregate"]
            self._write_metrics({"step": step, "eval": results}, writer)
            if score is not None and (state["best_score"] is None or score > state["best_score"]):
                state["best_score"], state["best_step"] = score, step
                save_weights(
                    self.output_dir / "checkpoints" / "best",
                    self.accelerator.unwrap_model(model),
                    {"step": step, "aggregate": score, "split": self.args.eval_split},
                )
        self.accelerator.wait_for_everyone()
        model.train()

    def _write_metrics(self, row: dict[str, Any], writer) -> None:
        if not self._is_main:
            return
        with open(self.output_dir / "metrics.jsonl", "a", encoding="utf-8") as file:
            file.write(json.dumps(row) + "\n")
        if writer is None:
            return
        step = row["step"]
        for key, value in _flatten(row).items():
            if key != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                writer.add_scalar(key, value, step)

    def _finish(self, model, state, elapsed, steps_done, examples_at_start) -> EvalResults:
        """Restore the best weights, save the model, evaluate on the final split, summarise."""
        unwrapped = self.accelerator.unwrap_model(model)
        best = self.output_dir / "checkpoints" / "best"
        if self.args.load_best_model_at_end and (best / "model.safetensors").is_file():
            load_weights(best, unwrapped)
        final: EvalResults = {}
        if self._is_main:
            unwrapped.save_pretrained(self.output_dir / "model")
            final = self.evaluate(self.args.final_eval_split)
            write_json(self.output_dir / "eval_results.json", final)
            examples = state.get("examples", 0) - examples_at_start
            summary = {
                "steps": self.args.max_steps,
                "train_seconds": round(elapsed, 2),
                "examples_per_second": round(examples / elapsed, 2) if elapsed else None,
                "steps_this_session": steps_done,
                "real_tokens": state["tokens"],
                "padding_fraction": round(1 - state["tokens"] / max(state["padded"], 1), 4),
                "best_step": state["best_step"],
                "best_validation_aggregate": state["best_score"],
                "num_processes": self.accelerator.num_processes,
            }
            write_json(self.output_dir / "train_summary.json", summary)
            self._print(
                f"trained {steps_done} steps in {elapsed:.0f}s "
                f"({summary['examples_per_second']} examples/s); "
                f"padding {100 * summary['padding_fraction']:.1f}% of tokens; "
                f"best validation aggregate {state['best_score']} at step {state['best_step']}"
            )
            self._print(f"model: {self.output_dir / 'model'}")
        self.accelerator.wait_for_everyone()
        return final


class _LogWindow:
    """Per-task losses and throughput since the last log row; losses stay tensors until then."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.losses: dict[str, list[torch.Tensor]] = defaultdict(list)
        self.examples = 0
        self.tokens = 0
        self.counts: dict[str, int] = defaultdict(int)
        self.started = time.perf_counter()

    def add_batch(self, task: str, examples: int, tokens: int) -> None:
        self.examples += examples
        self.tokens += tokens
        self.counts[task] += 1

    def add_loss(self, task: str, loss: torch.Tensor) -> None:
        self.losses[task].append(loss)

    def flush(
        self, step: int, learning_rate: float, probabilities: dict[str, float]
    ) -> dict[str, Any]:
        seconds = max(time.perf_counter() - self.started, 1e-9)
        per_task = {task: torch.stack(values).mean().item() for task, values in self.losses.items()}
        row = {
            "step": step,
            "loss": sum(per_task.values()) / max(len(per_task), 1),
            "losses": per_task,
            "learning_rate": learning_rate,
            "examples_per_second": self.examples / seconds,
            "tokens_per_second": self.tokens / seconds,
            "batches": dict(self.counts),
            "sampling_probabilities": probabilities,
        }
        self._reset()
        return row


def _multi_process_cpu_launch() -> bool:
    """Whether a launcher (torchrun) started several processes on a machine with no accelerator.

    Accelerate joins such processes over gloo only when told `cpu=True` (as `accelerate launch
    --cpu` does); otherwise each process would train alone, all writing to one output folder.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = getattr(torch, "accelerator", None)  # torch >= 2.6: any accelerator at all
    return not (backend.is_available() if backend is not None else torch.cuda.is_available())


def _maybe_no_sync(accelerator: Accelerator, model, skip_sync: bool):
    """Skip the gradient all-reduce on all but the last micro-batch of an accumulated step."""
    import contextlib

    return accelerator.no_sync(model) if skip_sync else contextlib.nullcontext()


def _flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}/"))
        else:
            flat[name] = value
    return flat


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop log rows written after the checkpoint a run resumes from (and any torn last line)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("step", 0) <= step:
            kept.append(line)
    write_text(path, "".join(f"{line}\n" for line in kept))
