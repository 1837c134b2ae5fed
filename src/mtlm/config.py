"""The experiment configuration: pydantic models of the YAML file, with errors that name the
file, the line and the key.

Unknown keys are rejected (a typo must not be ignored silently) and the message suggests the
nearest valid key. Each task's options are those of its kind (`mtlm.tasks.KINDS`), and so are
the sampler's (`mtlm.training.samplers.SAMPLERS`), the balancer's
(`mtlm.training.balancers.BALANCERS`) and the sharing's (`mtlm.modeling.sharing.SHARING`): each
such section is validated by the option model of the kind its `kind` names, a key of another
kind being an error that names the kinds that take it. Validating a config imports neither
torch nor transformers, so that a mistake in it shows in a fraction of a second.
"""

from __future__ import annotations

import functools
import json
import operator
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, get_args

import yaml
from pydantic import (
    BaseModel,
    Field,
    PlainValidator,
    SerializeAsAny,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from mtlm.errors import ConfigError
from mtlm.modeling.sharing import SHARING, SharingSpec
from mtlm.suggest import suggestion
from mtlm.tasks import KINDS
from mtlm.tasks.presets import PresetError, with_preset
from mtlm.tasks.spec import TASK_NAME, DataSpec, StrictModel, TaskSpec
from mtlm.training.balancers import BALANCERS, BalancerSpec
from mtlm.training.samplers import SAMPLERS, SamplerSpec

__all__ = [
    "BalancerSpec",
    "DataSpec",
    "ExperimentConfig",
    "SamplerSpec",
    "SharingSpec",
    "StrictModel",
    "TaskSpec",
    "balancer_spec",
    "config_from_dict",
    "load_config",
    "sampler_spec",
    "saved_sharing_spec",
    "saved_task_spec",
    "sharing_spec",
    "task_alone",
    "task_spec",
]


class _Family(NamedTuple):
    """The kinds of one section: their registry (a name -> class with `options`), the kind a
    section that names none gets, and how a message says that a kind takes no such key."""

    registry: Mapping[str, Any]
    default: str | None
    not_taken: str


#: Every section whose options depend on its `kind`, by the base of its kinds' option models.
_FAMILIES: dict[type[BaseModel], _Family] = {
    TaskSpec: _Family(KINDS, None, "{kind} tasks take no {key!r}; {owners} tasks do"),
    SamplerSpec: _Family(
        SAMPLERS, "proportional", "{kind} samplers take no {key!r}; {owners} samplers do"
    ),
    BalancerSpec: _Family(
        BALANCERS, "static", "{kind} balancers take no {key!r}; {owners} balancers do"
    ),
    SharingSpec: _Family(SHARING, "hard", "{kind} sharing takes no {key!r}; {owners} sharing does"),
}


def _kind_models(base: type[BaseModel]) -> list[type[BaseModel]]:
    """The option models of the kinds registered now under `base`."""
    return [kind.options for kind in _FAMILIES[base].registry.values()]


@functools.lru_cache(maxsize=64)
def _adapter(models: tuple[type[BaseModel], ...]) -> TypeAdapter:
    if len(models) == 1:
        return TypeAdapter(models[0])
    union = functools.reduce(operator.or_, models)
    return TypeAdapter(Annotated[union, Field(discriminator="kind")])


def _of_a_kind(base: type[BaseModel]) -> Any:
    """A field holding the options of one kind of `base`'s family: the model of the kind its
    `kind` names, looked up in the family's registry when the config is validated (so a kind
    registered after this module was imported is known)."""
    family = _FAMILIES[base]

    def validate(value: Any) -> Any:
        if isinstance(value, base):
            return value
        if isinstance(value, dict) and family.default is not None:
            value = {"kind": family.default, **value}
        return _adapter(tuple(_kind_models(base))).validate_python(value)

    return SerializeAsAny[Annotated[base, PlainValidator(validate)]]


def _default(base: type[BaseModel]) -> Any:
    """A factory of the options of the kind a section of `base`'s family gets by default."""
    family = _FAMILIES[base]
    return lambda: family.registry[family.default].options(kind=family.default)


#: A task of any kind: the options model of the kind its `kind` names.
AnyTask = _of_a_kind(TaskSpec)
#: A sampler of any kind (proportional when it names none).
AnySampler = _of_a_kind(SamplerSpec)
#: A balancer of any kind (static when it names none).
AnyBalancer = _of_a_kind(BalancerSpec)
#: A sharing of any kind (hard when it names none).
AnySharing = _of_a_kind(SharingSpec)


class FinetuneSpec(StrictModel):
    """The second stage of two-stage training (MT-DNN, Liu et al., 2019): after the multi-task
    run, each task trains alone from the multi-task weights, in a LoRA adapter of its own over
    the shared backbone (with its head), so that serving every task costs one backbone and T
    small adapters rather than T backbones. Each task stops at its best validation score."""

    num_epochs: float | None = Field(3.0, gt=0.0)
    max_steps: int | None = Field(None, gt=0)
    learning_rate: float = Field(5e-4, gt=0.0)
    head_learning_rate: float | None = Field(None, gt=0.0)
    warmup_ratio: float = Field(0.06, ge=0.0, le=1.0)
    early_stopping_patience: int | None = Field(2, gt=0)
    r: int = Field(16, gt=0)
    alpha: float = Field(32.0, gt=0.0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    # peft's "all-linear": every linear layer of the backbone gets an adapter.
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class TrainingSpec(StrictModel):
    """Optimisation, schedule, evaluation and checkpointing of one run."""

    output_dir: str = "runs/mtlm"
    overwrite_output_dir: bool = False
    seed: int = 42
    max_steps: int | None = Field(None, gt=0)
    num_epochs: float | None = Field(None, gt=0.0)
    batch_size: int = Field(16, gt=0)
    eval_batch_size: int = Field(64, gt=0)
    learning_rate: float = Field(5e-5, gt=0.0)
    head_learning_rate: float | None = Field(None, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_ratio: float = Field(0.1, ge=0.0, le=1.0)
    max_grad_norm: float | None = Field(1.0, gt=0.0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    step_mode: Literal["sampled", "joint"] = "sampled"
    sampler: AnySampler = Field(default_factory=_default(SamplerSpec))
    balancer: AnyBalancer = Field(default_factory=_default(BalancerSpec))
    joint_groups: list[list[str]] | None = None
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    logging_steps: int = Field(10, gt=0)
    # `steps`: validate every eval_steps steps (if set); `epoch`: at the end of every epoch.
    eval_strategy: Literal["steps", "epoch"] = "steps"
    eval_steps: int | None = Field(None, gt=0)
    save_steps: int | None = Field(None, gt=0)
    save_total_limit: int = Field(2, gt=0)
    load_best_model_at_end: bool = True
    # Stop after this many validations in a row that do not beat the best validation aggregate
    # by more than early_stopping_threshold (as transformers' EarlyStoppingCallback); the
    # learning-rate schedule stays planned for max_steps / num_epochs.
    early_stopping_patience: int | None = Field(None, gt=0)
    early_stopping_threshold: float = Field(0.0, ge=0.0)
    length_group_chunk: int = Field(50, gt=0)
    eval_split: str = "validation"
    final_eval_split: str = "test"
    progress_bar: bool = True
    finetune: FinetuneSpec | None = None


class ModelSpec(StrictModel):
    """The pretrained backbone: a hub name, a local folder, or `bundled:<name>`."""

    name_or_path: str
    revision: str | None = None
    # The weights' dtype, as transformers' `dtype`: `auto` keeps the checkpoint's. Half
    # precision halves the memory of the weights (and of the optimizer's moments); autocast
    # during training stays `training.mixed_precision`'s business.
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "float32"


class ExperimentConfig(StrictModel):
    """One experiment: a backbone, its tasks and how to train them."""

    model: ModelSpec
    tasks: list[AnyTask] = Field(min_length=1)
    sharing: AnySharing = Field(default_factory=_default(SharingSpec))
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    cache_dir: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        names = [task.name for task in self.tasks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"task names must be unique; repeated: {', '.join(duplicates)}")
        training = self.training
        balancer = training.balancer
        if training.step_mode == "sampled" and balancer.needs_joint_steps:
            raise ValueError(
                f"training.balancer.kind {balancer.kind!r} needs training.step_mode: "
                "joint (it weighs the losses of all tasks in one step)"
            )
        groups = training.joint_groups or []
        if balancer.keeps_per_task_state and any(sorted(g) != sorted(names) for g in groups):
            raise ValueError(
                f"training.joint_groups: training.balancer.kind {balancer.kind!r} keeps "
                "per-task state, so every joint step must hold every task; drop joint_groups or "
                "choose a balancer that keeps none"
            )
        if (
            training.early_stopping_patience is not None
            and training.eval_strategy == "steps"
            and training.eval_steps is None
        ):
            raise ValueError(
                "training.early_stopping_patience counts validations: set training.eval_steps "
                "or training.eval_strategy: epoch"
            )
        if training.finetune is not None and self.sharing.backbone_per_task:
            raise ValueError(
                "training.finetune continues each task alone in an adapter over the shared "
                f"backbone; with sharing {self.sharing.kind} every task already has a backbone "
                "of its own"
            )
        training.sampler.check_tasks(names)
        mentioned = [name for group in training.joint_groups or [] for name in group]
        unknown = [name for name in mentioned if name not in names]
        if unknown:
            raise ValueError(
                f"training.joint_groups: no task named {unknown[0]!r}"
                f"{suggestion(unknown[0], names)}"
            )
        if training.joint_groups is not None:
            grouped = {name for group in training.joint_groups for name in group}
            left_out = [name for name in names if name not in grouped]
            if left_out or not all(training.joint_groups):
                raise ValueError(
                    "training.joint_groups: every group needs a task and every task a group"
                    + (f" (not in any group: {', '.join(left_out)})" if left_out else "")
                )
        return self

    def task(self, name: str) -> TaskSpec:
        """The spec of the task called `name`."""
        for spec in self.tasks:
            if spec.name == name:
                return spec
        raise ConfigError(f"no task named {name!r}{suggestion(name, [t.name for t in self.tasks])}")

    def to_json(self) -> str:
        """The config as JSON, stable enough to hash and to store next to a model."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)


def task_alone(config: ExperimentConfig, task: str) -> dict[str, Any]:
    """The dumped config of `task` trained alone with the settings of the multi-task `config`:
    loss weight 1 (alone it would only rescale the gradient), the seed the multi-task run gives
    that task's batch stream, one task per step, and no sampler, balancer, joint groups,
    fine-tuning stage or step checkpoints. The caller sets its sharing, budget and folder."""
    raw = config.model_dump(mode="json")
    names = [spec["name"] for spec in raw["tasks"]]
    index = names.index(task)
    raw["tasks"] = [{**raw["tasks"][index], "loss_weight": 1.0}]
    raw["training"].update(
        seed=raw["training"]["seed"] + index,
        save_steps=None,
        step_mode="sampled",
        sampler={},
        balancer={},
        joint_groups=None,
        finetune=None,
    )
    return raw


def load_config(path: str | Path, base_dir: str | Path | None = None) -> ExperimentConfig:
    """Read and validate a YAML config; relative data paths resolve against its folder.
    Errors name the file, the line and the key path."""
    path = Path(path)
    try:
        raw, document = _read_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", error)
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a mapping of keys to values")
    raw = _with_presets(raw, str(path), document)
    config = _validated(ExperimentConfig, raw, str(path), document)
    _resolve_data_paths(config, Path(base_dir) if base_dir else path.parent)
    return config


def config_from_dict(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a config given as a dict; errors name `source` and the key path."""
    return _validated(ExperimentConfig, _with_presets(raw, source), source)


def task_spec(raw: dict[str, Any], source: str = "task") -> TaskSpec:
    """Validate one task entry of any kind (the model of its kind's options, its preset
    filled in); errors name `source` and the key."""
    try:
        raw = with_preset(raw)
    except PresetError as error:
        raise ConfigError(f"{source}: {error.key}: {error}") from None
    return _validated(AnyTask, raw, source)


def sampler_spec(raw: dict[str, Any], source: str = "training.sampler") -> SamplerSpec:
    """Validate a sampler section (the model of its kind's options)."""
    return _validated(AnySampler, raw, source)


def balancer_spec(raw: dict[str, Any], source: str = "training.balancer") -> BalancerSpec:
    """Validate a balancer section (the model of its kind's options)."""
    return _validated(AnyBalancer, raw, source)


def sharing_spec(raw: dict[str, Any], source: str = "sharing") -> SharingSpec:
    """Validate a sharing section (the model of its kind's options)."""
    return _validated(AnySharing, raw, source)


def saved_task_spec(raw: dict[str, Any], source: str) -> TaskSpec:
    """A task spec as a saved model holds it. Models saved before each kind had options of its
    own hold every kind's keys, which had no effect on the other kinds: those are dropped."""
    return task_spec(_own_keys(raw, KINDS), source)


def saved_sharing_spec(raw: dict[str, Any], source: str) -> SharingSpec:
    """A sharing spec as a saved model holds it; as for tasks, the keys that models saved
    before each sharing kind had options of its own hold for the other kinds are dropped."""
    return _validated(AnySharing, _own_keys({"kind": "hard", **raw}, SHARING), source)


def _own_keys(raw: dict[str, Any], registry: Mapping[str, Any]) -> dict[str, Any]:
    """`raw` without the keys that only other kinds than its own take."""
    kind = registry.get(raw.get("kind"))
    if kind is None:
        return raw
    others = {key for other in registry.values() for key in other.options.model_fields}
    taken = kind.options.model_fields
    return {key: value for key, value in raw.items() if key in taken or key not in others}


class _ConfigLoader(yaml.SafeLoader):
    """YAML as a config reads it: only true and false are booleans (as in YAML 1.2), so that
    `yes`, `no`, `on` and `off` (labels, say) stay the text that was written."""


_BOOL = "tag:yaml.org,2002:bool"
_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ConfigLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _read_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """The document's value, and its node tree (which knows the line of every key)."""
    loader = _ConfigLoader(text)
    try:
        document = loader.get_single_node()
        return (loader.construct_document(document) if document else None), document
    finally:
        loader.dispose()


def _with_presets(raw: Any, source: str, document: yaml.Node | None = None) -> Any:
    """The config with each task's data preset filled in (`mtlm.tasks.presets`), before it is
    validated: a preset decides the task's kind, and so the model its options are read by."""
    tasks = raw.get("tasks") if isinstance(raw, dict) else None
    if not isinstance(tasks, list):
        return raw
    filled = []
    for index, task in enumerate(tasks):
        try:
            filled.append(with_preset(task))
        except PresetError as error:
            keys = ["tasks", index, *error.key.split(".")]
            line = _line(document, keys)
            where = source + (f", line {line}" if line else "")
            raise ConfigError(f"{where}: {_key_path(keys, raw)}: {error}") from None
    return {**raw, "tasks": filled}


def _validated(
    model: Any, raw: dict[str, Any], source: str, document: yaml.Node | None = None
) -> Any:
    try:
        return TypeAdapter(model).validate_python(raw)
    except ValidationError as error:
        raise ConfigError(_describe(error, raw, source, model, document)) from None


def _resolve_data_paths(config: ExperimentConfig, base: Path) -> None:
    for task in config.tasks:
        for field in ("train", "validation", "test", "path"):
            value = getattr(task.data, field)
            if value:
                where = Path(value).expanduser()
                if not where.is_absolute():
                    where = (base / where).resolve()
                setattr(task.data, field, str(where))
        # A hub name that is a folder (next to the config, if relative) is a local copy.
        if task.data.hub:
            where = Path(task.data.hub).expanduser()
            local = where if where.is_absolute() else base / where
            if local.is_dir():
                task.data.hub = str(local.resolve())


def _describe(
    error: ValidationError, raw: Any, source: str, root: Any, document: yaml.Node | None
) -> str:
    """One line: the source (and line), the key path and what is wrong with the first error."""
    first = error.errors()[0]
    keys, models = _walk(list(first["loc"]), _models_in(root))
    kind = first["type"]
    if kind == "extra_forbidden":
        parent = _walk(list(first["loc"])[:-1], _models_in(root))[1]
        message = _unknown_key(str(keys[-1]), parent[0] if len(parent) == 1 else None)
    elif kind == "missing":
        message = "required key is missing"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        field = first["ctx"]["discriminator"].strip("'")
        keys.append(field)
        tags = [_tag_of(model) for model in models]
        tag = first["ctx"].get("tag")
        message = (
            f"unknown {field} {tag!r}{suggestion(tag, tags)}"
            if tag is not None
            else f"required key is missing (one of: {', '.join(tags)})"
        )
    elif kind == "option":
        keys.append(first["ctx"]["key"])
        message = first["ctx"]["message"]
    elif kind in ("model_type", "model_attributes_type") and _written_as_kind(first, keys, models):
        message = (
            f"write a mapping, such as `{keys[-1]}: {{kind: {first['input']}}}` "
            f"(got {first['input']!r})"
        )
    else:
        message = first["msg"].removeprefix("Value error, ")
        if "input" in first and not isinstance(first["input"], dict | list):
            message += f" (got {first['input']!r})"
    more = len(error.errors()) - 1
    suffix = f" [and {more} more error{'s' if more > 1 else ''}]" if more else ""
    line = _line(document, keys)
    where = source + (f", line {line}" if line else "")
    key_path = _key_path(keys, raw)
    # Whole-config checks name their keys in the message itself.
    return f"{where}: {key_path + ': ' if key_path else ''}{message}{suffix}"


def _walk(location: list[Any], models: list[type[BaseModel]]) -> tuple[list[Any], list[Any]]:
    """The keys of an error's location in the config as written, and the models that may
    describe the value there. Pydantic puts a task's kind into the location after the task's
    index; it is not a key of the config, so it is dropped (and picks the kind's model)."""
    keys: list[Any] = []
    for item in location:
        if len(models) > 1 and isinstance(item, str):
            models = [model for model in models if _tag_of(model) == item]
            continue
        keys.append(item)
        if isinstance(item, str):
            field = models[0].model_fields.get(item) if len(models) == 1 else None
            models = _models_in(field.annotation) if field else []
    return keys, models


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds: itself (or, for the base of a family of kinds,
    its kinds' models), a list's items, a union's members."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _kind_models(annotation) if annotation in _FAMILIES else [annotation]
    return [model for argument in get_args(annotation) for model in _models_in(argument)]


def _tag_of(model: type[BaseModel]) -> str | None:
    """The value of `kind` that selects `model` in a union of models."""
    field = model.model_fields.get("kind")
    values = get_args(field.annotation) if field else ()
    return values[0] if len(values) == 1 else None


def _unknown_key(key: str, model: type[BaseModel] | None) -> str:
    """An unknown key, with the nearest valid one; in a section of some kind (a task, the
    sampler, ...), the kinds that do take it."""
    valid = list(model.model_fields) if model else []
    families = [family for base, family in _FAMILIES.items() if model and issubclass(model, base)]
    if families:
        registry = families[0].registry
        owners = [name for name, kind in registry.items() if key in kind.options.model_fields]
        if owners:
            return families[0].not_taken.format(
                kind=_tag_of(model), key=key, owners=", ".join(owners)
            )
    return f"unknown key {key!r}{suggestion(key, valid)}"


def _written_as_kind(error: dict[str, Any], keys: list[Any], models: list[type[BaseModel]]) -> bool:
    """Whether a text stands where a section with a `kind` belongs (`sampler: temperature`)."""
    return (
        bool(keys)
        and isinstance(keys[-1], str)
        and bool(models)
        and all("kind" in model.model_fields for model in models)
        and isinstance(error["input"], str)
    )


def _line(document: yaml.Node | None, keys: list[Any]) -> int | None:
    """The line of the deepest of `keys` that the YAML document holds."""
    node, line = document, None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if str(k.value) == str(key)]
            if not found:
                break
            key_node, node = found[0]
            line = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _key_path(keys: list[Any], raw: Any) -> str:
    """`tasks.0.kind` becomes `tasks[0].kind`, or `tasks[sentiment].kind` where a name is known."""
    parts: list[str] = []
    node: Any = raw
    for item in keys:
        if isinstance(item, int):
            entry = node[item] if isinstance(node, list) and item < len(node) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            plain = isinstance(name, str) and TASK_NAME.fullmatch(name)
            parts[-1] += f"[{name}]" if plain else f"[{item}]"
        else:
            parts.append(str(item))
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            node = None
    return ".".join(parts)
