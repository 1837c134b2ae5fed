"""A one-page report of a run folder: plots of its metrics.jsonl and a markdown summary.

`write_report` reads what training leaves in the folder (metrics.jsonl, train_summary.json,
eval_results.json, experiment_config.json) and writes `report.md` with PNGs under `plots/`.
It works on a run that is still training: it draws what the log holds so far.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from mtlm.errors import ConfigError
from mtlm.files import write_text
from mtlm.plots import new_figure, save_figure

#: Each name's (steps, values), in step order.
Series = dict[str, tuple[list[int], list[float]]]


def write_report(run_dir: str | Path) -> Path:
    """Draw the run's plots and write its one-page `report.md`; return the report's path."""
    run = Path(run_dir)
    log = run / "metrics.jsonl"
    if not log.is_file():
        raise ConfigError(f"{run}: no metrics.jsonl, so not a training run folder (or not begun)")
    rows = read_log_rows(log)
    train = [row for row in rows if "losses" in row]
    validation = [row for row in rows if "eval" in row]
    summary = _read_json(run / "train_summary.json")
    final = _read_json(run / "eval_results.json")
    config = _read_json(run / "experiment_config.json")
    best_step = summary.get("best_step") if summary else None

    figures = [
        ("loss", "Training loss per task", _loss_figure(train)),
        ("validation", "Validation scores", _validation_figure(validation, best_step)),
        ("balance", *_balance_figure(train, config)),
        ("gradient_cosine", "Gradient cosine between tasks", _cosine_figure(train)),
        ("sharing", "Soft-sharing penalty and distance", _sharing_figure(train)),
    ]
    embeds = []
    for name, caption, figure in figures:
        if figure is not None:
            save_figure(figure, run / "plots" / f"{name}.png")
            embeds.append(f"![{caption}](plots/{name}.png)")

    lines = [f"# Run report: {run}", "", *_summary_lines(train, validation, summary, config), ""]
    if final and final.get("tasks"):
        lines += [f"## Final results ({final['split']} split)", "", *_results_table(final), ""]
    else:
        lines += ["Final results are not there yet: no eval_results.json (still training?).", ""]
    if embeds:
        lines += ["## Plots", ""]
        for embed in embeds:
            lines += [embed, ""]
    report = run / "report.md"
    write_text(report, "\n".join(lines))
    return report


# --- reading the run folder -------------------------------------------------------------------
def read_log_rows(path: Path) -> list[dict[str, Any]]:
    """The log's rows; a torn last line (a run writing or killed mid-row) is skipped."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    return rows


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file of the run, or None where the run has not written it (yet)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON ({error})") from None


def _series(rows: list[dict[str, Any]], key: str) -> Series:
    """Every name under `row[key]` as a line over the rows that have it."""
    series: Series = {}
    for row in rows:
        for name, value in (row.get(key) or {}).items():
            steps, values = series.setdefault(name, ([], []))
            steps.append(row["step"])
            values.append(value)
    # Sorted, so that a task has the same colour in every plot.
    return dict(sorted(series.items()))


# --- plots ------------------------------------------------------------------------------------
def _line_figure(panels: list[tuple[str, str, Series]]) -> Figure | None:
    """One axes per (title, y label, series) panel that has data; None when none has."""
    panels = [panel for panel in panels if panel[2]]
    if not panels:
        return None
    figure = new_figure(width=7.0 if len(panels) == 1 else 10.0)
    for index, (title, ylabel, series) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), index)
        for name, (steps, values) in series.items():
            axes.plot(steps, values, marker=".", label=name)
        axes.set(title=title, xlabel="step", ylabel=ylabel)
        axes.grid(alpha=0.3)
        if len(series) > 1:
            axes.legend(fontsize="small")
    return figure


def _loss_figure(train: list[dict[str, Any]]) -> Figure | None:
    series = _series(train, "losses")
    figure = _line_figure([("training loss per task", "loss", series)])
    # Tasks' losses differ by orders of magnitude (an MSE beside a cross-entropy).
    if figure is not None and all(v > 0 for _, values in series.values() for v in values):
        figure.axes[0].set_yscale("log")
    return figure


def _validation_figure(validation: list[dict[str, Any]], best_step: int | None) -> Figure | None:
    scores = [
        {
            "step": row["step"],
            "primary": {
                f"{task} ({metrics['primary']})": metrics[metrics["primary"]]
                for task, metrics in row["eval"]["tasks"].items()
            },
        }
        for row in validation
    ]
    split = validation[-1]["eval"].get("split", "validation") if validation else ""
    figure = _line_figure(
        [(f"{split} score per task", "primary metric", _series(scores, "primary"))]
    )
    if figure is None:
        return None
    axes = figure.axes[0]
    aggregate = [(row["step"], row["eval"]["aggregate"]) for row in validation]
    aggregate = [(step, value) for step, value in aggregate if value is not None]
    if aggregate:
        steps, values = zip(*aggregate, strict=True)
        axes.plot(steps, values, "k--", marker=".", label="aggregate (mean of primaries)")
    if best_step is not None:
        axes.axvline(best_step, color="grey", linestyle=":", label=f"best step {best_step}")
    axes.legend(fontsize="small")
    return figure


def _balance_figure(
    train: list[dict[str, Any]], config: dict[str, Any] | None
) -> tuple[str, Figure | None]:
    """(caption, figure): task weights in joint mode; in sampled mode, where a row's weights
    are only the sampled tasks' fixed loss weights, the sampler's probabilities."""
    training = (config or {}).get("training", {})
    if training.get("step_mode") == "joint":
        kind = training.get("balancer", {}).get("kind", "static")
        title, key, ylabel = f"task weights (balancer {kind})", "task_weights", "weight"
    else:
        kind = training.get("sampler", {}).get("kind", "proportional")
        title = f"sampling probabilities (sampler {kind})"
        key, ylabel = "sampling_probabilities", "probability"
    series = _series(train, key)
    figure = _line_figure([(title, ylabel, series)])
    # From zero, so that a steady mix reads as steady rather than as noise blown up.
    if figure is not None and all(v >= 0 for _, values in series.values() for v in values):
        figure.axes[0].set_ylim(bottom=0.0)
    return title.capitalize(), figure


def _cosine_figure(train: list[dict[str, Any]]) -> Figure | None:
    series = {
        pair.replace("|", " · "): line for pair, line in _series(train, "gradient_cosine").items()
    }
    figure = _line_figure([("cosine of task gradients", "cosine", series)])
    if figure is not None:
        axes = figure.axes[0]
        axes.axhline(0.0, color="black", linewidth=0.8)
        axes.set_ylim(-1.05, 1.05)
    return figure


def _sharing_figure(train: list[dict[str, Any]]) -> Figure | None:
    """The soft-sharing penalty and distance side by side: their scales differ."""
    titles = {"penalty": "soft-sharing penalty", "distance": "distance between tasks' parameters"}
    return _line_figure(
        [
            (titles.get(name, name), name, {name: line})
            for name, line in _series(train, "sharing").items()
        ]
    )


# --- text -------------------------------------------------------------------------------------
def _summary_lines(
    train: list[dict[str, Any]],
    validation: list[dict[str, Any]],
    summary: dict[str, Any] | None,
    config: dict[str, Any] | None,
) -> list[str]:
    """Bullets: length and speed of the run, its best validation score, model and mode."""
    lines = []
    if summary:
        lines.append(
            f"- Steps: {summary['steps']} ({summary['epochs']:g} epochs of "
            f"{summary['steps_per_epoch']} steps); trained in {summary['train_seconds']:.1f} s, "
            f"{_number(summary['examples_per_second'], 1)} examples/s"
        )
        lines.append(f"- Padding: {100 * summary['padding_fraction']:.1f}% of batch tokens")
    else:
        last = max((row["step"] for row in train), default=0)
        lines.append(f"- Steps: {last} logged so far (no train_summary.json yet)")
    best = _best(validation, summary)
    if best:
        lines.append(f"- Best validation aggregate: {_number(best[1])} at step {best[0]}")
    model = (summary or {}).get("model")
    if model:
        per_task = ", ".join(f"{t} {n:,}" for t, n in model["parameters_per_task"].items())
        lines.append(
            f"- Model: sharing {model['sharing']}, {model['total_parameters']:,} parameters "
            f"({model['trainable_parameters']:,} trainable); per task: {per_task}"
        )
    training = (config or {}).get("training")
    if training:
        if training["step_mode"] == "joint":
            how = f"balancer {training['balancer']['kind']}"
        else:
            how = f"sampler {training['sampler']['kind']}"
        lines.append(f"- Step mode: {training['step_mode']}, {how}")
    return lines


def _best(
    validation: list[dict[str, Any]], summary: dict[str, Any] | None
) -> tuple[int, float] | None:
    """(step, aggregate) of the best validation: the summary's, or the log's while training."""
    if summary and summary.get("best_step") is not None:
        return summary["best_step"], summary["best_validation_aggregate"]
    scored = [(row["eval"]["aggregate"], row["step"]) for row in validation]
    scored = [(score, step) for score, step in scored if score is not None]
    if not scored:
        return None
    # The earliest of equal scores, as training keeps only a strictly better one.
    score, step = max(scored, key=lambda pair: (pair[0], -pair[1]))
    return step, score


def _results_table(results: dict[str, Any]) -> list[str]:
    """A markdown table of final results: one row per task, its primary metric first."""
    lines = ["| task | primary metric | value | other metrics |", "| --- | --- | ---: | --- |"]
    for task, metrics in results["tasks"].items():
        primary = metrics["primary"]
        others = ", ".join(
            f"{name} {_number(value)}"
            for name, value in metrics.items()
            if name not in ("primary", primary)
        )
        lines.append(f"| {task} | {primary} | {_number(metrics[primary])} | {others} |")
    lines.append(f"| aggregate | mean of primaries | {_number(results['aggregate'])} | |")
    return lines


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
