"""A MultiTaskModel trained by Lightning (`pip install 'mtlm[lightning]'`): a
`LightningDataModule` over mtlm's task data and sampler, and a `LightningModule` over the model.

Training batches come one task at a time, the task drawn by mtlm's sampler (as in mtlm's own
`sampled` step mode); the loss is the task's own times its `loss_weight` (plus soft sharing's
penalty), logged per task as `train/loss_<task>`. Validation scores every task with its own
metrics through mtlm's prediction path and logs `val/<task>_<metric>` and `val/aggregate`
(monitor it with `ModelCheckpoint(monitor="val/aggregate", mode="max")`). Save the trained
model with `module.model.save_pretrained(folder)`; `MultiTaskModel.from_pretrained` reloads it.
"""

from __future__ import annotations

from typing import Any

try:
    import lightning as L
except ImportError as error:  # an optional extra: say how to get it
    raise ImportError("mtlm.integrations.lightning needs pip install 'mtlm[lightning]'") from error
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from mtlm.data.features import TaskData
from mtlm.evaluation.evaluate import evaluate, flat_metrics
from mtlm.inference.shards import Ranks
from mtlm.modeling.multitask_model import MultiTaskModel
from mtlm.training.mixture import TASK_KEY, TaskMixture, sampler_options
from mtlm.training.optimization import adamw, parameter_groups
from mtlm.training.samplers import SamplerSpec
from mtlm.training.streams import task_streams


class MultiTaskDataModule(L.LightningDataModule):
    """Training batches of all tasks, mixed by a sampler (default: proportional to the
    training sizes); one epoch is every task's training rows once. Validation is one step that
    scores every task's `eval_split`."""

    def __init__(
        self,
        task_data: dict[str, TaskData],
        batch_size: int = 16,
        sampler: SamplerSpec | dict[str, Any] | None = None,
        seed: int = 42,
        eval_split: str = "validation",
        pad_token_id: int = 0,
    ) -> None:
        super().__init__()
        self.task_data = task_data
        self.batch_size = batch_size
        self.sampler = sampler_options(sampler)
        self.seed = seed
        self.eval_split = eval_split
        self.pad_token_id = pad_token_id

    def train_dataloader(self) -> DataLoader:
        """This process's shard of every task's stream, already padded."""
        trainer = self.trainer
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        streams = task_streams(
            self.task_data,
            self.batch_size,
            self.seed,
            self.pad_token_id,
            num_replicas=replicas,
            rank=rank,
        )
        mixture = TaskMixture(streams, self.sampler, self.seed, self.batch_size, replicas)
        return DataLoader(mixture, batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        """One item, the split's name: the validation step scores every task on it."""
        return DataLoader([self.eval_split], batch_size=None)


class MultiTaskModule(L.LightningModule):
    """A MultiTaskModel under Lightning, optimized as mtlm's own Trainer does (AdamW without
    decay on biases and norms, the heads at `head_learning_rate` if given, linear warmup and
    decay). Each step trains one task's head, so several devices need DDP told that some
    parameters get no gradient: `strategy="ddp_find_unused_parameters_true"`; each process
    then validates its share of the batches."""

    def __init__(
        self,
        model: MultiTaskModel,
        task_data: dict[str, TaskData],
        learning_rate: float = 5e-5,
        head_learning_rate: float | None = None,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.06,
        eval_batch_size: int = 64,
    ) -> None:
        super().__init__()
        self.model = model
        self.task_data = task_data
        self.learning_rate = learning_rate
        self.head_learning_rate = head_learning_rate
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.eval_batch_size = eval_batch_size

    def training_step(self, batch: dict[str, Any], batch_index: int) -> Any:
        batch = dict(batch)
        task = batch.pop(TASK_KEY)
        kind = self.task_data[task].task
        strength = self.model.sharing.spec.penalty_strength(
            self.global_step, max(self.trainer.estimated_stepping_batches, 1)
        )
        if strength is None:
            loss = kind.spec.loss_weight * kind.loss(self.model(task, batch), batch)
        else:
            output, (penalty, _) = self.model(task, batch, penalty_strength=strength)
            loss = kind.spec.loss_weight * kind.loss(output, batch) + penalty
        self.log(f"train/loss_{task}", loss.detach(), batch_size=len(batch["input_ids"]))
        return loss

    def validation_step(self, split: str, batch_index: int) -> None:
        # Under several processes each predicts its share of the batches.
        ranks = Ranks(self.trainer.global_rank, self.trainer.world_size)
        with self.model.evaluating():
            results = evaluate(self.model, self.task_data, split, self.eval_batch_size, ranks)
        metrics = flat_metrics(results, "val")
        renamed = {key.replace("val_", "val/", 1): value for key, value in metrics.items()}
        self.log_dict(renamed, batch_size=1)

    def configure_optimizers(self) -> dict[str, Any]:
        groups = parameter_groups(
            self.model, self.learning_rate, self.weight_decay, self.head_learning_rate
        )
        optimizer = adamw(groups, self.learning_rate)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(self.warmup_ratio * total), total
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
