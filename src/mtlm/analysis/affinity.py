"""Task affinity: which tasks help each other, measured while the tasks train together.

Two measures, both on the parameters every task uses (the shared parameters):
- gradient affinity: the cosine similarity of two tasks' gradients (positive when a step for one
  is also a step for the other);
- lookahead affinity (Fifty, Amid, Zhao, Yu, Anil & Finn, 2021, "Efficiently Identifying Task
  Groupings for Multi-Task Learning", NeurIPS): Z_{i→j} = 1 − L_j(θ_s − η ∇_{θ_s} L_i) / L_j(θ_s),
  how much a gradient step on task i's loss lowers task j's loss on the same batch (relative;
  negative when it raises it).

Both are averaged over the measured steps of a short joint training run, so that they follow the
model as it trains, as Fifty et al. measure them. The grouping module turns the lookahead
affinity into recommended task groups.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.colors import Normalize
from torch import Tensor, nn
from tqdm.auto import tqdm

from mtlm.analysis.grouping import best_partition, check_group_count
from mtlm.config import ExperimentConfig
from mtlm.errors import ConfigError
from mtlm.files import write_json
from mtlm.modeling.multitask_model import MultiTaskModel
from mtlm.plots import new_figure, save_figure
from mtlm.training.balancers import cosine_matrix
from mtlm.training.trainer import Trainer

#: A loss below this counts as this in Z's denominator (a task already fit exactly).
_SMALLEST_LOSS = 1e-12


@dataclass
class Affinity:
    """Both affinity matrices of a run (row i = from task i, column j = onto task j) and how
    they were measured."""

    tasks: list[str]
    gradient: Tensor  # T×T cosine similarities of the shared-parameter gradients
    lookahead: Tensor  # T×T, Z_{i→j}
    steps: int  # training steps run
    every: int  # measured every `every`-th step
    measured_steps: int
    lookahead_learning_rate: float
    seconds: float


def measure_affinity(
    config: ExperimentConfig,
    steps: int,
    every: int = 1,
    lookahead_learning_rate: float | None = None,
) -> Affinity:
    """Train the config's tasks jointly for `steps` steps and average both affinities over
    every `every`-th step.

    Each step takes a batch of every task from the streams training uses and measures on them
    (`affinity_step`) before the update. The update is one AdamW step on Σ λ_i L_i (plus the
    soft-sharing penalty at its configured strength) with the config's learning rates, weight
    decay and gradient clipping, at constant learning rates, in full precision, on one process;
    the balancer, step mode and joint groups of the config are not used. η of the lookahead is
    `lookahead_learning_rate`, by default `training.learning_rate`. A measured step of T tasks
    costs T more forward and backward passes and T² forward passes without gradients.
    """
    if steps < 1:
        raise ConfigError(f"--steps: must be at least 1 (got {steps})")
    if not 1 <= every <= steps:
        raise ConfigError(f"--every: must be from 1 to --steps ({steps}) (got {every})")
    if lookahead_learning_rate is not None and not lookahead_learning_rate > 0:
        raise ConfigError(f"--lookahead-lr: must be above 0 (got {lookahead_learning_rate})")
    if len(config.tasks) < 2:
        raise ConfigError("tasks: affinity is between tasks; the config has only one")
    args = config.training
    eta = lookahead_learning_rate or args.learning_rate
    trainer = Trainer(config)
    device = trainer.accelerator.device
    model = trainer.model.to(device)
    _shared_parameters(model)  # refuse before any training
    streams = trainer.task_streams()
    tasks = list(streams)
    # The trainer's optimizer: heads at their own learning rate, no decay on biases and norms.
    optimizer = trainer.optimizer(None)
    gradient = torch.zeros(len(tasks), len(tasks), dtype=torch.float64)
    lookahead = torch.zeros_like(gradient)
    # The sharing's full strength, as after any warm-up (None but for soft sharing).
    strength = config.sharing.penalty_strength(steps, steps)
    started = time.perf_counter()
    model.train()
    for step in tqdm(range(1, steps + 1), "affinity", disable=not args.progress_bar):
        batches = {
            name: {key: value.to(device) for key, value in streams[name].next_batch().items()}
            for name in tasks
        }
        if step % every == 0:
            cosines, z = affinity_step(model, batches, eta)
            gradient += cosines.double().cpu()
            lookahead += z.double().cpu()
        losses = [
            model.tasks[name].spec.loss_weight * _loss(model, name, batches[name]) for name in tasks
        ]
        total = torch.stack(losses).sum()
        penalty = None if strength is None else model.sharing.penalty(strength)
        if penalty is not None:
            total = total + penalty[0]
        total.backward()
        if args.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    measured = steps // every
    return Affinity(
        tasks,
        gradient / measured,
        lookahead / measured,
        steps,
        every,
        measured,
        eta,
        time.perf_counter() - started,
    )


def affinity_step(
    model: MultiTaskModel,
    batches: Mapping[str, dict[str, Tensor]],
    lookahead_learning_rate: float,
) -> tuple[Tensor, Tensor]:
    """One step's gradient cosines and lookahead affinities Z_{i→j} of the tasks in `batches`
    (T×T each, rows and columns in the order of `batches`); the model comes back unchanged.

    Gradients and losses are taken in eval mode: dropout would give each task's forward its own
    mask and lower every cosine, and would make Z measure noise rather than the update.
    """
    shared = _shared_parameters(model)
    names = list(batches)
    with model.evaluating():
        gradients, before = [], []
        for name in names:
            loss = _loss(model, name, batches[name])
            # One backward per task, on the shared parameters only; a parameter no task reads
            # (the pooler, say) gets zeros.
            gradients.append(
                torch.autograd.grad(loss, shared, allow_unused=True, materialize_grads=True)
            )
            before.append(loss.detach())
        losses_before = torch.stack(before).clamp(min=_SMALLEST_LOSS)
        rows = []
        with torch.no_grad():
            # Restored from a copy, not by adding the step back: θ − ηg + ηg need not be θ in
            # floating point.
            saved = [parameter.detach().clone() for parameter in shared]
            for gradient in gradients:
                for parameter, grad in zip(shared, gradient, strict=True):
                    parameter.sub_(grad, alpha=lookahead_learning_rate)
                after = torch.stack([_loss(model, name, batches[name]) for name in names])
                rows.append(1 - after / losses_before)
                for parameter, value in zip(shared, saved, strict=True):
                    parameter.copy_(value)
    return cosine_matrix(_gramian(gradients)), torch.stack(rows)


def write_affinity(
    affinity: Affinity, output_dir: str | Path, groups: Sequence[int] | None = None
) -> dict[str, Any]:
    """Write `affinity.json` (both matrices by task name, the settings, and the best grouping
    by lookahead affinity for each number of groups in `groups`, default 1 to T) and the
    heatmaps `gradient_affinity.png` and `lookahead_affinity.png`; return what the JSON holds."""
    directory = Path(output_dir)
    tasks = affinity.tasks
    counts = list(groups) if groups else list(range(1, len(tasks) + 1))
    for count in counts:
        check_group_count(count, len(tasks))
    recommended = []
    for count in counts:
        partition = best_partition(affinity.lookahead.numpy(), count)
        recommended.append(
            {
                "groups": count,
                "tasks": [[tasks[index] for index in group] for group in partition.groups],
                "score": _rounded(partition.score),
                "search": "exhaustive" if partition.exhaustive else "greedy",
            }
        )
    report = {
        "tasks": tasks,
        "settings": {
            "steps": affinity.steps,
            "every": affinity.every,
            "measured_steps": affinity.measured_steps,
            "lookahead_learning_rate": affinity.lookahead_learning_rate,
        },
        "seconds": round(affinity.seconds, 2),
        "gradient_affinity": _by_name(affinity.gradient, tasks),
        "lookahead_affinity": _by_name(affinity.lookahead, tasks),
        "layout": "matrix[from task i][onto task j]",
        "grouping": {
            "affinity": "lookahead_affinity",
            "score": "sum over groups of, for each member j, the mean affinity onto j from the "
            "group's other members (Fifty et al., 2021); a task alone scores 0",
            "recommended": recommended,
        },
    }
    write_json(directory / "affinity.json", report)
    _heatmap(
        affinity.gradient,
        tasks,
        f"Gradient affinity: cosine of shared gradients\n(mean of {affinity.measured_steps} steps)",
        ("task j", "task i"),
        directory / "gradient_affinity.png",
    )
    _heatmap(
        affinity.lookahead,
        tasks,
        "Lookahead affinity Z(i→j) = 1 − L_j after a step on L_i / L_j before\n"
        f"(η = {affinity.lookahead_learning_rate:g}, mean of {affinity.measured_steps} steps)",
        ("onto task j", "from task i"),
        directory / "lookahead_affinity.png",
    )
    return report


def affinity_summary(report: dict[str, Any]) -> str:
    """Plain text of what `write_affinity` returned: both matrices and the recommended groups."""
    settings = report["settings"]
    lines = [
        f"task affinity: mean of {settings['measured_steps']} measured steps of a "
        f"{settings['steps']}-step joint run ({report['seconds']}s)",
        "",
        "gradient affinity (cosine of the tasks' gradients on the shared parameters)",
        _table(report["gradient_affinity"], "task", "{:+.3f}"),
        "",
        f"lookahead affinity Z(i→j) (η = {settings['lookahead_learning_rate']:g}; "
        "> 0: a step on i lowers j's loss)",
        _table(report["lookahead_affinity"], "from \\ onto", "{:+.2e}"),
        "",
        "recommended groups (by lookahead affinity; score: sum over groups of the mean affinity "
        "onto each member from the others)",
    ]
    for entry in report["grouping"]["recommended"]:
        groups = " | ".join(", ".join(group) for group in entry["tasks"])
        greedy = " (greedy search)" if entry["search"] == "greedy" else ""
        count = f"{entry['groups']} group" + ("s" if entry["groups"] > 1 else "")
        lines.append(f"  {count}: {groups}   score {entry['score']:+.3e}{greedy}")
    return "\n".join(lines)


# --- helpers ----------------------------------------------------------------------------------
def _shared_parameters(model: MultiTaskModel) -> list[nn.Parameter]:
    """The model's shared parameters; a ConfigError with advice if there are none."""
    shared = model.shared_parameters()
    if not shared:
        raise ConfigError(
            f"sharing.kind: affinity compares the tasks' gradients on shared parameters, and with "
            f"sharing {model.sharing.spec.kind} as configured no trainable parameter is shared; "
            "measure with sharing kind hard (the affinity of the tasks, whatever the sharing "
            "trained later), or share some: sharing.hard_modules / hard_layers (soft), "
            "sharing.train_base: true (lora)"
        )
    return shared


def _loss(model: MultiTaskModel, task: str, batch: dict[str, Tensor]) -> Tensor:
    """Task `task`'s loss on its batch (without λ)."""
    return model.tasks[task].loss(model(task, batch), batch)


def _gramian(gradients: Sequence[Sequence[Tensor]]) -> Tensor:
    """Inner products of the tasks' gradients, one parameter at a time, so that no T × P copy
    of all gradients is made."""
    total = torch.zeros(len(gradients), len(gradients), dtype=torch.float64)
    for per_task in zip(*gradients, strict=True):
        stacked = torch.stack([grad.reshape(-1) for grad in per_task]).double()
        total += (stacked @ stacked.T).cpu()
    return total


def _by_name(matrix: Tensor, tasks: list[str]) -> dict[str, dict[str, float]]:
    """{task i: {task j: value}}, rounded for reading."""
    return {
        row_task: {
            column_task: _rounded(value)
            for column_task, value in zip(tasks, row.tolist(), strict=True)
        }
        for row_task, row in zip(tasks, matrix, strict=True)
    }


def _rounded(value: float) -> float:
    """Six significant digits: lookahead affinities are often around 1e-5."""
    return float(f"{value:.6g}")


def _table(matrix: dict[str, dict[str, float]], corner: str, cell: str) -> str:
    """A task × task table with rows and columns named."""
    tasks = list(matrix)
    rows = [[corner, *tasks]] + [
        [row, *(cell.format(matrix[row][column]) for column in tasks)] for row in tasks
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            value.rjust(width) if i else value.ljust(width)
            for i, (value, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def _heatmap(
    matrix: Tensor, tasks: list[str], title: str, labels: tuple[str, str], path: Path
) -> None:
    """A T×T heatmap with the values in the cells, on a diverging colormap centred at 0.

    The diagonal (a task onto itself) is written but not coloured: it dwarfs the affinities
    between tasks (a cosine of 1, a task's own loss drop), which the colours are scaled to.
    """
    values = matrix.double().numpy()
    diagonal = np.eye(len(tasks), dtype=bool)
    largest = float(np.abs(values[~diagonal]).max()) if len(tasks) > 1 else 0.0
    extent = largest if math.isfinite(largest) and largest > 0 else 1.0
    size = 2.5 + 0.8 * len(tasks)
    figure = new_figure(size + 1.5, size)
    axes = figure.add_subplot()
    image = axes.imshow(
        np.ma.masked_array(values, diagonal),
        cmap=colormaps["RdBu"].with_extremes(bad="0.85"),
        norm=Normalize(-extent, extent),
    )
    figure.colorbar(image, ax=axes, shrink=0.8)
    for (i, j), value in np.ndenumerate(values):
        # White text on the dark ends of the colormap, black on its pale middle and the grey.
        colour = "white" if i != j and abs(value) > 0.6 * extent else "black"
        axes.text(j, i, f"{value:.3g}", ha="center", va="center", color=colour, fontsize=8)
    axes.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right")
    axes.set_yticks(range(len(tasks)), tasks)
    axes.set_xlabel(labels[0])
    axes.set_ylabel(labels[1])
    axes.set_title(title, fontsize=10)
    save_figure(figure, path)
