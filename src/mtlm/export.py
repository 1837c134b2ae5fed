"""Export one task of a MultiTaskModel as a plain Hugging Face model folder.

The folder (config.json, model.safetensors, tokenizer files) loads with
`AutoModelForSequenceClassification` or `AutoModelForTokenClassification` (a task with a
head, on an encoder or a decoder), or `AutoModelForCausalLM` / `AutoModelForSeq2SeqLM` (a
text-to-text task: its own language model, adapter merged), and so with
`transformers.pipeline`, without mtlm. Weights are mapped by the exported class's own layout,
and the folder is published only once a reloaded copy reproduces mtlm's outputs.
"""

from __future__ import annotations

import copy
import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from mtlm.devices import DeviceLike, resolve_device
from mtlm.errors import ConfigError
from mtlm.files import staged_directory
from mtlm.inference import as_rows
from mtlm.modeling.model_card import exported_card, write_card
from mtlm.modeling.multitask_model import MultiTaskModel
from mtlm.modeling.sharing import LoraSharing
from mtlm.outputs import check_export_folder, write_export_marker
from mtlm.tasks import TaskKind
from mtlm.tasks.base import FAMILY_POOLING, SequenceTask
from mtlm.tasks.classification import Classification
from mtlm.tasks.regression import Regression
from mtlm.tasks.token_classification import TokenClassification

#: Inputs on which the exported model must reproduce mtlm's outputs (of several lengths, so
#: that padding is exercised too).
PROBES = [
    "the movie was good",
    "a very dull plot and it is boring",
    "The quick brown fox jumps over the lazy dog.",
    "It was fine, I think.",
]

_LANGUAGE_MODEL_CLASSES = {"causal": AutoModelForCausalLM, "seq2seq": AutoModelForSeq2SeqLM}

#: float32 reorders a few sums (a merged LoRA weight, folded regression scale); no more.
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    """How far the exported model's outputs may be from mtlm's in `dtype`: float32's
    `TOLERANCE`; in half precision a few units of its last place, since a regression head's
    folded scale and its output are rounded there (weights mapped wrongly miss by far more)."""
    if dtype == torch.float32:
        return TOLERANCE
    units = 4 * torch.finfo(dtype).eps
    return {"rtol": units, "atol": units}


def export_task(
    model: MultiTaskModel | str | Path,
    task: str,
    output_dir: str | Path,
    device: DeviceLike = None,
) -> Path:
    """Write task `task` of a model (or of the model saved at a path, loaded on `device`: see
    `mtlm.devices`) to `output_dir` as a plain Hugging Face model with its tokenizer; return
    the folder. The check that the written model reproduces mtlm's outputs runs both on the
    model's device.

    `output_dir` must be new, empty, or an earlier export holding only what it wrote, which
    is then replaced; anything else is refused (see `mtlm.outputs`)."""
    output_dir = Path(output_dir)
    check_export_folder(output_dir, "--out")
    source = None if isinstance(model, MultiTaskModel) else str(model)
    if not isinstance(model, MultiTaskModel):
        model = MultiTaskModel.from_pretrained(model, resolve_device(device, "--device"))
    if task not in model.tasks:
        raise ConfigError(f"--task: no task {task!r} (tasks: {', '.join(model.tasks)})")
    kind = model.tasks[task]
    if isinstance(kind, SequenceTask) and kind.pooling != FAMILY_POOLING[model.family]:
        expected = FAMILY_POOLING[model.family]
        raise ConfigError(
            f"--task: {task!r} pools by {kind.pooling}, and Hugging Face sequence classifiers "
            f"of {model.family} models pool by {expected}; train it with pooling: {expected} "
            "to export it"
        )
    if model.tokenizer is None:
        raise ConfigError("--model: the model has no tokenizer to export with the task")
    tokenizer = copy.deepcopy(model.tokenizer)
    # `truncation=True` in a pipeline then cuts inputs where mtlm cut them in training
    tokenizer.model_max_length = kind.spec.max_length
    backbone = task_backbone(model, task)
    if kind.uses_language_model_head:
        exported, auto_class = backbone, _LANGUAGE_MODEL_CLASSES[model.family]
        check = verify_language_model
    else:
        auto_class, config = hf_config(kind, backbone.config)
        if model.family == "causal":
            pad_as_mtlm(tokenizer, config)
        exported = build_exported(model, task, backbone, auto_class, config)
        check = verify
    with staged_directory(output_dir) as staging:
        exported.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        check(model, task, auto_class, staging)
        # What the card is made of, kept in the marker so that `mtlm push` can render it again.
        described = {
            "spec": kind.spec.model_dump(mode="json"),
            "state": kind.state,
            "base_model": model.base_model,
        }
        write_card(staging, exported_card(**described, model_id=str(output_dir)))
        write_export_marker(staging, {"task": task, "model": source, "card": described})
    return output_dir


def task_backbone(model: MultiTaskModel, task: str) -> PreTrainedModel:
    """A plain Hugging Face backbone computing what `task`'s encoder computes: the shared one
    (hard), the task's own (soft), or a copy of the base with the task's adapter merged (LoRA)."""
    if isinstance(model.sharing, LoraSharing):
        return copy.deepcopy(model.sharing.backbone).merge_and_unload(adapter_names=[task])
    return model.sharing.encoder(task)


def hf_config(kind: TaskKind, backbone_config: PretrainedConfig) -> tuple[Any, PretrainedConfig]:
    """The Auto class a task exports to and its config: the backbone's, with the task's labels."""
    config = copy.deepcopy(backbone_config)
    config.classifier_dropout = kind.spec.dropout
    if isinstance(kind, Regression):
        config.num_labels = 1
        config.problem_type = "regression"
        return AutoModelForSequenceClassification, config
    if not isinstance(kind, Classification | TokenClassification):
        raise ConfigError(f"--task: tasks of kind {kind.name} cannot be exported")
    config.id2label = dict(enumerate(kind.label_names))
    config.label2id = {name: index for index, name in enumerate(kind.label_names)}
    if isinstance(kind, TokenClassification):
        return AutoModelForTokenClassification, config
    config.problem_type = "single_label_classification"
    return AutoModelForSequenceClassification, config


def pad_as_mtlm(tokenizer: PreTrainedTokenizerBase, config: PretrainedConfig) -> None:
    """Make a decoder task's exported tokenizer pad on the right, as mtlm does, and its config
    name the pad token. transformers' decoder classifiers take a row's last token to be the
    rightmost one that is not `pad_token_id`, and number positions from the first token, so
    right padding leaves every row's states as mtlm computes them. A tokenizer without a pad
    token pads with its end-of-sequence token: mtlm's own stand-in, id 0, can be a real token,
    which that search would then skip."""
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    config.pad_token_id = tokenizer.pad_token_id


def build_exported(
    model: MultiTaskModel,
    task: str,
    backbone: PreTrainedModel,
    auto_class: Any,
    config: PretrainedConfig,
) -> PreTrainedModel:
    """The Hugging Face class for `task`, holding the backbone's and the head's weights."""
    try:
        exported = auto_class.from_config(config, dtype=backbone.dtype)
    except ValueError:
        raise ConfigError(
            f"--task: transformers has no {auto_class.__name__[len('AutoModelFor') :]} class "
            f"for {config.model_type} models, so {task!r} cannot be exported"
        ) from None
    # The class's pooler, if it has one, is the head's dense layer, set below. A decoder's
    # body is its language model without the head (`base_model`).
    loaded = exported.base_model.load_state_dict(backbone.base_model.state_dict(), strict=False)
    mismatched = [
        key
        for key in [*loaded.missing_keys, *loaded.unexpected_keys]
        if not key.startswith("pooler.")
    ]
    if mismatched:
        raise ConfigError(
            f"--task: {type(exported).__name__}'s encoder does not match the backbone of "
            f"{task!r} (differing weights: {', '.join(mismatched[:5])})"
        )
    kind = model.tasks[task]
    dense, out = head_layers(exported, kind, task)
    head = model.heads[task]
    weights = {name: value.detach() for name, value in head.out.state_dict().items()}
    if isinstance(kind, Regression):
        if out.bias is None:
            raise ConfigError(
                f"--task: {task!r} is a regression, and {type(exported).__name__}'s output "
                "layer has no bias to add its training targets' mean to; predict it with mtlm"
            )
        # mtlm's head predicts standardised targets; the exported one the raw values
        std, mean = kind.state["std"], kind.state["mean"]
        weights = {"weight": weights["weight"] * std, "bias": weights["bias"] * std + mean}
    with torch.no_grad():
        if dense is not None:
            dense.load_state_dict(head.dense.state_dict())
        out.load_state_dict({name: value.clone() for name, value in weights.items()})
    return exported.eval()


def head_layers(
    exported: PreTrainedModel, kind: TaskKind, task: str
) -> tuple[nn.Linear | None, nn.Linear]:
    """The exported class's first-token dense layer (None for tagging and for decoders) and
    output layer, by its own layout: BERT-like `<base>.pooler.dense` + `classifier`,
    RoBERTa-like `classifier.dense` + `classifier.out_proj`, a decoder's `score` (without bias
    for a sequence), or a tagger's `classifier` or `score`."""
    classifier = getattr(exported, "classifier", None)
    score = getattr(exported, "score", None)
    if isinstance(kind, TokenClassification):
        for layer in (classifier, score):
            if isinstance(layer, nn.Linear):
                return None, layer
        shape = "dropout and a linear layer over every token"
    elif kind.pooling == "last":
        if isinstance(score, nn.Linear) and score.bias is None:
            return None, score
        shape = "last token, linear without bias"
    else:
        pooler = getattr(exported.base_model, "pooler", None)
        if (
            isinstance(classifier, nn.Linear)
            and isinstance(getattr(pooler, "dense", None), nn.Linear)
            and isinstance(getattr(pooler, "activation", None), nn.Tanh)
        ):
            return pooler.dense, classifier
        # RoBERTa's head applies tanh in its forward; one with an `activation` uses another
        if (
            isinstance(getattr(classifier, "dense", None), nn.Linear)
            and isinstance(getattr(classifier, "out_proj", None), nn.Linear)
            and not hasattr(classifier, "activation")
        ):
            return classifier.dense, classifier.out_proj
        shape = "first token, dense, tanh, linear"
    raise ConfigError(
        f"--task: cannot export {task!r}: {type(exported).__name__}'s head is not of the "
        f"shape of mtlm's ({shape})"
    )


def verify(model: MultiTaskModel, task: str, auto_class: Any, folder: Path) -> None:
    """Reload the folder as Hugging Face would and check it reproduces mtlm's head outputs on
    the probe inputs; a ConfigError if it does not."""
    kind = model.tasks[task]
    # In the dtype it was saved in and on the model's device, so that it computes as mtlm's
    # model did.
    exported = auto_class.from_pretrained(folder, dtype="auto").to(model.device)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if isinstance(kind, TokenClassification):
        rows = as_rows(kind, [text.split() for text in PROBES])
    else:
        # A different probe text in each input column (text, pair, or more: WiC reads three).
        columns = kind.input_columns
        rows = [
            {column: PROBES[(row + offset) % len(PROBES)] for offset, column in enumerate(columns)}
            for row in range(len(PROBES))
        ]
    features = kind.encode_inputs(rows, tokenizer)
    if features["input_ids"] != kind.encode_inputs(rows, model.tokenizer)["input_ids"]:
        raise ConfigError(f"--task: the saved tokenizer of {task!r} does not tokenize as mtlm's")
    batch = kind.collate(
        [
            dict(zip(features, values, strict=True))
            for values in zip(*features.values(), strict=True)
        ],
        tokenizer.pad_token_id or 0,
    )
    accepted = inspect.signature(exported.forward).parameters
    with model.evaluating(), torch.no_grad():
        on_device = {key: value.to(model.device) for key, value in batch.items()}
        expected = model.forward_heads(on_device, [task])[task].float().cpu()
        actual = exported(**{k: v for k, v in on_device.items() if k in accepted}).logits
        actual = actual.float().cpu()
    if isinstance(kind, Regression):
        expected = expected * kind.state["std"] + kind.state["mean"]
    if isinstance(kind, TokenClassification):
        # padded positions carry no prediction
        real = batch["attention_mask"].bool()
        expected, actual = expected[real], actual[real]
    if not torch.allclose(actual, expected, **tolerance(exported.dtype)):
        difference = float((actual - expected).abs().max())
        raise ConfigError(
            f"--task: the exported {type(exported).__name__} does not reproduce mtlm's outputs "
            f"for {task!r} (largest difference {difference:.3g}); nothing was written"
        )


def verify_language_model(model: MultiTaskModel, task: str, auto_class: Any, folder: Path) -> None:
    """Reload a text-to-text task's exported language model and check it gives the logits
    mtlm's model gives for the task on the probe texts; a ConfigError if it does not."""
    exported = auto_class.from_pretrained(folder, dtype="auto").to(model.device).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    inputs = dict(tokenizer(PROBES, padding=True, return_tensors="pt"))
    if model.family == "seq2seq":
        inputs["decoder_input_ids"] = inputs["input_ids"][:, :4]
    with model.evaluating(), torch.no_grad():
        on_device = {key: value.to(model.device) for key, value in inputs.items()}
        expected = model.sharing.encoder(task)(**on_device).logits.float().cpu()
        actual = exported(**on_device).logits.float().cpu()
    # A causal model's padded positions predict nothing; every decoder position counts.
    causal = model.family == "causal"
    real = inputs["attention_mask"].bool() if causal else torch.ones(actual.shape[:2]).bool()
    if not torch.allclose(actual[real], expected[real], **tolerance(exported.dtype)):
        difference = float((actual[real] - expected[real]).abs().max())
        raise ConfigError(
            f"--task: the exported {type(exported).__name__} does not reproduce mtlm's outputs "
            f"for {task!r} (largest difference {difference:.3g}); nothing was written"
        )
