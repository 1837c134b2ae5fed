"""How many tokens one sequence may hold on a model, and the tasks' lengths fitted to it.

A task longer than the model's positions tokenizes fine and fails at the first long row, in
the middle of training; this finds it from the model's config.json and tokenizer before any
data is read.
"""

from __future__ import annotations

from typing import NamedTuple

from transformers import PretrainedConfig, PreTrainedTokenizerBase

from mtlm.config import TaskSpec
from mtlm.errors import ConfigError
from mtlm.tasks import KINDS

#: Tokenizers saved without a limit report `model_max_length` as about 1e30.
_NO_LIMIT = 10**12


class PositionLimit(NamedTuple):
    """The most tokens one sequence may hold, and where that figure comes from."""

    tokens: int
    source: str


def position_limit(
    config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase
) -> PositionLimit | None:
    """The model's learned positions (`max_position_embeddings`, which GPT-2's `n_positions`
    answers to as well), or its tokenizer's `model_max_length` where that is lower (RoBERTa
    keeps 2 of its 514 positions for padding). None for a model without absolute positions
    (T5's are relative), where the tokenizer's figure is advice rather than a limit."""
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int):
        return None
    declared = tokenizer.model_max_length
    if isinstance(declared, int) and declared < min(positions, _NO_LIMIT):
        return PositionLimit(declared, "model_max_length in its tokenizer_config.json")
    return PositionLimit(positions, "max_position_embeddings in its config.json")


def fit_task_lengths(
    tasks: list[TaskSpec], family: str, limit: PositionLimit | None, model: str
) -> tuple[list[TaskSpec], list[str]]:
    """Check every task's sequence lengths against `limit` (the model is named `model` in
    messages); return the specs to build the tasks from, and notes on the ones changed.

    A length the config sets beyond the limit is a ConfigError naming the task's keys; the
    default `max_length` (written or not) is lowered to what the model reads, in a copy of the
    spec, as a tokenizer's own truncation would.
    """
    if limit is None:
        return list(tasks), []
    fitted, notes = [], []
    for spec in tasks:
        lengths = KINDS[spec.kind].sequence_lengths(spec, family)
        over = {keys: length for keys, length in lengths.items() if length > limit.tokens}
        if not over:
            fitted.append(spec)
            continue
        # What the other keys of each too-long sequence add to max_length.
        added = [length - spec.max_length for keys, length in over.items() if "max_length" in keys]
        room = limit.tokens - max(added, default=0)
        if not (_is_default_max_length(spec) and len(added) == len(over) and room > 0):
            keys, length = next(iter(over.items()))
            raise ConfigError(_too_long(spec, keys, length, limit, model))
        notes.append(
            f"tasks[{spec.name}].max_length: {model} reads {limit.tokens} tokens "
            f"({limit.source}); the task reads {room}, not the default {spec.max_length}"
        )
        fitted.append(spec.model_copy(update={"max_length": room}))
    return fitted, notes


def _is_default_max_length(spec: TaskSpec) -> bool:
    return spec.max_length == type(spec).model_fields["max_length"].default


def _too_long(
    spec: TaskSpec, keys: tuple[str, ...], length: int, limit: PositionLimit, model: str
) -> str:
    named = " + ".join(keys)
    if len(keys) == 1:
        return (
            f"tasks[{spec.name}].{named}: {length} tokens, and {model} reads at most "
            f"{limit.tokens} ({limit.source}); set it to {limit.tokens} or less"
        )
    values = " + ".join(str(getattr(spec, key)) for key in keys)
    return (
        f"tasks[{spec.name}].{named}: {values} = {length} tokens in one sequence, and {model} "
        f"reads at most {limit.tokens} ({limit.source}); lower them to {limit.tokens} together"
    )
