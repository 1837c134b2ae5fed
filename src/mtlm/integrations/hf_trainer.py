"""A MultiTaskModel trained by `transformers.Trainer`, so that a user keeps their
`TrainingArguments`, callbacks and integrations (logging services, the Hub, hyperparameter
search).

The Trainer sees one stream of batches, each from one task: mtlm's sampler draws the task of
every step and that task's length-grouped stream gives the batch, as in mtlm's own `sampled`
step mode. The loss is the task's own, times its `loss_weight`; the per-task losses are logged
beside the Trainer's. Evaluation scores every task with its own metrics (`eval_<task>_<metric>`
and `eval_aggregate`, which `metric_for_best_model="aggregate"` selects on). Checkpoints and the
final model are mtlm model folders, which `MultiTaskModel.from_pretrained` reloads.

What stays with mtlm's own Trainer: `joint` steps with loss balancers and gradient
aggregators, early stopping by patience (add transformers' `EarlyStoppingCallback`) and the
fine-tune stage.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import Trainer, TrainingArguments

from mtlm.data.features import TaskData
from mtlm.errors import ConfigError
from mtlm.evaluation.evaluate import evaluate, flat_metrics
from mtlm.modeling.multitask_model import MultiTaskModel
from mtlm.training.mixture import TASK_KEY, TaskMixture, sampler_options
from mtlm.training.samplers import SamplerSpec
from mtlm.training.streams import task_streams


class MultiTaskTrainer(Trainer):
    """`transformers.Trainer` for a MultiTaskModel and mtlm's task data (a `TaskData` per
    task, as `mtlm.training.experiment.build_experiment` returns them).

    `sampler` is mtlm's sampler options (default: proportional to the training sizes);
    `eval_split` the split that `evaluate` scores. The batch sizes are the arguments'
    `per_device_train_batch_size` and `per_device_eval_batch_size`; under several processes
    each evaluates its share of the batches.
    """

    def __init__(
        self,
        model: MultiTaskModel,
        args: TrainingArguments,
        task_data: dict[str, TaskData],
        sampler: SamplerSpec | dict[str, Any] | None = None,
        eval_split: str = "validation",
        **kwargs: Any,
    ) -> None:
        missing = sorted(set(model.tasks) ^ set(task_data))
        if missing:
            raise ConfigError(
                f"task_data: the model's tasks and the data's differ ({', '.join(missing)})"
            )
        self.task_data = task_data
        self.eval_split = eval_split
        spec = sampler_options(sampler)
        streams = task_streams(
            task_data,
            args.per_device_train_batch_size,
            args.seed,
            model.pad_token_id,
            num_replicas=args.world_size,
            rank=args.process_index,
        )
        mixture = TaskMixture(
            streams,
            spec,
            args.seed,
            args.per_device_train_batch_size,
            args.world_size,
        )
        # The Trainer wants an evaluation set when it is to evaluate; `evaluate` reads each
        # task's split itself.
        kwargs.setdefault(
            "eval_dataset", {name: data.splits[eval_split] for name, data in task_data.items()}
        )
        super().__init__(model=model, args=args, train_dataset=mixture, **kwargs)
        self._task_losses: dict[str, list[float]] = defaultdict(list)

    def get_train_dataloader(self) -> DataLoader:
        """The mixture's batches as they are: already padded, already this process's shard."""
        return DataLoader(self.train_dataset, batch_size=None, num_workers=0)

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """The loss of the batch's task, weighted by its `loss_weight`."""
        batch = dict(inputs)
        task = batch.pop(TASK_KEY)
        kind = self.task_data[task].task
        sharing = self.accelerator.unwrap_model(model).sharing.spec
        strength = sharing.penalty_strength(self.state.global_step, self.state.max_steps)
        if strength is None:
            output = model(task, batch)
            loss = kind.spec.loss_weight * kind.loss(output, batch)
        else:
            # Soft sharing's penalty, computed inside forward as in mtlm's own Trainer.
            output, (penalty, _) = model(task, batch, penalty_strength=strength)
            loss = kind.spec.loss_weight * kind.loss(output, batch) + penalty
        self._task_losses[task].append(loss.detach().item())
        return (loss, output) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """The Trainer's logs, with each task's mean loss since the last log during training."""
        if "loss" in logs:
            for task, values in self._task_losses.items():
                if values:
                    logs[f"loss_{task}"] = round(sum(values) / len(values), 4)
            self._task_losses.clear()
        super().log(logs, start_time)

    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """Every task's metrics on `eval_split` (`<prefix>_<task>_<metric>`) and their
        aggregate (`<prefix>_aggregate`), logged and passed to the callbacks. Under several
        processes each predicts its share of the batches."""
        model = self.accelerator.unwrap_model(self.model)
        with model.evaluating():
            results = evaluate(
                model,
                self.task_data,
                self.eval_split,
                self.args.per_device_eval_batch_size,
                self.accelerator,
            )
        metrics = flat_metrics(results, metric_key_prefix)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(
            self.args, self.state, self.control, metrics
        )
        return metrics

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """An mtlm model folder (backbone, heads, tokenizer, tasks, model card)."""
        if self.args.should_save:
            model = self.accelerator.unwrap_model(self.model)
            model.save_pretrained(Path(output_dir or self.args.output_dir))

    def _load_best_model(self) -> None:
        self._load_weights(self.state.best_model_checkpoint)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        self._load_weights(resume_from_checkpoint)

    def _load_weights(self, folder: str | None) -> None:
        if folder is None:
            return
        # Read on the CPU: only its weights are wanted, copied into the model where it is.
        saved = MultiTaskModel.from_pretrained(folder, device="cpu")
        self.accelerator.unwrap_model(self.model).load_state_dict(saved.state_dict())
