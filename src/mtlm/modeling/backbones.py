"""Which kind of language model a checkpoint is, and loading it with the matching class.

An encoder (BERT-like) is loaded bare, and task heads read its hidden states. A causal LM
(GPT-, Llama-like) or a sequence-to-sequence LM (T5, BART) is loaded with its
language-modelling head, which text-to-text tasks use as their head; on a causal LM, task
heads read the hidden states under that head.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    PretrainedConfig,
    PreTrainedModel,
)

from mtlm.devices import Placement
from mtlm.errors import ConfigError
from mtlm.tasks import KINDS, TaskKind, TaskSpec
from mtlm.tasks.language_modeling import LanguageModeling
from mtlm.tasks.text_to_text import TextToText

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
    placement: Placement | None = None,
) -> PreTrainedModel:
    """The pretrained model at `location` with its LM head for decoder families, its weights
    in `dtype` (`auto`: the checkpoint's own), its layers spread by `placement` if given (as
    transformers' `from_pretrained` places them: device_map "auto" spreads a model too large
    for one device over several, and over disk with an offload folder); a ConfigError names
    `key` when it cannot be loaded."""
    family = backbone_family(location, revision, key)
    placed = {} if placement is None else placement.from_pretrained_kwargs()
    try:
        return _CLASSES[family].from_pretrained(
            location,
            revision=revision,
            dtype=dtype if dtype == "auto" else getattr(torch, dtype),
            **placed,
        )
    except (OSError, ValueError) as error:
        raise ConfigError(f"{key}: cannot load {str(location)!r} ({error})") from None


def check_task_kinds(
    family: Family,
    specs: Sequence[TaskSpec],
    model: str,
    kinds: Mapping[str, type[TaskKind]] = KINDS,
) -> None:
    """Refuse tasks the model's family cannot serve (`model` names the model in the message),
    and options it cannot honour: text generation from an encoder, a head on a
    sequence-to-sequence model's states, first-token pooling on a causal model. `kinds` maps
    each spec's kind to its class (a model passes its own tasks', which may be a user's)."""
    for spec in specs:
        kind = kinds[spec.kind]
        if family not in kind.families:
            served = " or ".join(sorted(kind.families))
            # Any task with an answer per row can be written as a prompt and a target;
            # language modelling has no answer to write.
            advice = (
                "; cast the task as text_to_text (a prompt and a target template)"
                if family in TextToText.families and kind is not LanguageModeling
                else ""
            )
            raise ConfigError(
                f"tasks[{spec.name}].kind: {kind.name} works with {served} models, and the "
                f"model is {'an' if family == 'encoder' else 'a'} {family} model ({model}){advice}"
            )
        kind.check_options(spec, family)
