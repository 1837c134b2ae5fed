"""Where mtlm writes: an output folder must be writable, and mtlm replaces or deletes only what
it wrote itself, recognised by the marker files it leaves.

- A training run folder holds `experiment_config.json` (written first) and only the names
  a run, `mtlm evaluate` and `mtlm report` write into it.
- An exported model folder holds `mtlm_export.json`, which lists the files of the export.
- A results file of `mtlm evaluate` is a JSON object with `tasks`, `aggregate` and `split`.
- A predictions file of `mtlm predict` has a JSON object per line, each value an object (one
  task's prediction); rows a user wrote hold texts, so they are never taken for one.

Anything else in the way is the user's: mtlm refuses with a ConfigError naming it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mtlm.errors import ConfigError
from mtlm.files import is_staging, write_json

#: The file a run writes first; a folder without it holds no mtlm run.
RUN_MARKER = "experiment_config.json"
#: What a run folder may hold besides staging leftovers: the trainer's files and folders,
#: the fine-tuning stage's, the demo's, the report's and `mtlm evaluate`'s.
_RUN_ENTRIES = re.compile(
    r"^(experiment_config\.json|model|checkpoints|logs|plots|finetuned|metrics\.jsonl"
    r"|eval_results(\.[^/]+)?\.json|validation_results\.json|trivial_results\.json"
    r"|train_summary\.json|report\.md|demo_results\.json)$"
)
#: The file an export writes last, listing the files it wrote.
EXPORT_MARKER = "mtlm_export.json"
_RESULTS_KEYS = {"tasks", "aggregate", "split"}


def check_writable(folder: Path, key: str) -> None:
    """A ConfigError naming `key` unless `folder` exists as a writable folder or can be made
    one (its nearest existing ancestor is a writable folder); it creates nothing."""
    existing = Path(os.path.abspath(folder))
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{key}: {folder} cannot be a folder: {existing} is a file")
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        raise ConfigError(
            f"{key}: {folder} cannot be written: {existing} is on a read-only file system"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}: {folder} cannot be written: no write permission on {existing}")


def foreign_run_entries(folder: Path) -> list[str]:
    """The names in `folder` that no mtlm run writes (all of them without the run marker)."""
    names = sorted(path.name for path in folder.iterdir())
    if RUN_MARKER not in names:
        return names
    return [name for name in names if not (_RUN_ENTRIES.match(name) or is_staging(Path(name)))]


def check_run_folder(folder: Path, key: str, action: str) -> None:
    """A ConfigError naming `key` unless `folder` holds an mtlm run and nothing else, so that
    `action` (what the caller is about to do to it) loses nothing of the user's."""
    foreign = foreign_run_entries(folder)
    if not foreign:
        return
    if RUN_MARKER not in foreign and (folder / RUN_MARKER).is_file():
        raise ConfigError(
            f"{key}: {folder} holds an mtlm run and files that no run writes "
            f"({_names(foreign)}); mtlm will not {action} it: move them or choose another folder"
        )
    raise ConfigError(
        f"{key}: {folder} holds files that are not an mtlm run ({_names(foreign)}, no "
        f"{RUN_MARKER}); mtlm will not {action} it: choose another folder"
    )


def check_export_folder(folder: Path, key: str) -> None:
    """A ConfigError naming `key` unless `folder` is missing, empty, or an earlier export that
    holds only the files it lists."""
    check_writable(folder, key)
    if not folder.exists():
        return
    names = {path.name for path in folder.iterdir()}
    if not names:
        return
    if EXPORT_MARKER not in names:
        raise ConfigError(
            f"{key}: {folder} already holds files ({_names(sorted(names))}) and is not an "
            f"earlier export (no {EXPORT_MARKER}); choose a new or empty folder"
        )
    marker = _read_json(folder / EXPORT_MARKER)
    listed = set(marker.get("files", [])) if isinstance(marker, dict) else set()
    foreign = sorted(names - listed - {EXPORT_MARKER})
    if foreign:
        raise ConfigError(
            f"{key}: {folder} is an earlier export but also holds files it did not write "
            f"({_names(foreign)}); move them or choose another folder"
        )


def write_export_marker(folder: Path, info: dict[str, Any]) -> None:
    """Record in `folder` that mtlm exported it, with the files it holds (written last)."""
    files = sorted(path.name for path in folder.iterdir())
    write_json(folder / EXPORT_MARKER, {**info, "files": files})


def check_results_file(path: Path, key: str) -> None:
    """A ConfigError naming `key` unless `path` is missing or an earlier results file of mtlm
    (which may then be replaced)."""
    _check_replaceable(path, key, "a results file", holds_results)


def check_predictions_file(path: Path, key: str) -> None:
    """A ConfigError naming `key` unless `path` is missing or an earlier predictions file of
    mtlm (which may then be replaced)."""
    _check_replaceable(path, key, "a predictions file", _holds_predictions)


def _check_replaceable(path: Path, key: str, what: str, holds_it: Callable[[Path], bool]) -> None:
    check_writable(path.parent, key)
    if not path.exists():
        return
    if not (path.is_file() and holds_it(path)):
        raise ConfigError(f"{key}: {path} exists and is not {what} of mtlm; choose another path")


def holds_results(path: Path) -> bool:
    """Whether `path` is a results file of mtlm (`eval_results.json`'s shape)."""
    value = _read_json(path)
    return isinstance(value, dict) and _RESULTS_KEYS <= value.keys()


def _holds_predictions(path: Path) -> bool:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return all(
        isinstance(row, dict) and row and all(isinstance(value, dict) for value in row.values())
        for row in rows
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")
