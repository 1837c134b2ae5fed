"""`mtlm demo`: fetch the bundled model and four demo tasks, train them together, and show
the test scores next to a trivial baseline and (for an encoder) the untrained model."""

from __future__ import annotations

import time
from pathlib import Path

from mtlm.bundled import BUNDLED_PREFIX
from mtlm.demo.packaged import DEFAULT_DEMO_CONFIG, load_demo_config
from mtlm.demo.prepare import prepare_demo
from mtlm.evaluation.evaluate import trivial_baseline
from mtlm.evaluation.report import print_results
from mtlm.files import write_json
from mtlm.training.trainer import Trainer

__all__ = ["run_demo"]


def run_demo(output_dir: Path, config: str = DEFAULT_DEMO_CONFIG) -> dict[str, dict]:
    """Run the demo of `config` (a packaged demo config's name or a YAML file); return the
    trivial, untrained (unless tasks generate) and trained test results."""
    started = time.perf_counter()
    experiment = load_demo_config(config)
    model = experiment.model.name_or_path
    # Fetch only what this config reads, each with one line of progress.
    prepare_demo(
        [spec.data.bundled for spec in experiment.tasks if spec.data.bundled],
        [model.removeprefix(BUNDLED_PREFIX)] if model.startswith(BUNDLED_PREFIX) else [],
    )
    experiment.training.overwrite_output_dir = True
    trainer = Trainer(experiment, output_dir)
    split = experiment.training.final_eval_split
    columns = {"trivial": trivial_baseline(trainer.data, split)}
    if any(data.task.generates for data in trainer.data.values()):
        # Generating over the test split would add as much time as the final evaluation.
        print("note: the untrained model is not scored: its tasks answer by generating text")
    else:
        columns["untrained"] = trainer.evaluate(split)
    columns["trained"] = trainer.train()
    write_json(output_dir / "demo_results.json", columns)
    print_results(columns)
    beaten = [
        task
        for task, metrics in columns["trained"]["tasks"].items()
        if _better(trainer, task, metrics, columns["trivial"]["tasks"][task])
    ]
    print(
        f"\n{len(beaten)} of {len(columns['trained']['tasks'])} tasks beat the trivial baseline; "
        f"demo took {time.perf_counter() - started:.0f}s"
    )
    print(f"outputs: {output_dir} (model/, eval_results.json, metrics.jsonl, logs/)")
    return columns


def _better(trainer: Trainer, task: str, trained: dict, trivial: dict) -> bool:
    metric = trained["primary"]
    kind = trainer.data[task].task
    if kind.higher_is_better(metric):
        return trained[metric] > trivial[metric]
    return trained[metric] < trivial[metric]
