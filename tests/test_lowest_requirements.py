"""The lowest-bounds test run's requirements: every lower bound of what mtlm needs, pinned."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / ".ci"))

from lowest_requirements import pinned, requirements  # noqa: E402

PROJECT = {
    "dependencies": ["torch>=2.4", "torchjd>=0.18,<0.19", "pydantic-core", "numpy>=1.23.2"],
    "optional-dependencies": {
        "balancing": ["torchjd[full]>=0.18,<0.19"],
        "demo": ["gguf>=0.10"],
        "docs": ["mkdocs>=1.6"],
        "test": ["mtlm[balancing, demo]", "pytest>=8"],
    },
}


def test_each_lower_bound_is_pinned_and_torch_is_left_to_the_pinned_build():
    assert pinned("numpy>=1.23.2") == "numpy==1.23.2"
    assert pinned("torchjd[full]>=0.18,<0.19") == "torchjd[full]==0.18"
    assert pinned("pydantic-core") == "pydantic-core"
    assert pinned("torch>=2.4") is None


def test_the_extras_the_tests_use_are_needed_and_the_test_tools_are_not_pinned():
    needed, tools = requirements(PROJECT)
    assert needed == [
        "torch>=2.4",
        "torchjd>=0.18,<0.19",
        "pydantic-core",
        "numpy>=1.23.2",
        "torchjd[full]>=0.18,<0.19",
        "gguf>=0.10",
    ]
    assert tools == ["pytest>=8"]
