"""Text-to-text tasks on causal and sequence-to-sequence models: training, generation, label
scoring, the three sharing kinds, save and reload, and the kinds each family refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import sentiment_rows, tagging_rows, write_jsonl
from transformers import AutoModelForCausalLM, AutoTokenizer

from mtlm import ConfigError, MultiTaskModel, Trainer
from mtlm.config import config_from_dict
from mtlm.evaluation.evaluate import trivial_baseline
from mtlm.export import export_task

SENTIMENT = {
    "name": "sentiment",
    "kind": "text_to_text",
    "prompt_template": "review: {text} sentiment:",
    "target_template": "{label}",
}
TAGS = {
    "name": "tags",
    "kind": "text_to_text",
    "prompt_template": "{tokens} tags:",
    "target_template": "{tags}",
    "max_new_tokens": 8,
}
TEXTS = ["good movie", "the plot was bad", "a lovely film", "dull and boring"]


@pytest.fixture
def data_files(tmp_path: Path) -> dict[str, dict[str, str]]:
    files: dict[str, dict[str, str]] = {"sentiment": {}, "tags": {}}
    for split, count, seed in (("train", 64, 0), ("validation", 16, 1), ("test", 24, 2)):
        files["sentiment"][split] = str(
            write_jsonl(tmp_path / f"sentiment_{split}.jsonl", sentiment_rows(count, seed))
        )
        files["tags"][split] = str(
            write_jsonl(tmp_path / f"tags_{split}.jsonl", tagging_rows(count, seed))
        )
    return files


def experiment(model_dir: Path, files, tmp_path: Path, tasks: list[dict], **options: Any):
    training = {
        "output_dir": str(tmp_path / "run"),
        "max_steps": 80,
        "batch_size": 8,
        "learning_rate": 3e-3,
        "eval_steps": None,
        "logging_steps": 20,
        "progress_bar": False,
        **options.pop("training", {}),
    }
    raw = {
        "model": {"name_or_path": str(model_dir)},
        "cache_dir": str(tmp_path / "features"),
        "tasks": [{**task, "data": files[task["name"]]} for task in tasks],
        "training": training,
        **options,
    }
    return config_from_dict(raw)


def trained_decoder(model_dir, files, tmp_path, sharing: dict, steps: int) -> Trainer:
    """The sentiment and tags tasks trained on the tiny decoder for a few steps."""
    config = experiment(
        model_dir,
        files,
        tmp_path,
        [SENTIMENT, TAGS],
        sharing=sharing,
        training={"max_steps": steps},
    )
    trainer = Trainer(config)
    trainer.train()
    return trainer


def test_a_causal_model_learns_a_text_to_text_task_and_reloads_exactly(
    tiny_decoder_dir, data_files, tmp_path
):
    config = experiment(tiny_decoder_dir, data_files, tmp_path, [SENTIMENT, TAGS])
    trainer = Trainer(config)
    results = trainer.train()
    trivial = trivial_baseline(trainer.data, "test")
    assert results["tasks"]["sentiment"]["primary"] == "accuracy"
    assert results["tasks"]["sentiment"]["accuracy"] >= 0.9
    assert results["tasks"]["sentiment"]["accuracy"] > trivial["tasks"]["sentiment"]["accuracy"]
    assert results["tasks"]["tags"]["primary"] == "word_accuracy"
    assert 0.0 <= results["tasks"]["tags"]["word_accuracy"] <= 1.0
    reloaded = MultiTaskModel.from_pretrained(tmp_path / "run")
    assert reloaded.predict("sentiment", TEXTS) == trainer.model.predict("sentiment", TEXTS)


def test_a_sequence_to_sequence_model_trains_and_scores_labels(
    tiny_seq2seq_dir, data_files, tmp_path
):
    task = {**SENTIMENT, "decoding": "score_labels"}
    config = experiment(tiny_seq2seq_dir, data_files, tmp_path, [task])
    trainer = Trainer(config)
    results = trainer.train()
    trivial = trivial_baseline(trainer.data, "test")
    assert trainer.model.family == "seq2seq"
    assert results["tasks"]["sentiment"]["accuracy"] > trivial["tasks"]["sentiment"]["accuracy"]
    assert set(trainer.model.predict("sentiment", TEXTS)) <= {"pos", "neg"}


@pytest.mark.parametrize("sharing", [{"kind": "lora", "r": 4}, {"kind": "soft"}])
def test_adapters_and_soft_sharing_save_and_reload_on_a_decoder(
    tiny_decoder_dir, data_files, tmp_path, sharing
):
    trainer = trained_decoder(tiny_decoder_dir, data_files, tmp_path, sharing, steps=10)
    reloaded = MultiTaskModel.from_pretrained(tmp_path / "run")
    for task in ("sentiment", "tags"):
        inputs = TEXTS if task == "sentiment" else [text.split() for text in TEXTS]
        assert reloaded.predict(task, inputs) == trainer.model.predict(task, inputs)


def test_joint_steps_train_text_to_text_tasks_together(tiny_decoder_dir, data_files, tmp_path):
    config = experiment(
        tiny_decoder_dir,
        data_files,
        tmp_path,
        [SENTIMENT, TAGS],
        training={"max_steps": 6, "step_mode": "joint", "balancer": {"kind": "upgrad"}},
    )
    before = {n: p.detach().clone() for n, p in Trainer(config).model.named_parameters()}
    trainer = Trainer(config)
    trainer.train()
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])]
    assert changed


def test_logits_of_target_positions_only_give_the_full_loss(tiny_decoder_dir, data_files, tmp_path):
    trainer = Trainer(experiment(tiny_decoder_dir, data_files, tmp_path, [SENTIMENT]))
    model, task = trainer.model.eval(), trainer.model.tasks["sentiment"]
    features = trainer.data["sentiment"].splits["train"].select(range(8))
    rows = [
        dict(zip(features.column_names, values, strict=True))
        for values in zip(*(features[name] for name in features.column_names), strict=True)
    ]
    batch = task.collate(rows, pad_token_id=0)
    with torch.no_grad():
        kept = model.task_output("sentiment", batch).head
        full = model.sharing.base(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).logits
    assert kept.shape[1] < full.shape[1]
    assert task.loss(kept, batch).item() == pytest.approx(task.loss(full, batch).item(), rel=1e-5)


def test_each_family_refuses_the_kinds_it_cannot_serve(
    tiny_decoder_dir, tiny_seq2seq_dir, tiny_model_dir, data_files, tmp_path
):
    head_task = {"name": "sentiment", "kind": "classification"}
    with pytest.raises(
        ConfigError,
        match=r"tasks\[sentiment\].kind: classification works with causal or encoder models, "
        r"and the model is a seq2seq model .*cast the task as text_to_text",
    ):
        Trainer(experiment(tiny_seq2seq_dir, data_files, tmp_path, [head_task]))
    choice_task = {"name": "sentiment", "kind": "multiple_choice", "choices_column": "text"}
    with pytest.raises(
        ConfigError, match=r"tasks\[sentiment\].kind: multiple_choice works with encoder .*text_to"
    ):
        Trainer(experiment(tiny_decoder_dir, data_files, tmp_path, [choice_task]))
    with pytest.raises(ConfigError, match=r"tasks\[sentiment\].kind: .* is an encoder model"):
        Trainer(experiment(tiny_model_dir, data_files, tmp_path, [SENTIMENT]))


@pytest.mark.parametrize("sharing", [{"kind": "hard"}, {"kind": "lora", "r": 4}])
def test_an_exported_text_to_text_task_generates_what_mtlm_predicts(
    tiny_decoder_dir, data_files, tmp_path, sharing
):
    trainer = trained_decoder(tiny_decoder_dir, data_files, tmp_path, sharing, steps=30)
    out = export_task(tmp_path / "run", "sentiment", tmp_path / "exported")
    exported = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    answers = []
    for text in TEXTS:
        prompt = tokenizer(f"review: {text} sentiment:", return_tensors="pt")
        generated = exported.generate(**prompt, max_new_tokens=4, do_sample=False)
        new_tokens = generated[0, prompt["input_ids"].shape[1] :]
        answers.append(tokenizer.decode(new_tokens, skip_special_tokens=True).strip())
    assert answers == trainer.model.predict("sentiment", TEXTS)
