"""What prediction needs of a model.

`MultiTaskModel` has all of it, and predicts by calling `mtlm.inference`; naming the model by
what it offers, not by its class, keeps the prediction modules from importing the model's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from mtlm.modeling.sharing import Sharing
    from mtlm.tasks import TaskKind


class Predictor(Protocol):
    """A model with a head per task on shared (or per-task) encoders."""

    tasks: dict[str, TaskKind]
    tokenizer: PreTrainedTokenizerBase | None
    sharing: Sharing
    #: `encoder`, `causal` or `seq2seq`.
    family: str

    @property
    def pad_token_id(self) -> int:
        """The id batches are padded with."""

    def parameters(self) -> Iterator[nn.Parameter]:
        """The model's weights (their device is where batches go)."""

    def evaluating(self) -> AbstractContextManager[Any]:
        """Eval mode for a block, then the mode before."""

    def forward_heads(
        self, batch: dict[str, torch.Tensor], tasks: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """Several heads on one backbone pass over a batch."""

    def __call__(self, task: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One task's output on its batch (its language model's logits on a decoder)."""
