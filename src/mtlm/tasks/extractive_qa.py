"""Extractive question answering (SQuAD): the answer is a span of the context.

A long context is cut into overlapping windows, so one row gives one or more features; each
feature keeps the index of its row (`example`). Predictions come per window, as the window's
best span with its score; `row_predictions` and `metrics` gather them back into one answer per
row: the best-scoring span over the row's windows (Devlin et al., 2019, BERT's SQuAD recipe).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from mtlm.errors import ConfigError, DataError
from mtlm.tasks.base import Features, TaskKind, check_value
from mtlm.tasks.spec import Dropout, TaskSpec, option_error
from mtlm.tasks.squad_metrics import best_scores

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from mtlm.data.rows import SplitRows

#: Feature fields that help decode predictions but are not model inputs or targets.
_TEXT_FIELDS = ("offset_mapping", "context", "answers")


@dataclass(frozen=True)
class WindowSpan:
    """The best answer span of one window: characters [start, end) of its row's context, its
    score (start logit + end logit; -inf when the window has no valid span) and the window's
    "no answer" score (both logits at position 0)."""

    example: int
    start: int
    end: int
    score: float
    null_score: float


@dataclass(frozen=True)
class QAReference:
    """A row's context and its gold answer texts (none for an unanswerable question)."""

    context: str
    answers: list[str]


class ExtractiveQASpec(TaskSpec):
    """An extractive QA task: its SQuAD-style columns, how a long context is cut into windows
    (`stride` tokens of overlap), the longest answer in tokens, and whether a question may
    have no answer."""

    kind: Literal["extractive_qa"]
    question_column: str = "question"
    context_column: str = "context"
    answers_column: str = "answers"
    stride: int = Field(32, gt=0)
    max_answer_length: int = Field(30, gt=0)
    allow_unanswerable: bool = False
    dropout: Dropout = 0.1

    @model_validator(mode="after")
    def _stride_below_max_length(self) -> ExtractiveQASpec:
        if self.stride >= self.max_length:
            raise option_error(
                "stride",
                f"{self.stride} is the overlap of consecutive windows of a long context and "
                f"must be below max_length ({self.max_length})",
            )
        return self

    def metric_names(self) -> list[str]:
        """Exact match and F1; with unanswerable questions, also over the answerable ones
        and the unanswerable ones alone."""
        groups = ["", "[has_answer]", "[no_answer]"] if self.allow_unanswerable else [""]
        return [f"{metric}{group}" for group in groups for metric in ("exact_match", "f1")]


class ExtractiveQA(TaskKind):
    """SQuAD-style span extraction; metrics exact match and token F1 (SQuAD v1.1, v2.0)."""

    name = "extractive_qa"
    hub_task = "question-answering"
    options = ExtractiveQASpec
    spec: ExtractiveQASpec
    default_primary_metric = "f1"

    @property
    def input_columns(self) -> list[str]:
        """The question and the context."""
        return [self.spec.question_column, self.spec.context_column]

    @property
    def text_columns(self) -> list[str]:
        """The question and the context."""
        return self.input_columns

    def fit(self, splits: dict[str, SplitRows]) -> None:
        """Nothing to learn: answers are spans of the input."""

    # --- data -----------------------------------------------------------------------------
    def encode_inputs(
        self, rows: Sequence[dict[str, Any]], tokenizer: PreTrainedTokenizerBase
    ) -> Features:
        """Windows of every row (question, then a slice of the context), without targets."""
        return self._windows(rows, tokenizer, lambda index: f"input {index + 1}")

    def encode_targets(self, rows: SplitRows) -> Features:
        """Each row's gold answers as `answer_texts` and `answer_starts` (character offsets),
        checked against the context."""
        texts, starts = [], []
        for index, row in enumerate(rows.rows):
            where = rows.where(index)
            check_value(row, self.spec.answers_column, where)
            answers = _answer_list(row[self.spec.answers_column], self.spec.answers_column, where)
            context = str(row[self.spec.context_column])
            for text, start in answers:
                if start < 0 or context[start : start + len(text)] != text:
                    shown = context[start : start + len(text)] if 0 <= start < len(context) else ""
                    raise DataError(
                        f"{where}: answer {text!r} is not at answer_start {start} of the context "
                        + (f"(found {shown!r})" if shown else f"({len(context)} characters)")
                    )
            if not answers and not self.spec.allow_unanswerable:
                raise DataError(
                    f"{where}: no answer in {self.spec.answers_column!r}; set "
                    f"tasks[{self.spec.name}].allow_unanswerable: true for unanswerable questions"
                )
            texts.append([text for text, _ in answers])
            starts.append([start for _, start in answers])
        return {"answer_texts": texts, "answer_starts": starts}

    def prepare(self, rows: SplitRows, tokenizer: PreTrainedTokenizerBase) -> Features:
        """Windows with `start_positions`/`end_positions`: the first answer's tokens when the
        window holds all of it, else position 0 (the [CLS] token: no answer here)."""
        self.check_inputs(rows.rows, rows.where)
        targets = self.encode_targets(rows)
        features = self._windows(rows.rows, tokenizer, rows.where)
        features["answers"], features["start_positions"], features["end_positions"] = [], [], []
        for example, offsets in zip(features["example"], features["offset_mapping"], strict=True):
            texts, starts = targets["answer_texts"][example], targets["answer_starts"][example]
            span = (starts[0], starts[0] + len(texts[0])) if texts else None
            start, end = _token_span(offsets, span)
            features["answers"].append(texts)
            features["start_positions"].append(start)
            features["end_positions"].append(end)
        return features

    def _windows(
        self,
        rows: Sequence[dict[str, Any]],
        tokenizer: PreTrainedTokenizerBase,
        where: Callable[[int], str],
    ) -> Features:
        """Question-context windows; `offset_mapping` holds context character spans, None for
        question and special tokens."""
        spec = self.spec
        if not getattr(tokenizer, "is_fast", False):
            raise ConfigError(
                f"tasks[{spec.name}]: extractive_qa needs a fast tokenizer (one that reports "
                f"character offsets); {type(tokenizer).__name__} is not"
            )
        questions = [str(row[spec.question_column]) for row in rows]
        contexts = [str(row[spec.context_column]) for row in rows]
        # The tokenizer aborts the whole batch when a question leaves no more room than the
        # stride, so such rows are refused one by one, with their location.
        room = spec.max_length - tokenizer.num_special_tokens_to_add(pair=True)
        for index, ids in enumerate(tokenizer(questions, add_special_tokens=False)["input_ids"]):
            if room - len(ids) <= spec.stride:
                raise DataError(
                    f"{where(index)}: the question takes {len(ids)} tokens and leaves "
                    f"{max(room - len(ids), 0)} of max_length {spec.max_length} for the context, "
                    f"not more than the stride {spec.stride}; raise tasks[{spec.name}].max_length "
                    "or lower its stride"
                )
        encoded = tokenizer(
            questions,
            contexts,
            truncation="only_second",
            max_length=spec.max_length,
            stride=spec.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=False,
        )
        examples = list(encoded["overflow_to_sample_mapping"])
        features: Features = {
            key: list(encoded[key])
            for key in ("input_ids", "token_type_ids", "attention_mask")
            if key in encoded
        }
        features["example"] = examples
        features["offset_mapping"] = [
            [
                list(offset) if sequence == 1 else None
                for offset, sequence in zip(
                    encoded["offset_mapping"][index], encoded.sequence_ids(index), strict=True
                )
            ]
            for index in range(len(examples))
        ]
        features["context"] = [contexts[example] for example in examples]
        return features

    def collate(self, features: list[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
        """A padded batch; the offset mapping becomes `context_mask`, `char_starts`, `char_ends`
        (0 outside the context), and the text fields stay out of it."""
        from mtlm.data.batching import pad_features

        rows = []
        for feature in features:
            offsets = feature["offset_mapping"]
            row = {key: value for key, value in feature.items() if key not in _TEXT_FIELDS}
            row["context_mask"] = [int(offset is not None) for offset in offsets]
            row["char_starts"] = [offset[0] if offset else 0 for offset in offsets]
            row["char_ends"] = [offset[1] if offset else 0 for offset in offsets]
            rows.append(row)
        return pad_features(rows, pad_token_id)

    # --- model ----------------------------------------------------------------------------
    def build_head(self, hidden_size: int) -> nn.Module:
        """A linear layer over every token: a start logit and an end logit."""
        from mtlm.modeling.heads import TokenHead

        return TokenHead(hidden_size, 2, self.spec.dropout)

    def loss(self, head_output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean of the start and end cross-entropies over each window's real tokens."""
        import torch.nn.functional as F

        start_logits, end_logits = _masked_logits(head_output, batch["attention_mask"])
        return (
            F.cross_entropy(start_logits, batch["start_positions"])
            + F.cross_entropy(end_logits, batch["end_positions"])
        ) / 2

    def predict(self, head_output: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[Any]:
        """Each window's best span: start ≤ end, both in the context, at most
        `max_answer_length` tokens."""
        import torch

        start_logits, end_logits = _masked_logits(head_output, batch["attention_mask"])
        length = start_logits.shape[1]
        positions = torch.arange(length, device=start_logits.device)
        width = positions[None, :] - positions[:, None]
        context = batch["context_mask"].bool()
        allowed = (
            ((width >= 0) & (width < self.spec.max_answer_length))[None]
            & context[:, :, None]
            & context[:, None, :]
        )
        scores = start_logits[:, :, None] + end_logits[:, None, :]
        best, flat = scores.masked_fill(~allowed, -math.inf).flatten(1).max(dim=1)
        null = start_logits[:, 0] + end_logits[:, 0]
        windows = zip(
            batch["example"].tolist(),
            best.tolist(),
            flat.tolist(),
            null.tolist(),
            batch["char_starts"].tolist(),
            batch["char_ends"].tolist(),
            strict=True,
        )
        spans = []
        for example, score, index, null_score, starts, ends in windows:
            first, last = divmod(index, length)
            spans.append(WindowSpan(example, starts[first], ends[last], score, null_score))
        return spans

    # --- answers and evaluation -----------------------------------------------------------
    def row_predictions(self, spans: list[WindowSpan], rows: Sequence[dict[str, Any]]) -> list[str]:
        """One answer per input row from its windows' spans ("" for no answer)."""
        return self._answers(spans, [str(row[self.spec.context_column]) for row in rows])

    def _answers(self, spans: list[WindowSpan], contexts: list[str]) -> list[str]:
        """The best span over each row's windows; with `allow_unanswerable`, "" when the lowest
        "no answer" score of its windows beats that span (BERT's SQuAD v2.0 rule)."""
        best: dict[int, WindowSpan] = {}
        null: dict[int, float] = {}
        for span in spans:
            if span.example not in best or span.score > best[span.example].score:
                best[span.example] = span
            null[span.example] = min(null.get(span.example, math.inf), span.null_score)
        answers = []
        for example, context in enumerate(contexts):
            span = best.get(example)
            if span is None or span.score == -math.inf:
                answers.append("")
            elif self.spec.allow_unanswerable and null[example] > span.score:
                answers.append("")
            else:
                answers.append(context[span.start : span.end])
        return answers

    def references(self, features: Features) -> list[Any]:
        """One `QAReference` per row (not per window), in row order."""
        by_example: dict[int, QAReference] = {}
        for example, context, answers in zip(
            features["example"], features["context"], features["answers"], strict=True
        ):
            by_example.setdefault(example, QAReference(context, list(answers)))
        return [by_example[example] for example in range(len(by_example))]

    def metrics(self, predictions: list[Any], references: list[Any]) -> dict[str, float]:
        """Exact match and F1 (SQuAD), each row's windows gathered first; with
        `allow_unanswerable`, also over answerable (`[has_answer]`) and unanswerable
        (`[no_answer]`) questions alone, where there are any."""
        answers = self._answers(predictions, [reference.context for reference in references])
        scored = [
            (bool(reference.answers), *best_scores(answer, reference.answers))
            for answer, reference in zip(answers, references, strict=True)
        ]
        groups = {"": scored}
        if self.spec.allow_unanswerable:
            groups["[has_answer]"] = [score for score in scored if score[0]]
            groups["[no_answer]"] = [score for score in scored if not score[0]]
        values = {}
        for suffix, group in groups.items():
            if group:
                values[f"exact_match{suffix}"] = sum(score[1] for score in group) / len(group)
                values[f"f1{suffix}"] = sum(score[2] for score in group) / len(group)
        return values

    def trivial_predictions(self, train: Features, references: list[Any]) -> list[Any]:
        """The context's first k words, k the median length in words of the training answers;
        with `allow_unanswerable`, no answer instead when most training questions have none."""
        train_answers = {
            example: answers
            for example, answers in zip(train["example"], train["answers"], strict=True)
        }
        unanswerable = sum(not answers for answers in train_answers.values())
        if self.spec.allow_unanswerable and 2 * unanswerable >= len(train_answers):
            return [WindowSpan(example, 0, 0, -math.inf, 0.0) for example in range(len(references))]
        lengths = [len(answers[0].split()) for answers in train_answers.values() if answers]
        words = max(round(statistics.median(lengths)), 1)
        spans = []
        for example, reference in enumerate(references):
            ends = [match.end() for match in re.finditer(r"\S+", reference.context)][:words]
            spans.append(WindowSpan(example, 0, ends[-1] if ends else 0, 0.0, -math.inf))
        return spans


def _answer_list(value: Any, column: str, where: str) -> list[tuple[str, int]]:
    """(text, answer_start) pairs from SQuAD's {"text": [...], "answer_start": [...]} or a list
    of {"text", "answer_start"} objects."""
    if isinstance(value, dict) and {"text", "answer_start"} <= set(value):
        texts, starts = value["text"], value["answer_start"]
        if isinstance(texts, list) and isinstance(starts, list) and len(texts) == len(starts):
            pairs = list(zip(texts, starts, strict=True))
        else:
            pairs = None
    elif isinstance(value, list) and all(
        isinstance(item, dict) and {"text", "answer_start"} <= set(item) for item in value
    ):
        pairs = [(item["text"], item["answer_start"]) for item in value]
    else:
        pairs = None
    if pairs is None or not all(
        isinstance(text, str) and text and isinstance(start, int) and not isinstance(start, bool)
        for text, start in pairs
    ):
        raise DataError(
            f"{where}: column {column!r} must be {{'text': [...], 'answer_start': [...]}} "
            "(lists of equal length) or a list of {'text', 'answer_start'} objects, with "
            "non-empty texts and integer character offsets"
        )
    return pairs


def _token_span(offsets: list[list[int] | None], span: tuple[int, int] | None) -> tuple[int, int]:
    """The first and last token of a character span, when the window holds all of it; else
    (0, 0)."""
    inside = [index for index, offset in enumerate(offsets) if offset is not None]
    if span is None or not inside:
        return 0, 0
    start, end = span
    if offsets[inside[0]][0] > start or offsets[inside[-1]][1] < end:
        return 0, 0
    first = max(index for index in inside if offsets[index][0] <= start)
    last = min(index for index in inside if offsets[index][1] >= end)
    return first, last


def _masked_logits(
    head_output: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and end logits, with padding positions at -inf so they take no probability."""
    logits = head_output.float().masked_fill(~attention_mask.bool()[:, :, None], -math.inf)
    return logits[..., 0], logits[..., 1]
