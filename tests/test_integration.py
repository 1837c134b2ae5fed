"""A few training steps of the bundled encoder and decoder on bundled or small data (the
models are fetched with pip from the package registry)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import write_jsonl

from mtlm import MultiTaskModel, Trainer, load_config
from mtlm.config import config_from_dict
from mtlm.data.sources import SPLITS

pytestmark = pytest.mark.integration

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "demo.yaml"


def test_bundled_model_trains_saves_and_predicts(tmp_path):
    config = load_config(DEMO_CONFIG)
    config.training.max_steps = 4
    config.training.eval_steps = None
    config.training.save_steps = None
    config.training.progress_bar = False
    config.training.final_eval_split = "validation"
    results = Trainer(config, tmp_path / "run").train()
    assert set(results["tasks"]) == {"sentiment", "topic", "tweet_intensity", "pos"}
    model = MultiTaskModel.from_pretrained(tmp_path / "run")
    predictions = model.predict(["sentiment", "topic"], ["A warm, funny and moving film."])
    assert predictions["sentiment"][0]["label"] in {"fresh", "rotten"}
    assert len(predictions["topic"][0]["probabilities"]) == 5
    tags = model.predict("pos", [["The", "market", "fell", "."]])[0]["tags"]
    assert len(tags) == 4


def test_bundled_decoder_converts_from_gguf_and_trains_adapters(tmp_path):
    """bundled:smollm2 is dequantized from its GGUF file once, then two LoRA steps train it on
    two text-to-text tasks and the saved model answers."""
    rows = [
        {"text": "A warm, funny and moving film.", "label": "fresh", "score": 2.5},
        {"text": "Dull, slow and far too long.", "label": "rotten", "score": -2.0},
    ] * 4
    files = {split: write_jsonl(tmp_path / f"{split}.jsonl", rows) for split in SPLITS}
    data = {split: str(path) for split, path in files.items()}
    config = config_from_dict(
        {
            "model": {"name_or_path": "bundled:smollm2"},
            "sharing": {"kind": "lora", "r": 4},
            "tasks": [
                {
                    "name": "review",
                    "kind": "text_to_text",
                    "data": data,
                    "prompt_template": "Review: {text}\nFresh or rotten?",
                    "target_template": " {label}",
                    "max_new_tokens": 3,
                },
                {
                    "name": "score",
                    "kind": "text_to_text",
                    "data": data,
                    "prompt_template": "Review: {text}\nScore:",
                    "target_template": " {score}",
                    "max_new_tokens": 4,
                },
            ],
            "training": {
                "output_dir": str(tmp_path / "run"),
                "max_steps": 2,
                "batch_size": 2,
                "learning_rate": 1e-3,
                "progress_bar": False,
            },
        }
    )
    trainer = Trainer(config)
    assert trainer.model.family == "causal"
    before = [p.detach().clone() for p in trainer.model.sharing.task_parameters("review")]
    results = trainer.train()
    after = trainer.model.sharing.task_parameters("review")
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    assert set(results["tasks"]) == {"review", "score"}
    model = MultiTaskModel.from_pretrained(tmp_path / "run")
    assert model.predict("review", [rows[0]["text"]]) == trainer.model.predict(
        "review", [rows[0]["text"]]
    )
