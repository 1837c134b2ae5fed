"""Task heads on a causal LM: classification, regression and tagging on its hidden states
(sequence tasks pool the last real token), alone or next to text-to-text tasks on one decoder,
saved and reloaded, and exported as transformers' own decoder classifiers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
from conftest import short_run_config, write_task_files
from transformers import AutoTokenizer, pipeline

from mtlm import ConfigError, MultiTaskModel, Trainer
from mtlm.config import ExperimentConfig
from mtlm.evaluation.evaluate import trivial_baseline
from mtlm.export import export_task

TEXTS = ["the movie was great", "a very dull plot and it is boring", "lovely film", "awful"]
WORDS = [text.split() for text in TEXTS]
SENTIMENT_AS_TEXT = {
    "name": "sentiment_text",
    "kind": "text_to_text",
    "prompt_template": "review: {text} sentiment:",
    "target_template": "{label}",
    "decoding": "score_labels",
}


def head_tasks(files: dict[str, dict[str, Path]]) -> list[dict[str, Any]]:
    """A classification, a regression and a tagging task on the test data."""
    sentiment = {split: str(path) for split, path in files["sentiment"].items()}
    tagging = {split: str(path) for split, path in files["tagging"].items()}
    return [
        {"name": "sentiment", "kind": "classification", "data": sentiment},
        {"name": "score", "kind": "regression", "data": sentiment, "label_column": "score"},
        {"name": "tagging", "kind": "token_classification", "data": tagging},
    ]


def decoder_config(
    model_dir: Path, root: Path, tasks: list[dict[str, Any]], **options: Any
) -> ExperimentConfig:
    """Tasks on the tiny decoder, trained for a few dozen steps under `root`."""
    return short_run_config(model_dir, root, tasks, options.pop("training", {}), **options)


class Trained(NamedTuple):
    """A trainer after training, and the test results training returned."""

    trainer: Trainer
    results: dict[str, Any]

    @property
    def model(self) -> MultiTaskModel:
        return self.trainer.model


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_decoder_dir: Path) -> Trained:
    """The three head tasks trained together on the tiny decoder, hard-shared, and saved."""
    root = tmp_path_factory.mktemp("decoder-heads")
    trainer = Trainer(decoder_config(tiny_decoder_dir, root, head_tasks(write_task_files(root))))
    return Trained(trainer, trainer.train())


def test_heads_on_a_decoder_learn_their_tasks(trained: Trained):
    tasks = trained.results["tasks"]
    trivial = trivial_baseline(trained.trainer.data, "test")["tasks"]
    assert trained.model.family == "causal"
    assert not any(task.uses_language_model_head for task in trained.model.tasks.values())
    assert tasks["sentiment"]["accuracy"] >= 0.9 > trivial["sentiment"]["accuracy"]
    assert tasks["score"]["pearson"] >= 0.7 > trivial["score"]["pearson"]
    assert tasks["tagging"]["accuracy"] >= 0.9 > trivial["tagging"]["accuracy"]


def test_sequence_heads_on_a_decoder_pool_the_last_token_by_default(trained: Trained):
    model = trained.model
    assert [model.tasks[name].pooling for name in ("sentiment", "score")] == ["last", "last"]
    # The shape of transformers' decoder classifiers: one linear layer, without bias.
    assert model.heads["sentiment"].dense is None and model.heads["sentiment"].out.bias is None


def test_a_decoder_with_heads_reloads_exactly(trained: Trained):
    reloaded = MultiTaskModel.from_pretrained(trained.trainer.output_dir)
    for task, inputs in (("sentiment", TEXTS), ("score", TEXTS), ("tagging", WORDS)):
        assert reloaded.predict(task, inputs) == trained.model.predict(task, inputs)


def right_and_left_padded(model: MultiTaskModel) -> tuple[dict, dict]:
    """The sentiment task's batch of TEXTS padded on the right (as mtlm pads) and on the left."""
    task = model.tasks["sentiment"]
    features = task.encode_inputs([{"text": text} for text in TEXTS], model.tokenizer)
    rows = [dict(zip(features, row, strict=True)) for row in zip(*features.values(), strict=True)]
    right = task.collate(rows, model.pad_token_id)
    width = right["input_ids"].shape[1]
    lengths = right["attention_mask"].sum(dim=1).tolist()
    left = {
        key: torch.stack(
            [
                torch.roll(row, width - length)
                for row, length in zip(right[key], lengths, strict=True)
            ]
        )
        for key in ("input_ids", "attention_mask")
    }
    return right, left


def test_left_and_right_padding_pool_the_same_last_token(trained: Trained):
    model = trained.model.eval()
    right, left = right_and_left_padded(model)
    assert left["attention_mask"][:, -1].all() and not right["attention_mask"][:, -1].all()
    with torch.no_grad():
        from_right = model.forward_heads(right, ["sentiment"])["sentiment"]
        from_left = model.forward_heads(left, ["sentiment"])["sentiment"]
    # Llama's rotary positions are relative, so shifting a row leaves its states as they were.
    torch.testing.assert_close(from_left, from_right, rtol=1e-4, atol=1e-5)


def test_several_heads_read_one_decoder_pass(trained: Trained):
    model = trained.model.eval()
    batch, _ = right_and_left_padded(model)
    with torch.no_grad():
        together = model.forward_heads(batch, ["sentiment", "score"])
        alone = {name: model.task_output(name, batch).head for name in ("sentiment", "score")}
    for name in together:
        torch.testing.assert_close(together[name], alone[name])


def test_an_exported_classifier_predicts_in_a_pipeline_what_mtlm_predicts(
    trained: Trained, tmp_path: Path
):
    out = export_task(trained.model, "sentiment", tmp_path / "sentiment")
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"]
    assert config["pad_token_id"] == trained.model.tokenizer.pad_token_id
    expected = trained.model.predict("sentiment", TEXTS)
    # Batched, so rows are padded: on the right as saved, and on the left as some decoders'
    # tokenizers do; the exported class finds the last token either way.
    for side in ("right", "left"):
        tokenizer = AutoTokenizer.from_pretrained(out, padding_side=side)
        classify = pipeline("text-classification", model=str(out), tokenizer=tokenizer)
        answers = classify(TEXTS, batch_size=len(TEXTS))
        assert [a["label"] for a in answers] == [e["label"] for e in expected]
        assert [a["score"] for a in answers] == pytest.approx(
            [e["probabilities"][e["label"]] for e in expected], abs=1e-5
        )


def test_an_exported_tagger_predicts_in_a_pipeline_what_mtlm_predicts(
    trained: Trained, tmp_path: Path
):
    out = export_task(trained.model, "tagging", tmp_path / "tagging")
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForTokenClassification"]
    tag = pipeline("token-classification", model=str(out))
    answers = [[token["entity"] for token in row] for row in tag(TEXTS)]
    assert answers == [p["tags"] for p in trained.model.predict("tagging", WORDS)]


def test_a_tokenizer_without_a_pad_token_exports_padding_with_end_of_sequence(
    trained: Trained, tmp_path: Path
):
    model = MultiTaskModel.from_pretrained(trained.trainer.output_dir)
    model.tokenizer.pad_token = None
    out = export_task(model, "sentiment", tmp_path / "sentiment")
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.pad_token == tokenizer.eos_token == "</s>"
    assert json.loads((out / "config.json").read_text())["pad_token_id"] == 3
    answers = pipeline("text-classification", model=str(out))(TEXTS, batch_size=len(TEXTS))
    assert [a["label"] for a in answers] == [p["label"] for p in model.predict("sentiment", TEXTS)]


def test_a_regression_on_a_decoder_is_not_exported(trained: Trained, tmp_path: Path):
    with pytest.raises(ConfigError, match=r"--task: 'score' is a regression.* no bias"):
        export_task(trained.model, "score", tmp_path / "score")
    assert not (tmp_path / "score").exists()


def validation_loss(trainer: Trainer, task: str) -> float:
    """`task`'s loss on its validation split, in one batch."""
    features = trainer.data[task].splits["validation"]
    rows = [
        dict(zip(features.column_names, values, strict=True))
        for values in zip(*(features[name] for name in features.column_names), strict=True)
    ]
    kind, model = trainer.model.tasks[task], trainer.model
    with model.evaluating(), torch.no_grad():
        batch = kind.collate(rows, model.pad_token_id)
        return kind.loss(model.task_output(task, batch).head, batch).item()


@pytest.mark.parametrize(
    ("sharing", "learning_rate", "loss_left"),
    [
        ({"kind": "hard"}, 3e-3, 0.5),
        ({"kind": "soft"}, 3e-3, 0.5),
        # LoRA keeps the random decoder's vocabulary projection frozen, whose small weights
        # bound how far the logits move: the text task's loss falls, but far less.
        ({"kind": "lora", "r": 4}, 1e-2, 0.9),
    ],
    ids=["hard", "soft", "lora"],
)
def test_heads_train_next_to_a_text_to_text_task_on_one_decoder(
    tiny_decoder_dir: Path, tmp_path: Path, sharing: dict, learning_rate: float, loss_left: float
):
    files = write_task_files(tmp_path)
    sentiment_text = {**SENTIMENT_AS_TEXT, "data": head_tasks(files)[0]["data"]}
    tasks = [sentiment_text, *head_tasks(files)[::2]]
    config = decoder_config(
        tiny_decoder_dir,
        tmp_path,
        tasks,
        sharing=sharing,
        training={"max_steps": 100, "learning_rate": learning_rate},
    )
    trainer = Trainer(config)
    model = trainer.model
    assert model.tasks["sentiment_text"].uses_language_model_head
    assert not model.heads["sentiment_text"].state_dict()  # no head: the LM's own answers
    untrained = validation_loss(trainer, "sentiment_text")
    results = trainer.train()["tasks"]
    trivial = trivial_baseline(trainer.data, "test")["tasks"]
    assert validation_loss(trainer, "sentiment_text") < loss_left * untrained
    for task in ("sentiment", "tagging"):
        assert results[task]["accuracy"] > trivial[task]["accuracy"], task
    reloaded = MultiTaskModel.from_pretrained(tmp_path / "run")
    for task, inputs in (("sentiment_text", TEXTS), ("sentiment", TEXTS), ("tagging", WORDS)):
        assert reloaded.predict(task, inputs) == model.predict(task, inputs)


def test_first_token_pooling_on_a_decoder_is_refused(tiny_decoder_dir: Path, tmp_path: Path):
    tasks = head_tasks(write_task_files(tmp_path))
    tasks[0]["pooling"] = "cls"
    with pytest.raises(ConfigError, match=r"tasks\[sentiment\].pooling: cls .* use last"):
        Trainer(decoder_config(tiny_decoder_dir, tmp_path, tasks))
