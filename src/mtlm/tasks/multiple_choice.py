"""Multiple choice (SWAG, HellaSwag, ARC, COPA style): pick the right ending of a context.

A row holds a context, its candidate endings (a list, whose length may differ between rows, or
one column per candidate) and the right one's index or text (or, with a column per candidate,
that column's name). Each (context, ending) pair is encoded as a text pair; a batch
of rows runs all its pairs through the encoder in one pass and the head scores each pair. The
scores of a row's candidates compete in a softmax; places of rows with fewer candidates than
the batch's widest row are masked, so they can neither win nor enter the loss.
"""

from __future__ import annotations

import json
import re
import reprlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import field_validator

from mtlm.errors import DataError
from mtlm.tasks.base import Features, SequenceSpec, SequenceTask, check_value, joined_texts
from mtlm.tasks.spec import Columns, column_list

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from mtlm.data.rows import SplitRows


class MultipleChoiceSpec(SequenceSpec):
    """A multiple-choice task: its context column (`text_column`, or several joined), the
    column of each row's candidates (or a list of columns, one candidate each, as COPA's
    `[choice1, choice2]`), and the column of the right one (an index or the candidate's text,
    or the name of its column)."""

    kind: Literal["multiple_choice"]
    choices_column: Columns = "choices"

    @field_validator("choices_column")
    @classmethod
    def _two_candidate_columns(cls, columns: str | list[str]) -> str | list[str]:
        if isinstance(columns, list) and len(columns) < 2:
            raise ValueError("name two columns or more, one candidate each, or one list column")
        return columns

    @property
    def choices_in_columns(self) -> bool:
        """Whether each candidate has a column of its own (rather than a list in one column)."""
        return isinstance(self.choices_column, list)

    def metric_names(self) -> list[str]:
        """Accuracy."""
        return ["accuracy"]


class MultipleChoice(SequenceTask):
    """Scores every candidate of a row with one head output; metric accuracy."""

    name = "multiple_choice"
    hub_task = "multiple-choice"
    options = MultipleChoiceSpec
    spec: MultipleChoiceSpec
    default_primary_metric = "accuracy"
    num_outputs = 1

    @property
    def input_columns(self) -> list[str]:
        """The context columns and the candidates' columns."""
        return column_list(self.spec.text_column) + column_list(self.spec.choices_column)

    @property
    def text_columns(self) -> list[str]:
        """The context columns, and the candidates' when each has a column of its own."""
        choices = column_list(self.spec.choices_column) if self.spec.choices_in_columns else []
        return column_list(self.spec.text_column) + choices

    def choices(self, row: dict[str, Any]) -> Any:
        """A row's candidates: its candidates' columns, or its list of them."""
        if self.spec.choices_in_columns:
            return [str(row[column]) for column in self.spec.choices_column]
        return parse_choices(row[self.spec.choices_column])

    def fit(self, splits: dict[str, SplitRows]) -> None:
        """Nothing to learn: the answers are positions among each row's own candidates."""

    def check_inputs(self, rows: Sequence[dict[str, Any]], where: Callable[[int], str]) -> None:
        """Every row has a context and at least two non-empty candidates."""
        super().check_inputs(rows, where)
        if self.spec.choices_in_columns:
            return  # each candidate's column holds a text, as every text column must
        column = self.spec.choices_column
        for index, row in enumerate(rows):
            choices = parse_choices(row[column])
            # one candidate would be a row with nothing to choose: a data mistake, not a task
            if not (
                isinstance(choices, list)
                and len(choices) >= 2
                and all(isinstance(choice, str) and choice.strip() for choice in choices)
            ):
                raise DataError(
                    f"{where(index)}: column {column!r} must be a list of at least two "
                    f'non-empty texts (in CSV, a JSON list such as ["yes", "no"]), '
                    f"got {reprlib.repr(row[column])}"
                )

    def encode_inputs(
        self, rows: Sequence[dict[str, Any]], tokenizer: PreTrainedTokenizerBase
    ) -> Features:
        """Per row, one list of token ids (and masks) per candidate: context, then candidate."""
        counts, contexts, endings = [], [], []
        for row, context in zip(
            rows, joined_texts(rows, self.spec.text_column, tokenizer), strict=True
        ):
            choices = self.choices(row)
            counts.append(len(choices))
            contexts.extend([context] * len(choices))
            endings.extend(choices)
        pairs = encode_pairs(contexts, endings, tokenizer, self.spec.max_length)
        features: Features = {key: [] for key in pairs}
        start = 0
        for count in counts:
            for key, values in pairs.items():
                features[key].append(values[start : start + count])
            start += count
        return features

    def encode_targets(self, rows: SplitRows) -> Features:
        """The right candidate's index; one out of range, or a text not among the candidates,
        names its row."""
        column = self.spec.label_column
        named = column_list(self.spec.choices_column) if self.spec.choices_in_columns else []
        labels = []
        for index, row in enumerate(rows.rows):
            check_value(row, column, rows.where(index))
            if row[column] in named:
                labels.append(named.index(row[column]))
                continue
            labels.append(answer_index(row[column], self.choices(row), rows.where(index), column))
        return {"labels": labels}

    def collate(self, features: list[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
        """All candidates of the rows as one padded batch of pairs, row after row;
        `choice_mask` [rows, most candidates] marks which places hold a real candidate."""
        import torch

        from mtlm.data.batching import pad_features

        per_choice = [key for key, value in features[0].items() if isinstance(value, list)]
        pairs = [
            {key: feature[key][choice] for key in per_choice}
            for feature in features
            for choice in range(len(feature["input_ids"]))
        ]
        batch = pad_features(pairs, pad_token_id)
        counts = torch.tensor([len(feature["input_ids"]) for feature in features])
        batch["choice_mask"] = torch.arange(int(counts.max())) < counts.unsqueeze(1)
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([feature["labels"] for feature in features])
        return batch

    def choice_scores(
        self, head_output: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """The head's score of every candidate as [rows, most candidates]; -inf where a row
        has no candidate."""
        import torch

        mask = batch["choice_mask"]
        scores = head_output.float().squeeze(-1)
        return torch.full(mask.shape, float("-inf"), device=scores.device).masked_scatter(
            mask, scores
        )

    def batch_rows(self, batch: dict[str, torch.Tensor]) -> int:
        """Rows, not pairs: a row's candidates make several pairs."""
        return len(batch["choice_mask"])

    def loss(self, head_output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy over each row's candidates."""
        import torch.nn.functional as F

        return F.cross_entropy(self.choice_scores(head_output, batch), batch["labels"])

    def predict(self, head_output: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[Any]:
        """The index of the best candidate and every candidate's probability."""
        probabilities = self.choice_scores(head_output, batch).softmax(dim=-1)
        counts = batch["choice_mask"].sum(dim=-1).tolist()
        return [
            {"choice": int(row.argmax()), "probabilities": row[:count].tolist()}
            for row, count in zip(probabilities, counts, strict=True)
        ]

    def references(self, features: Features) -> list[Any]:
        """Gold candidate indices."""
        return list(features["labels"])

    def metrics(self, predictions: list[Any], references: list[Any]) -> dict[str, float]:
        """Accuracy."""
        right = sum(p["choice"] == gold for p, gold in zip(predictions, references, strict=True))
        return {"accuracy": right / max(len(references), 1)}

    def trivial_predictions(self, train: Features, references: list[Any]) -> list[Any]:
        """Always the position that is most often right in training (no probabilities: they
        would need each row's number of candidates)."""
        majority = Counter(train["labels"]).most_common(1)[0][0]
        return [{"choice": majority}] * len(references)


def parse_choices(value: Any) -> Any:
    """A row's candidates: a list as JSON lines or Parquet hold it, or CSV's JSON text of one.

    Text that is not JSON comes back unchanged, for the caller to reject.
    """
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def answer_index(value: Any, choices: list[str], where: str, column: str) -> int:
    """The index of the right candidate, given as an index (an int or digits) or as its text;
    a DataError names `where` otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        index = value
    elif isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        index = int(value)
    elif isinstance(value, str) and value in choices:
        return choices.index(value)
    else:
        raise DataError(
            f"{where}: answer {reprlib.repr(value)} in column {column!r} is neither a "
            f"candidate's index nor one of the candidates {reprlib.repr(choices)}"
        )
    if not 0 <= index < len(choices):
        raise DataError(
            f"{where}: answer index {index} in column {column!r} is out of range for "
            f"{len(choices)} candidates (indices start at 0)"
        )
    return index


def encode_pairs(
    contexts: list[str], endings: list[str], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> Features:
    """Tokenize (context, ending) pairs to at most `max_length` tokens, cutting the context.

    An ending too long to fit whole beside a token of context shares the cut with its context
    (`longest_first`); `only_first` would fail on it.
    """
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True)
    lengths = [len(ids) for ids in tokenizer(endings, add_special_tokens=False)["input_ids"]]
    features: Features = {}
    for strategy, fits in (("only_first", True), ("longest_first", False)):
        indices = [index for index, length in enumerate(lengths) if (length < room) == fits]
        if not indices:
            continue
        encoded = tokenizer(
            [contexts[index] for index in indices],
            [endings[index] for index in indices],
            truncation=strategy,
            max_length=max_length,
            padding=False,
            return_attention_mask=True,
        )
        for key, values in encoded.items():
            column = features.setdefault(key, [None] * len(lengths))
            for index, value in zip(indices, values, strict=True):
                column[index] = list(value)
    return features
