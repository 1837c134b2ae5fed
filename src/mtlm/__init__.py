"""mtlm: multi-task fine-tuning of transformer language models.

The public names load lazily, so that `mtlm --help` and the error types do not pay for
importing torch and transformers.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from mtlm.errors import ConfigError, DataError, MtlmError

__version__ = "0.1.0"

_LAZY = {
    "ExperimentConfig": "mtlm.config",
    "load_config": "mtlm.config",
    "MultiTaskModel": "mtlm.modeling.multitask_model",
    "Trainer": "mtlm.training.trainer",
}

if TYPE_CHECKING:
    from mtlm.config import ExperimentConfig, load_config
    from mtlm.modeling.multitask_model import MultiTaskModel
    from mtlm.training.trainer import Trainer


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mtlm' has no attribute {name!r}")


__all__ = [
    "ConfigError",
    "DataError",
    "ExperimentConfig",
    "MtlmError",
    "MultiTaskModel",
    "Trainer",
    "load_config",
]
