"""Tests for mtlm.demo.packaged: the demo configs ship inside the package, and a checkout's
examples/ links to them rather than holding copies."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest

from mtlm.demo.packaged import demo_config_names, load_demo_config
from mtlm.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_packaged_demo_configs() -> None:
    assert demo_config_names() == ["demo", "demo_text_to_text"]


@pytest.mark.parametrize("name", ["demo", "demo_text_to_text"])
def test_each_packaged_config_trains_bundled_tasks_on_a_bundled_model(name: str) -> None:
    config = load_demo_config(name)
    assert config.model.name_or_path.startswith("bundled:")
    assert [task.name for task in config.tasks] == ["sentiment", "topic", "tweet_intensity", "pos"]
    assert all(task.data.bundled == task.name for task in config.tasks)


def test_examples_link_to_the_packaged_configs_instead_of_copying_them() -> None:
    """One file each: examples/demo*.yaml are links to the package's, so they cannot drift."""
    packaged = Path(str(files("mtlm.demo") / "configs"))
    linked = sorted(path.name for path in EXAMPLES.glob("demo*.yaml"))
    assert linked == [f"{name}.yaml" for name in demo_config_names()]
    for name in linked:
        assert (EXAMPLES / name).is_symlink()
        assert (EXAMPLES / name).resolve() == (packaged / name).resolve()


def test_a_config_file_is_loaded_by_its_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    text = (EXAMPLES / "demo.yaml").read_text(encoding="utf-8")
    path.write_text(text.replace("max_steps: 600", "max_steps: 7"), encoding="utf-8")
    assert load_demo_config(str(path)).training.max_steps == 7


@pytest.mark.parametrize("choice", ["dmeo", "absent.yaml"])
def test_neither_a_packaged_name_nor_a_file_is_a_config_error(choice: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_demo_config(choice)
    assert str(info.value) == (
        f"--config: {choice} is neither a packaged demo config (demo, demo_text_to_text) nor a file"
    )
