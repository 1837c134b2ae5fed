"""MultiTaskPipeline: every head of a MultiTaskModel on raw texts, sharing the encoder pass.

Where a `transformers.pipeline` serves one model, this serves all of a MultiTaskModel's tasks
at once: each text is tokenized once and, under hard sharing, each batch goes through the
encoder once for every head.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtlm.errors import ConfigError, DataError
from mtlm.inference import predict_features
from mtlm.modeling.lengths import position_limit
from mtlm.modeling.multitask_model import MultiTaskModel
from mtlm.tasks.classification import Classification
from mtlm.tasks.regression import Regression
from mtlm.tasks.token_classification import TokenClassification, first_subwords


class MultiTaskPipeline:
    """Predictions of several tasks (classification, regression, token_classification) for
    texts or text pairs, decoded as `MultiTaskModel.predict` decodes them.

    Texts go to every single-text task: sequence tasks read the text, token-classification
    tasks its whitespace-separated words. A text is tokenized once, with character offsets
    from which each sub-word's word is found, so both kinds of head read the same encoding.
    (text, pair) tuples go to the text-pair tasks. Under hard sharing each batch runs through
    the encoder once for all heads; under soft and LoRA sharing every task has an encoder of
    its own (its `sharing.pass_key`), so each batch runs through the encoder once per task.

    Batches are sorted by length and padded to their longest input; results come back in
    input order. Every task reads up to `max_length` tokens (by default the largest
    `max_length` of the tasks served for the kind of input), so on a longer input a task with a
    shorter `max_length` reads more of it than `model.predict` would give it.
    """

    def __init__(
        self,
        model: MultiTaskModel | str | Path,
        tasks: list[str] | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
    ) -> None:
        self.model = (
            model if isinstance(model, MultiTaskModel) else MultiTaskModel.from_pretrained(model)
        )
        servable = [
            name
            for name, task in self.model.tasks.items()
            if isinstance(task, Classification | Regression | TokenClassification)
        ]
        names = servable if tasks is None else list(tasks)
        unknown = [name for name in names if name not in self.model.tasks]
        if unknown:
            raise ConfigError(
                f"tasks: no task {unknown[0]!r} in the model (tasks: {', '.join(self.model.tasks)})"
            )
        unserved = [name for name in names if name not in servable]
        if unserved:
            kind = self.model.tasks[unserved[0]].name
            raise ConfigError(
                f"tasks: {unserved[0]!r} is a {kind} task; the pipeline serves classification, "
                "regression and token_classification"
            )
        if not names:
            raise ConfigError("tasks: no task to serve")
        if batch_size < 1 or (max_length is not None and max_length < 1):
            raise ConfigError("batch_size and max_length: must be positive")
        if self.model.tokenizer is None:
            raise ConfigError("model: the model has no tokenizer")
        limit = position_limit(self.model.sharing.base.config, self.model.tokenizer)
        if max_length is not None and limit is not None and max_length > limit.tokens:
            raise ConfigError(
                f"max_length: {max_length} tokens, and the model reads at most {limit.tokens} "
                f"({limit.source})"
            )
        self.pair_tasks = [
            name
            for name in names
            if not isinstance(self.model.tasks[name], TokenClassification)
            and self.model.tasks[name].spec.text_pair_column
        ]
        self.text_tasks = [n for n in names if n not in self.pair_tasks]
        self.batch_size = batch_size
        self.max_length = max_length

    def __call__(
        self, inputs: str | Sequence[str] | Sequence[tuple[str, str]]
    ) -> dict[str, list[Any]]:
        """`{task: [prediction per input]}`: every served single-text task's predictions for
        texts, every served pair task's for (text, pair) tuples."""
        items = [inputs] if isinstance(inputs, str) else list(inputs)
        if not items:
            raise ConfigError("inputs: empty; give a text, a list of texts or of (text, pair)")
        if all(isinstance(item, str) for item in items):
            names, what = self.text_tasks, "texts"
        elif all(_is_pair(item) for item in items):
            names, what = self.pair_tasks, "text pairs"
        else:
            raise ConfigError(
                "inputs: give texts or (text, pair) tuples, not a mix or other values"
            )
        if not names:
            raise ConfigError(f"inputs: no served task reads {what}")
        for index, item in enumerate(items):
            if any(not text.strip() for text in ([item] if isinstance(item, str) else item)):
                raise DataError(f"input {index + 1}: empty text")
        max_length = self.max_length or max(self.model.tasks[n].spec.max_length for n in names)
        if what == "texts":
            features = self._encode_texts(items, names, max_length)
        else:
            features = self._encode_pairs(items, max_length)
        return predict_features(self.model, names, features, self.batch_size)

    def _encode_texts(
        self, texts: list[str], names: list[str], max_length: int
    ) -> dict[str, list[Any]]:
        """Token ids and, for tagging heads, `word_starts` (1 + the word's index at its first
        sub-word, else 0) from the tokens' character offsets."""
        tokenizer = self.model.tokenizer
        tagging = any(isinstance(self.model.tasks[n], TokenClassification) for n in names)
        if tagging and not tokenizer.is_fast:
            raise ConfigError("tasks: tagging tasks need a tokenizer with character offsets")
        encoded = tokenizer(
            texts,
            truncation=True,
            max_length=max_length,
            padding=False,
            return_offsets_mapping=tagging,
            return_special_tokens_mask=tagging,
        )
        offsets = encoded.pop("offset_mapping", None)
        special = encoded.pop("special_tokens_mask", None)
        features: dict[str, list[Any]] = {key: list(value) for key, value in encoded.items()}
        if tagging:
            features["word_starts"] = [
                first_subwords(word_ids(text, text_offsets, text_special))
                for text, text_offsets, text_special in zip(texts, offsets, special, strict=True)
            ]
        return features

    def _encode_pairs(self, pairs: list[Sequence[str]], max_length: int) -> dict[str, list[Any]]:
        """Token ids of each (text, pair), encoded together as the pair tasks encode them."""
        encoded = self.model.tokenizer(
            [pair[0] for pair in pairs],
            [pair[1] for pair in pairs],
            truncation=True,
            max_length=max_length,
            padding=False,
        )
        return {key: list(value) for key, value in encoded.items()}


def word_ids(
    text: str, offsets: Sequence[tuple[int, int]], special: Sequence[int]
) -> list[int | None]:
    """The index of the whitespace-separated word each token belongs to (None for special
    tokens), found from the tokens' character offsets."""
    ends = [match.end() for match in re.finditer(r"\S+", text)]
    # The first word ending after a token's start holds it, even where the tokenizer's
    # offsets include the space before a word.
    return [
        None if is_special or start == end else bisect.bisect_right(ends, start)
        for (start, end), is_special in zip(offsets, special, strict=True)
    ]


def _is_pair(item: Any) -> bool:
    return (
        isinstance(item, tuple | list)
        and len(item) == 2
        and all(isinstance(text, str) for text in item)
    )
