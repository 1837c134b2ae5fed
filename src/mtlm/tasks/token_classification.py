"""Word-level tagging (POS, NER): one label per word, carried by the word's first sub-word."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from mtlm.errors import DataError
from mtlm.tasks.base import (
    Features,
    TaskKind,
    check_value,
    class_weights,
    described,
    is_label,
    label_id,
    label_vocabulary,
    per_class_f1,
)
from mtlm.tasks.spec import ClassWeights, Dropout, Labels, TaskSpec, per_class_f1_names

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from mtlm.data.rows import SplitRows


class TokenClassificationSpec(TaskSpec):
    """A tagging task: its columns of words and of tags, its tags, and their loss weights
    (`class_weights`, which also adds each tag's F1 to the metrics)."""

    kind: Literal["token_classification"]
    tokens_column: str = "tokens"
    tags_column: str = "tags"
    labels: Labels = None
    class_weights: ClassWeights = None
    dropout: Dropout = 0.1

    def metric_names(self) -> list[str]:
        """Token accuracy; entity precision, recall and F1 unless the declared tags are not
        BIO; each tag's F1 with class weights."""
        entities = ["precision", "recall", "f1"]
        if self.labels is not None and not is_bio(self.labels):
            entities = []
        per_class = per_class_f1_names(self.labels) if self.class_weights is not None else []
        return ["accuracy", *entities, *per_class]


def is_bio(names: list[str]) -> bool:
    """Whether tag names follow the BIO/IOB2 scheme, so that entity spans make sense."""
    return any(name.startswith("B-") for name in names) and all(
        name == "O" or name[:2] in ("B-", "I-") for name in names
    )


class TokenClassification(TaskKind):
    """Tagging; metrics token accuracy always, entity P/R/F1 (seqeval) when tags are BIO."""

    name = "token_classification"
    hub_task = "token-classification"
    options = TokenClassificationSpec
    spec: TokenClassificationSpec
    families = frozenset({"encoder", "causal"})

    @property
    def label_names(self) -> list[str]:
        """Tag names, in the order of the head's outputs."""
        return self.state["label_names"]

    @property
    def is_bio(self) -> bool:
        """Whether the tags follow the BIO/IOB2 scheme, so that entity spans make sense."""
        return is_bio(self.label_names)

    @property
    def default_primary_metric(self) -> str:
        """Entity F1 for BIO tags, token accuracy otherwise."""
        return "f1" if self.is_bio else "accuracy"

    @property
    def input_columns(self) -> list[str]:
        """The column of word lists."""
        return [self.spec.tokens_column]

    def fit(self, splits: dict[str, SplitRows]) -> None:
        """Tag names from the config, else every tag seen in any split."""
        column = self.spec.tags_column
        seen = [
            tag
            for rows in splits.values()
            for row in rows.rows
            if isinstance(row.get(column), list)
            for tag in row[column]
        ]
        self.state["label_names"] = label_vocabulary(seen, self.spec.labels)
        train = Counter(
            str(tag)
            for row in splits["train"].rows
            if isinstance(row.get(column), list)
            for tag in row[column]
        )
        self.state["class_weights"] = class_weights(self.spec, self.label_names, train)

    def check_inputs(self, rows: Sequence[dict[str, Any]], where: Any) -> None:
        """Every row has a non-empty list of non-empty words."""
        super().check_inputs(rows, where)
        column = self.spec.tokens_column
        for index, row in enumerate(rows):
            words = row[column]
            if (
                not isinstance(words, list)
                or not words
                or not all(isinstance(word, str) and word.strip() for word in words)
            ):
                raise DataError(
                    f"{where(index)}: column {column!r} must be a non-empty list of non-empty words"
                )

    def encode_inputs(
        self, rows: Sequence[dict[str, Any]], tokenizer: PreTrainedTokenizerBase
    ) -> Features:
        """Sub-word ids, and `word_starts`: 1 + the word's index at its first sub-word, else 0."""
        encoded = tokenizer(
            [row[self.spec.tokens_column] for row in rows],
            is_split_into_words=True,
            truncation=True,
            max_length=self.spec.max_length,
            padding=False,
        )
        features: Features = {key: list(value) for key, value in encoded.items()}
        features["word_starts"] = [
            first_subwords(encoded.word_ids(index)) for index in range(len(rows))
        ]
        return features

    def encode_targets(self, rows: SplitRows) -> Features:
        """Tag ids per word; counts must match the words."""
        ids = {name: index for index, name in enumerate(self.label_names)}
        words_column, tags_column = self.spec.tokens_column, self.spec.tags_column
        tag_ids = []
        for index, row in enumerate(rows.rows):
            check_value(row, tags_column, rows.where(index))
            tags = row[tags_column]
            if not isinstance(tags, list):
                raise DataError(f"{rows.where(index)}: column {tags_column!r} must be a list")
            wrong = next((tag for tag in tags if not is_label(tag)), None)
            if wrong is not None:
                raise DataError(
                    f"{rows.where(index)}: column {tags_column!r} must be a list of tags (texts "
                    f"or numbers), and holds {described(wrong)}"
                )
            if len(tags) != len(row[words_column]):
                raise DataError(
                    f"{rows.where(index)}: {len(row[words_column])} words in {words_column!r} "
                    f"but {len(tags)} tags in {tags_column!r}"
                )
            tag_ids.append([label_id(tag, ids, rows.where(index), self.spec) for tag in tags])
        return {"tag_ids": tag_ids}

    def prepare(self, rows: SplitRows, tokenizer: PreTrainedTokenizerBase) -> Features:
        """Features whose `labels` hold each word's tag at its first sub-word, -100 elsewhere."""
        self.check_inputs(rows.rows, rows.where)
        tag_ids = self.encode_targets(rows)["tag_ids"]
        features = self.encode_inputs(rows.rows, tokenizer)
        features["labels"] = [
            _spread(starts, tags)
            for starts, tags in zip(features["word_starts"], tag_ids, strict=True)
        ]
        return features

    def build_head(self, hidden_size: int) -> nn.Module:
        """A linear layer over every token."""
        from mtlm.modeling.heads import TokenHead

        return TokenHead(hidden_size, len(self.label_names), self.spec.dropout)

    def loss(self, head_output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy over first sub-words only, tag-weighted when configured."""
        import torch.nn.functional as F

        logits = head_output.float().flatten(0, 1)
        weight = self.class_weight_tensor(logits)
        return F.cross_entropy(logits, batch["labels"].flatten(), weight=weight, ignore_index=-100)

    def predict(self, head_output: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[Any]:
        """One tag per word kept after truncation."""
        best = head_output.argmax(dim=-1).tolist()
        starts = batch["word_starts"].tolist()
        names = self.label_names
        return [
            {"tags": [names[tag] for tag, start in zip(row, mask, strict=True) if start]}
            for row, mask in zip(best, starts, strict=True)
        ]

    def references(self, features: Features) -> list[Any]:
        """Gold tags of the words kept after truncation."""
        names = self.label_names
        return [[names[label] for label in row if label != -100] for row in features["labels"]]

    def metrics(self, predictions: list[Any], references: list[Any]) -> dict[str, float]:
        """Token accuracy; entity precision, recall and F1 (IOB2, strict) for BIO tags."""
        from seqeval.metrics import f1_score, precision_score, recall_score
        from seqeval.scheme import IOB2

        predicted = [prediction["tags"] for prediction in predictions]
        pairs = [
            (p, g)
            for row_p, row_g in zip(predicted, references, strict=True)
            for p, g in zip(row_p, row_g, strict=True)
        ]
        scores = {"accuracy": sum(p == g for p, g in pairs) / max(len(pairs), 1)}
        if self.is_bio:
            options = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
            scores["precision"] = float(precision_score(references, predicted, **options))
            scores["recall"] = float(recall_score(references, predicted, **options))
            scores["f1"] = float(f1_score(references, predicted, **options))
        if self.spec.class_weights is not None:
            flat_predicted, flat_gold = zip(*pairs, strict=True) if pairs else ((), ())
            scores.update(per_class_f1(list(flat_gold), list(flat_predicted), self.label_names))
        return scores

    def trivial_predictions(self, train: Features, references: list[Any]) -> list[Any]:
        """The most frequent training tag for every word."""
        majority = Counter(
            label for row in train["labels"] for label in row if label != -100
        ).most_common(1)[0][0]
        return [{"tags": [self.label_names[majority]] * len(row)} for row in references]


def first_subwords(word_ids: list[int | None]) -> list[int]:
    """For each sub-word, 1 + its word's index if it starts the word, else 0 (a continuation,
    a special token or padding)."""
    previous = None
    starts = []
    for word in word_ids:
        starts.append(word + 1 if word is not None and word != previous else 0)
        previous = word
    return starts


def _spread(starts: list[int], tags: list[int]) -> list[int]:
    """Each word's tag at its first sub-word; words cut off by truncation have no position."""
    return [tags[start - 1] if start else -100 for start in starts]
