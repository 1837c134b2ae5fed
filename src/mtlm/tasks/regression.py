"""Single-text or text-pair regression to one real-valued score."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from mtlm.errors import DataError
from mtlm.tasks.base import Features, TextPairSpec, TextPairTask, check_value

if TYPE_CHECKING:
    import torch

    from mtlm.data.rows import SplitRows


class RegressionSpec(TextPairSpec):
    """A regression task: its text (or text pair) columns and the column of its scores."""

    kind: Literal["regression"]

    def metric_names(self) -> list[str]:
        """Pearson and Spearman correlation, and the mean squared error."""
        return ["pearson", "spearman", "mse"]


class Regression(TextPairTask):
    """Regression; the head learns standardised targets. Metrics Pearson, Spearman, MSE."""

    name = "regression"
    hub_task = "text-classification"
    options = RegressionSpec
    spec: RegressionSpec
    default_primary_metric = "pearson"
    families = frozenset({"encoder", "causal"})
    lower_is_better = frozenset({"mse"})
    num_outputs = 1

    def fit(self, splits: dict[str, SplitRows]) -> None:
        """Mean and standard deviation of the training targets, to standardise them."""
        import numpy as np

        targets = np.asarray(self._targets(splits["train"]))
        self.state["mean"] = float(targets.mean())
        self.state["std"] = float(targets.std()) or 1.0

    def encode_targets(self, rows: SplitRows) -> Features:
        """Standardised targets; a missing or non-numeric one names its row."""
        mean, std = self.state["mean"], self.state["std"]
        return {"labels": [(value - mean) / std for value in self._targets(rows)]}

    def _targets(self, rows: SplitRows) -> list[float]:
        column = self.spec.label_column
        values = []
        for index, row in enumerate(rows.rows):
            check_value(row, column, rows.where(index))
            try:
                value = float(row[column])
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value) or isinstance(row[column], bool):
                raise DataError(
                    f"{rows.where(index)}: column {column!r} must be a number, got {row[column]!r}"
                )
            values.append(value)
        return values

    def loss(self, head_output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean squared error on standardised targets."""
        import torch.nn.functional as F

        return F.mse_loss(head_output.float().squeeze(-1), batch["labels"])

    def predict(self, head_output: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[Any]:
        """Scores on the scale of the training targets."""
        values = head_output.float().squeeze(-1) * self.state["std"] + self.state["mean"]
        return [{"score": value} for value in values.tolist()]

    def references(self, features: Features) -> list[Any]:
        """Gold scores on their original scale."""
        return [value * self.state["std"] + self.state["mean"] for value in features["labels"]]

    def metrics(self, predictions: list[Any], references: list[Any]) -> dict[str, float]:
        """Pearson and Spearman correlation (0 where predictions are constant) and MSE."""
        import numpy as np
        from scipy.stats import pearsonr, spearmanr

        predicted = np.asarray([prediction["score"] for prediction in predictions])
        gold = np.asarray(references)
        constant = np.ptp(predicted) == 0 or np.ptp(gold) == 0
        return {
            "pearson": 0.0 if constant else float(pearsonr(predicted, gold)[0]),
            "spearman": 0.0 if constant else float(spearmanr(predicted, gold)[0]),
            "mse": float(np.mean((predicted - gold) ** 2)),
        }

    def trivial_predictions(self, train: Features, references: list[Any]) -> list[Any]:
        """Always the training mean."""
        return [{"score": self.state["mean"]}] * len(references)
