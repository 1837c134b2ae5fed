"""Language modelling as an auxiliary task: it keeps adapting the shared backbone to the text
of the domain while the other tasks train (domain-adaptive pretraining, Gururangan et al. 2020,
"Don't Stop Pretraining", done alongside fine-tuning). Its rows need a text column only, so any
task's data file can feed it.

On an encoder the task is masked language modelling (Devlin et al. 2019, "BERT"): a share
`mlm_probability` of the real tokens is hidden, 80% of them behind the mask token, 10% behind a
random token and 10% left as they are, and a head predicts them. Masks are drawn per batch
(dynamic masking, Liu et al. 2019, "RoBERTa"), from a generator seeded by the batch's token
ids: a batch seen again is masked the same way (evaluation is reproducible, and the global
random state is untouched), while training batches, regrouped every epoch, get fresh masks.

On a causal LM the task is next-token prediction over the whole text, with the model's own
head, laid out as a text-to-text row with an empty prompt.

Evaluation generates nothing: each row's negative log-likelihood and token count give the
perplexity, exp(Σ nll / Σ tokens).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from mtlm.errors import ConfigError, DataError
from mtlm.tasks.base import Features, TaskKind, described, is_text
from mtlm.tasks.spec import TaskSpec
from mtlm.tasks.text_to_text import causal_batch, next_token_aligned

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from mtlm.data.rows import SplitRows

_IGNORE = -100
#: Of the tokens chosen for prediction: the share hidden behind the mask token, and the share
#: (after those) replaced by a random token; the rest stay as they are (Devlin et al. 2019).
_MASK_SHARE, _RANDOM_SHARE = 0.8, 0.1


class LanguageModelingSpec(TaskSpec):
    """A language-modelling task: the column of its text, and the share of tokens that
    masked language modelling hides (on an encoder)."""

    kind: Literal["language_modeling"]
    text_column: str = "text"
    mlm_probability: float = Field(0.15, gt=0.0, lt=1.0)

    def metric_names(self) -> list[str]:
        """Perplexity and the mean loss per token."""
        return ["perplexity", "loss"]


class LanguageModeling(TaskKind):
    """Masked (encoder) or next-token (causal) language modelling; metric perplexity."""

    name = "language_modeling"
    hub_task = "text-generation"
    options = LanguageModelingSpec
    spec: LanguageModelingSpec
    families = frozenset({"encoder", "causal"})
    generates = False
    auxiliary = True
    lower_is_better = frozenset({"perplexity", "loss"})
    default_primary_metric = "perplexity"

    @property
    def uses_language_model_head(self) -> bool:
        """On a causal model, its own language model head predicts the next tokens; on an
        encoder, a masked-LM head of the task's."""
        return self.state.get("family", "encoder") == "causal"

    def ideal_score(self, metric: str) -> float:
        """Perplexity is at least 1 (every token predicted with certainty); the loss at least 0."""
        return 1.0 if metric == "perplexity" else super().ideal_score(metric)

    @property
    def input_columns(self) -> list[str]:
        """The text column."""
        return [self.spec.text_column]

    def check_inputs(self, rows: Sequence[dict[str, Any]], where: Callable[[int], str]) -> None:
        """Every row's text column holds a text or a list of words."""
        super().check_inputs(rows, where)
        column = self.spec.text_column
        for index, row in enumerate(rows):
            value = row[column]
            words = isinstance(value, list) and all(is_text(word) for word in value)
            if not (is_text(value) or words):
                raise DataError(
                    f"{where(index)}: column {column!r} must hold a text or a list of words, "
                    f"got {described(value)}"
                )

    @property
    def vocab_size(self) -> int:
        """How many tokens the model predicts among (its input embeddings' rows)."""
        if "vocab_size" not in self.state:
            raise ConfigError(
                f"tasks[{self.spec.name}]: a language_modeling task learns its vocabulary from "
                "the model; build the MultiTaskModel before using the task"
            )
        return self.state["vocab_size"]

    def bind_model(
        self, family: str, tokenizer: PreTrainedTokenizerBase | None, vocabulary_size: int
    ) -> None:
        """The family, and the vocabulary the head predicts (the embeddings' rows, so that the
        head matches the embeddings it starts from)."""
        super().bind_model(family, tokenizer, vocabulary_size)
        self.bind_vocabulary(tokenizer, vocabulary_size)

    def bind_vocabulary(self, tokenizer: PreTrainedTokenizerBase | None, size: int) -> None:
        """Learn the model's vocabulary size and, to mask on an encoder, the tokenizer's mask
        token; an encoder whose tokenizer has none is refused."""
        self.state["vocab_size"] = size
        if self.uses_language_model_head:
            return
        if tokenizer is not None:
            self.state["mask_token_id"] = tokenizer.mask_token_id
        if self.state.get("mask_token_id") is None:
            raise ConfigError(
                f"tasks[{self.spec.name}].kind: language_modeling on an encoder hides tokens "
                "behind the tokenizer's mask token, and the tokenizer has none"
            )

    # --- data -----------------------------------------------------------------------------
    def fit(self, splits: dict[str, SplitRows]) -> None:
        """Nothing to learn from the rows: the vocabulary comes from the model."""

    def encode_inputs(
        self, rows: Sequence[dict[str, Any]], tokenizer: PreTrainedTokenizerBase
    ) -> Features:
        """The text's tokens (with special tokens, truncated to max_length) and which of them
        are special; a list value (a row's words) is joined with spaces."""
        texts = []
        for row in rows:
            value = row[self.spec.text_column]
            texts.append(" ".join(map(str, value)) if isinstance(value, list) else str(value))
        encoded = tokenizer(
            texts,
            truncation=True,
            max_length=self.spec.max_length,
            return_special_tokens_mask=True,
            return_token_type_ids=False,
        )
        return {
            key: list(encoded[key])
            for key in ("input_ids", "attention_mask", "special_tokens_mask")
        }

    def encode_targets(self, rows: SplitRows) -> Features:
        """No targets: the text is its own."""
        return {}

    def collate(self, features: list[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
        """Masked tokens with their labels (encoder), or every token as a label (causal); -100
        where no loss is taken."""
        from mtlm.data.batching import pad_features

        if self.uses_language_model_head:
            return causal_batch([{**f, "prompt_length": 0} for f in features], pad_token_id)
        batch = pad_features(features, pad_token_id)
        candidates = (batch.pop("special_tokens_mask") == 0) & (batch["attention_mask"] == 1)
        return {**batch, **self._mask(batch["input_ids"], candidates)}

    def _mask(self, input_ids: torch.Tensor, candidates: torch.Tensor) -> dict[str, torch.Tensor]:
        """Input ids with `mlm_probability` of the candidates hidden, and labels for them."""
        import torch

        digest = hashlib.blake2b(str(tuple(input_ids.shape)).encode(), digest_size=8)
        digest.update(input_ids.numpy().tobytes())
        generator = torch.Generator().manual_seed(int.from_bytes(digest.digest(), "little"))
        shape = input_ids.shape
        chosen = (torch.rand(shape, generator=generator) < self.spec.mlm_probability) & candidates
        if not chosen.any() and candidates.any():
            # A batch of short texts may draw no token, and would then have no loss; one of its
            # candidates is hidden instead.
            positions = candidates.flatten().nonzero().flatten()
            pick = torch.randint(len(positions), (1,), generator=generator)
            chosen.view(-1)[positions[pick]] = True
        action = torch.rand(shape, generator=generator)
        random_tokens = torch.randint(self.vocab_size, shape, generator=generator)
        masked = torch.where(
            chosen & (action < _MASK_SHARE), self.state["mask_token_id"], input_ids
        )
        replaced = chosen & (action >= 1.0 - _RANDOM_SHARE)
        return {
            "input_ids": torch.where(replaced, random_tokens, masked),
            "labels": torch.where(chosen, input_ids, _IGNORE),
        }

    # --- model ----------------------------------------------------------------------------
    def build_head(self, hidden_size: int) -> nn.Module:
        """A masked-LM head on an encoder; none on a causal LM, whose own head predicts."""
        from torch import nn

        from mtlm.modeling.heads import MaskedLMHead

        if self.uses_language_model_head:
            return nn.Module()
        return MaskedLMHead(hidden_size, self.vocab_size)

    def _token_losses(
        self, head_output: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The cross-entropy of every predicted token, and the batch row it belongs to."""
        import torch.nn.functional as F

        logits, labels = head_output, batch["labels"]
        if self.uses_language_model_head:
            logits, labels = next_token_aligned(logits, labels)
        predicted = labels != _IGNORE
        # Only the predicted positions go through the softmax: a small share of the logits.
        losses = F.cross_entropy(logits[predicted].float(), labels[predicted], reduction="none")
        return losses, predicted.nonzero()[:, 0]

    def loss(self, head_output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy over the predicted tokens (0, with no gradient, if none)."""
        losses, _ = self._token_losses(head_output, batch)
        return losses.sum() / max(losses.numel(), 1)

    def predict(self, head_output: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[Any]:
        """Each row's summed negative log-likelihood and the number of tokens it covers."""
        import torch

        losses, rows = self._token_losses(head_output, batch)
        count = len(batch["labels"])
        nll = torch.zeros(count, dtype=torch.float64, device=losses.device)
        nll.index_add_(0, rows, losses.double())
        tokens = torch.bincount(rows, minlength=count)
        return [
            {"nll": value, "tokens": number}
            for value, number in zip(nll.tolist(), tokens.tolist(), strict=True)
        ]

    # --- evaluation -----------------------------------------------------------------------
    def references(self, features: Features) -> list[Any]:
        """The tokens the model may be asked to predict, per row: the non-special ones
        (encoder), or all but the first (causal)."""
        if self.uses_language_model_head:
            return [list(ids[1:]) for ids in features["input_ids"]]
        return [
            [token for token, special in zip(ids, flags, strict=True) if not special]
            for ids, flags in zip(
                features["input_ids"], features["special_tokens_mask"], strict=True
            )
        ]

    def metrics(self, predictions: list[Any], references: list[Any]) -> dict[str, float]:
        """Perplexity, exp(Σ nll / Σ tokens), and that mean loss per token; NaN when no token
        was scored."""
        tokens = sum(prediction["tokens"] for prediction in predictions)
        if not tokens:
            return {"perplexity": math.nan, "loss": math.nan}
        loss = sum(prediction["nll"] for prediction in predictions) / tokens
        return {"perplexity": math.exp(loss), "loss": loss}

    def trivial_predictions(self, train: Features, references: list[Any]) -> list[Any]:
        """A unigram model of the training tokens, with add-one smoothing over the vocabulary:
        it scores every token the model may be asked to predict, whatever its context."""
        counts = Counter(token for tokens in self.references(train) for token in tokens)
        total = sum(counts.values()) + self.vocab_size
        return [
            {
                "nll": -sum(math.log((counts[token] + 1) / total) for token in tokens),
                "tokens": len(tokens),
            }
            for tokens in references
        ]
