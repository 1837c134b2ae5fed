"""Answers of text-to-text tasks: greedy generation, or the likeliest of the task's labels.

Both read prompts from a task's features (the tokens before `prompt_length`), in
length-sorted batches, and return one text per feature in input order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from mtlm.inference.predictor import Predictor


@torch.no_grad()
def generate_answers(
    model: Predictor,
    task: str,
    features: dict[str, list[Any]],
    batch_size: int,
    device: torch.device,
) -> list[str]:
    """Each prompt's answer: generated greedily up to `max_new_tokens`, or with
    `decoding: score_labels` the label the model finds likeliest."""
    spec = model.tasks[task].spec
    prompts = [
        ids[:length]
        for ids, length in zip(features["input_ids"], features["prompt_length"], strict=True)
    ]
    if spec.decoding == "score_labels":
        answer = _label_scorer(model, task, device)
        batch_size = max(1, batch_size // len(model.tasks[task].label_names))
    else:
        answer = _generator(model, task, device)
    answers: list[str] = [""] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda index: len(prompts[index]))
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        for index, text in zip(indices, answer([prompts[i] for i in indices]), strict=True):
            answers[index] = text
    return answers


def _generator(
    model: Predictor, task: str, device: torch.device
) -> Callable[[list[list[int]]], list[str]]:
    tokenizer = model.tokenizer
    pad_id = model.pad_token_id
    language_model = model.sharing.encoder(task)
    causal = model.family == "causal"

    def generate(prompts: list[list[int]]) -> list[str]:
        # A causal model continues the last position, so its prompts are padded on the left.
        input_ids, attention_mask = _pad(prompts, pad_id, left=causal, device=device)
        generated = language_model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=model.tasks[task].spec.max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=pad_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new_tokens = generated[:, input_ids.shape[1] :] if causal else generated
        return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    return generate


def _label_scorer(
    model: Predictor, task: str, device: torch.device
) -> Callable[[list[list[int]]], list[str]]:
    """The label with the highest log-likelihood (its tokens and the end of sequence) after each
    prompt: a closed-set answer that generation could miss by a token."""
    kind = model.tasks[task]
    tokenizer = model.tokenizer
    pad_id = model.pad_token_id
    labels = kind.label_names
    label_ids = [
        ids + [tokenizer.eos_token_id]
        for ids in tokenizer(labels, add_special_tokens=False)["input_ids"]
    ]

    def score(prompts: list[list[int]]) -> list[str]:
        rows = [
            {
                "input_ids": prompt + ids,
                "attention_mask": [1] * (len(prompt) + len(ids)),
                "prompt_length": len(prompt),
            }
            for prompt in prompts
            for ids in label_ids
        ]
        batch = {key: value.to(device) for key, value in kind.collate(rows, pad_id).items()}
        logits = model(task, batch)
        likelihood = kind.log_likelihood(logits, batch).view(len(prompts), len(labels))
        return [labels[index] for index in likelihood.argmax(dim=-1).tolist()]

    return score


def _pad(
    sequences: list[list[int]], pad_id: int, left: bool, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(sequence) for sequence in sequences)
    ids, mask = [], []
    for sequence in sequences:
        padding = [pad_id] * (width - len(sequence))
        ids.append(padding + sequence if left else sequence + padding)
        ones, zeros = [1] * len(sequence), [0] * len(padding)
        mask.append(zeros + ones if left else ones + zeros)
    return torch.tensor(ids, device=device), torch.tensor(mask, device=device)
