"""End-to-end training of the tiny three-task model."""

from __future__ import annotations

import json

import torch

from mtlm import MultiTaskModel, Trainer


def test_training_writes_a_run_directory_and_learns(make_config, tmp_path):
    config = make_config(max_steps=60)
    trainer = Trainer(config)
    before = trainer.evaluate("test")
    results = trainer.train()
    run = tmp_path / "run"
    assert (run / "model" / "mtlm_config.json").is_file()
    assert json.loads((run / "eval_results.json").read_text()) == results
    assert set(results["tasks"]) == {"sentiment", "score", "tagging"}
    assert results["split"] == "test"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("losses" in row for row in rows) and any("eval" in row for row in rows)
    assert results["aggregate"] > before["aggregate"]
    assert results["tasks"]["tagging"]["accuracy"] > 0.8


def test_two_runs_with_one_seed_end_with_identical_weights(make_config, tmp_path):
    weights = []
    for name in ("a", "b"):
        config = make_config(max_steps=8, output_dir=str(tmp_path / name), eval_steps=None)
        Trainer(config).train()
        model = MultiTaskModel.from_pretrained(tmp_path / name)
        weights.append(model.state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
