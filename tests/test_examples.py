"""Every example config in examples/ is valid as it stands."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlm.config import load_config

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


def test_there_are_examples():
    assert any(path.name == "demo.yaml" for path in EXAMPLES)


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_config_is_valid(path):
    config = load_config(path)
    # Offline examples use bundled data; the others name hub datasets, never local files.
    assert config.tasks and all(task.data.bundled or task.data.hub for task in config.tasks)
