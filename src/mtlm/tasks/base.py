"""The TaskKind protocol: what a kind of task must know, and nothing about the training loop.

A kind turns validated rows into tokenized features, builds its head, computes its loss,
decodes predictions and scores them. One instance serves one task (it holds the task's spec
and label names).

A kind's module is imported whenever a config is validated (its options live there), so it
imports torch, transformers and the metric libraries inside the methods that use them: a config
error then appears in well under a second.
"""

from __future__ import annotations

import math
import re
import reprlib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from mtlm.errors import ConfigError, DataError
from mtlm.tasks.spec import Columns, Dropout, Pooling, TaskSpec, column_list

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from mtlm.data.rows import SplitRows

Features = dict[str, list[Any]]


class TaskKind(ABC):
    """One task of a given kind: its spec, its label names, and the kind's behaviour."""

    name: ClassVar[str]
    #: The model of the kind's options, a `TaskSpec` whose `kind` is `name`.
    options: ClassVar[type[TaskSpec]]
    #: Which way the metrics improve; overridden for metrics where lower is better.
    lower_is_better: ClassVar[frozenset[str]] = frozenset()
    #: The model families the kind works with: `encoder`, `causal` (a decoder, where a head
    #: reads the hidden states or the language model's own head produces the output, as
    #: `uses_language_model_head` says), `seq2seq`.
    families: ClassVar[frozenset[str]] = frozenset({"encoder"})
    #: Whether answers are generated text, so that evaluation and prediction generate.
    generates: ClassVar[bool] = False
    #: Whether the task only helps the others (language modeling): its score is reported but
    #: left out of the aggregate that picks the best checkpoint, unless all tasks are such.
    auxiliary: ClassVar[bool] = False
    #: The Hugging Face Hub's task tag for the kind (model cards, `pipeline_tag`).
    hub_task: ClassVar[str] = "other"

    def __init__(self, spec: TaskSpec, state: dict[str, Any] | None = None) -> None:
        self.spec = spec
        #: What the task learned from its training data (label names, target statistics);
        #: saved with the model so that a reloaded task decodes exactly as before.
        self.state: dict[str, Any] = dict(state or {})

    def bind_model(
        self, family: str, tokenizer: PreTrainedTokenizerBase | None, vocabulary_size: int
    ) -> None:
        """Learn what the task needs from the model it runs on (its family, by default); the
        model calls this when it is built, since features may come from the cache."""
        self.state["family"] = family

    @classmethod
    def sequence_lengths(cls, spec: TaskSpec, family: str) -> dict[tuple[str, ...], int]:
        """The longest token sequences a task of `spec` feeds a model of `family`, each keyed
        by the task's config keys whose values add up to it (for checks against the model's
        positions): the input alone, unless a kind appends more."""
        return {("max_length",): spec.max_length}

    @classmethod
    def check_options(cls, spec: TaskSpec, family: str) -> None:
        """Refuse options that a model of `family` cannot honour (none by default); called
        before any data is read."""

    @property
    def uses_language_model_head(self) -> bool:
        """Whether the model's output for this task is its language model's logits, not a task
        head's (no, unless a kind says so)."""
        return False

    # --- data -----------------------------------------------------------------------------
    @property
    @abstractmethod
    def input_columns(self) -> list[str]:
        """The row fields the task reads as model input."""

    @abstractmethod
    def fit(self, splits: dict[str, SplitRows]) -> None:
        """Learn `state` (label vocabulary, target statistics) from the task's rows."""

    @abstractmethod
    def encode_inputs(
        self, rows: Sequence[dict[str, Any]], tokenizer: PreTrainedTokenizerBase
    ) -> Features:
        """Tokenize the input fields of rows (no labels), batched."""

    @abstractmethod
    def encode_targets(self, rows: SplitRows) -> Features:
        """Validate and encode the target fields of every row; errors name the row."""

    def prepare(self, rows: SplitRows, tokenizer: PreTrainedTokenizerBase) -> Features:
        """Validated, tokenized features of a split, with their targets."""
        self.check_inputs(rows.rows, rows.where)
        targets = self.encode_targets(rows)
        features = self.encode_inputs(rows.rows, tokenizer)
        features.update(targets)
        return features

    @property
    def text_columns(self) -> list[str]:
        """The input columns that hold one text each (none unless a kind says so)."""
        return []

    def check_inputs(self, rows: Sequence[dict[str, Any]], where: Callable[[int], str]) -> None:
        """Every row has every input column, with a value, and a text in each text column;
        `where(index)` locates a row."""
        for index, row in enumerate(rows):
            for column in self.input_columns:
                check_value(row, column, where(index))
            for column in self.text_columns:
                check_text(row, column, where(index))

    def class_weight_tensor(self, like: torch.Tensor) -> torch.Tensor | None:
        """The configured class weights for the loss, on `like`'s device; None if unweighted."""
        import torch

        weights = self.state.get("class_weights")
        return None if weights is None else torch.tensor(weights, device=like.device)

    def sample_weights(self, features: Any) -> list[float] | None:
        """Per-row weights for class-balanced resampling (`resample: balanced`), else None."""
        return None

    def collate(self, features: list[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
        """A padded batch of features."""
        from mtlm.data.batching import pad_features

        return pad_features(features, pad_token_id)

    def batch_rows(self, batch: dict[str, torch.Tensor]) -> int:
        """How many examples (data rows) a collated batch holds."""
        return len(batch["input_ids"])

    def row_predictions(self, predictions: list[Any], rows: Sequence[dict[str, Any]]) -> list[Any]:
        """One prediction per input row from the predictions of its features (a kind that
        reads a long row in several windows joins them here)."""
        return predictions

    # --- model ----------------------------------------------------------------------------
    @abstractmethod
    def build_head(self, hidden_size: int) -> nn.Module:
        """The task's head on top of the backbone's hidden states."""

    @abstractmethod
    def loss(self, head_output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The task's training loss on one batch."""

    @abstractmethod
    def predict(self, head_output: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[Any]:
        """Decoded predictions for a batch, with label names."""

    # --- evaluation -----------------------------------------------------------------------
    @abstractmethod
    def references(self, features: Features) -> list[Any]:
        """The gold answers of a split, in the form `predict` returns."""

    @abstractmethod
    def metrics(self, predictions: list[Any], references: list[Any]) -> dict[str, float]:
        """Scores of predictions against references; `primary_metric` names the main one."""

    @abstractmethod
    def trivial_predictions(self, train: Features, references: list[Any]) -> list[Any]:
        """What a model that ignores its input would answer (majority class, mean value)."""

    @property
    @abstractmethod
    def default_primary_metric(self) -> str:
        """The metric that ranks models unless the config names another."""

    @property
    def primary_metric(self) -> str:
        """The metric that ranks models for this task."""
        return self.spec.primary_metric or self.default_primary_metric

    def score(self, predictions: list[Any], references: list[Any]) -> dict[str, Any]:
        """Metrics with the name of the primary one under `primary`."""
        values = self.metrics(predictions, references)
        if self.primary_metric not in values:
            raise DataError(
                f"tasks[{self.spec.name}].primary_metric: {self.primary_metric!r} is not a "
                f"metric of {self.name} (available: {', '.join(values)})"
            )
        return {"primary": self.primary_metric, **values}

    def higher_is_better(self, metric: str) -> bool:
        """Whether a larger value of `metric` is better."""
        return metric not in self.lower_is_better

    def ideal_score(self, metric: str) -> float:
        """The best value `metric` can take: 1 where higher is better (every such mtlm metric
        is a fraction or a correlation, at most 1), 0 where lower is better (an error)."""
        return 1.0 if self.higher_is_better(metric) else 0.0


class SequenceSpec(TaskSpec):
    """Options of the kinds whose head pools the hidden states into one answer per row
    (`pooling` unset: the model family's own, see `SequenceTask.pooling`)."""

    text_column: Columns = "text"
    label_column: str = "label"
    pooling: Pooling | None = None
    dropout: Dropout = 0.1


#: The pooling of each family's sequence classifiers in transformers: an encoder's first
#: (CLS) token, a causal model's last real token, the only one that has read the whole input.
FAMILY_POOLING = {"encoder": "cls", "causal": "last"}


class SequenceTask(TaskKind):
    """A task with one answer per row; its head pools the hidden states."""

    spec: SequenceSpec

    @classmethod
    def check_options(cls, spec: TaskSpec, family: str) -> None:
        """Refuse first-token pooling on a causal model: its first token's state has read
        nothing else."""
        if family == "causal" and getattr(spec, "pooling", None) == "cls":
            raise ConfigError(
                f"tasks[{spec.name}].pooling: cls reads the first token, whose state in a "
                "causal model has seen no other token; use last (the default on decoders) or "
                "mean"
            )

    @property
    def pooling(self) -> str:
        """The configured pooling, else the bound model family's (`FAMILY_POOLING`)."""
        return self.spec.pooling or FAMILY_POOLING[self.state.get("family", "encoder")]

    @property
    @abstractmethod
    def num_outputs(self) -> int:
        """Width of the head's output layer."""

    def build_head(self, hidden_size: int) -> nn.Module:
        """Pooling (first token with dense and tanh, last token, or mean), dropout and a
        linear layer."""
        from mtlm.modeling.heads import SequenceHead

        return SequenceHead(hidden_size, self.num_outputs, self.pooling, self.spec.dropout)


class TextPairSpec(SequenceSpec):
    """Options of a sequence task that reads one text or a pair of texts; either side may join
    several columns (`text_pair_column: [question, answer]`)."""

    text_pair_column: Columns | None = None


class TextPairTask(SequenceTask):
    """A sequence task on a text, or on a text pair when `text_pair_column` is set."""

    spec: TextPairSpec

    @property
    def input_columns(self) -> list[str]:
        """The text columns."""
        return self.text_columns

    @property
    def text_columns(self) -> list[str]:
        """The text columns, and the pair columns where the task has them."""
        return column_list(self.spec.text_column) + column_list(self.spec.text_pair_column)

    def encode_inputs(
        self, rows: Sequence[dict[str, Any]], tokenizer: PreTrainedTokenizerBase
    ) -> Features:
        """Tokenize the text (or text pair) columns, without padding."""
        spec = self.spec
        texts = joined_texts(rows, spec.text_column, tokenizer)
        pairs = (
            joined_texts(rows, spec.text_pair_column, tokenizer) if spec.text_pair_column else None
        )
        encoded = tokenizer(
            texts,
            pairs,
            truncation=True,
            max_length=spec.max_length,
            padding=False,
            return_attention_mask=True,
        )
        return {key: list(value) for key, value in encoded.items()}


def joined_texts(
    rows: Sequence[dict[str, Any]], columns: str | list[str], tokenizer: PreTrainedTokenizerBase
) -> list[str]:
    """Each row's text in `columns`: one column's text, or several columns' texts joined by the
    tokenizer's separator token (a space where it has none), which marks the boundary between
    them as it does between the texts of a pair."""
    names = column_list(columns)
    separator = f" {tokenizer.sep_token} " if tokenizer.sep_token else " "
    return [separator.join(str(row[name]) for name in names) for row in rows]


class LabelOptions(Protocol):
    """The options of a kind with named classes: declared labels and class weights."""

    name: str
    labels: list[str] | None
    class_weights: str | dict[str, float] | None


def label_vocabulary(values: Sequence[Any], declared: list[str] | None) -> list[str]:
    """Declared label names, or the distinct values seen, in natural order (2 before 10)."""
    if declared is not None:
        return list(declared)
    names = {str(value) for value in values}
    numeric = all(re.fullmatch(r"-?[0-9]+", name) for name in names)
    # ties ("1", "01") break by text, so the order never depends on the set's hash order
    return sorted(names, key=lambda name: (int(name), name)) if numeric else sorted(names)


def label_id(value: Any, names: dict[str, int], where: str, task: LabelOptions) -> int:
    """The id of a label value; a value outside the label set is a DataError naming the row."""
    name = str(value)
    if name not in names:
        origin = f"declared in tasks[{task.name}].labels" if task.labels else "seen in the data"
        shown = ", ".join(list(names)[:20]) + (", ..." if len(names) > 20 else "")
        raise DataError(f"{where}: label {name!r} is not among the labels ({origin}): {shown}")
    return names[name]


def check_value(row: dict[str, Any], column: str, where: str) -> None:
    """A row has `column`, with a non-empty value; else a DataError naming the row."""
    if column not in row:
        raise DataError(
            f"{where}: missing column {column!r} "
            f"(the row has: {', '.join(map(str, row)) or 'nothing'})"
        )
    if row[column] is None or row[column] == "":
        raise DataError(f"{where}: empty value in column {column!r}")


def is_text(value: Any) -> bool:
    """Whether a value reads as one text: a string, or a finite number (taken as its digits;
    NaN is how Parquet and pandas write a missing number)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, str | int) or (isinstance(value, float) and math.isfinite(value))


def is_label(value: Any) -> bool:
    """Whether a value can name a class: a text, or a boolean (read as text)."""
    return isinstance(value, bool) or is_text(value)


def check_text(row: dict[str, Any], column: str, where: str) -> None:
    """A row's `column` holds one text; a list, an object or a boolean is a DataError naming
    the row and the column."""
    check_value(row, column, where)
    if not is_text(row[column]):
        raise DataError(
            f"{where}: column {column!r} must hold a text, got {described(row[column])}"
        )


def check_label(row: dict[str, Any], column: str, where: str) -> None:
    """A row's `column` holds one label (a text, a number or a boolean); a list or an object
    is a DataError naming the row and the column."""
    check_value(row, column, where)
    if not is_label(row[column]):
        raise DataError(
            f"{where}: column {column!r} must hold one label (a text or a number), "
            f"got {described(row[column])}"
        )


def described(value: Any) -> str:
    """A value's JSON type and a short form of it, for error messages: `a list ['a', 'b']`."""
    if isinstance(value, bool):
        kind = "a boolean"
    elif isinstance(value, list | tuple):
        kind = "a list"
    elif isinstance(value, dict):
        kind = "an object"
    elif isinstance(value, int | float):
        kind = "a number"
    else:
        kind = f"a {type(value).__name__}"
    return f"{kind} {reprlib.repr(value)}"


def class_weights(spec: LabelOptions, names: list[str], counts: Counter) -> list[float] | None:
    """The loss weight of each class, from `class_weights` in the task's config.

    `balanced` gives w_c = N / (C · n_c) over the C classes present in training (King & Zeng,
    2001, the weighting scikit-learn calls "balanced"); a mapping names some classes' weights,
    the others keep 1.
    """
    if spec.class_weights is None:
        return None
    if spec.class_weights == "balanced":
        present = [name for name in names if counts[name]]
        total = sum(counts[name] for name in present)
        return [total / (len(present) * counts[name]) if counts[name] else 1.0 for name in names]
    unknown = [label for label in spec.class_weights if label not in names]
    if unknown:
        raise ConfigError(
            f"tasks[{spec.name}].class_weights: no label {unknown[0]!r} "
            f"(labels: {', '.join(names)})"
        )
    return [float(spec.class_weights.get(name, 1.0)) for name in names]


def per_class_f1(references: list[str], predicted: list[str], names: list[str]) -> dict[str, float]:
    """F1 of every class, as `f1[<class>]` metrics."""
    from sklearn.metrics import f1_score

    scores = f1_score(references, predicted, labels=names, average=None, zero_division=0)
    return {f"f1[{name}]": float(score) for name, score in zip(names, scores, strict=True)}
