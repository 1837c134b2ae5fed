"""What a run records as it goes: metrics.jsonl rows and their TensorBoard scalars."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter

from mtlm.files import write_text
from mtlm.training.balancers import Balanced, cosine_matrix


class RunLog:
    """Appends rows to `metrics.jsonl` and mirrors their numbers to TensorBoard."""

    def __init__(self, output_dir: Path, enabled: bool) -> None:
        self.path = output_dir / "metrics.jsonl"
        self.writer = SummaryWriter(str(output_dir / "logs")) if enabled else None

    def write(self, row: dict[str, Any]) -> None:
        """Record one row (it must have a `step`)."""
        if self.writer is None:
            return
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(json.dumps(row) + "\n")
        for key, value in _flatten(row).items():
            if key != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, row["step"])

    def close(self) -> None:
        """Flush TensorBoard."""
        if self.writer is not None:
            self.writer.close()

    def truncate(self, step: int) -> None:
        """Drop rows written after `step` (a run resumed from there) and any torn last line."""
        if not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("step", 0) <= step:
                kept.append(line)
        write_text(self.path, "".join(f"{line}\n" for line in kept))


class LogWindow:
    """Per-task losses, weights and throughput since the last row; tensors stay on the device
    until the row is written, so logging adds no synchronisation to a step."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.losses: dict[str, list[torch.Tensor]] = defaultdict(list)
        self.weights: dict[str, list[torch.Tensor]] = defaultdict(list)
        self.cosines: list[torch.Tensor] = []
        self.penalties: list[torch.Tensor] = []
        self.distances: list[torch.Tensor] = []
        self.order: list[str] = []
        self.examples = 0
        self.tokens = 0
        self.counts: dict[str, int] = defaultdict(int)
        self.started = time.perf_counter()

    def add_batch(self, task: str, examples: int, tokens: int) -> None:
        """Count one batch of a task."""
        self.examples += examples
        self.tokens += tokens
        self.counts[task] += 1

    def add_loss(self, task: str, loss: torch.Tensor) -> None:
        """Remember a task's (unweighted) loss."""
        self.losses[task].append(loss.detach())

    def add_penalty(self, penalty: torch.Tensor, distance: torch.Tensor) -> None:
        """Remember the sharing penalty and the distance between tasks' parameters."""
        self.penalties.append(penalty.detach())
        self.distances.append(distance.detach())

    def add_balance(self, tasks: list[str], balanced: Balanced) -> None:
        """Remember what a balancer did: task weights and gradient cosines."""
        if balanced.weights is not None:
            for task, weight in zip(tasks, balanced.weights, strict=True):
                self.weights[task].append(weight)
        if balanced.gramian is not None:
            self.order = tasks
            self.cosines.append(cosine_matrix(balanced.gramian))

    def flush(
        self, step: int, learning_rate: float, probabilities: dict[str, float]
    ) -> dict[str, Any]:
        """The row for `step`, and a fresh window."""
        seconds = max(time.perf_counter() - self.started, 1e-9)
        per_task = {task: torch.stack(values).mean().item() for task, values in self.losses.items()}
        row: dict[str, Any] = {
            "step": step,
            "loss": sum(per_task.values()) / max(len(per_task), 1),
            "losses": per_task,
            "learning_rate": learning_rate,
            "examples": self.examples,
            "examples_per_second": self.examples / seconds,
            "tokens_per_second": self.tokens / seconds,
            "batches": dict(self.counts),
            "sampling_probabilities": probabilities,
        }
        if self.weights:
            row["task_weights"] = {
                task: torch.stack(values).float().mean().item()
                for task, values in self.weights.items()
            }
        if self.penalties:
            row["sharing"] = {
                "penalty": torch.stack(self.penalties).mean().item(),
                "distance": torch.stack(self.distances).mean().item(),
            }
        if self.cosines:
            mean = torch.stack(self.cosines).mean(dim=0)
            row["gradient_cosine"] = {
                f"{a}|{b}": mean[i, j].item()
                for i, a in enumerate(self.order)
                for j, b in enumerate(self.order)
                if i < j
            }
        self._reset()
        return row


def _flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}/"))
        else:
            flat[name] = value
    return flat
