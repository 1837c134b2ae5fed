"""Atomic writes: the user's permissions, flushed to disk before the rename, and a replaced
folder that never goes missing."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mtlm import files
from mtlm.files import (
    discard_staging,
    replace_directory,
    staged_directory,
    staging_path,
    write_text,
)


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_files_and_folders_get_the_users_umask(umask, tmp_path):
    write_text(tmp_path / "a.json", "{}")
    with staged_directory(tmp_path / "model") as staging:
        write_text(staging / "config.json", "{}")
        # safetensors writes through a temporary file of its own, created 0600
        save_file({"w": torch.zeros(2)}, staging / "model.safetensors")
        with tempfile.TemporaryDirectory(dir=staging) as scratch:  # created 0700
            (Path(scratch) / "adapter").write_text("a")
            shutil.copytree(scratch, staging / "adapters")
    assert mode(tmp_path / "a.json") == 0o666 & ~umask
    for folder in (tmp_path / "model", tmp_path / "model" / "adapters"):
        assert mode(folder) == 0o777 & ~umask
    for name in ("config.json", "model.safetensors", "adapters/adapter"):
        assert mode(tmp_path / "model" / name) == 0o666 & ~umask, name


def test_a_file_and_its_folder_are_flushed_before_and_after_the_rename(tmp_path, monkeypatch):
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    def replace(source, target) -> None:
        events.append(("rename", str(target)))
        real_replace(source, target)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace)
    write_text(tmp_path / "out.txt", "text")
    assert [kind for kind, _ in events] == ["fsync", "rename", "fsync"]
    assert Path(events[0][1]).name.startswith(".out.txt.staging-")
    assert events[2][1] == str(tmp_path)

    events.clear()
    with staged_directory(tmp_path / "folder") as staging:
        (staging / "inner").mkdir()
        (staging / "inner" / "weights").write_bytes(b"w")
    flushed = [Path(path).name for kind, path in events if kind == "fsync"]
    # every file, then its folders bottom up, before the folder is renamed in; then the parent
    assert flushed[:3] == ["weights", "inner", staging.name]
    assert flushed[-1] == tmp_path.name
    assert (tmp_path / "folder" / "inner" / "weights").read_bytes() == b"w"


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two renames"])
def test_replacing_a_folder_keeps_only_the_new_content(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(files, "_renameat2", lambda: None)
    target = tmp_path / "model"
    for version in ("old", "new"):
        with staged_directory(target) as staging:
            (staging / "version").write_text(version)
            (staging / version).write_text("")
    assert sorted(path.name for path in target.iterdir()) == ["new", "version"]
    assert [path.name for path in tmp_path.iterdir()] == ["model"]


def test_a_replaced_folder_is_never_missing(tmp_path):
    if files._renameat2() is None:
        pytest.skip("no renameat2 here: the two-rename fallback has a moment without the folder")
    target = tmp_path / "model"
    with staged_directory(target) as staging:
        (staging / "version").write_text("0")
    missing, stop = [], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if not (target / "version").is_file():
                missing.append(True)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for version in range(1, 200):
            source = staging_path(target)
            source.mkdir()
            (source / "version").write_text(str(version))
            replace_directory(source, target)
    finally:
        stop.set()
        watcher.join()
    assert not missing
    assert (target / "version").read_text() == "199"
    assert [path.name for path in tmp_path.iterdir()] == ["model"]


def test_a_folder_another_writer_put_in_place_first_is_replaced(tmp_path, monkeypatch):
    """Two processes filling one cache entry: the other's folder lands between this one's
    check that the place is free and its rename, which POSIX then refuses; this one's folder
    replaces it instead of failing."""
    target = tmp_path / "entry"
    source = staging_path(target)
    source.mkdir()
    (source / "version").write_text("mine")
    real_replace, raced = os.replace, []

    def replace_after_the_other_writer(first, second):
        if not raced:
            raced.append(True)
            Path(second).mkdir()
            (Path(second) / "version").write_text("theirs")
        return real_replace(first, second)

    monkeypatch.setattr(files.os, "replace", replace_after_the_other_writer)
    replace_directory(source, target)
    assert raced and (target / "version").read_text() == "mine"
    assert [path.name for path in tmp_path.iterdir()] == ["entry"]


def test_staging_left_by_a_killed_write_is_recognised_and_removed(tmp_path):
    (tmp_path / "keep").mkdir()
    (tmp_path / ".hidden-but-mine").write_text("user")
    staging_path(tmp_path / "model").mkdir()
    staging_path(tmp_path / "eval_results.json").write_text("{")
    removed = discard_staging(tmp_path)
    assert len(removed) == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == [".hidden-but-mine", "keep"]
