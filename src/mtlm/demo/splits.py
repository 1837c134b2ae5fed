"""The rows of a demo task shuffled into train, validation and test, and cached as JSONL files
that are rebuilt when the code or the pinned archive that made them changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mtlm.cache import cache_dir
from mtlm.demo.archives import archive_named, fetch_archive
from mtlm.demo.readers.common import GROUP, SEED, Row
from mtlm.demo.tasks import DemoTask, SplitSizes, demo_task
from mtlm.files import staged_directory

__all__ = ["SPLITS", "demo_task_files", "split_rows"]

#: The demo's files, one per split.
SPLITS = ("train", "validation", "test")
# Bump when the demo-data layout or cleaning changes, so caches built by older code rebuild.
_FORMAT = 1
_STAMP_FILE = ".build.json"


def split_rows(rows: list[Row], sizes: SplitSizes, seed: int) -> dict[str, list[Row]]:
    """Shuffle by `seed`, then fill test, validation and train in turn up to their sizes.

    Rows that share a `_group` value move as one unit, and the key is dropped from them; the
    first unit that no longer fits closes a split. Rows without the key are units of one.
    """
    units: dict[Any, list[Row]] = {}
    for index, row in enumerate(rows):
        key = (GROUP, row[GROUP]) if GROUP in row else index
        units.setdefault(key, []).append({k: v for k, v in row.items() if k != GROUP})
    shuffled = list(units.values())
    order = np.random.default_rng(seed).permutation(len(shuffled))
    parts: dict[str, list[Row]] = {split: [] for split in SPLITS}
    fill = iter(("test", "validation", "train"))
    split: str | None = next(fill)
    for i in order:
        unit = shuffled[i]
        while split is not None and len(parts[split]) + len(unit) > getattr(sizes, split):
            split = next(fill, None)
        if split is None:
            break
        parts[split].extend(unit)
    return parts


def _write_jsonl(path: Path, rows: list[Row]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _stamp(task: DemoTask) -> str:
    # What the files were built from; a mismatch (new code or new pin) triggers a rebuild.
    archive = archive_named(task.archive)
    info = {
        "format": _FORMAT,
        "archive": archive.filename,
        "sha256": archive.sha256,
        "seed": SEED,
        "sizes": task.sizes._asdict(),
    }
    return json.dumps(info, sort_keys=True) + "\n"


def demo_task_files(task: str) -> dict[str, Path]:
    """Return the train/validation/test JSONL files of demo `task`, building them if needed."""
    spec = demo_task(task)
    folder = cache_dir() / "demo_data" / task
    files = {split: folder / f"{split}.jsonl" for split in SPLITS}
    stamp = _stamp(spec)
    stamp_file = folder / _STAMP_FILE
    if all(p.is_file() for p in files.values()) and stamp_file.is_file():
        if stamp_file.read_text(encoding="utf-8") == stamp:
            return files
    rows = spec.read(fetch_archive(spec.archive))
    parts = split_rows(rows, spec.sizes, SEED)
    with staged_directory(folder) as built:
        for split in SPLITS:
            _write_jsonl(built / f"{split}.jsonl", parts[split])
        (built / _STAMP_FILE).write_text(stamp, encoding="utf-8")
    return files
