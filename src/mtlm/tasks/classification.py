"""Single-text or text-pair classification into one of several named classes."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

from pydantic import model_validator

from mtlm.errors import ConfigError
from mtlm.tasks.base import (
    Features,
    TextPairSpec,
    TextPairTask,
    check_label,
    class_weights,
    label_id,
    label_vocabulary,
    per_class_f1,
)
from mtlm.tasks.spec import ClassWeights, LabelName, Labels, option_error, per_class_f1_names

if TYPE_CHECKING:
    import torch

    from mtlm.data.rows import SplitRows


class ClassificationSpec(TextPairSpec):
    """A classification task: its columns, its classes, and how class imbalance is handled
    (`class_weights` in the loss, or `resample: balanced` drawing every class equally often);
    either adds each class's F1 to the metrics. A `positive_label` adds `f1`, the F1 of that
    class (as MRPC and QQP report it)."""

    kind: Literal["classification"]
    labels: Labels = None
    class_weights: ClassWeights = None
    resample: Literal["balanced"] | None = None
    positive_label: LabelName | None = None

    @model_validator(mode="after")
    def _declared_positive_label(self) -> ClassificationSpec:
        if self.positive_label is not None and self.labels is not None:
            if self.positive_label not in self.labels:
                raise option_error(
                    "positive_label",
                    f"{self.positive_label!r} is not among the labels ({', '.join(self.labels)})",
                )
        return self

    @property
    def reports_per_class(self) -> bool:
        """Whether evaluation adds each class's F1 (when class imbalance is being handled)."""
        return self.class_weights is not None or self.resample is not None

    def metric_names(self) -> list[str]:
        """Accuracy, macro-F1 and MCC, the positive class's F1 when one is named, and each
        class's F1 when imbalance is handled."""
        positive = ["f1"] if self.positive_label is not None else []
        per_class = per_class_f1_names(self.labels) if self.reports_per_class else []
        return ["accuracy", "macro_f1", "mcc", *positive, *per_class]


class Classification(TextPairTask):
    """Multi-class classification; metrics accuracy, macro-F1 and MCC."""

    name = "classification"
    hub_task = "text-classification"
    options = ClassificationSpec
    spec: ClassificationSpec
    default_primary_metric = "accuracy"
    families = frozenset({"encoder", "causal"})

    @property
    def label_names(self) -> list[str]:
        """Class names, in the order of the head's outputs."""
        return self.state["label_names"]

    @property
    def num_outputs(self) -> int:
        """One logit per class."""
        return len(self.label_names)

    def fit(self, splits: dict[str, SplitRows]) -> None:
        """Class names from the config, else every label seen in any split."""
        column = self.spec.label_column
        values = [
            row.get(column)
            for rows in splits.values()
            for row in rows.rows
            if row.get(column) not in (None, "")
        ]
        self.state["label_names"] = label_vocabulary(values, self.spec.labels)
        positive = self.spec.positive_label
        if positive is not None and positive not in self.label_names:
            raise ConfigError(
                f"tasks[{self.spec.name}].positive_label: no label {positive!r} in the data "
                f"(labels: {', '.join(self.label_names)})"
            )
        train = Counter(str(row.get(column)) for row in splits["train"].rows)
        self.state["class_weights"] = class_weights(self.spec, self.label_names, train)

    def encode_targets(self, rows: SplitRows) -> Features:
        """Class ids; a missing, unknown or non-label value (a list) names its row."""
        ids = {name: index for index, name in enumerate(self.label_names)}
        column = self.spec.label_column
        labels = []
        for index, row in enumerate(rows.rows):
            check_label(row, column, rows.where(index))
            labels.append(label_id(row[column], ids, rows.where(index), self.spec))
        return {"labels": labels}

    def loss(self, head_output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy, class-weighted when configured."""
        import torch.nn.functional as F

        logits = head_output.float()
        return F.cross_entropy(logits, batch["labels"], weight=self.class_weight_tensor(logits))

    def sample_weights(self, features: Any) -> list[float] | None:
        """1 / (rows of the row's class): every class is drawn equally often."""
        if self.spec.resample != "balanced":
            return None
        labels = list(features["labels"])
        counts = Counter(labels)
        return [1.0 / counts[label] for label in labels]

    def predict(self, head_output: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[Any]:
        """The most likely class and every class's probability."""
        probabilities = head_output.float().softmax(dim=-1).tolist()
        names = self.label_names
        return [
            {
                "label": names[max(range(len(row)), key=row.__getitem__)],
                "probabilities": dict(zip(names, row, strict=True)),
            }
            for row in probabilities
        ]

    def references(self, features: Features) -> list[Any]:
        """Gold class names."""
        return [self.label_names[index] for index in features["labels"]]

    def metrics(self, predictions: list[Any], references: list[Any]) -> dict[str, float]:
        """Accuracy, macro-averaged F1, Matthews correlation, and the positive class's F1."""
        from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

        predicted = [prediction["label"] for prediction in predictions]
        scores = {
            "accuracy": float(accuracy_score(references, predicted)),
            "macro_f1": float(f1_score(references, predicted, average="macro", zero_division=0)),
            "mcc": float(matthews_corrcoef(references, predicted)),
        }
        positive = self.spec.positive_label
        if positive is not None:
            f1 = f1_score(references, predicted, labels=[positive], average=None, zero_division=0)
            scores["f1"] = float(f1[0])
        if self.spec.reports_per_class:
            scores.update(per_class_f1(references, predicted, self.label_names))
        return scores

    def trivial_predictions(self, train: Features, references: list[Any]) -> list[Any]:
        """Always the most frequent training class."""
        majority = Counter(train["labels"]).most_common(1)[0][0]
        names = self.label_names
        one_hot = {name: float(index == majority) for index, name in enumerate(names)}
        return [{"label": names[majority], "probabilities": one_hot}] * len(references)
