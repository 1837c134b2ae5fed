"""Task heads: small modules on top of the backbone's last hidden states."""

from __future__ import annotations

import torch
from torch import nn


def pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """One vector per sequence: the first token's state (`cls`), the last real token's
    (`last`: the rightmost position the attention mask keeps, so that right and left padding
    give the same token) or the mean over real tokens."""
    if pooling == "cls":
        return hidden_states[:, 0]
    if pooling == "last":
        positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
        last = (positions * attention_mask).argmax(dim=1)
        return hidden_states[torch.arange(len(hidden_states), device=last.device), last]
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class SequenceHead(nn.Module):
    """One output vector per sequence.

    With `cls` pooling: first token, dense, tanh, dropout, linear, the shape of Hugging Face's
    sequence classifiers (BERT's pooler and classifier, RoBERTa's classification head), so a
    task can be exported as one of them. With `last` pooling: last real token, dropout, linear
    without bias, the shape of its decoders' (`LlamaForSequenceClassification`'s `score`). With
    `mean` pooling: mean, dropout, linear.
    """

    def __init__(self, hidden_size: int, num_outputs: int, pooling: str, dropout: float) -> None:
        super().__init__()
        self.pooling = pooling
        self.dense = nn.Linear(hidden_size, hidden_size) if pooling == "cls" else None
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_outputs, bias=pooling != "last")

    def start_from_backbone(self, backbone: nn.Module) -> None:
        """Copy the backbone's pretrained pooler (if it has one) into this head's dense layer,
        as Hugging Face's sequence classifiers start from it."""
        pooler_dense = getattr(getattr(backbone, "pooler", None), "dense", None)
        if self.dense is None or pooler_dense is None:
            return
        with torch.no_grad():
            # weight/bias, not state_dict: a LoRA-wrapped layer exposes its base layer's here
            self.dense.weight.copy_(pooler_dense.weight)
            self.dense.bias.copy_(pooler_dense.bias)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits (or values) of shape [batch, num_outputs]."""
        pooled = pool(hidden_states, attention_mask, self.pooling)
        if self.dense is not None:
            pooled = torch.tanh(self.dense(pooled))
        return self.out(self.dropout(pooled))


class TokenHead(nn.Module):
    """Dropout and a linear layer applied to every token's hidden state."""

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_outputs)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits of shape [batch, length, num_outputs]."""
        return self.out(self.dropout(hidden_states))


class MaskedLMHead(nn.Module):
    """A vocabulary distribution at every position: dense, GELU, layer norm and a projection to
    the vocabulary, the shape of BERT's masked-LM head (Devlin et al., 2019)."""

    def __init__(self, hidden_size: int, vocab_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.activation = nn.GELU()
        self.norm = nn.LayerNorm(hidden_size)
        self.out = nn.Linear(hidden_size, vocab_size)

    def start_from_backbone(self, backbone: nn.Module) -> None:
        """Start the projection as a copy of the backbone's input embeddings with zero bias, as
        BERT ties the two; a copy, not a tie, since heads are saved apart from the backbone."""
        with torch.no_grad():
            self.out.weight.copy_(backbone.get_input_embeddings().weight)
            self.out.bias.zero_()

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits of shape [batch, length, vocab_size]."""
        return self.out(self.norm(self.activation(self.dense(hidden_states))))
