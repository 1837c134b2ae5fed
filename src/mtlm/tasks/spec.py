"""What every task's options hold: its name, kind and data source, and the options all kinds
share. Each kind's module extends `TaskSpec` with the options of that kind alone, so that a key
the kind does not take is an error, and the config's tasks are the union of those models on
`kind`.

Only pydantic here, and no torch or transformers: validating a config must stay fast.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError


class StrictModel(BaseModel):
    """A config model that rejects unknown keys: a typo must not be ignored silently."""

    model_config = ConfigDict(extra="forbid", frozen=False)


def option_error(key: str, message: str) -> PydanticCustomError:
    """An error that a check of a whole model finds in one of its options: the config's error
    message reports it under that option's key path."""
    return PydanticCustomError("option", "{message}", {"key": key, "message": message})


class HubSplits(StrictModel):
    """Which split of a hub dataset each of a task's splits reads (`validation_matched`, say).
    A split left unnamed is carved from the train split with the data's `split_seed` (its
    `validation_fraction` or `test_fraction` of the rows)."""

    train: str = "train"
    validation: str | None = None
    test: str | None = None


class DataSpec(StrictModel):
    """Where a task's rows come from.

    Exactly one of: per-split files (`train`, `validation`, `test`), one file `path` split with
    a seed, a Hugging Face dataset `hub` (with `hub_config`, `hub_kwargs` and the `splits` it
    reads; a local folder written by `save_to_disk` serves too), or `bundled` (a demo task
    shipped through a registry package).
    """

    train: str | None = None
    validation: str | None = None
    test: str | None = None
    path: str | None = None
    hub: str | None = None
    hub_config: str | None = None
    hub_kwargs: dict[str, Any] = Field(default_factory=dict)
    splits: HubSplits | None = None
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
        if self.splits is not None and not self.hub:
            raise option_error("splits", "names the splits of a hub dataset; it needs data.hub")
        return self


#: A task's name names files and folders and appears in one-line messages and key paths.
TASK_NAME = re.compile(r"[A-Za-z0-9_\-]+")


def _as_text(value: Any) -> Any:
    """A label or class name written as a number or a boolean (`[0, 1]`, `{1: 5.0}`) is read
    as text, as the data's labels are compared."""
    return str(value) if isinstance(value, int | float) else value


def _labels_as_text(labels: Any) -> Any:
    return [_as_text(label) for label in labels] if isinstance(labels, list) else labels


def _distinct(labels: list[str] | None) -> list[str] | None:
    repeated = [label for index, label in enumerate(labels or []) if label in labels[:index]]
    if repeated:
        raise ValueError(f"label {repeated[0]!r} is declared twice")
    return labels


def _class_names_as_text(weights: Any) -> Any:
    if isinstance(weights, dict):
        return {_as_text(name): weight for name, weight in weights.items()}
    return weights


#: One label name (a number or a boolean in the config is read as its text).
LabelName = Annotated[str, BeforeValidator(_as_text)]
#: Declared label names, in the order of the head's outputs.
Labels = Annotated[list[str] | None, BeforeValidator(_labels_as_text), AfterValidator(_distinct)]
#: `balanced`, or a weight per class name (the others keep 1).
ClassWeights = Annotated[
    Literal["balanced"] | dict[str, float] | None, BeforeValidator(_class_names_as_text)
]
#: One input column, or several whose texts are joined into one (with the tokenizer's separator
#: token between them, as a text pair has it).
Columns = str | Annotated[list[str], Field(min_length=1)]


def column_list(columns: str | list[str] | None) -> list[str]:
    """The column names of a `Columns` option (none for None)."""
    if columns is None:
        return []
    return [columns] if isinstance(columns, str) else list(columns)


#: How a sequence head reads the hidden states: the first token, the mean of all, or the last
#: real token (the one a causal model's states have read the whole input into).
Pooling = Literal["cls", "mean", "last"]
#: The dropout before a task head's output layer.
Dropout = Annotated[float, Field(ge=0.0, lt=1.0)]

#: In a metric name, where a label name goes (`f1[<label>]`, one per class).
LABEL_SLOT = "<label>"


class TaskSpec(StrictModel):
    """The options every kind of task takes. Each kind's module declares a subclass with the
    options of its own and its `kind` as a one-value Literal; `mtlm.config.task_spec` validates
    an entry of any kind."""

    name: str
    kind: str
    data: DataSpec
    max_length: int = Field(128, gt=0)
    loss_weight: float = Field(1.0, ge=0.0)
    primary_metric: str | None = None
    max_examples: int | None = Field(None, gt=0)
    oversample: int = Field(1, ge=1)

    @abstractmethod
    def metric_names(self) -> list[str]:
        """Every metric that a task with these options may report; a name holding
        `LABEL_SLOT` stands for one metric per label."""

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not TASK_NAME.fullmatch(name):
            raise ValueError(
                "a task name may hold only letters, digits, '_' and '-', since it names files "
                "and folders"
            )
        return name

    @model_validator(mode="after")
    def _known_primary_metric(self) -> TaskSpec:
        metric = self.primary_metric
        if metric is not None and not reports_metric(self.metric_names(), metric):
            raise option_error(
                "primary_metric",
                f"{metric!r} is not a metric of {self.kind} tasks "
                f"(metrics: {', '.join(self.metric_names())})",
            )
        return self


def reports_metric(names: list[str], metric: str) -> bool:
    """Whether `metric` is one of `names`, where a name with `LABEL_SLOT` matches any label."""
    for name in names:
        before, slot, after = name.partition(LABEL_SLOT)
        if name == metric or (
            slot
            and metric.startswith(before)
            and metric.endswith(after)
            and len(metric) > len(before) + len(after)
        ):
            return True
    return False


def per_class_f1_names(labels: list[str] | None) -> list[str]:
    """The names of the per-class F1 metrics, `f1[<class>]`: one per declared label, or one
    name with `LABEL_SLOT` when the labels come from the data."""
    return [f"f1[{label}]" for label in ([LABEL_SLOT] if labels is None else labels)]
