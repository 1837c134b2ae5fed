"""A MultiTaskModel trained by transformers.Trainer: trains, evaluates per task, saves, reloads."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import TrainingArguments

from mtlm.evaluation.evaluate import evaluate
from mtlm.integrations.hf_trainer import MultiTaskTrainer
from mtlm.modeling.multitask_model import MultiTaskModel
from mtlm.training.experiment import build_experiment


def test_the_hf_trainer_trains_every_task_and_keeps_the_best_mtlm_model(
    make_config, tmp_path: Path
) -> None:
    experiment = build_experiment(make_config())
    model = experiment.model
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        max_steps=12,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        eval_strategy="steps",
        eval_steps=6,
        save_strategy="steps",
        save_steps=6,
        logging_steps=3,
        load_best_model_at_end=True,
        metric_for_best_model="aggregate",
        report_to=[],
        use_cpu=True,
        seed=3,
    )
    trainer = MultiTaskTrainer(
        model, args, experiment.data, sampler={"kind": "uniform"}, eval_split="validation"
    )
    trainer.train()

    # every task's head and the shared encoder moved
    for task in ("sentiment", "score", "tagging"):
        head = [n for n in start if n.startswith(f"heads.{task}.")]
        assert any(not torch.equal(start[n], model.get_parameter(n)) for n in head), task
    shared = [n for n in start if not n.startswith("heads.") and "pooler" not in n]
    assert sum(not torch.equal(start[n], model.get_parameter(n)) for n in shared) > len(shared) / 2

    logged = trainer.state.log_history
    losses = [row for row in logged if "loss" in row]
    assert losses and all(any(key.startswith("loss_") for key in row) for row in losses), losses
    evaluations = [row for row in logged if "eval_aggregate" in row]
    assert [row["step"] for row in evaluations] == [6, 12]
    assert {"eval_sentiment_accuracy", "eval_score_pearson", "eval_tagging_accuracy"} <= set(
        evaluations[0]
    )

    # the best checkpoint is an mtlm model folder, and the Trainer ended on its weights
    best = Path(trainer.state.best_model_checkpoint)
    assert (best / "mtlm_config.json").is_file()
    best_score = max(row["eval_aggregate"] for row in evaluations)
    assert evaluate(model.eval(), experiment.data, "validation")["aggregate"] == best_score

    trainer.save_model(str(tmp_path / "final"))
    reloaded = MultiTaskModel.from_pretrained(tmp_path / "final")
    texts = ["a great film", "dull and slow"]
    assert reloaded.predict("sentiment", texts) == model.predict("sentiment", texts)
    assert json.loads((tmp_path / "final" / "mtlm_config.json").read_text())["tasks"]


def test_soft_sharing_under_the_hf_trainer_pays_its_penalty(make_config, tmp_path: Path) -> None:
    """With a huge tie strength the tasks' backbones must stay (almost) equal; without the
    penalty they drift apart as each task trains its own."""
    from mtlm.config import config_from_dict

    def drift(strength: float) -> float:
        raw = json.loads(make_config().to_json())
        raw["sharing"] = {"kind": "soft", "strength": strength, "strength_schedule": "constant"}
        experiment = build_experiment(config_from_dict(raw))
        args = TrainingArguments(
            output_dir=str(tmp_path / str(strength)),
            max_steps=8,
            per_device_train_batch_size=8,
            learning_rate=1e-3,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
        )
        MultiTaskTrainer(experiment.model, args, experiment.data).train()
        backbones = experiment.model.sharing.backbones
        first, second = (dict(b.named_parameters()) for b in list(backbones.values())[:2])
        return sum(float((first[n] - second[n]).abs().sum()) for n in first)

    assert drift(1e3) < drift(1e-9) / 10
