"""Two-stage training: each task fine-tuned alone in its own adapter over the multi-task model."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import pipeline

from mtlm import MultiTaskModel, Trainer
from mtlm.config import config_from_dict
from mtlm.errors import ConfigError
from mtlm.export import export_task
from mtlm.modeling.sharing import LoraSharing
from mtlm.pipeline import MultiTaskPipeline

FINETUNE = {"num_epochs": 2, "early_stopping_patience": 1, "r": 4, "alpha": 8}
TEXTS = ["the movie was great", "a very dull plot"]


@pytest.fixture(scope="module")
def two_stage_run(tiny_model_dir, tmp_path_factory):
    """A three-task run of the tiny model, fine-tuned per task after the multi-task stage."""
    from conftest import three_task_config, write_task_files

    root = tmp_path_factory.mktemp("two-stage")
    config = three_task_config(
        tiny_model_dir,
        write_task_files(root),
        root,
        max_steps=40,
        eval_steps=20,
        finetune=FINETUNE,
    )
    trainer = Trainer(config)
    trainer.train()
    return root / "run", trainer


def test_fine_tuning_writes_a_model_with_one_adapter_per_task(two_stage_run):
    run, _ = two_stage_run
    folder = run / "finetuned"
    summary = json.loads((folder / "train_summary.json").read_text())
    assert set(summary["tasks"]) == {"sentiment", "score", "tagging"}
    for task in summary["tasks"].values():
        # 64 rows a task, batch 8: 8 steps an epoch, at most 2 epochs
        assert task["steps"] in (8, 16) and task["planned_steps"] == 16
        assert task["best_step"] in (8, 16)
    results = json.loads((folder / "eval_results.json").read_text())
    assert set(results["tasks"]) == {"sentiment", "score", "tagging"}
    validation = json.loads((folder / "validation_results.json").read_text())
    assert validation["split"] == "validation"
    for name, task in summary["tasks"].items():
        # one task alone: its validation aggregate is its primary metric (mse negated)
        metrics = validation["tasks"][name]
        signed = metrics[metrics["primary"]] * (-1 if metrics["primary"] == "mse" else 1)
        assert task["best_validation_score"] == pytest.approx(signed)
    assert (folder / "tasks" / "sentiment" / "metrics.jsonl").is_file()
    assert not (folder / "tasks" / "sentiment" / "model").exists()
    adapters = sorted(p.name for p in (folder / "model" / "adapters").iterdir())
    assert adapters == ["score", "sentiment", "tagging"]


def test_fine_tuning_leaves_the_shared_backbone_as_the_multi_task_run_left_it(two_stage_run):
    run, _ = two_stage_run
    multi = MultiTaskModel.from_pretrained(run)
    tuned = MultiTaskModel.from_pretrained(run / "finetuned")
    assert isinstance(tuned.sharing, LoraSharing)
    base = dict(multi.sharing.base.named_parameters())
    for name, parameter in tuned.sharing.base.named_parameters():
        if "lora_" in name:
            continue
        plain = name.replace(".base_layer", "")
        assert torch.equal(parameter, base[plain]), name
    # every task's adapter moved away from LoRA's zero start (the pooler's excepted: the heads
    # do not read the pooler's output, so its adapter gets no gradient)
    named = dict(tuned.sharing.backbone.named_parameters())
    for task in ("sentiment", "score", "tagging"):
        adapter = {n: p for n, p in named.items() if f"lora_B.{task}." in n and "pooler" not in n}
        assert adapter and all(p.abs().sum() > 0 for p in adapter.values())


def test_the_fine_tuned_model_predicts_exports_and_serves(two_stage_run, tmp_path):
    run, _ = two_stage_run
    tuned = MultiTaskModel.from_pretrained(run / "finetuned")
    ours = tuned.predict("sentiment", TEXTS)
    served = MultiTaskPipeline(str(run / "finetuned"))(TEXTS)["sentiment"]
    assert [p["label"] for p in served] == [p["label"] for p in ours]
    exported = export_task(run / "finetuned", "sentiment", tmp_path / "sentiment")
    classify = pipeline("text-classification", model=str(exported))
    assert [p["label"] for p in classify(TEXTS)] == [p["label"] for p in ours]


def test_fine_tuning_refuses_soft_sharing(make_config):
    raw = make_config().model_dump(mode="json")
    raw["sharing"] = {"kind": "soft"}
    raw["training"]["finetune"] = FINETUNE
    with pytest.raises(ConfigError, match="training.finetune"):
        config_from_dict(raw)
