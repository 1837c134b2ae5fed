"""A few training steps of the bundled encoder on the bundled demo tasks (fetched via pip)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlm import MultiTaskModel, Trainer, load_config

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
