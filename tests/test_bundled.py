"""Tests for mtlm.bundled: `bundled:` names go to the demo package, other names pass through."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlm.bundled import bundled_task_files, resolve_model_name
from mtlm.errors import ConfigError


@pytest.mark.parametrize(
    "name", ["bert-base-uncased", "HuggingFaceTB/SmolLM2-135M", "/models/my-bert", "minilm"]
)
def test_resolve_model_name_leaves_ordinary_names(name: str, tmp_cache: Path) -> None:
    assert resolve_model_name(name) == name
    assert not tmp_cache.exists()


def test_resolve_model_name_uses_cached_bundled_folder(tmp_cache: Path) -> None:
    folder = tmp_cache / "models" / "minilm"
    folder.mkdir(parents=True)
    assert resolve_model_name("bundled:minilm") == str(folder)


def test_unknown_bundled_names_raise_config_errors_naming_the_known_ones(tmp_cache: Path) -> None:
    known = "known models: bundled:minilm, bundled:smollm2"
    with pytest.raises(ConfigError, match=f"model.name_or_path: .*'bundled:bert'.*{known}"):
        resolve_model_name("bundled:bert")
    with pytest.raises(ConfigError, match="data.bundled: .*'sentimnt'.*sentiment"):
        bundled_task_files("sentimnt")
    assert not tmp_cache.exists()
