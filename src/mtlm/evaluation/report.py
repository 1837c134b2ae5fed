"""Tables of results for the terminal."""

from __future__ import annotations

from typing import Any

from mtlm.evaluation.evaluate import EvalResults


def results_table(columns: dict[str, EvalResults]) -> str:
    """A plain-text table: one row per task and metric, one column per set of results."""
    headers = ["task", "metric", *columns]
    rows: list[list[str]] = []
    first = next(iter(columns.values()))
    for task, metrics in first["tasks"].items():
        names = [metrics["primary"]] + [
            m for m in metrics if m not in ("primary", metrics["primary"])
        ]
        for index, metric in enumerate(names):
            label = f"{metric} *" if index == 0 else metric
            values = [
                _cell(results["tasks"].get(task, {}).get(metric)) for results in columns.values()
            ]
            rows.append([task if index == 0 else "", label, *values])
    rows.append(["aggregate", "mean of *", *(_cell(r["aggregate"]) for r in columns.values())])
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [headers, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def print_results(columns: dict[str, EvalResults]) -> None:
    """Print `results_table` with the split it is on."""
    split = next(iter(columns.values()))["split"]
    print(f"\nscores on the {split} split (* primary metric)")
    print(results_table(columns))


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"
