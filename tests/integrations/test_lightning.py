"""A MultiTaskModel trained by Lightning: trains, validates per task, saves, reloads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mtlm.modeling.multitask_model import MultiTaskModel
from mtlm.training.experiment import build_experiment

L = pytest.importorskip("lightning")


def test_lightning_trains_every_task_and_the_model_reloads(make_config, tmp_path: Path) -> None:
    from mtlm.integrations.lightning import MultiTaskDataModule, MultiTaskModule

    experiment = build_experiment(make_config())
    model = experiment.model
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    data = MultiTaskDataModule(
        experiment.data,
        batch_size=8,
        sampler={"kind": "uniform"},
        seed=1,
        pad_token_id=model.pad_token_id,
    )
    module = MultiTaskModule(model, experiment.data, learning_rate=1e-3)
    trainer = L.Trainer(
        max_steps=12,
        val_check_interval=6,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=data)

    assert trainer.global_step == 12
    for task in ("sentiment", "score", "tagging"):
        head = [n for n in start if n.startswith(f"heads.{task}.")]
        assert any(not torch.equal(start[n], model.get_parameter(n)) for n in head), task
    logged = trainer.callback_metrics
    assert {"val/sentiment_accuracy", "val/score_pearson", "val/tagging_accuracy"} <= set(logged)
    assert {"train/loss_sentiment", "train/loss_score", "train/loss_tagging"} <= set(logged)

    model.save_pretrained(tmp_path / "model")
    reloaded = MultiTaskModel.from_pretrained(tmp_path / "model")
    texts = ["a great film", "dull and slow"]
    assert reloaded.predict("sentiment", texts) == model.eval().predict("sentiment", texts)
    from mtlm.evaluation.evaluate import evaluate

    assert float(logged["val/aggregate"]) == pytest.approx(
        evaluate(reloaded, experiment.data, "validation")["aggregate"]
    )
