"""Prediction shared among processes: each predicts whole batches of the one batching rule, so
that the gathered predictions, and the metrics of validation and of the final evaluation, are
those of one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from conftest import COUNT_PREDICTIONS, sentiment_rows, write_jsonl

from mtlm import MultiTaskModel, Trainer
from mtlm.config import config_from_dict
from mtlm.evaluation.evaluate import evaluate
from mtlm.inference import predict_features, shards
from mtlm.inference.shards import predict_sharded


class Processes(NamedTuple):
    process_index: int
    num_processes: int


def each_process(model, task: str, features, batch_size: int, count: int, monkeypatch):
    """What each of `count` processes predicts itself (the others' entries None): gathering
    is left out, so that one process can play them all."""
    monkeypatch.setattr(shards, "gather_shares", lambda share, count: [share])
    return [
        predict_sharded(model, task, features, batch_size, Processes(index, count))
        for index in range(count)
    ]


def assert_shared_out(model, task: str, features, batch_size: int, count: int, monkeypatch):
    """Every feature is predicted by exactly one process, as one process predicts it alone."""
    alone = predict_features(model, [task], features, batch_size)[task]
    shares = each_process(model, task, features, batch_size, count, monkeypatch)
    for index, expected in enumerate(alone):
        made = [share[index] for share in shares if share[index] is not None]
        assert made == [expected]
    sizes = [sum(answer is not None for answer in share) for share in shares]
    assert min(sizes) > 0 and max(sizes) - min(sizes) <= batch_size


@pytest.mark.parametrize(("batch_size", "count"), [(4, 2), (5, 3), (7, 2), (64, 2)])
def test_processes_predict_what_one_predicts(make_config, batch_size, count, monkeypatch):
    trainer = Trainer(make_config(max_steps=2))
    for name, data in trainer.data.items():
        features = data.splits["validation"].to_dict()
        if batch_size < len(features["input_ids"]):
            assert_shared_out(trainer.model, name, features, batch_size, count, monkeypatch)
        else:  # one batch: the other processes have nothing to predict
            shares = each_process(trainer.model, name, features, batch_size, count, monkeypatch)
            assert all(answer is None for answer in shares[1])


@pytest.mark.parametrize("decoding", ["generate", "score_labels"])
def test_processes_generate_what_one_generates(tiny_decoder_dir, tmp_path, decoding, monkeypatch):
    files = {
        split: str(write_jsonl(tmp_path / f"{split}.jsonl", sentiment_rows(count, seed)))
        for split, count, seed in (("train", 16, 0), ("validation", 11, 1), ("test", 4, 2))
    }
    task = {
        "name": "sentiment",
        "kind": "text_to_text",
        "prompt_template": "review: {text} sentiment:",
        "target_template": "{label}",
        "decoding": decoding,
        "max_new_tokens": 3,
        "data": files,
    }
    raw = {
        "model": {"name_or_path": str(tiny_decoder_dir)},
        "cache_dir": str(tmp_path / "features"),
        "tasks": [task],
        "training": {"output_dir": str(tmp_path / "run"), "max_steps": 1},
    }
    trainer = Trainer(config_from_dict(raw))
    features = trainer.data["sentiment"].splits["validation"].to_dict()
    assert_shared_out(trainer.model, "sentiment", features, 4, 2, monkeypatch)


#: Each rank trains, counts the features it predicts, and writes what `train` returned to it.
_WORKER = (
    """
import json, sys
from pathlib import Path
from mtlm import Trainer
from mtlm.config import config_from_dict
"""
    + COUNT_PREDICTIONS
    + """
config = config_from_dict(json.loads(Path(sys.argv[1]).read_text()))
trainer = Trainer(config)
final = trainer.train()
rank = trainer.accelerator.process_index
report = {"final": final, "predicted": sum(predicted)}
(Path(config.training.output_dir) / f"rank{rank}.json").write_text(json.dumps(report))
"""
)


def train_on_two_processes(raw_config: dict[str, Any], tmp_path: Path) -> None:
    """Train `raw_config` with torchrun on 2 CPU processes (gloo); fail the test if it fails."""
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(raw_config))
    worker = tmp_path / "worker.py"
    worker.write_text(_WORKER)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", str(worker), str(config_file)]
    process = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert process.returncode == 0, process.stderr[-4000:]


def test_two_processes_score_as_one_process_scores_the_same_model(make_config, tmp_path):
    run = tmp_path / "run"
    config = make_config(
        max_steps=6, eval_steps=3, eval_batch_size=4, output_dir=str(run), save_steps=None
    )
    train_on_two_processes(json.loads(config.to_json()), tmp_path)

    model = MultiTaskModel.from_pretrained(run / "model", device="cpu")  # the best weights
    data = Trainer(config, tmp_path / "alone", model=model).data
    validation = evaluate(model, data, "validation", batch_size=4)
    test = evaluate(model, data, "test", batch_size=4)
    summary = json.loads((run / "train_summary.json").read_text())
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    validations = {row["step"]: row["eval"] for row in logged if "eval" in row}
    assert sorted(validations) == [3, 6]
    assert validations[summary["best_step"]] == validation
    assert json.loads((run / "validation_results.json").read_text()) == validation
    assert json.loads((run / "eval_results.json").read_text()) == test

    ranks = [json.loads((run / f"rank{index}.json").read_text()) for index in (0, 1)]
    assert ranks[0]["final"] == ranks[1]["final"] == test  # every process gets the results
    # Two validations and the test split, 3 tasks of 24 rows in batches of 4: 6 batches of
    # each, 3 for each process.
    assert [rank["predicted"] for rank in ranks] == [3 * 3 * 12, 3 * 3 * 12]
