"""Atomic, durable writes: a reader never sees a half-written file or folder, even after a kill
or a power cut, and what mtlm writes gets the user's permissions (the umask), as any tool's.

A file or folder is written under a hidden staging name beside its target
(`.NAME.staging-HEX`), flushed to disk with its folder, and renamed into place. A run killed
mid-write leaves only such staging names, which `discard_staging` recognises and removes.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_STAGING_NAME = re.compile(r"^\..+\.staging-[0-9a-f]{16}$")


def staging_path(target: Path) -> Path:
    """A fresh hidden name beside `target` to write it under before it is renamed into place."""
    return target.with_name(f".{target.name}.staging-{secrets.token_hex(8)}")


def is_staging(path: Path) -> bool:
    """Whether `path` is named as `staging_path` names what a write left behind."""
    return bool(_STAGING_NAME.match(path.name))


def discard_staging(folder: Path) -> list[Path]:
    """Remove what killed writes left in `folder` (staging files and folders); return them."""
    if not folder.is_dir():
        return []
    found = [path for path in folder.iterdir() if is_staging(path)]
    for path in found:
        remove_path(path)
    return found


def remove_path(path: Path) -> None:
    """Delete a file, a link (not what it points to) or a folder with everything in it."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """A path beside `path` to write the file at; it replaces `path` when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_path(path)
    try:
        yield staging
        _fsync(staging)
        os.replace(staging, path)
        _fsync(path.parent)
    finally:
        staging.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    with staged_file(path) as staging:
        # Created by open(), so with mode 0666 less the umask, as any other tool's file.
        staging.write_text(text, encoding="utf-8")


def write_json(path: Path, value: Any) -> None:
    """Write `value` as indented JSON, atomically."""
    write_text(path, json.dumps(value, indent=2) + "\n")


def read_json(path: Path) -> Any:
    """The JSON value in `path` (a file mtlm wrote)."""
    return json.loads(path.read_text(encoding="utf-8"))


@contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """A new empty folder beside `target` that replaces `target` when the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_path(target)
    staging.mkdir()  # mode 0777 less the umask, unlike mkdtemp's 0700
    try:
        yield staging
        _settle_tree(staging)
        replace_directory(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_directory(source: Path, target: Path) -> None:
    """Move the folder `source` to `target`, replacing an old `target` in one step where the
    file system can; the old folder is removed once the new one is in place.

    POSIX `rename` replaces a folder only by an empty one, so no POSIX call swaps in a
    non-empty folder atomically; two renames (old aside, new in) leave a moment with no
    `target`. Switching a symbolic link would be atomic, but would make every saved folder a
    link. Linux's `renameat2(RENAME_EXCHANGE)` swaps two names in one step (ext4, xfs, btrfs,
    tmpfs, ...): `target` names the old folder, then the new, never nothing. Where it is
    missing (another OS, a file system without it), the two renames are the fallback.
    """
    if target.exists() or not _rename_into_empty_place(source, target):
        _replace_existing(source, target)
    _fsync(target.parent)


def _replace_existing(source: Path, target: Path) -> None:
    if _exchange(source, target):
        remove_path(source)  # now the old folder (or a link to it, which is all that goes)
    else:
        old = staging_path(target)
        os.replace(target, old)
        os.replace(source, target)
        remove_path(old)


def _rename_into_empty_place(source: Path, target: Path) -> bool:
    """Rename `source` to a `target` that did not exist; False if another writer (a process
    filling the same cache entry) put a `target` in place meanwhile."""
    try:
        os.replace(source, target)
    except OSError as error:
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST) and target.exists():
            return False
        raise
    return True


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths atomically; False where this system or file system cannot."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    at_cwd, rename_exchange = -100, 2  # AT_FDCWD and RENAME_EXCHANGE of <fcntl.h>, <stdio.h>
    if renameat2(at_cwd, os.fsencode(first), at_cwd, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


@functools.cache
def _renameat2() -> Any:
    """glibc's `renameat2` (2.28 and later), or None."""
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    function.restype = ctypes.c_int
    return function


def _fsync(path: Path) -> None:
    """Flush a file's or folder's content (a folder's: its entries) to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _settle_tree(folder: Path) -> None:
    """Give every file and folder under `folder` the mode a new one gets there (the umask's:
    some writers, safetensors among them, create theirs 0600 through a temporary file), and
    flush each to the disk, `folder` itself last, before it is renamed into place."""
    file_mode, folder_mode = _new_modes(folder)
    for root, _folders, files in os.walk(folder, topdown=False):
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, file_mode)
                _fsync(Path(path))
        os.chmod(root, folder_mode)
        _fsync(Path(root))


def _new_modes(folder: Path) -> tuple[int, int]:
    """The permission bits a new file and a new folder get in `folder` (the umask applied by
    the kernel itself: reading the umask would mean setting it, which races other threads)."""
    probe = staging_path(folder / "mode")
    os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        file_mode = probe.stat().st_mode & 0o777
    finally:
        probe.unlink()
    probe.mkdir()
    try:
        folder_mode = probe.stat().st_mode & 0o777
    finally:
        probe.rmdir()
    return file_mode, folder_mode
