"""The training loop, on Hugging Face Accelerate.

It reads like the loop one would write by hand; the multi-task parts are named calls: the
sampler picks a task, that task's stream gives a batch, the task computes its loss. What it
trains is built by `mtlm.training.experiment` (or by the caller); what it writes goes through
`mtlm.training.run_folder`.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, set_seed
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from mtlm.config import ExperimentConfig
from mtlm.data.features import TaskData
from mtlm.errors import ConfigError
from mtlm.evaluation.evaluate import EvalResults, evaluate, trivial_baseline
from mtlm.modeling.multitask_model import MultiTaskModel
from mtlm.training.balancers import Balanced, Balancer, JointStep, build_balancer
from mtlm.training.experiment import build_experiment
from mtlm.training.finetune import finetune_tasks
from mtlm.training.optimization import adamw, parameter_groups
from mtlm.training.processes import average_gradients, training_accelerator
from mtlm.training.run_folder import RunFolder, Start, TrainedResults, TrainingParts
from mtlm.training.run_log import LogWindow
from mtlm.training.samplers import build_sampler
from mtlm.training.streams import TaskBatchStream, task_streams


class Trainer:
    """Trains a MultiTaskModel on the tasks of an experiment config.

    Without a `model` and `data`, it builds them (see `mtlm.training.experiment`): checks what
    the config asks of the model and names the splits, then reads and tokenizes all data (so
    bad data fails before anything is written) and builds the model from a fixed seed.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        output_dir: str | Path | None = None,
        *,
        model: MultiTaskModel | None = None,
        data: dict[str, TaskData] | None = None,
    ) -> None:
        """Train into `output_dir` (default `training.output_dir`) the given `model` on `data`
        (keyed by the config's task names; the model holding those tasks), or what
        `build_experiment` builds of them from the config."""
        self.config = config
        self.args = config.training
        #: train_summary.json's content once `train` has finished.
        self.summary: dict[str, Any] | None = None
        self._best_validation: EvalResults | None = None
        self.output_dir = Path(output_dir or self.args.output_dir)
        self.accelerator = training_accelerator(self.args)
        self.run_folder = RunFolder(
            self.output_dir,
            "--output-dir" if output_dir else "training.output_dir",
            self.accelerator,
            self._print,
        )
        # An output folder that cannot be written must fail before the data is read.
        self.run_folder.check_writable()
        set_seed(self.args.seed)
        experiment = build_experiment(config, model=model, data=data, accelerator=self.accelerator)
        self.model: MultiTaskModel = experiment.model
        self.data: dict[str, TaskData] = experiment.data
        #: What building the experiment found worth saying (splits derived or missing, lengths
        #: lowered to the model's); printed when training starts, so that a mistake found
        #: before then is the only thing a failed command prints.
        self.notes: list[str] = experiment.notes

    # --- public API -----------------------------------------------------------------------
    def evaluate(self, split: str | None = None) -> EvalResults:
        """Metrics of the current model on a split (the validation split by default). Under
        several processes each predicts its share of the batches: call it on every process."""
        model = self.accelerator.unwrap_model(self.model)
        split = split or self.args.eval_split
        return evaluate(model, self.data, split, self.args.eval_batch_size, self.accelerator)

    def train(self, resume: bool = False) -> EvalResults:
        """Train, keep the best model, evaluate it on the final split; return those results.

        With `training.finetune`, each task is then fine-tuned alone into
        `output_dir/finetuned/` (see `mtlm.training.finetune`); resuming a run stopped there
        fine-tunes again from its multi-task model."""
        args = self.args
        # Config errors found here must come before anything is written to the output folder.
        joint = args.step_mode == "joint"
        balancer = build_balancer(args.balancer, len(self.data)) if joint else None
        if balancer and balancer.reduces_gradients_itself and args.mixed_precision == "fp16":
            raise ConfigError(
                f"training.mixed_precision: fp16 needs loss scaling, which {args.balancer.kind} "
                "on parameters bypasses; use bf16 or no"
            )
        if balancer and balancer.reduces_gradients_itself and not self.model.shared_parameters():
            raise ConfigError(
                f"training.balancer.kind: {args.balancer.kind} aggregates gradients of shared "
                f"parameters, and with sharing {self.config.sharing.kind} as configured no "
                "trainable parameter is shared; use gradients: representation or a loss weighting"
            )
        start = self.run_folder.prepare(self.config, resume)
        for note in self.notes:
            self._print(f"note: {note}")
        if start is not Start.FINETUNE:
            final = self._train_loop(balancer, resume=start is Start.RESUME)
        elif self._is_main:
            final, self.summary = self.run_folder.finished_results()
        else:
            final = {}
        if args.finetune is not None:
            # Every process fine-tunes: each task's stage is a distributed run like the first.
            finetune_tasks(self.config, self.data, self.output_dir, type(self), self.accelerator)
        return final

    def _train_loop(self, balancer: Balancer | None, resume: bool) -> EvalResults:
        """The multi-task stage: steps until the plan's end or early stopping, validations,
        checkpoints; then the best model, its results and the summary."""
        args, accelerator = self.args, self.accelerator
        joint = args.step_mode == "joint"
        streams = self.task_streams()
        plan = self._plan({name: len(stream.features) for name, stream in streams.items()})
        optimizer = self.optimizer(balancer)
        scheduler = get_linear_schedule_with_warmup(
            optimizer, math.ceil(args.warmup_ratio * plan.total_steps), plan.total_steps
        )
        model, optimizer = accelerator.prepare(self.model, optimizer)
        sampler = build_sampler(
            {name: len(stream.features) for name, stream in streams.items()},
            args.sampler,
            args.seed,
        )
        parts = TrainingParts(
            accelerator.unwrap_model(model),
            optimizer,
            scheduler,
            sampler,
            streams,
            balancer,
            accelerator.scaler,
        )
        groups = args.joint_groups or [list(self.data)]
        state: dict[str, Any] = {
            "best_score": None,
            "best_step": None,
            "tokens": 0,
            "padded": 0,
            "examples": 0,
            "task_examples": dict.fromkeys(self.data, 0),
            "stale_validations": 0,
        }
        step = 0
        run_log = self.run_folder.log()
        if resume:
            step, state = self.run_folder.resume(parts, run_log)
        window = LogWindow()
        progress = tqdm(
            total=plan.total_steps,
            initial=step,
            disable=not (self._is_main and args.progress_bar),
            dynamic_ncols=True,
        )
        started = time.perf_counter()
        outside_steps = 0.0  # validation and checkpoints, left out of the throughput
        examples_at_start, steps_at_start = state["examples"], step
        tokens_at_start = state["tokens"]
        model.train()
        state["accounting"] = self.model.accounting()
        self._print_accounting(state["accounting"])
        self._print(
            f"training {plan.total_steps} steps ({plan.steps_per_epoch} per epoch of "
            f"{plan.epoch_examples} examples), step mode {args.step_mode}"
        )
        while step < plan.total_steps:
            sampler.set_progress(step / plan.total_steps)
            strength = self.config.sharing.penalty_strength(step, plan.total_steps)
            if joint:
                tasks = groups[step % len(groups)]
                batches = self._joint_step(model, streams, tasks, balancer, window, state, strength)
            else:
                tasks = [sampler.sample()]
                self._sampled_step(model, streams[tasks[0]], window, state, strength)
            if args.max_grad_norm is not None:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if joint:
                balancer.after_step(lambda batches=batches: self._joint_losses(model, batches))
            step += 1
            progress.update(1)
            if balancer is not None and step % plan.steps_per_epoch == 0:
                balancer.end_epoch()
            if step % args.logging_steps == 0 or step == plan.total_steps:
                row = window.flush(step, scheduler.get_last_lr()[0], sampler.probabilities)
                progress.set_postfix(task=",".join(tasks), loss=f"{row['loss']:.4f}")
                run_log.write(row)
            paused = time.perf_counter()
            stop = False
            if self._validates_at(step, plan):
                stop = self._validate(step, model, state, run_log, sampler)
            if args.save_steps is not None and step % args.save_steps == 0:
                self.run_folder.checkpoint(step, parts, state, args.save_total_limit)
            outside_steps += time.perf_counter() - paused
            if stop:
                self._print(
                    f"early stopping at step {step}: {state['stale_validations']} validations "
                    f"without a better aggregate than {state['best_score']:.4f} "
                    f"(step {state['best_step']})"
                )
                break
        progress.close()
        elapsed = time.perf_counter() - started
        session = _Session(
            elapsed,
            elapsed - outside_steps,
            step - steps_at_start,
            state["examples"] - examples_at_start,
            state["tokens"] - tokens_at_start,
        )
        state["step"] = step
        final = self._finish(model, state, session, plan)
        run_log.close()
        return final

    # --- one optimizer step -----------------------------------------------------------------
    def _next_batch(self, stream: TaskBatchStream, window: LogWindow, state: dict[str, Any]):
        """The stream's next batch on the device, counted for throughput and padding."""
        batch = stream.next_batch()
        real_tokens = int(batch["attention_mask"].sum())
        examples = stream.task.batch_rows(batch)
        window.add_batch(stream.task.spec.name, examples, real_tokens)
        state["tokens"] += real_tokens
        state["padded"] += batch["input_ids"].numel()
        state["examples"] += examples
        state["task_examples"][stream.task.spec.name] += examples
        return {key: value.to(self.accelerator.device) for key, value in batch.items()}

    def _sampled_step(self, model, stream: TaskBatchStream, window, state, strength) -> None:
        """`sampled` mode: batches of one task, loss λ_i L_i (+ the sharing penalty),
        accumulated."""
        accelerator, accumulation = self.accelerator, self.args.gradient_accumulation_steps
        task = stream.task
        for micro in range(accumulation):
            batch = self._next_batch(stream, window, state)
            with _maybe_no_sync(accelerator, model, micro < accumulation - 1):
                with accelerator.autocast():
                    output, penalty = _split_penalty(
                        model(task.spec.name, batch, penalty_strength=strength), strength
                    )
                    loss = task.loss(output, batch)
                total = task.spec.loss_weight * loss
                if penalty is not None:
                    total = total + penalty[0]
                    window.add_penalty(*penalty)
                accelerator.backward(total / accumulation)
            window.add_loss(task.spec.name, loss)
        window.add_balance([task.spec.name], Balanced(torch.tensor([task.spec.loss_weight])))

    def _joint_step(self, model, streams, tasks: list[str], balancer, window, state, strength):
        """`joint` mode: a batch of every task, the balancer turns the losses into gradients."""
        accelerator, accumulation = self.accelerator, self.args.gradient_accumulation_steps
        unwrapped = accelerator.unwrap_model(model)
        own_gradients = balancer.reduces_gradients_itself
        for micro in range(accumulation):
            batches = {name: self._next_batch(streams[name], window, state) for name in tasks}
            skip_sync = own_gradients or micro < accumulation - 1
            with _maybe_no_sync(accelerator, model, skip_sync):
                with accelerator.autocast():
                    outputs, penalty = _split_penalty(
                        model(batches, penalty_strength=strength), strength
                    )
                    losses = [self.data[n].task.loss(outputs[n].head, batches[n]) for n in tasks]
                lambdas = [self.data[n].task.spec.loss_weight for n in tasks]
                weighted = self._weighted(tasks, losses)
                step = JointStep(
                    features=[outputs[name].hidden for name in tasks],
                    shared=unwrapped.shared_parameters(),
                    task_parameters=[unwrapped.task_parameters(name) for name in tasks],
                    last_shared=unwrapped.sharing.last_layer_parameters(),
                    backward=accelerator.backward,
                    penalty=None if penalty is None else penalty[0] / accumulation,
                )
                if penalty is not None:
                    window.add_penalty(*penalty)
                balanced = balancer.backward(weighted, step)
            for name, loss in zip(tasks, losses, strict=True):
                window.add_loss(name, loss)
            weights = balanced.weights
            if weights is not None:
                weights = weights * torch.tensor(lambdas, device=weights.device)
            window.add_balance(tasks, Balanced(weights, balanced.gramian))
        # What DDP did not average: gradients the balancer computed itself, and those of its
        # learned weights (outside the model), which each process computed from its own batches.
        averaged = list(model.parameters()) if own_gradients else []
        learned = balancer.parameter_group()
        average_gradients(averaged + (learned["params"] if learned else []))
        return batches

    def _weighted(self, tasks: list[str], losses: list[torch.Tensor]) -> list[torch.Tensor]:
        """λ_i L_i / accumulation steps: the losses as a balancer receives them."""
        accumulation = self.args.gradient_accumulation_steps
        return [
            self.data[name].task.spec.loss_weight * loss / accumulation
            for name, loss in zip(tasks, losses, strict=True)
        ]

    def _joint_losses(self, model, batches) -> torch.Tensor:
        """The weighted losses of the step's batches after the update (FAMO's second look)."""
        with torch.no_grad(), self.accelerator.autocast():
            outputs = model(batches)
            tasks = list(outputs)
            losses = [self.data[n].task.loss(outputs[n].head, batches[n]) for n in tasks]
        return torch.stack(self._weighted(tasks, losses))

    # --- pieces of the loop ---------------------------------------------------------------
    def _print_accounting(self, accounting: dict[str, Any]) -> None:
        per_task = ", ".join(f"{k} {v:,}" for k, v in accounting["parameters_per_task"].items())
        self._print(
            f"sharing {accounting['sharing']}: {accounting['total_parameters']:,} parameters "
            f"({accounting['trainable_parameters']:,} trainable), "
            f"{accounting['memory_bytes'] / 2**20:.1f} MB; "
            f"per task: {per_task}"
        )

    @property
    def _is_main(self) -> bool:
        return self.accelerator.is_main_process

    def _print(self, message: str) -> None:
        if self._is_main:
            # Above the progress bar rather than through it; flushed line by line, so that
            # other processes' output sharing the pipe cannot land inside one of its lines.
            tqdm.write(message)
            sys.stdout.flush()

    def task_streams(self) -> dict[str, TaskBatchStream]:
        """Each task's endless batch stream over its training rows (capped, oversampled)."""
        args, accelerator = self.args, self.accelerator
        return task_streams(
            self.data,
            args.batch_size,
            args.seed,
            self.model.pad_token_id,
            args.length_group_chunk,
            accelerator.num_processes,
            accelerator.process_index,
        )

    def _plan(self, sizes: dict[str, int]) -> TrainingPlan:
        """How many optimizer steps: `max_steps`, or `num_epochs` epochs (default 3).

        One epoch is every task's training examples once: Σ N_i examples, however the sampler
        spreads them over tasks.
        """
        args = self.args
        per_step = args.batch_size * args.gradient_accumulation_steps
        per_step *= self.accelerator.num_processes
        if args.step_mode == "joint":
            groups = args.joint_groups or [list(sizes)]
            per_step *= sum(len(group) for group in groups) / len(groups)
        epoch_examples = sum(sizes.values())
        steps_per_epoch = max(1, math.ceil(epoch_examples / per_step))
        if args.max_steps is not None:
            total = args.max_steps
        else:
            # Round once, over the whole run (2.5 epochs of 19.2 steps are 48 steps, not 50),
            # after dropping float noise (0.3 epochs of 10 steps are 3 steps, not 4).
            steps = (args.num_epochs or 3.0) * epoch_examples / per_step
            total = max(1, math.ceil(round(steps, 9)))
        return TrainingPlan(total, steps_per_epoch, epoch_examples)

    def optimizer(self, balancer: Balancer | None) -> torch.optim.AdamW:
        """AdamW over `parameter_groups`."""
        return adamw(self.parameter_groups(balancer), self.args.learning_rate)

    def parameter_groups(self, balancer: Balancer | None) -> list[dict[str, Any]]:
        """mtlm's parameter groups (`mtlm.training.optimization`); learned balancing
        parameters get the balancer's."""
        args = self.args
        groups = parameter_groups(
            self.model, args.learning_rate, args.weight_decay, args.head_learning_rate
        )
        group = balancer.parameter_group() if balancer is not None else None
        if group is not None:
            groups.append(group)
        return groups

    def _validates_at(self, step: int, plan: TrainingPlan) -> bool:
        """Validation after the last step, and every eval_steps steps or at each epoch's end."""
        if step == plan.total_steps:
            return True
        if self.args.eval_strategy == "epoch":
            return step % plan.steps_per_epoch == 0
        return self.args.eval_steps is not None and step % self.args.eval_steps == 0

    def _validate(self, step: int, model, state: dict[str, Any], run_log, sampler) -> bool:
        """Evaluate on the validation split; keep the weights if the aggregate is the best;
        show the sampler the results (a dynamic one follows each task's distance from its
        target). Returns whether early stopping's patience has run out."""
        # Every process predicts its share of the split. All must draw the same tasks, keep
        # the same best and stop together, so all take the main process's results.
        results = broadcast_object_list([self.evaluate(self.args.eval_split)])[0]
        score = results["aggregate"]
        best = state["best_score"]
        if self._is_main:
            run_log.write({"step": step, "eval": results})
        if score is not None and (best is None or score > best):
            state["best_score"], state["best_step"] = score, step
            self._best_validation = results
            if self._is_main:
                self.run_folder.save_best(
                    self.accelerator.unwrap_model(model),
                    {"step": step, "aggregate": score, "split": self.args.eval_split},
                )
        improved = score is not None and (
            best is None or score > best + self.args.early_stopping_threshold
        )
        stale = state.get("stale_validations", 0)
        state["stale_validations"] = 0 if improved else stale + 1
        self._print(validation_line(step, results, step == state["best_step"]))
        sampler.observe(results, {name: d.task for name, d in self.data.items()})
        model.train()
        patience = self.args.early_stopping_patience
        return patience is not None and state["stale_validations"] >= patience

    def _finish(self, model, state, session: _Session, plan) -> EvalResults:
        """Restore the best weights, evaluate on the final split, write the model, its results
        and the summary."""
        unwrapped = self.accelerator.unwrap_model(model)
        if self.args.load_best_model_at_end:
            self.run_folder.load_best(unwrapped)
        # Every process predicts its share; every one keeps the same best validation.
        final = self.evaluate(self.args.final_eval_split)
        # The validation scores of the model kept: what choices between models may read.
        validation = self._best_validation
        if not (self.args.load_best_model_at_end and validation is not None):
            validation = self.evaluate(self.args.eval_split)
        if self._is_main:
            trivial = trivial_baseline(self.data, self.args.final_eval_split)
            self.summary = self._summary(state, session, plan)
            self.run_folder.finish(
                unwrapped, TrainedResults(final, validation, trivial), self.summary
            )
            self._print(
                f"trained {session.steps} steps in {session.elapsed:.0f}s "
                f"({self.summary['examples_per_second']} examples/s, "
                f"{self.summary['real_tokens_per_second']} real tokens/s); "
                f"padding {100 * self.summary['padding_fraction']:.1f}% of tokens; "
                f"best validation aggregate {state['best_score']} at step {state['best_step']}"
            )
        self.accelerator.wait_for_everyone()
        return final

    def _summary(self, state: dict[str, Any], session: _Session, plan: TrainingPlan):
        """train_summary.json: how long the run trained, how fast, on what, and its best step."""
        stepping = session.step_seconds
        return {
            "steps": state["step"],
            "planned_steps": plan.total_steps,
            "steps_per_epoch": plan.steps_per_epoch,
            "epochs": round(state["step"] / plan.steps_per_epoch, 3),
            "train_seconds": round(session.elapsed, 2),
            # Throughput counts the optimizer steps only, not validation and checkpoints.
            "step_seconds": round(stepping, 2),
            "examples_per_second": round(session.examples / stepping, 2) if stepping else None,
            "real_tokens_per_second": round(session.tokens / stepping, 1) if stepping else None,
            "steps_this_session": session.steps,
            # Every process draws the same task with its own shard of the batch.
            "examples_per_task": {
                name: count * self.accelerator.num_processes
                for name, count in state["task_examples"].items()
            },
            "real_tokens": state["tokens"],
            "padding_fraction": round(1 - state["tokens"] / max(state["padded"], 1), 4),
            "best_step": state["best_step"],
            "best_validation_aggregate": state["best_score"],
            "num_processes": self.accelerator.num_processes,
            "model": state.get("accounting"),
        }


def validation_line(step: int, results: EvalResults, best: bool) -> str:
    """One console line per validation: each task's primary metric and the aggregate."""
    scores = [
        f"{name} {metrics['primary']} {metrics[metrics['primary']]:.4f}"
        for name, metrics in results["tasks"].items()
    ]
    aggregate = results["aggregate"]
    shown = "n/a" if aggregate is None else f"{aggregate:.4f}"
    mark = " (best)" if best else ""
    return f"step {step} {results['split']}: {', '.join(scores)}; aggregate {shown}{mark}"


def _maybe_no_sync(accelerator: Accelerator, model, skip_sync: bool):
    """Skip DDP's gradient all-reduce (all but the last micro-batch, or gradients that a
    balancer computes itself)."""
    return accelerator.no_sync(model) if skip_sync else contextlib.nullcontext()


def _split_penalty(
    result: Any, strength: float | None
) -> tuple[Any, tuple[torch.Tensor, torch.Tensor] | None]:
    """A forward called with a penalty strength returns (outputs, penalty); one without,
    just the outputs."""
    return (result, None) if strength is None else result


class _Session(NamedTuple):
    """What one call of `train` did: its wall time, the part of it spent in optimizer steps
    (not validation or checkpoints), and the steps, examples and real tokens it trained."""

    elapsed: float
    step_seconds: float
    steps: int
    examples: int
    tokens: int


class TrainingPlan(NamedTuple):
    """How long a run trains, and what an epoch is in steps and examples."""

    total_steps: int
    steps_per_epoch: int
    epoch_examples: int
