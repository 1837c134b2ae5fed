"""The model's position limit, and the tasks' lengths checked (or their default lowered) to it."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import tiny_decoder_tokenizer, tiny_tokenizer
from transformers import BertConfig, GPT2Config, LlamaConfig, T5Config

from mtlm import ConfigError
from mtlm.config import TaskSpec, task_spec
from mtlm.modeling.lengths import PositionLimit, fit_task_lengths, position_limit

POSITIONS = PositionLimit(64, "max_position_embeddings in its config.json")


def spec(kind: str = "classification", **fields: Any) -> TaskSpec:
    return task_spec({"name": "t", "kind": kind, "data": {"train": "x"}, **fields})


def test_the_limit_is_the_models_positions_or_its_tokenizers_lower_figure() -> None:
    tokenizer = tiny_tokenizer()  # saved without a limit: model_max_length is about 1e30
    assert position_limit(BertConfig(max_position_embeddings=64), tokenizer) == POSITIONS
    # GPT-2 calls its positions n_positions; transformers maps the name
    assert position_limit(GPT2Config(n_positions=32), tokenizer).tokens == 32
    tokenizer.model_max_length = 50  # RoBERTa: 514 positions, 512 for tokens
    assert position_limit(BertConfig(max_position_embeddings=64), tokenizer) == (
        50,
        "model_max_length in its tokenizer_config.json",
    )
    tokenizer.model_max_length = 512  # a figure above the positions does not raise the limit
    assert position_limit(BertConfig(max_position_embeddings=64), tokenizer) == POSITIONS


def test_relative_positions_have_no_limit_whatever_the_tokenizer_says() -> None:
    tokenizer = tiny_decoder_tokenizer()
    tokenizer.model_max_length = 512
    assert position_limit(T5Config(), tokenizer) is None
    too_long = [spec("text_to_text", max_length=4000)]
    assert fit_task_lengths(too_long, "seq2seq", None, "t5") == (too_long, [])


def test_a_max_length_beyond_the_positions_names_the_key_and_the_limit() -> None:
    with pytest.raises(ConfigError) as caught:
        fit_task_lengths([spec(max_length=100000)], "encoder", POSITIONS, "tiny-bert")
    assert str(caught.value) == (
        "tasks[t].max_length: 100000 tokens, and tiny-bert reads at most 64 "
        "(max_position_embeddings in its config.json); set it to 64 or less"
    )


def test_the_default_max_length_is_lowered_to_the_positions_in_a_copy() -> None:
    default, written = spec(), spec(max_length=64)
    fitted, notes = fit_task_lengths([default, written], "encoder", POSITIONS, "tiny-bert")
    assert [task.max_length for task in fitted] == [64, 64]
    assert fitted[1] is written and default.max_length == 128
    assert notes == [
        "tasks[t].max_length: tiny-bert reads 64 tokens (max_position_embeddings in its "
        "config.json); the task reads 64, not the default 128"
    ]


def test_a_decoder_reads_prompt_and_target_in_one_sequence() -> None:
    limit = PositionLimit(128, "max_position_embeddings in its config.json")
    with pytest.raises(ConfigError) as caught:
        fit_task_lengths([spec("text_to_text", max_length=100)], "causal", limit, "llama")
    assert str(caught.value) == (
        "tasks[t].max_length + max_target_length: 100 + 64 = 164 tokens in one sequence, and "
        "llama reads at most 128 (max_position_embeddings in its config.json); lower them to "
        "128 together"
    )
    # the default prompt length leaves room for the longest target or answer
    fitted, _ = fit_task_lengths([spec("text_to_text", max_new_tokens=80)], "causal", limit, "m")
    assert fitted[0].max_length == 128 - 80
    # a sequence-to-sequence model reads them apart
    fitted, notes = fit_task_lengths([spec("text_to_text", max_length=100)], "seq2seq", limit, "m")
    assert fitted[0].max_length == 100 and notes == []


def test_a_target_longer_than_a_decoders_positions_is_named() -> None:
    limit = PositionLimit(128, "max_position_embeddings in its config.json")
    with pytest.raises(ConfigError, match=r"^tasks\[t\]\.max_target_length: 200 tokens"):
        fit_task_lengths([spec("text_to_text", max_target_length=200)], "seq2seq", limit, "bart")
    # nothing is left of the default prompt beside a target that fills the positions
    with pytest.raises(ConfigError, match=r"^tasks\[t\]\.max_length \+ max_target_length"):
        fit_task_lengths([spec("text_to_text", max_target_length=128)], "causal", limit, "m")


def test_llama_positions_count_too() -> None:
    config = LlamaConfig(max_position_embeddings=128)
    assert position_limit(config, tiny_decoder_tokenizer()).tokens == 128
