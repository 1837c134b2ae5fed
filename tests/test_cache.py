"""Tests for mtlm.cache: where the cache lies."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlm.cache import cache_dir


def test_cache_dir_honours_env_and_defaults_to_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MTLM_CACHE", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x"
    monkeypatch.delenv("MTLM_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "mtlm"
