"""The experiment configuration: pydantic models of the YAML file, with errors that name the
file, the line and the key.

Unknown keys are rejected (a typo must not be ignored silently) and the message suggests the
nearest valid key. Each task's options are those of its kind (`mtlm.tasks.KINDS`): the tasks
are a union of the kinds' option models on `kind`. Validating a config imports neither torch
nor transformers, so that a mistake in it shows in a fraction of a second.
"""

from __future__ import annotations

import difflib
import functools
import json
import operator
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, model_validator

from mtlm.errors import ConfigError
from mtlm.tasks import KINDS
from mtlm.tasks.spec import TASK_NAME, DataSpec, StrictModel, TaskSpec

__all__ = [
    "DataSpec",
    "ExperimentConfig",
    "StrictModel",
    "TaskSpec",
    "config_from_dict",
    "load_config",
    "saved_task_spec",
    "task_alone",
    "task_spec",
]

#: A task of any kind: the options model of the kind its `kind` names.
AnyTask = Annotated[
    functools.reduce(operator.or_, (kind.options for kind in KINDS.values())),
    Field(discriminator="kind"),
]


SAMPLERS = ("proportional", "uniform", "temperature", "annealed", "round_robin", "dynamic")
SCALARIZERS = (
    "static",
    "uncertainty",
    "dwa",
    "random",
    "famo",
    "imtl_l",
    "geometric_mean",
    "stch",
    "gradnorm",
)
AGGREGATORS = (
    "pcgrad",
    "upgrad",
    "mgda",
    "cagrad",
    "nash_mtl",
    "imtl_g",
    "aligned_mtl",
    "dualproj",
    "graddrop",
    "gradvac",
    "config",
)
#: Aggregators whose weights still mean something when computed from gradients with respect to
#: the shared representation: with one batch per task those gradients are orthogonal, so only
#: methods that weigh tasks by gradient norms (not by conflicts) differ from a plain sum.
REPRESENTATION_AGGREGATORS = ("mgda", "imtl_g", "aligned_mtl", "nash_mtl", "cagrad")
#: Balancers that keep one learned value (or history) per task position: they need every joint
#: step to see the same tasks, so they do not combine with `joint_groups`.
PER_TASK_BALANCERS = ("uncertainty", "dwa", "famo", "imtl_l", "gradnorm", "nash_mtl", "gradvac")


class SamplerSpec(StrictModel):
    """How the next task is chosen in `sampled` step mode."""

    kind: Literal[SAMPLERS] = "proportional"
    temperature: float = Field(2.0, gt=0.0)
    size_cap: int | None = Field(None, gt=0)
    alpha_floor: float = Field(0.2, ge=0.0, le=1.0)
    floor: float = Field(0.05, ge=0.0, lt=1.0)
    targets: dict[str, float] = Field(default_factory=dict)


class BalancerSpec(StrictModel):
    """How the per-task losses of a `joint` step become one update."""

    kind: Literal[SCALARIZERS + AGGREGATORS] = "static"
    # Not `on`: YAML 1.1 reads a bare `on` key as the boolean true.
    gradients: Literal["parameters", "representation"] = "parameters"
    options: dict[str, Any] = Field(default_factory=dict)
    learning_rate: float = Field(0.025, gt=0.0)

    @model_validator(mode="after")
    def _representation_needs_weighting(self) -> BalancerSpec:
        if self.gradients == "representation" and self.kind not in REPRESENTATION_AGGREGATORS:
            raise ValueError(
                f"gradients: representation works with {', '.join(REPRESENTATION_AGGREGATORS)}; "
                f"for {self.kind!r} use gradients: parameters"
            )
        return self


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
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    balancer: BalancerSpec = Field(default_factory=BalancerSpec)
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


class SharingSpec(StrictModel):
    """How the tasks share the language model: `hard` (one backbone), `soft` (one backbone per
    task tied by an L2 penalty toward their mean) or `lora` (one base, an adapter per task)."""

    kind: Literal["hard", "soft", "lora"] = "hard"
    strength: float = Field(1e-3, ge=0.0)
    strength_schedule: Literal["constant", "linear_warmup"] = "constant"
    strength_warmup_ratio: float = Field(0.1, gt=0.0, le=1.0)
    hard_modules: list[str] = Field(default_factory=list)
    hard_layers: list[int] | None = Field(None, min_length=2, max_length=2)
    r: int = Field(8, gt=0)
    alpha: float = Field(16.0, gt=0.0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] | None = None
    train_base: bool = False

    @model_validator(mode="after")
    def _options_of_the_kind(self) -> SharingSpec:
        owners = {
            "soft": (
                "strength",
                "strength_schedule",
                "strength_warmup_ratio",
                "hard_modules",
                "hard_layers",
            ),
            "lora": ("r", "alpha", "dropout", "target_modules", "train_base"),
        }
        for kind, fields in owners.items():
            given = [
                name
                for name in fields
                if getattr(self, name)
                != type(self).model_fields[name].get_default(call_default_factory=True)
            ]
            if given and self.kind != kind:
                raise ValueError(f"{given[0]} applies to sharing kind {kind}, not {self.kind}")
        if self.hard_layers is not None and not 0 <= self.hard_layers[0] <= self.hard_layers[1]:
            raise ValueError("hard_layers is [first, last] with 0 <= first <= last")
        return self


class ModelSpec(StrictModel):
    """The pretrained backbone: a hub name, a local folder, or `bundled:<name>`."""

    name_or_path: str
    revision: str | None = None


class ExperimentConfig(StrictModel):
    """One experiment: a backbone, its tasks and how to train them."""

    model: ModelSpec
    tasks: list[AnyTask] = Field(min_length=1)
    sharing: SharingSpec = Field(default_factory=SharingSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    cache_dir: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        names = [task.name for task in self.tasks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"task names must be unique; repeated: {', '.join(duplicates)}")
        training = self.training
        if training.step_mode == "sampled" and training.balancer.kind not in ("static",):
            raise ValueError(
                f"training.balancer.kind {training.balancer.kind!r} needs training.step_mode: "
                "joint (it weighs the losses of all tasks in one step)"
            )
        groups = training.joint_groups or []
        if training.balancer.kind in PER_TASK_BALANCERS and any(
            sorted(group) != sorted(names) for group in groups
        ):
            raise ValueError(
                f"training.joint_groups: training.balancer.kind {training.balancer.kind!r} keeps "
                "per-task state, so every joint step must hold every task; drop joint_groups or "
                f"choose a balancer outside {', '.join(PER_TASK_BALANCERS)}"
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
        if training.finetune is not None and self.sharing.kind == "soft":
            raise ValueError(
                "training.finetune continues each task alone in an adapter over the shared "
                "backbone; with sharing soft every task already has a backbone of its own"
            )
        if training.sampler.kind == "dynamic" and training.sampler.floor * len(names) > 1:
            raise ValueError("training.sampler.floor times the number of tasks must be at most 1")
        for key, mentioned in (
            ("training.sampler.targets", list(training.sampler.targets)),
            ("training.joint_groups", [n for group in training.joint_groups or [] for n in group]),
        ):
            unknown = [name for name in mentioned if name not in names]
            if unknown:
                raise ValueError(
                    f"{key}: no task named {unknown[0]!r}{_suggest(unknown[0], names)}"
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
        raise ConfigError(f"no task named {name!r}{_suggest(name, [t.name for t in self.tasks])}")

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
    config = _validated(ExperimentConfig, raw, str(path), document)
    _resolve_data_paths(config, Path(base_dir) if base_dir else path.parent)
    return config


def config_from_dict(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a config given as a dict; errors name `source` and the key path."""
    return _validated(ExperimentConfig, raw, source)


def task_spec(raw: dict[str, Any], source: str = "task") -> TaskSpec:
    """Validate one task entry of any kind (the model of its kind's options); errors name
    `source` and the key."""
    return _validated(AnyTask, raw, source)


def saved_task_spec(raw: dict[str, Any], source: str) -> TaskSpec:
    """A task spec as a saved model holds it. Models saved before each kind had options of its
    own hold every kind's keys, which had no effect on the other kinds: those are dropped."""
    kind = KINDS.get(raw.get("kind"))
    if kind is not None:
        others = {key for other in KINDS.values() for key in other.options.model_fields}
        taken = kind.options.model_fields
        raw = {key: value for key, value in raw.items() if key in taken or key not in others}
    return task_spec(raw, source)


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
            f"unknown {field} {tag!r}{_suggest(tag, tags)}"
            if tag is not None
            else f"required key is missing (one of: {', '.join(tags)})"
        )
    elif kind == "option":
        keys.append(first["ctx"]["key"])
        message = first["ctx"]["message"]
    elif kind in ("model_type", "model_attributes_type") and _written_as_kind(first, models):
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
    """The pydantic models an annotation holds: itself, a list's items, a union's members."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for argument in get_args(annotation) for model in _models_in(argument)]


def _tag_of(model: type[BaseModel]) -> str | None:
    """The value of `kind` that selects `model` in a union of models."""
    field = model.model_fields.get("kind")
    values = get_args(field.annotation) if field else ()
    return values[0] if len(values) == 1 else None


def _unknown_key(key: str, model: type[BaseModel] | None) -> str:
    """An unknown key, with the nearest valid one; in a task, the kinds that do take it."""
    valid = list(model.model_fields) if model else []
    if model is not None and issubclass(model, TaskSpec):
        owners = [name for name, kind in KINDS.items() if key in kind.options.model_fields]
        if owners:
            return f"{_tag_of(model)} tasks take no {key!r}; {', '.join(owners)} tasks do"
    return f"unknown key {key!r}{_suggest(key, valid)}"


def _written_as_kind(error: dict[str, Any], models: list[type[BaseModel]]) -> bool:
    """Whether a text stands where a model with a `kind` belongs (`sampler: temperature`)."""
    return len(models) == 1 and "kind" in models[0].model_fields and isinstance(error["input"], str)


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


def _suggest(word: Any, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.5)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (valid: {', '.join(sorted(map(str, choices)))})"
