"""Building an experiment apart from training it: the Trainer trains the very model it is given."""

from __future__ import annotations

import torch

from mtlm import MultiTaskModel, Trainer
from mtlm.training.experiment import build_experiment


def test_the_trainer_trains_the_model_and_data_built_apart(make_config, tmp_path):
    config = make_config(max_steps=8, eval_steps=None)
    experiment = build_experiment(config)
    assert set(experiment.data) == {"sentiment", "score", "tagging"}
    assert set(experiment.model.tasks) == set(experiment.data)
    # The tiny model reads 64 positions: the default max_length of 128 is lowered, with a note.
    assert any("tasks[tagging].max_length" in note for note in experiment.notes)
    assert not (tmp_path / "run").exists()
    before = {name: p.detach().clone() for name, p in experiment.model.named_parameters()}

    trainer = Trainer(config, model=experiment.model, data=experiment.data)
    results = trainer.train()
    assert trainer.model is experiment.model and trainer.data is experiment.data
    assert set(results["tasks"]) == {"sentiment", "score", "tagging"}
    assert results["split"] == "test"
    trained = dict(experiment.model.named_parameters())
    assert any(not torch.equal(trained[name], value) for name, value in before.items())
    saved = MultiTaskModel.from_pretrained(tmp_path / "run").state_dict()
    assert all(
        torch.equal(saved[key], value) for key, value in experiment.model.state_dict().items()
    )
