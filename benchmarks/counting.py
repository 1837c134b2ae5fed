"""What a training run fed its encoder, and the useful FLOP/s that makes.

Shared by the training benchmarks of mtlm and of its peers; it needs torch only, so that the
peers in virtualenvs of their own can use it too.
"""

from __future__ import annotations

import resource


class TokenCounter:
    """Counts what training fed the BERT encoders of the models it watches: rows, real and
    computed tokens, Σ length² (the watched encoders must share one architecture)."""

    def __init__(self) -> None:
        self.examples = self.real = self.computed = self.squares = 0
        self.encoder = None

    def watch(self, model) -> None:
        """Count the training-mode forwards of every BERT encoder inside `model`."""
        encoders = [m for m in model.modules() if type(m).__name__ == "BertModel"]
        if not encoders:
            raise RuntimeError("no BERT encoder found to count tokens on")
        for encoder in encoders:
            encoder.register_forward_pre_hook(self._count, with_kwargs=True)
        self.encoder = self.encoder or encoders[0]

    def _count(self, module, args, kwargs) -> None:
        if not module.training:
            return
        mask = kwargs.get("attention_mask")
        if mask is None:
            mask = args[1]
        lengths = mask.sum(-1)
        self.examples += mask.shape[0]
        self.real += int(lengths.sum())
        self.computed += mask.numel()
        self.squares += int((lengths.double() ** 2).sum())

    def figures(self, seconds: float) -> dict:
        """Throughput and useful FLOP/s of the counted tokens over `seconds`: 6 × non-embedding
        parameters × real tokens, plus 12 × layers × hidden × Σ length² for attention."""
        config = self.encoder.config
        parameters = sum(
            p.numel() for name, p in self.encoder.named_parameters() if "embeddings" not in name
        )
        attention = 12 * config.num_hidden_layers * config.hidden_size * self.squares
        return {
            "train_seconds": round(seconds, 2),
            "examples": self.examples,
            "real_tokens": self.real,
            "computed_tokens": self.computed,
            "padding_fraction": round(1 - self.real / self.computed, 4),
            "tokens_per_second": round(self.real / seconds, 1),
            "examples_per_second": round(self.examples / seconds, 2),
            "useful_flops_per_second": (6 * parameters * self.real + attention) / seconds,
        }


def peak_rss_mb() -> float:
    """Peak resident memory of this process."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
