"""Decoded predictions of several tasks of a model for plain inputs: the one path from inputs
to answers that `MultiTaskModel.predict`, `RoutedModel`, `MultiTaskPipeline` and `mtlm predict`
take (`mtlm evaluate` enters it at `predict_features`, with its cached features)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mtlm.errors import ConfigError
from mtlm.inference.inputs import encode
from mtlm.inference.passes import predict_encoded
from mtlm.inference.predictor import Predictor


def predict_inputs(
    model: Predictor, inputs: Mapping[str, Sequence[Any]], batch_size: int = 32
) -> dict[str, list[Any]]:
    """Each named task's predictions for its inputs (texts, (text, pair) tuples, word lists or
    rows), one per input, in input order."""
    if batch_size < 1:
        raise ConfigError(f"batch_size: must be at least 1 (got {batch_size})")
    encoded = encode(model, inputs)
    predicted = predict_encoded(model, encoded, batch_size)
    answers = {
        name: model.tasks[name].row_predictions(predicted[name], group.rows)
        for group in encoded
        for name in group.tasks
    }
    return {name: answers[name] for name in inputs}
