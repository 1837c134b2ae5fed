"""The reports of `mtlm compare`: the terminal table, comparison.json, .md and .png.

One table holds each model's scores; each view (a model against a kind of baseline: one, or
more with `--baseline both` or a fine-tuned model) adds its change and transfer columns, in the
same table when there is one view and in a table of its own under its Δm line otherwise. A
last table says what each column's models cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mtlm.analysis.transfer import LEARNED_RULE, SEED_TEST, mean_std
from mtlm.files import write_json, write_text
from mtlm.plots import new_figure, save_figure

if TYPE_CHECKING:
    from mtlm.analysis.comparison import Comparison, View

_DELTA_M = (
    "Δm: mean relative change of the primary metrics, > 0 when multi-task training helps "
    "(Maninis et al. 2019)"
)
_CHANGE = "change: relative to the single-task score, > 0 when better"
_TRIVIAL = "trivial: the score of input-blind predictions (majority class, training mean)"
_NORMALISED = (
    "Δ normalised: change of the normalised score n = 100 (x − trivial) / (ideal − trivial), "
    "0 = trivial, 100 = ideal, in points; Δn is its mean over tasks"
)


def format_comparison(comparison: Comparison) -> str:
    """The terminal report: what the baselines were given, Δm, the per-task table, and the tasks
    that got worse with advice."""
    lines = [_title(comparison), *_regimes(comparison), ""]
    for block in _blocks(comparison):
        lines += [*block[0], _aligned(block[1]), ""]
    lines += [_aligned(_cost_rows(comparison)), ""]
    lines += [_DELTA_M, _CHANGE, _TRIVIAL, _NORMALISED, LEARNED_RULE, _cost_legend(comparison)]
    if len(comparison.seeds) > 1:
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


def _title(comparison: Comparison) -> str:
    return (
        f"multi-task vs single-task on the {comparison.split} split, "
        f"{_seed_words(comparison.seeds)}"
    )


def _regimes(comparison: Comparison) -> list[str]:
    """What each kind of baseline was given: the regime the comparison measured."""
    plan = comparison.plan
    return [f"{comparison.label(kind)} models {plan.describe(kind)}" for kind in plan.kinds]


def _headline(comparison: Comparison, view: View) -> str:
    m = _figure_text("Δm", view.delta_m.value, view.delta_m_per_seed, " %")
    n = _figure_text("Δn", view.delta_n.value, view.delta_n_per_seed, " points")
    return f"{m}, {n}: {comparison.label(view.model)} against {comparison.label(view.baseline)}"


def _figure_text(name: str, value: float | None, per_seed: list[float | None], unit: str) -> str:
    """`Δm = +1.23 % (± 0.40 over seeds)`, or n/a."""
    if value is None:
        return f"{name} = n/a"
    text = f"{name} = {value:+.2f}{unit}"
    values = [v for v in per_seed if v is not None]
    if len(values) > 1:
        text += f" (± {mean_std(values)[1]:.2f} over seeds)"
    return text


def _blocks(comparison: Comparison) -> list[tuple[list[str], list[list[str]]]]:
    """(heading lines, table rows) to print in turn: with one kind of baseline its Δm and one
    table; with two the scores first, then each kind's Δm over its change columns."""
    scores = _score_rows(comparison)
    views = comparison.views
    if len(views) == 1:
        view = views[0]
        extra = _view_rows(comparison, view)
        merged = [row + more[1:] for row, more in zip(scores, extra, strict=True)]
        return [([_headline(comparison, view)], merged)]
    blocks: list[tuple[list[str], list[list[str]]]] = [([], scores)]
    for view in views:
        blocks.append(([_headline(comparison, view)], _view_rows(comparison, view)))
    return blocks


def _score_rows(comparison: Comparison) -> list[list[str]]:
    columns = comparison.columns
    rows = [["task", "metric", "trivial", *(comparison.label(c) for c in columns)]]
    for task in comparison.tasks:
        arrow = "↑" if task.higher_is_better else "↓"
        trivial = "n/a" if task.trivial is None else _mean_cell(task.trivial)
        cells = [_mean_cell(task.scores[c]) if c in task.scores else "n/a" for c in columns]
        rows.append([task.task, f"{task.metric} {arrow}", trivial, *cells])
    return rows


def _view_rows(comparison: Comparison, view: View) -> list[list[str]]:
    several = len(comparison.seeds) > 1
    header = ["task", "change", "Δ normalised", *(["p"] if several else []), "transfer"]
    rows = [header]
    for task in comparison.tasks:
        if view.model not in task.against:
            continue
        contrast = task.against[view.model][view.baseline]
        change, normalised = contrast.relative_change, contrast.normalised_change
        row = [
            task.task,
            "n/a" if change is None else f"{change:+.1f} %",
            "n/a" if normalised is None else f"{normalised:+.1f}",
        ]
        if several:
            test = contrast.seed_test
            row.append("-" if test is None else f"{test.p_value:.3f}")
        rows.append([*row, contrast.transfer])
    return rows


def _flag_lines(comparison: Comparison, bullet: str, sub_bullet: str) -> list[str]:
    """Each task the multi-task model did worse on or neither model learned, against which
    baselines, with the advice of the comparison against the headline's baselines where it is
    one of them."""
    headline = comparison.headline.baseline
    lines = []
    for task in comparison.tasks:
        contrasts = task.against["multi_task"].values()
        flagged = [c for c in contrasts if c.negative_transfer or c.not_learned]
        flagged.sort(key=lambda contrast: contrast.baseline != headline)
        if not flagged:
            continue
        if len(comparison.plan.kinds) == 1:
            lines.append(f"{bullet}{task.task}: {flagged[0].transfer} on {task.metric}")
        else:
            against: dict[str, list[str]] = {}
            for contrast in flagged:
                label = comparison.label(contrast.baseline)
                against.setdefault(contrast.transfer, []).append(label)
            words = [f"{word} against {' and '.join(labels)}" for word, labels in against.items()]
            lines.append(f"{bullet}{task.task} ({task.metric}): {'; '.join(words)}")
        lines += [f"{sub_bullet}- {line}" for line in flagged[0].advice]
    return lines


def _cost_legend(comparison: Comparison) -> str:
    stages = "; multi-task + fine-tune: both stages" if "finetuned" in comparison.costs else ""
    return (
        f"training: seconds, mean over seeds (single-task: all its models{stages}); "
        "parameters: of the models that serve every task"
    )


def _cost_rows(comparison: Comparison) -> list[list[str]]:
    rows = [["cost", "training", "parameters"]]
    for column, cost in comparison.costs.items():
        seconds = cost.to_dict()["train_seconds"]
        rows.append(
            [
                comparison.label(column),
                "n/a" if seconds is None else f"{seconds:.1f} s",
                "n/a" if cost.parameters is None else f"{cost.parameters:,}",
            ]
        )
    return rows


def _markdown(comparison: Comparison) -> str:
    parts = [
        "# Multi-task vs single-task",
        "",
        f"Primary metric on the {comparison.split} split, {_seed_words(comparison.seeds)}"
        + (" (mean ± sample std)" if len(comparison.seeds) > 1 else "")
        + ".",
        "",
        *(f"- {line}" for line in _regimes(comparison)),
    ]
    for heading, rows in _blocks(comparison):
        parts += ["", *(f"**{line}**" for line in heading), *([""] if heading else [])]
        parts += _markdown_table(rows)
    parts += ["", *_markdown_table(_cost_rows(comparison))]
    legends = (_DELTA_M, _CHANGE, _TRIVIAL, _NORMALISED, _cost_legend(comparison))
    parts += ["", *(f"- {line}." for line in legends)]
    parts += [f"- {LEARNED_RULE}."]
    if len(comparison.seeds) > 1:
        parts.append(f"- p: {SEED_TEST}.")
    flags = _flag_lines(comparison, bullet="- ", sub_bullet="  ")
    if flags:
        parts += ["", "## Negative transfer and unlearned tasks", "", *flags]
    if comparison.notes:
        parts += ["", "## Notes", "", *(f"- {note}" for note in comparison.notes)]
    parts += ["", "## Runs", ""]
    for run in comparison.runs:
        parts.append(f"- seed {run.seed}: multi-task `{run.multitask}`")
        if "finetuned" in comparison.costs:
            parts.append(f"  - multi-task + fine-tune: `{run.finetuned}`")
        for kind, baselines in run.baselines.items():
            for name, b in baselines.items():
                stopped = ", stopped early" if b.stopped_early else ""
                parts.append(
                    f"  - {name} ({kind.replace('_', ' ')}): `{b.folder}` ({b.steps} steps, "
                    f"{b.epochs:g} epochs{stopped}, {b.examples} examples, "
                    f"{b.train_seconds} s" + (", cached)" if b.cached else ")")
                )
    return "\n".join(parts) + "\n"


def _markdown_table(rows: list[list[str]]) -> list[str]:
    table = [f"| {' | '.join(row)} |" for row in rows]
    table.insert(1, "|" + "---|" * len(rows[0]))
    return table


def _figure(comparison: Comparison):
    tasks = comparison.tasks
    columns = comparison.columns
    figure = new_figure(max(4.0, (0.5 * len(columns) + 0.6) * len(tasks) + 1.5), 4.0)
    axes = figure.add_subplot()
    positions = np.arange(len(tasks))
    width = 0.8 / max(len(columns), 1)
    several = len(comparison.seeds) > 1
    for index, column in enumerate(columns):
        stats = [mean_std(task.scores.get(column, [float("nan")])) for task in tasks]
        axes.bar(
            positions + (index - (len(columns) - 1) / 2) * width,
            [mean for mean, _ in stats],
            width,
            yerr=[std for _, std in stats] if several else None,
            capsize=3,
            label=comparison.label(column),
        )
    for position, task in zip(positions, tasks, strict=True):
        if task.trivial is not None:
            axes.hlines(
                task.trivial_mean,
                position - 0.45,
                position + 0.45,
                colors="black",
                linestyles="dashed",
                label="trivial" if position == 0 else None,
            )
    axes.set_xticks(
        positions,
        [f"{t.task}\n{t.metric} {'↑' if t.higher_is_better else '↓'}" for t in tasks],
    )
    axes.axhline(0.0, color="grey", linewidth=0.8)
    axes.set_ylabel(f"primary metric ({comparison.split})")
    headline = comparison.headline
    axes.set_title(
        _figure_text("Δm", headline.delta_m.value, [], " %")
        + ", "
        + _figure_text("Δn", headline.delta_n.value, [], " points")
    )
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
