"""Task heads: small modules on top of the backbone's last hidden states."""

from __future__ import annotations

import torch
from torch import nn


def pool(hidden_states: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """One vector per sequence: the first token's state (`cls`) or the mean over real tokens."""
    if pooling == "cls":
        return hidden_states[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class SequenceHead(nn.Module):
    """Pooling, dropout and a linear layer: one output vector per sequence."""

    def __init__(self, hidden_size: int, num_outputs: int, pooling: str, dropout: float) -> None:
        super().__init__()
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_outputs)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits (or values) of shape [batch, num_outputs]."""
        return self.out(self.dropout(pool(hidden_states, attention_mask, self.pooling)))


class TokenHead(nn.Module):
    """Dropout and a linear layer applied to every token's hidden state."""

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_outputs)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits of shape [batch, length, num_outputs]."""
        return self.out(self.dropout(hidden_states))
