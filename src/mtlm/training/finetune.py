"""Two-stage training: after the multi-task run, each task is fine-tuned alone from its weights.

This is MT-DNN's recipe (Liu, He, Chen and Gao, 2019, "Multi-Task Deep Neural Networks for
Natural Language Understanding"): multi-task training finds a representation every task can
start from, and a short single-task stage then adapts it to each task. Here each task adapts in
a LoRA adapter of its own over the multi-task backbone (Hu et al., 2022), with its head, so the
result serves every task from one backbone plus T small adapters instead of T backbones.

Each task trains with the Trainer, on the multi-task data already tokenized, and stops at its
best validation score (early stopping). The stage starts from the multi-task model as the run
saved it, and from the config's seed, so a run stopped during it fine-tunes again to the same
result. The result is a model folder like any other, with LoRA sharing: `evaluate`, `predict`,
`export` and `MultiTaskPipeline` read it as they read `output_dir/model`.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from accelerate.utils import set_seed

from mtlm.config import (
    ExperimentConfig,
    FinetuneSpec,
    SharingSpec,
    config_from_dict,
    task_alone,
)
from mtlm.data.features import TaskData
from mtlm.evaluation.evaluate import EvalResults, evaluate, trivial_baseline
from mtlm.modeling.multitask_model import MultiTaskModel
from mtlm.modeling.sharing.lora import LoraSharing, LoraSharingSpec
from mtlm.training.run_folder import FINETUNED, TrainedResults, write_trained_model

if TYPE_CHECKING:
    from accelerate import Accelerator

    from mtlm.training.run_folder import RunFolder


class TaskRun(Protocol):
    """What fine-tuning needs of the Trainer that trains one task (the Trainer is one; it calls
    this module, which therefore does not import it)."""

    run_folder: RunFolder
    summary: dict[str, Any] | None

    def train(self) -> EvalResults:
        """Train, keep the best weights, write the run's results."""


class TaskTrainer(Protocol):
    """Builds the run of one task: `Trainer(config, output_dir, model=..., data=...)`."""

    def __call__(
        self,
        config: ExperimentConfig,
        output_dir: Path,
        *,
        model: MultiTaskModel,
        data: dict[str, TaskData],
    ) -> TaskRun: ...


def adapter_model(model: MultiTaskModel, spec: FinetuneSpec) -> MultiTaskModel:
    """A copy of a trained multi-task model in which every task gets a new LoRA adapter over
    the (frozen) shared backbone; a model already shared through LoRA keeps its adapters, and
    its base is frozen."""
    if isinstance(model.sharing, LoraSharing):
        tuned = copy.deepcopy(model)
        for parameter in tuned.sharing.shared_parameters():
            parameter.requires_grad_(False)
        return tuned
    sharing = LoraSharingSpec(
        kind="lora",
        r=spec.r,
        alpha=spec.alpha,
        dropout=spec.dropout,
        target_modules=spec.target_modules,
    )
    backbone = copy.deepcopy(model.sharing.base)
    lora = LoraSharing.from_one(sharing, backbone, list(model.tasks))
    tuned = MultiTaskModel(lora, model.tasks, model.tokenizer, model.base_model)
    tuned.heads.load_state_dict(model.heads.state_dict())
    return tuned


def task_config(config: ExperimentConfig, task: str, sharing: SharingSpec) -> ExperimentConfig:
    """The config of `task`'s fine-tuning: the task alone, the finetune section's budget and
    learning rates, a validation per epoch and early stopping."""
    spec = config.training.finetune
    raw = task_alone(config, task)
    raw["sharing"] = sharing.model_dump(mode="json")
    raw["training"].update(
        num_epochs=spec.num_epochs,
        max_steps=spec.max_steps,
        learning_rate=spec.learning_rate,
        head_learning_rate=spec.head_learning_rate or raw["training"]["head_learning_rate"],
        warmup_ratio=spec.warmup_ratio,
        eval_strategy="epoch",
        eval_steps=None,
        early_stopping_patience=spec.early_stopping_patience,
        early_stopping_threshold=0.0,
        overwrite_output_dir=True,
    )
    return config_from_dict(raw, source=f"the fine-tuning of {task}")


def finetune_tasks(
    config: ExperimentConfig,
    data: dict[str, TaskData],
    run_dir: Path,
    trainer_class: TaskTrainer,
    processes: Accelerator,
) -> EvalResults:
    """Fine-tune every task alone from the multi-task model in `run_dir/model`, each with
    `trainer_class` (the Trainer that calls this, passed in so that this module need not
    import it); write the result to `run_dir/finetuned/` (model/, eval_results.json,
    validation_results.json, trivial_results.json, train_summary.json, and a folder per task
    with its training log); return its final-split scores.

    Under several processes (`processes`, the multi-task run's Accelerator) every process
    calls this: each task trains distributed, each process evaluates its share, and the main
    process writes."""
    args = config.training
    folder = run_dir / FINETUNED
    # The adapters start the same whether this follows the multi-task stage or resumes it.
    set_seed(args.seed)
    tuned = adapter_model(MultiTaskModel.from_pretrained(run_dir / "model"), args.finetune)
    started = time.perf_counter()
    per_task: dict[str, Any] = {}
    for name, task_data in data.items():
        if "train" not in task_data.splits:
            continue
        if processes.is_main_process:
            print(f"fine-tuning {name} alone from the multi-task model", flush=True)
        task_started = time.perf_counter()
        single = task_config(config, name, tuned.sharing.spec)
        trainer = trainer_class(
            single, folder / "tasks" / name, model=tuned, data={name: task_data}
        )
        trainer.train()
        if not processes.is_main_process:
            continue
        # The task's own run keeps its log and summary; its copy of the model is the one below.
        trainer.run_folder.drop_weights()
        summary = trainer.summary
        per_task[name] = {
            "steps": summary["steps"],
            "planned_steps": summary["planned_steps"],
            "best_step": summary["best_step"],
            "best_validation_score": summary["best_validation_aggregate"],
            "train_seconds": round(time.perf_counter() - task_started, 2),
        }
    final = evaluate(tuned, data, args.final_eval_split, args.eval_batch_size, processes)
    validation = evaluate(tuned, data, args.eval_split, args.eval_batch_size, processes)
    if processes.is_main_process:
        results = TrainedResults(final, validation, trivial_baseline(data, args.final_eval_split))
        summary = {
            "train_seconds": round(time.perf_counter() - started, 2),
            "tasks": per_task,
            "model": tuned.accounting(),
        }
        write_trained_model(folder, tuned, results, summary)
        print(f"fine-tuned model: {folder / 'model'}", flush=True)
    processes.wait_for_everyone()
    return final
