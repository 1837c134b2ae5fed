"""mtlm: multi-task fine-tuning of transformer language models."""

from mtlm.config import ExperimentConfig, load_config
from mtlm.errors import ConfigError, DataError, MtlmError
from mtlm.modeling.multitask_model import MultiTaskModel
from mtlm.training.trainer import Trainer

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "ExperimentConfig",
    "MtlmError",
    "MultiTaskModel",
    "Trainer",
    "load_config",
]
