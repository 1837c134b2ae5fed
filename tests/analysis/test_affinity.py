"""Task affinity: constructed pairs of tasks that help or hurt each other get the sign they
must, a step leaves the model as it was, and a measured run writes its JSON, heatmaps and
summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import sentiment_rows, write_jsonl

from mtlm import ConfigError, Trainer
from mtlm.analysis import affinity as affinity_module
from mtlm.analysis.affinity import (
    Affinity,
    affinity_step,
    affinity_summary,
    measure_affinity,
    write_affinity,
)
from mtlm.analysis.grouping import best_partition
from mtlm.config import config_from_dict

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def twin_tasks(tiny_model_dir: Path, tmp_path: Path):
    """Tasks `a` and `b`, both classifying the same texts into neg/pos, with identical heads,
    and a batch of positive texts.

    One class in the batch: with both classes, the gradients of two tasks on an untrained
    encoder (whose representations of all texts are alike) are dominated by the same push
    toward balanced predictions, whatever the labels; with one class, flipping the labels makes
    the tasks pull in opposite directions.
    """
    rows = [row for row in sentiment_rows(64) if row["label"] == "pos"]
    data = {"train": str(write_jsonl(tmp_path / "train.jsonl", rows))}
    config = config_from_dict(
        {
            "model": {"name_or_path": str(tiny_model_dir)},
            "cache_dir": str(tmp_path / "features"),
            "tasks": [
                {"name": name, "kind": "classification", "data": data, "labels": ["neg", "pos"]}
                for name in ("a", "b")
            ],
            "training": {"batch_size": 16, "progress_bar": False},
        }
    )
    trainer = Trainer(config)
    model = trainer.model
    model.heads["b"].load_state_dict(model.heads["a"].state_dict())
    batch = trainer.task_streams()["a"].next_batch()
    assert batch["labels"].eq(1).all()
    return model, batch


def test_a_task_and_its_twin_have_aligned_gradients_and_help_each_other(twin_tasks):
    model, batch = twin_tasks
    gradient, lookahead = affinity_step(model, {"a": batch, "b": batch}, 1e-2)
    assert gradient[0, 1].item() == pytest.approx(1.0, abs=1e-6)
    assert gradient[1, 0].item() == pytest.approx(1.0, abs=1e-6)
    # A step on one lowers the other's loss exactly as much as its own.
    assert lookahead[0, 1] > 0 and lookahead[1, 0] > 0
    assert torch.allclose(lookahead, lookahead[0, 0].expand(2, 2))


def test_tasks_with_opposite_labels_have_opposite_gradients_and_hurt_each_other(twin_tasks):
    model, batch = twin_tasks
    flipped = {**batch, "labels": 1 - batch["labels"]}
    gradient, lookahead = affinity_step(model, {"a": batch, "b": flipped}, 1e-2)
    assert gradient[0, 1].item() == pytest.approx(-1.0, abs=1e-4)
    assert torch.diagonal(gradient).tolist() == pytest.approx([1.0, 1.0])
    # A step on a task lowers its own loss and raises the other's.
    assert lookahead[0, 0] > 0 and lookahead[1, 1] > 0
    assert lookahead[0, 1] < 0 and lookahead[1, 0] < 0


def test_a_step_leaves_parameters_and_mode_exactly_as_they_were(twin_tasks):
    model, batch = twin_tasks
    model.train()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    affinity_step(model, {"a": batch, "b": batch}, 0.5)
    assert model.training
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
    assert all(parameter.grad is None for parameter in model.parameters())


def test_measure_affinity_on_the_three_tasks_writes_json_heatmaps_and_summary(
    make_config, tmp_path
):
    affinity = measure_affinity(make_config(), steps=4, every=2)
    tasks = ["sentiment", "score", "tagging"]
    assert affinity.tasks == tasks
    assert affinity.measured_steps == 2
    assert affinity.lookahead_learning_rate == 1e-3  # the config's learning rate
    for matrix in (affinity.gradient, affinity.lookahead):
        assert matrix.shape == (3, 3)
        assert torch.isfinite(matrix).all()
    assert torch.diagonal(affinity.gradient).tolist() == pytest.approx([1.0] * 3)
    assert torch.allclose(affinity.gradient, affinity.gradient.T)
    # A step on a task's own loss lowers it.
    assert (torch.diagonal(affinity.lookahead) > 0).all()

    report = write_affinity(affinity, tmp_path / "affinity", groups=[1, 2])
    written = json.loads((tmp_path / "affinity" / "affinity.json").read_text())
    assert written == report
    assert written["settings"]["steps"] == 4
    assert list(written["lookahead_affinity"]) == tasks
    assert written["lookahead_affinity"]["score"]["tagging"] == pytest.approx(
        affinity.lookahead[1, 2].item(), rel=1e-5
    )
    recommended = written["grouping"]["recommended"]
    assert [entry["groups"] for entry in recommended] == [1, 2]
    assert recommended[0]["tasks"] == [tasks]
    assert sorted(name for group in recommended[1]["tasks"] for name in group) == sorted(tasks)
    best = best_partition(affinity.lookahead.numpy(), 2)
    assert recommended[1]["score"] == pytest.approx(best.score, abs=1e-6)
    for name in ("gradient_affinity.png", "lookahead_affinity.png"):
        path = tmp_path / "affinity" / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        assert path.stat().st_size > 10_000

    summary = affinity_summary(report)
    assert "gradient affinity" in summary and "lookahead affinity" in summary
    assert " | ".join(", ".join(group) for group in recommended[1]["tasks"]) in summary
    assert summary.count("tagging") >= 4  # a row and a column of both tables


def test_measuring_trains_the_model_between_measured_steps(make_config, monkeypatch):
    seen = []

    def recording_step(model, batches, lookahead_learning_rate):
        seen.append(
            [
                p.detach().clone()
                for p in (*model.shared_parameters()[:3], *model.heads.parameters())
            ]
        )
        return affinity_step(model, batches, lookahead_learning_rate)

    monkeypatch.setattr(affinity_module, "affinity_step", recording_step)
    affinity = measure_affinity(make_config(), steps=3)
    assert affinity.measured_steps == len(seen) == 3
    for earlier, later in zip(seen, seen[1:], strict=False):
        assert all(not torch.equal(a, b) for a, b in zip(earlier, later, strict=True))


def test_nothing_shared_is_refused_with_advice(make_config):
    raw = make_config().model_dump(mode="json")
    raw["sharing"] = {"kind": "lora"}
    with pytest.raises(ConfigError, match="sharing.kind.*train_base"):
        measure_affinity(config_from_dict(raw), steps=2)


def test_soft_sharing_is_measured_on_its_hard_shared_modules(make_config):
    raw = make_config().model_dump(mode="json")
    raw["sharing"] = {"kind": "soft", "hard_modules": ["embeddings"]}
    affinity = measure_affinity(config_from_dict(raw), steps=2)
    assert torch.isfinite(affinity.lookahead).all()
    assert torch.diagonal(affinity.gradient).tolist() == pytest.approx([1.0] * 3)


@pytest.mark.parametrize(
    ("steps", "every", "rate", "flag"),
    [
        (0, 1, None, "--steps"),
        (3, 4, None, "--every"),
        (3, 0, None, "--every"),
        (3, 1, 0.0, "--lookahead-lr"),
    ],
)
def test_bad_settings_name_their_flag(make_config, steps, every, rate, flag):
    with pytest.raises(ConfigError, match=flag):
        measure_affinity(make_config(), steps, every, rate)


def test_write_refuses_a_bad_group_count_before_writing(tmp_path):
    affinity = Affinity(["a", "b"], torch.eye(2), torch.zeros(2, 2), 1, 1, 1, 1e-3, 1.0)
    with pytest.raises(ConfigError, match="--groups"):
        write_affinity(affinity, tmp_path / "out", groups=[3])
    assert not (tmp_path / "out").exists()
