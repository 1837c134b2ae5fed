"""Text-to-text tasks: a prompt in, a target text out, on a causal or sequence-to-sequence LM.

Any task fits once its rows are written as a prompt and a target (`prompt_template`,
`target_template`, Python format strings over the row's columns; list values are joined with
spaces): classification ("Review: {text}\\nSentiment:" → " {label}"), regression as text,
tagging as text, translation, summarisation. The task has no head of its own: the model's
language-modelling head scores the target tokens, and the loss covers the target only (the
prompt's tokens are masked out, as in instruction tuning: Wei et al. 2022, "Finetuned
Language Models Are Zero-Shot Learners").

Features are the same for both model families, prompt then target in one sequence; `collate`
lays them out for the family the model binds into `state["family"]`: one sequence with the
prompt masked for a causal LM, encoder input and decoder labels for a sequence-to-sequence LM.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from mtlm.errors import ConfigError, DataError
from mtlm.tasks.base import Features, TaskKind, check_value
from mtlm.tasks.spec import TaskSpec
from mtlm.tasks.text_metrics import (
    exact_match,
    normalise,
    numeric_scores,
    text_scores,
    word_accuracy,
)

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from mtlm.data.rows import SplitRows

#: Targets with at most this many distinct values in training are scored as labels.
_MAX_LABELS = 50
_IGNORE = -100


#: A column, optionally indexed into a nested value: `text`, `translation[de]`.
_FIELD = re.compile(r"([A-Za-z_]\w*)(\[[^\[\]]+\])*")


def template_fields(template: str, key: str) -> list[str]:
    """The columns a format string reads (`{translation[de]}` reads `translation`); a malformed
    template names its key."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field]
    except ValueError as error:
        raise ConfigError(f"{key}: {error}") from None
    columns = []
    for field in fields:
        matched = _FIELD.fullmatch(field)
        if matched is None:
            raise ConfigError(
                f"{key}: {{{field}}} is not a column name (or a column indexed with [key])"
            )
        columns.append(matched.group(1))
    return list(dict.fromkeys(columns))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def fill(template: str, row: dict[str, Any], where: str = "a row") -> str:
    """The template with the row's values; lists (words, tags) are joined with spaces. A value
    the template indexes but the row lacks is a DataError naming `where`."""
    values = {
        key: " ".join(map(str, value)) if isinstance(value, list) else value
        for key, value in row.items()
    }
    try:
        return template.format_map(values)
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise DataError(f"{where}: cannot fill the template {template!r} ({error!r})") from None


def causal_batch(features: list[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Padded sequences for a causal LM: labels are the tokens after each row's `prompt_length`
    (-100 on the prompt and the padding), and `prompt_length` goes along so that the model
    keeps the logits of target positions only."""
    import torch

    from mtlm.data.batching import pad_features

    batch = pad_features(
        [
            {
                "input_ids": f["input_ids"],
                "attention_mask": f["attention_mask"],
                "labels": [_IGNORE] * f["prompt_length"] + f["input_ids"][f["prompt_length"] :],
            }
            for f in features
        ],
        pad_token_id,
    )
    batch["prompt_length"] = torch.tensor([f["prompt_length"] for f in features])
    return batch


def next_token_aligned(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """A causal LM's logits and the labels they predict, position by position.

    Position t predicts token t + 1, and the model may return logits for the last k positions
    only (`logits_to_keep`): the kept logits but the last score the last k - 1 labels.
    """
    kept = logits.shape[1]
    return logits[:, :-1], labels[:, labels.shape[1] - kept + 1 :]


class TextToTextSpec(TaskSpec):
    """A text-to-text task: the prompt and the target as Python format strings over a row's
    columns (the prompt defaults to `{text_column}`), their token budgets, and how answers are
    decoded: generated, or chosen by scoring each label (`score_labels`)."""

    kind: Literal["text_to_text"]
    text_column: str = "text"
    prompt_template: str | None = None
    target_template: str = "{label}"
    max_target_length: int = Field(64, gt=0)
    max_new_tokens: int = Field(32, gt=0)
    decoding: Literal["generate", "score_labels"] = "generate"

    def metric_names(self) -> list[str]:
        """Exact match; accuracy and macro-F1 for label-like targets; BLEU, chrF and ROUGE-L
        for free text; Pearson, MSE and the share parsed for numbers; word accuracy for word
        lists (which of them a task reports depends on its targets)."""
        return [
            "exact_match",
            "accuracy",
            "macro_f1",
            "bleu",
            "chrf",
            "rougeL",
            "pearson",
            "mse",
            "numeric_parsed",
            "word_accuracy",
        ]


class TextToText(TaskKind):
    """A prompt and a target text; metrics by generation (or by scoring each label)."""

    name = "text_to_text"
    hub_task = "text-generation"
    options = TextToTextSpec
    spec: TextToTextSpec
    families = frozenset({"causal", "seq2seq"})
    generates = True
    lower_is_better = frozenset({"mse"})

    #: The language model's own head produces the target tokens.
    uses_language_model_head = True

    @classmethod
    def sequence_lengths(cls, spec: TextToTextSpec, family: str) -> dict[tuple[str, ...], int]:
        """A causal LM reads the prompt and then the target (in training) or the generated
        answer in one sequence; a sequence-to-sequence LM reads the prompt in its encoder and
        the target or answer in its decoder."""
        if family == "causal":
            return {
                ("max_length", "max_target_length"): spec.max_length + spec.max_target_length,
                ("max_length", "max_new_tokens"): spec.max_length + spec.max_new_tokens,
            }
        return {
            ("max_length",): spec.max_length,
            ("max_target_length",): spec.max_target_length,
            ("max_new_tokens",): spec.max_new_tokens,
        }

    @property
    def prompt_template(self) -> str:
        """The prompt: the configured template, else the text column alone."""
        return self.spec.prompt_template or f"{{{self.spec.text_column}}}"

    @property
    def input_columns(self) -> list[str]:
        """The columns the prompt reads."""
        return template_fields(self.prompt_template, f"tasks[{self.spec.name}].prompt_template")

    @property
    def target_columns(self) -> list[str]:
        """The columns the target reads."""
        return template_fields(
            self.spec.target_template, f"tasks[{self.spec.name}].target_template"
        )

    @property
    def label_names(self) -> list[str] | None:
        """The distinct training targets when there are few (label-like targets), else None."""
        return self.state.get("label_names")

    # --- data -----------------------------------------------------------------------------
    def fit(self, splits: dict[str, SplitRows]) -> None:
        """Learn whether targets are labels, and the most common one (the trivial answer)."""
        rows = splits["train"]
        self.check_inputs(rows.rows, rows.where)
        targets = self._targets(rows)
        counts = Counter(targets)
        self.state["label_names"] = sorted(counts) if len(counts) <= _MAX_LABELS else None
        self.state["numeric"] = bool(counts) and all(_is_number(target) for target in counts)
        self.state["most_common_target"] = counts.most_common(1)[0][0] if counts else ""
        # A target written from a list column (tags, one per word) is scored word by word.
        self.state["word_targets"] = any(
            isinstance(row.get(column), list) for row in rows.rows for column in self.target_columns
        )
        if self.spec.decoding == "score_labels" and self.label_names is None:
            raise ConfigError(
                f"tasks[{self.spec.name}].decoding: score_labels needs label-like targets, and "
                f"the training split has {len(counts)} distinct ones (at most {_MAX_LABELS})"
            )

    def _targets(self, rows: SplitRows) -> list[str]:
        for index, row in enumerate(rows.rows):
            for column in self.target_columns:
                check_value(row, column, rows.where(index))
        return [
            fill(self.spec.target_template, row, rows.where(index))
            for index, row in enumerate(rows.rows)
        ]

    def encode_inputs(
        self, rows: Sequence[dict[str, Any]], tokenizer: PreTrainedTokenizerBase
    ) -> Features:
        """The prompts' tokens (with the tokenizer's special tokens), truncated to max_length."""
        prompts = [fill(self.prompt_template, row) for row in rows]
        ids = tokenizer(prompts, truncation=True, max_length=self.spec.max_length)["input_ids"]
        return {
            "input_ids": [list(row) for row in ids],
            "attention_mask": [[1] * len(row) for row in ids],
            "prompt_length": [len(row) for row in ids],
        }

    def encode_targets(self, rows: SplitRows) -> Features:
        """The target texts; a missing target column names its row."""
        return {"target": self._targets(rows)}

    def prepare(self, rows: SplitRows, tokenizer: PreTrainedTokenizerBase) -> Features:
        """Prompt tokens followed by target tokens and the end-of-sequence token."""
        if tokenizer.eos_token_id is None:
            raise ConfigError(
                f"tasks[{self.spec.name}]: the tokenizer has no end-of-sequence token, so a "
                "generated target could not end"
            )
        self.check_inputs(rows.rows, rows.where)
        for index, row in enumerate(rows.rows):
            fill(self.prompt_template, row, rows.where(index))
        features = self.encode_inputs(rows.rows, tokenizer)
        features.update(self.encode_targets(rows))
        target_ids = tokenizer(
            features["target"],
            add_special_tokens=False,
            truncation=True,
            max_length=self.spec.max_target_length - 1,
        )["input_ids"]
        for index, target in enumerate(target_ids):
            features["input_ids"][index] = features["input_ids"][index] + [
                *target,
                tokenizer.eos_token_id,
            ]
            features["attention_mask"][index] = [1] * len(features["input_ids"][index])
        return features

    def collate(self, features: list[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
        """The batch as the bound model family reads it, with -100 where no loss is taken."""
        from mtlm.data.batching import pad_features

        family = self.state.get("family", "causal")
        if family == "seq2seq":
            prompts = [{"input_ids": f["input_ids"][: f["prompt_length"]]} for f in features]
            batch = pad_features(
                [{**p, "attention_mask": [1] * len(p["input_ids"])} for p in prompts],
                pad_token_id,
            )
            targets = [f["input_ids"][f["prompt_length"] :] for f in features]
            batch["labels"] = pad_features([{"labels": t} for t in targets], pad_token_id)["labels"]
            return batch
        return causal_batch(features, pad_token_id)

    # --- model ----------------------------------------------------------------------------
    def build_head(self, hidden_size: int) -> nn.Module:
        """No head: the language model's own head produces the target tokens."""
        from torch import nn

        return nn.Module()

    def loss(self, head_output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy over target tokens."""
        import torch.nn.functional as F

        logits, labels = self._aligned(head_output, batch)
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=_IGNORE)

    def log_likelihood(
        self, head_output: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """Each row's summed log-probability of its target tokens."""
        import torch.nn.functional as F

        logits, labels = self._aligned(head_output, batch)
        token_losses = F.cross_entropy(
            logits.transpose(1, 2), labels, ignore_index=_IGNORE, reduction="none"
        )
        return -token_losses.sum(dim=1)

    def _aligned(
        self, head_output: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the labels they predict, position by position."""
        logits, labels = head_output.float(), batch["labels"]
        if self.state.get("family", "causal") == "seq2seq":
            return logits, labels
        return next_token_aligned(logits, labels)

    def predict(self, head_output: Any, batch: dict[str, torch.Tensor]) -> list[Any]:
        """The generated texts (the model decodes them), without surrounding white space."""
        return [text.strip() for text in head_output]

    # --- evaluation -----------------------------------------------------------------------
    def references(self, features: Features) -> list[Any]:
        """The target texts."""
        return [target.strip() for target in features["target"]]

    @property
    def default_primary_metric(self) -> str:
        """Pearson for numbers, word accuracy for word lists (tags), accuracy for labels, chrF
        for free text."""
        if self.state.get("numeric"):
            return "pearson"
        if self.state.get("word_targets"):
            return "word_accuracy"
        return "accuracy" if self.label_names is not None else "chrf"

    def metrics(self, predictions: list[Any], references: list[Any]) -> dict[str, float]:
        """Exact match always; accuracy and macro-F1 for labels; BLEU, chrF and ROUGE-L for
        free text; Pearson and MSE for numbers; word accuracy for word lists."""
        from sklearn.metrics import f1_score

        scores = {"exact_match": exact_match(predictions, references)}
        if self.state.get("word_targets"):
            scores["word_accuracy"] = word_accuracy(predictions, references)
        if self.label_names is not None:
            predicted = [normalise(p) for p in predictions]
            gold = [normalise(r) for r in references]
            scores["accuracy"] = scores["exact_match"]
            scores["macro_f1"] = float(
                f1_score(
                    gold, predicted, labels=sorted(set(gold)), average="macro", zero_division=0
                )
            )
        else:
            scores.update(text_scores(predictions, references))
        scores.update(numeric_scores(predictions, references))
        return scores

    def trivial_predictions(self, train: Features, references: list[Any]) -> list[Any]:
        """Always the most common training target."""
        most_common = self.state["most_common_target"]
        if not isinstance(most_common, str):
            raise DataError(f"tasks[{self.spec.name}]: no training targets")
        return [most_common.strip()] * len(references)
