"""The demo configs that ship inside the package (`configs/*.yaml`), found through
importlib.resources so that `mtlm demo` reads them from an installed wheel as from a checkout.

A checkout's `examples/demo.yaml` and `examples/demo_text_to_text.yaml` are symbolic links to
these files: one file each, which cannot drift from what the wheel ships.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path
from typing import TYPE_CHECKING

from mtlm.errors import ConfigError

if TYPE_CHECKING:
    # importlib.resources.abc is new in Python 3.11; mtlm runs on 3.10 too.
    from importlib.resources.abc import Traversable

    from mtlm.config import ExperimentConfig

__all__ = ["DEFAULT_DEMO_CONFIG", "demo_config_names", "load_demo_config"]

#: What `mtlm demo` trains when no --config is given.
DEFAULT_DEMO_CONFIG = "demo"


def _folder() -> Traversable:
    return files("mtlm.demo") / "configs"


def demo_config_names() -> list[str]:
    """The packaged demo configs, by their file names without `.yaml`."""
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in _folder().iterdir()
        if entry.name.endswith(".yaml")
    )


def load_demo_config(choice: str = DEFAULT_DEMO_CONFIG) -> ExperimentConfig:
    """The config `mtlm demo --config` names: a packaged demo config by name, or a YAML file."""
    # Imported here: every `mtlm` command lists the names above, and only the demo reads one.
    from mtlm.config import load_config

    names = demo_config_names()
    if choice in names:
        with as_file(_folder() / f"{choice}.yaml") as path:
            return load_config(path)
    if not Path(choice).is_file():
        raise ConfigError(
            f"--config: {choice} is neither a packaged demo config ({', '.join(names)}) nor a file"
        )
    return load_config(choice)
