"""The HF Trainer and Lightning integrations under 2 CPU processes: each process predicts its
share of the validation batches, and every process gets the scores one process computes
alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import COUNT_PREDICTIONS, torchrun

#: Counts the features this process predicts, trains a few steps, then scores the validation
#: split shared among the processes and alone; each process writes result-<rank>.json beside
#: the config (their printed lines would interleave).
_COMMON = (
    """
import json, sys
from pathlib import Path
from mtlm.config import config_from_dict
from mtlm.evaluation.evaluate import evaluate
from mtlm.training.experiment import build_experiment
"""
    + COUNT_PREDICTIONS
    + """
experiment = build_experiment(config_from_dict(json.loads(Path(sys.argv[1]).read_text())))

def report(rank, shared, model):
    own = sum(predicted)
    alone = evaluate(model.eval(), experiment.data, "validation")
    row = {"rank": rank, "predicted": own, "shared": shared, "alone": alone["aggregate"]}
    (Path(sys.argv[1]).parent / f"result-{rank}.json").write_text(json.dumps(row))
"""
)

_HF_TRAINER = (
    _COMMON
    + """
from transformers import TrainingArguments
from mtlm.integrations.hf_trainer import MultiTaskTrainer

args = TrainingArguments(
    output_dir=sys.argv[2], max_steps=4, per_device_train_batch_size=8,
    per_device_eval_batch_size=8, report_to=[],
    use_cpu=True, eval_strategy="no", save_strategy="no",
)
trainer = MultiTaskTrainer(
    experiment.model, args, experiment.data, sampler={"kind": "uniform"}, eval_split="validation"
)
trainer.train()
predicted.clear()
metrics = trainer.evaluate()
report(trainer.accelerator.process_index, metrics["eval_aggregate"], experiment.model)
"""
)

_LIGHTNING = (
    _COMMON
    + """
import lightning as L
from mtlm.integrations.lightning import MultiTaskDataModule, MultiTaskModule

model = experiment.model
data = MultiTaskDataModule(
    experiment.data, batch_size=8, sampler={"kind": "uniform"}, seed=1,
    pad_token_id=model.pad_token_id,
)
module = MultiTaskModule(model, experiment.data, learning_rate=1e-3, eval_batch_size=8)
trainer = L.Trainer(
    # Each step trains one task's head: DDP must expect parameters without gradients.
    max_steps=4, accelerator="cpu", devices=2, strategy="ddp_find_unused_parameters_true",
    logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    num_sanity_val_steps=0, val_check_interval=4,
)
trainer.fit(module, datamodule=data)
predicted.clear()
shared = trainer.validate(module, datamodule=data, verbose=False)[0]["val/aggregate"]
report(trainer.global_rank, shared, model)
"""
)


def _results(folder: Path) -> list[dict]:
    rows = [json.loads(path.read_text()) for path in folder.glob("result-*.json")]
    return sorted(rows, key=lambda row: row["rank"])


def _check(rows: list[dict], validation_rows: int) -> None:
    assert [row["rank"] for row in rows] == [0, 1]
    # Each process predicted a part, and the parts make the whole split once.
    assert all(0 < row["predicted"] < validation_rows for row in rows), rows
    assert sum(row["predicted"] for row in rows) == validation_rows
    for row in rows:
        assert row["shared"] == pytest.approx(row["alone"]), row


def _validation_rows(config) -> int:
    from mtlm.training.experiment import build_experiment

    data = build_experiment(config).data
    return sum(len(task.splits["validation"]) for task in data.values())


def test_the_hf_trainer_shares_evaluation_among_processes(make_config, tmp_path: Path) -> None:
    config = make_config()
    config_file = tmp_path / "config.json"
    config_file.write_text(config.to_json())
    process = torchrun(_HF_TRAINER, [str(config_file), str(tmp_path / "hf")], tmp_path)
    assert process.returncode == 0, process.stderr[-4000:]
    _check(_results(tmp_path), _validation_rows(config))


def test_lightning_shares_validation_among_processes(make_config, tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    config = make_config()
    config_file = tmp_path / "config.json"
    config_file.write_text(config.to_json())
    worker = tmp_path / "worker.py"
    worker.write_text(_LIGHTNING)
    process = subprocess.run(
        [sys.executable, str(worker), str(config_file)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert process.returncode == 0, process.stderr[-4000:]
    _check(_results(tmp_path), _validation_rows(config))
