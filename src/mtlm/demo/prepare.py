"""Fetching the bundled models and building the demo data a run needs, one line of progress
each, with every name and needed package checked before the first slow download."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from mtlm.demo.models import bundled_model_path, check_model
from mtlm.demo.splits import demo_task_files
from mtlm.demo.tasks import DEMO_TASKS, demo_task

__all__ = ["prepare_demo"]


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def prepare_demo(
    tasks: Iterable[str] = DEMO_TASKS, models: Iterable[str] = ("minilm",)
) -> dict[str, dict[str, Path]]:
    """Fetch the bundled models and build the demo tasks' files, one line printed for each."""
    task_names, model_names = list(tasks), list(models)
    for task in task_names:
        demo_task(task)
    for model in model_names:
        check_model(model)
    for model in model_names:
        start = time.perf_counter()
        path = bundled_model_path(model)
        print(f"mtlm: model {model}: {path} ({time.perf_counter() - start:.1f}s)")
    out = {}
    for task in task_names:
        start = time.perf_counter()
        out[task] = demo_task_files(task)
        counts = ", ".join(f"{s} {_count_lines(p)}" for s, p in out[task].items())
        print(f"mtlm: demo {task}: {counts} ({time.perf_counter() - start:.1f}s)")
    return out
