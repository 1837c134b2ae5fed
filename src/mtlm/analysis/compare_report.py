"""The reports of `mtlm compare`: the terminal table, comparison.json, .md and .png."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mtlm.analysis.transfer import SEED_TEST, mean_std
from mtlm.files import write_json, write_text
from mtlm.plots import new_figure, save_figure

if TYPE_CHECKING:
    from mtlm.analysis.compare import Comparison, TaskComparison


def format_comparison(comparison: Comparison) -> str:
    """The terminal report: Δm, the per-task table, and the tasks that got worse with advice."""
    seeds = comparison.seeds
    lines = [
        f"single-task vs multi-task on the {comparison.split} split, "
        f"{_seed_words(seeds)}, the same training examples per task",
        _headline(comparison),
        "",
        _aligned(_table_rows(comparison)),
        "change: relative to the single-task score, > 0 when better",
    ]
    if len(seeds) > 1:
        lines.append(f"p: {SEED_TEST}")
    flags = _flag_lines(comparison, bullet="- ", sub_bullet="    ")
    if flags:
        lines += ["", *flags]
    lines += [f"note: {note}" for note in comparison.notes]
    return "\n".join(lines)


def write_comparison(comparison: Comparison, output_dir: Path) -> None:
    """Write comparison.json, comparison.md and comparison.png into `output_dir`."""
    write_json(output_dir / "comparison.json", comparison.to_dict())
    write_text(output_dir / "comparison.md", _markdown(comparison))
    save_figure(_figure(comparison), output_dir / "comparison.png")


def _headline(comparison: Comparison) -> str:
    value = comparison.delta_m.value
    text = "Δm = n/a (no task has a nonzero baseline)" if value is None else f"Δm = {value:+.2f} %"
    per_seed = [v for v in comparison.delta_m_per_seed if v is not None]
    if len(per_seed) > 1:
        text += f" (± {mean_std(per_seed)[1]:.2f} over seeds)"
    return (
        f"{text}: mean relative change of the primary metrics, > 0 when multi-task training "
        "helps (Maninis et al. 2019)"
    )


def _table_rows(comparison: Comparison) -> list[list[str]]:
    several = len(comparison.seeds) > 1
    header = ["task", "metric", "single-task", "multi-task", "difference", "change"]
    header += ["p", "transfer"] if several else ["transfer"]
    rows = [header]
    for task in comparison.tasks:
        arrow = "↑" if task.higher_is_better else "↓"
        row = [
            task.task,
            f"{task.metric} {arrow}",
            _mean_cell(task.single),
            _mean_cell(task.multi),
            f"{task.difference:+.4f}",
            "n/a" if task.relative_change is None else f"{task.relative_change:+.1f} %",
        ]
        if several:
            row.append("-" if task.seed_test is None else f"{task.seed_test.p_value:.3f}")
        row.append(_transfer_word(task))
        rows.append(row)
    return rows


def _transfer_word(task: TaskComparison) -> str:
    if not task.negative_transfer:
        return "positive" if task.difference != 0 else "none"
    return "negative transfer" + (" (within seed noise)" if task.within_noise else "")


def _flag_lines(comparison: Comparison, bullet: str, sub_bullet: str) -> list[str]:
    flagged = [task for task in comparison.tasks if task.negative_transfer]
    lines = []
    for task in flagged:
        lines.append(f"{bullet}{task.task}: {_transfer_word(task)} on {task.metric}")
        lines += [f"{sub_bullet}- {line}" for line in task.advice]
    return lines


def _markdown(comparison: Comparison) -> str:
    rows = _table_rows(comparison)
    table = [f"| {' | '.join(row)} |" for row in rows]
    table.insert(1, "|" + "---|" * len(rows[0]))
    parts = [
        "# Multi-task vs single-task",
        "",
        f"**{_headline(comparison)}**",
        "",
        f"Primary metric on the {comparison.split} split, {_seed_words(comparison.seeds)}"
        + (" (mean ± sample std)" if len(comparison.seeds) > 1 else "")
        + ". Each single-task baseline saw as many examples of its task as the multi-task run "
        "did. Change is relative to the single-task score, > 0 when better.",
        "",
        *table,
    ]
    if len(comparison.seeds) > 1:
        parts += ["", f"p: {SEED_TEST}."]
    flags = _flag_lines(comparison, bullet="- ", sub_bullet="  ")
    if flags:
        parts += ["", "## Negative transfer", "", *flags]
    if comparison.notes:
        parts += ["", "## Notes", "", *(f"- {note}" for note in comparison.notes)]
    parts += ["", "## Runs", ""]
    for run in comparison.runs:
        parts.append(f"- seed {run.seed}: multi-task `{run.multitask}`")
        parts += [
            f"  - {name}: `{b.folder}` ({b.steps} steps, {b.examples} examples"
            + (", cached)" if b.cached else ")")
            for name, b in run.baselines.items()
        ]
    return "\n".join(parts) + "\n"


def _figure(comparison: Comparison):
    tasks = comparison.tasks
    figure = new_figure(max(4.0, 1.6 * len(tasks) + 1.5), 4.0)
    axes = figure.add_subplot()
    positions = np.arange(len(tasks))
    width = 0.38
    several = len(comparison.seeds) > 1
    for offset, label, values in (
        (-width / 2, "single-task", [t.single for t in tasks]),
        (width / 2, "multi-task", [t.multi for t in tasks]),
    ):
        stats = [mean_std(v) for v in values]
        axes.bar(
            positions + offset,
            [mean for mean, _ in stats],
            width,
            yerr=[std for _, std in stats] if several else None,
            capsize=3,
            label=label,
        )
    axes.set_xticks(
        positions,
        [f"{t.task}\n{t.metric} {'↑' if t.higher_is_better else '↓'}" for t in tasks],
    )
    axes.axhline(0.0, color="grey", linewidth=0.8)
    axes.set_ylabel(f"primary metric ({comparison.split})")
    value = comparison.delta_m.value
    axes.set_title("Δm = n/a" if value is None else f"Δm = {value:+.2f} %")
    axes.legend()
    return figure


def _mean_cell(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def _seed_words(seeds: list[int]) -> str:
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    return f"{len(seeds)} seeds ({', '.join(map(str, seeds))})"


def _aligned(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
