"""The experiment configuration: pydantic models of the YAML file, with errors that name the key.

Unknown keys are rejected (a typo must not be ignored silently) and the message suggests the
nearest valid key.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mtlm.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class DataSpec(_Strict):
    """Where a task's rows come from.

    Exactly one of: per-split files (`train`, `validation`, `test`), one file `path` split with
    a seed, a Hugging Face dataset `hub` (with `hub_config` and `hub_kwargs`), or `bundled`
    (a demo task shipped through a registry package).
    """

    train: str | None = None
    validation: str | None = None
    test: str | None = None
    path: str | None = None
    hub: str | None = None
    hub_config: str | None = None
    hub_kwargs: dict[str, Any] = Field(default_factory=dict)
    bundled: str | None = None
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet", "conll", "text"] = "auto"
    validation_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    split_seed: int = 0
    conll_token_column: int = 0
    conll_tag_column: int = -1

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        chosen = [
            name
            for name, given in (
                ("train/validation/test", self.train or self.validation or self.test),
                ("path", self.path),
                ("hub", self.hub),
                ("bundled", self.bundled),
            )
            if given
        ]
        if len(chosen) != 1:
            raise ValueError(
                "give exactly one source: train/validation/test files, path, hub or bundled"
                + (f" (got {', '.join(chosen)})" if chosen else "")
            )
        if self.path and self.validation_fraction + self.test_fraction >= 1.0:
            raise ValueError("validation_fraction + test_fraction must be below 1")
        return self


class TaskSpec(_Strict):
    """One task: its kind, its data, how its columns map and how its head is built."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    kind: str
    data: DataSpec
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    tokens_column: str = "tokens"
    tags_column: str = "tags"
    # multiple_choice: the candidate answers of a row (a list), scored against `text_column`.
    choices_column: str = "choices"
    # extractive_qa: SQuAD-style columns, and how long contexts are cut into windows.
    question_column: str = "question"
    context_column: str = "context"
    answers_column: str = "answers"
    stride: int = Field(32, gt=0)
    max_answer_length: int = Field(30, gt=0)
    allow_unanswerable: bool = False
    # text_to_text: the prompt and the target, Python format strings over a row's columns.
    prompt_template: str | None = None
    target_template: str = "{label}"
    max_target_length: int = Field(64, gt=0)
    max_new_tokens: int = Field(32, gt=0)
    decoding: Literal["generate", "score_labels"] = "generate"
    # language_modeling: the share of tokens a masked-LM task hides.
    mlm_probability: float = Field(0.15, gt=0.0, lt=1.0)
    labels: list[str] | None = None
    max_length: int = Field(128, gt=0)
    pooling: Literal["cls", "mean"] = "cls"
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    loss_weight: float = Field(1.0, ge=0.0)
    primary_metric: str | None = None
    max_examples: int | None = Field(None, gt=0)
    oversample: int = Field(1, ge=1)
    class_weights: Literal["balanced"] | dict[str, float] | None = None
    resample: Literal["balanced"] | None = None

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_as_text(cls, labels: Any) -> Any:
        """Labels may be written as numbers (`[0, 1]`); the data's labels are compared as text."""
        if isinstance(labels, list):
            return [str(label) if isinstance(label, int | float) else label for label in labels]
        return labels

    @field_validator("class_weights", mode="before")
    @classmethod
    def _class_names_as_text(cls, weights: Any) -> Any:
        """Class names may be written as numbers (`{1: 5.0}`), like `labels`."""
        if isinstance(weights, dict):
            return {
                str(name) if isinstance(name, int | float) else name: weight
                for name, weight in weights.items()
            }
        return weights

    @model_validator(mode="after")
    def _options_fit_the_kind(self) -> TaskSpec:
        if self.kind == "extractive_qa" and self.stride >= self.max_length:
            raise ValueError(
                f"stride ({self.stride}) is the overlap of consecutive windows of a long context "
                f"and must be below max_length ({self.max_length})"
            )
        classless = ("regression", "multiple_choice", "text_to_text", "language_modeling")
        if self.kind in classless and (self.class_weights or self.resample):
            raise ValueError(
                f"class_weights and resample need a fixed set of classes; {self.kind} has none"
            )
        if self.kind == "token_classification" and self.resample:
            raise ValueError(
                "resample: balanced works for classification only (a sentence has many tags); "
                "use class_weights for token classification"
            )
        return self

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        from mtlm.tasks import KINDS

        if kind not in KINDS:
            raise ValueError(f"unknown task kind {kind!r}{_suggest(kind, KINDS)}")
        return kind


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


class SamplerSpec(_Strict):
    """How the next task is chosen in `sampled` step mode."""

    kind: Literal[SAMPLERS] = "proportional"
    temperature: float = Field(2.0, gt=0.0)
    size_cap: int | None = Field(None, gt=0)
    alpha_floor: float = Field(0.2, ge=0.0, le=1.0)
    floor: float = Field(0.05, ge=0.0, lt=1.0)
    targets: dict[str, float] = Field(default_factory=dict)


class BalancerSpec(_Strict):
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


class FinetuneSpec(_Strict):
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


class TrainingSpec(_Strict):
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


class SharingSpec(_Strict):
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


class ModelSpec(_Strict):
    """The pretrained backbone: a hub name, a local folder, or `bundled:<name>`."""

    name_or_path: str
    revision: str | None = None


class ExperimentConfig(_Strict):
    """One experiment: a backbone, its tasks and how to train them."""

    model: ModelSpec
    tasks: list[TaskSpec] = Field(min_length=1)
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
    """Read and validate a YAML config; relative data paths resolve against its folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", error)
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a mapping of keys to values")
    config = config_from_dict(raw, source=str(path))
    _resolve_data_paths(config, Path(base_dir) if base_dir else path.parent)
    return config


def config_from_dict(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a config given as a dict; errors name `source` and the key path."""
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_describe(error, raw, source)) from None


def _resolve_data_paths(config: ExperimentConfig, base: Path) -> None:
    for task in config.tasks:
        for field in ("train", "validation", "test", "path"):
            value = getattr(task.data, field)
            if value:
                where = Path(value).expanduser()
                if not where.is_absolute():
                    where = (base / where).resolve()
                setattr(task.data, field, str(where))


def _describe(error: ValidationError, raw: dict[str, Any], source: str) -> str:
    first = error.errors()[0]
    location = list(first["loc"])
    key_path = _key_path(location, raw)
    if first["type"] == "extra_forbidden":
        model = _model_at(location[:-1], raw)
        valid = list(model.model_fields) if model else []
        message = f"unknown key {location[-1]!r}{_suggest(str(location[-1]), valid)}"
    elif first["type"] == "missing":
        message = "required key is missing"
    else:
        message = first["msg"].removeprefix("Value error, ")
        if "input" in first and not isinstance(first["input"], dict | list):
            message += f" (got {first['input']!r})"
    more = len(error.errors()) - 1
    suffix = f" [and {more} more error{'s' if more > 1 else ''}]" if more else ""
    # Whole-config checks name their keys in the message itself.
    where = f"{key_path}: " if key_path else ""
    return f"{source}: {where}{message}{suffix}"


def _key_path(location: list[Any], raw: dict[str, Any]) -> str:
    """`tasks.0.kind` becomes `tasks[0].kind`, or `tasks[sentiment].kind` where a name is known."""
    parts: list[str] = []
    node: Any = raw
    for item in location:
        if isinstance(item, int):
            entry = node[item] if isinstance(node, list) and item < len(node) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            parts[-1] += f"[{name}]" if isinstance(name, str) else f"[{item}]"
        else:
            parts.append(str(item))
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            node = None
    return ".".join(parts)


def _model_at(location: list[Any], raw: dict[str, Any]) -> type[BaseModel] | None:
    model: type[BaseModel] = ExperimentConfig
    for item in location:
        if isinstance(item, int):
            continue
        field = model.model_fields.get(str(item))
        if field is None:
            return None
        annotation = field.annotation
        candidates = getattr(annotation, "__args__", (annotation,))
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (valid: {', '.join(sorted(choices))})"
