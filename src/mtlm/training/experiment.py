"""An experiment built from its config: the tasks' tokenized data and the model that trains on it.

Building checks what the config asks of the model (task kinds it serves, lengths that fit its
positions) and names the splits before any data is read, then reads and tokenizes every task
(so bad data fails before anything is written) and builds the model from a fixed seed. The
Trainer trains what this builds, or a model and data built elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import PreTrainedTokenizerBase

from mtlm.bundled import resolve_model_name
from mtlm.cache import cache_dir
from mtlm.config import ExperimentConfig, TaskSpec
from mtlm.data.features import TaskData, load_task_data
from mtlm.data.sources import check_split_names
from mtlm.modeling.backbones import backbone_config, check_task_kinds, model_family
from mtlm.modeling.lengths import fit_task_lengths, position_limit
from mtlm.modeling.multitask_model import MultiTaskModel, load_tokenizer
from mtlm.training.processes import main_process_first


@dataclass
class Experiment:
    """A model, the data of its tasks (keyed by the config's task names) and what building them
    found worth saying (splits derived or missing, lengths lowered to the model's)."""

    model: MultiTaskModel
    data: dict[str, TaskData]
    notes: list[str] = field(default_factory=list)


def build_experiment(
    config: ExperimentConfig,
    *,
    model: MultiTaskModel | None = None,
    data: dict[str, TaskData] | None = None,
    accelerator: Accelerator | None = None,
) -> Experiment:
    """Read and tokenize the config's data and build its model, except a `model` or `data`
    given. A task whose default `max_length` exceeds the model's positions is built with that
    many instead, with a note. Of several processes (`accelerator`'s, or those a launcher
    has already joined in `torch.distributed`), the main one fills the features cache before
    the others read it.

    Without an `accelerator` this starts none, so that the launcher of another framework
    (the HF Trainer, Lightning) joins the processes its own way; processes it has not joined
    yet each read the data, the cache's atomic writes keeping them apart."""
    check_split_names(config.training)
    if model is not None and data is not None:
        return Experiment(model, data)
    set_seed(config.training.seed)
    location = resolve_model_name(config.model.name_or_path)
    # A task the model cannot serve, or longer than its positions, must fail before minutes of
    # tokenizing.
    model_config = backbone_config(location, config.model.revision)
    family = model_family(model_config)
    check_task_kinds(family, config.tasks, config.model.name_or_path)
    tokenizer = load_tokenizer(location, config.model.revision)
    specs, notes = fit_task_lengths(
        config.tasks, family, position_limit(model_config, tokenizer), config.model.name_or_path
    )
    if data is None:
        data = _load_data(config, tokenizer, specs, accelerator)
        notes += [note for task_data in data.values() for note in task_data.notes]
    # Seed again so the heads start the same whatever loading the data consumed.
    set_seed(config.training.seed)
    model = model or MultiTaskModel.from_backbone(
        config.model.name_or_path,
        {name: task_data.task for name, task_data in data.items()},
        config.model.revision,
        tokenizer,
        config.sharing,
        config.model.dtype,
    )
    return Experiment(model, data, notes)


def _load_data(
    config: ExperimentConfig,
    tokenizer: PreTrainedTokenizerBase,
    specs: list[TaskSpec],
    accelerator: Accelerator | None,
) -> dict[str, TaskData]:
    features_cache = Path(config.cache_dir) if config.cache_dir else cache_dir() / "features"
    # The main process fills the features cache; the others then read it, not race to write.
    with main_process_first(accelerator):
        return {spec.name: load_task_data(spec, tokenizer, features_cache) for spec in specs}
