"""Which kind of language model a checkpoint is, and loading it with the matching class.

An encoder (BERT-like) is loaded bare, and task heads read its hidden states. A causal LM
(GPT-, Llama-like) or a sequence-to-sequence LM (T5, BART) is loaded with its
language-modelling head, which text-to-text tasks use as their head.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    PretrainedConfig,
    PreTrainedModel,
)

from mtlm.errors import ConfigError
from mtlm.tasks import TaskKind

Family = Literal["encoder", "causal", "seq2seq"]
_CLASSES = {"encoder": AutoModel, "causal": AutoModelForCausalLM, "seq2seq": AutoModelForSeq2SeqLM}
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def model_family(config: PretrainedConfig) -> Family:
    """`seq2seq` for encoder-decoder models, `causal` for decoders saved with their LM head
    (architectures ending in ForCausalLM or LMHeadModel), else `encoder`."""
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    if any(name.endswith(_CAUSAL_SUFFIXES) for name in config.architectures or []):
        return "causal"
    return "encoder"


def backbone_config(
    location: str | Path, revision: str | None = None, key: str = "model.name_or_path"
) -> PretrainedConfig:
    """The configuration of the model at `location` (config.json alone, not the weights); a
    ConfigError names `key` when it cannot be read."""
    try:
        return AutoConfig.from_pretrained(location, revision=revision)
    except (OSError, ValueError) as error:
        raise ConfigError(f"{key}: cannot load {str(location)!r} ({error})") from None


def backbone_family(
    location: str | Path, revision: str | None = None, key: str = "model.name_or_path"
) -> Family:
    """The family of the model at `location`, read from its config alone."""
    return model_family(backbone_config(location, revision, key))


def load_backbone(
    location: str | Path,
    revision: str | None = None,
    key: str = "model.name_or_path",
    dtype: str = "float32",
    device_map: str | dict[str, Any] | None = None,
) -> PreTrainedModel:
    """The pretrained model at `location` with its LM head for decoder families, its weights
    in `dtype` (`auto`: the checkpoint's own), its layers placed by `device_map` if given (as
    transformers' `from_pretrained` places them: "auto" spreads a model too large for one
    device over several); a ConfigError names `key` when it cannot be loaded."""
    family = backbone_family(location, revision, key)
    placed = {} if device_map is None else {"device_map": device_map}
    try:
        return _CLASSES[family].from_pretrained(
            location,
            revision=revision,
            dtype=dtype if dtype == "auto" else getattr(torch, dtype),
            **placed,
        )
    except (OSError, ValueError) as error:
        raise ConfigError(f"{key}: cannot load {str(location)!r} ({error})") from None


def check_task_kinds(family: Family, kinds: Mapping[str, type[TaskKind]], model: str) -> None:
    """Refuse tasks the model's family cannot serve (`model` names the model in the message):
    a head on a decoder's states, or text generation from an encoder."""
    for name, kind in kinds.items():
        if family in kind.families:
            continue
        served = " or ".join(sorted(kind.families))
        advice = (
            "; cast the task as text_to_text (a prompt and a target template)"
            if kind.families == {"encoder"}
            else ""
        )
        raise ConfigError(
            f"tasks[{name}].kind: {kind.name} works with {served} models, and the model is "
            f"{'an' if family == 'encoder' else 'a'} {family} model ({model}){advice}"
        )
