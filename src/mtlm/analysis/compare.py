"""`mtlm compare`: did multi-task training help each task, against single-task runs?

For every seed the multi-task model of a config is trained (a finished run of the same config
in the output folder is reused, an interrupted one resumed from its checkpoint or, stopped in
its fine-tuning stage, fine-tuned again), and every task gets single-task baselines of one or
both kinds (`--baseline`):

- `converged` (the default): the task trained alone to its best validation score: up to
  `--baseline-epochs` epochs (10), validated at each epoch's end, stopped after
  `--baseline-patience` (2) validations without improvement, with the best validated weights
  kept; when the cap rather than early stopping ended it, trained again with three times the
  epochs (up to `--baseline-max-epochs`, 30) and the better-validating run kept
  (`mtlm.analysis.baselines`). It cannot flatter multi-task training by stopping a baseline
  before it has learned.
- `equal_examples`: the task trained alone on as many of its examples as the multi-task run
  gave it: `max_steps = ⌈examples / (batch_size × accumulation)⌉` from the multi-task run's
  `train_summary.json` (a short last batch may add or drop one batch), with as many
  validations (`eval_steps` scaled by the ratio of steps). It answers "did sharing help with
  the same data", but a task the multi-task run gave 59 steps gets a baseline of 59 steps.

Both kinds share everything else with the multi-task run:

- the same rows in the same order: the baseline's seed is the multi-task seed plus the task's
  position, which is the seed the multi-task trainer gives that task's batch stream and
  `max_examples` draw (head initialisation and dropout differ either way);
- the same model, optimizer settings, precision, max_length and warm-up ratio;
- a loss weight of 1: `loss_weight` weighs a task against the others; alone it would only
  rescale its gradient, which gradient clipping and weight decay do not ignore;
- one task needs no sampler, balancer or joint groups: sampled steps, default sampler; and
  no fine-tuning stage (`training.finetune`) after it;
- sharing: LoRA stays LoRA (one adapter on the same base is the matching baseline); hard and
  soft become hard, which for one task is plain fine-tuning;
- no step checkpoints, and its weights are not kept.

Not normalised, by design: the multi-task run keeps the checkpoint with the best validation
*aggregate*, a baseline the best one for its only task; that is part of the price of one model.

Baselines are cached by a hash of their config (without output and progress keys) and of the
task's data (the content fingerprints the features cache keys on); the two kinds differ in
their config (a step budget against an epoch budget with early stopping), so they never share
a cache entry. Two multi-task configs with the same budget per task (hard against soft
sharing, or two balancers in joint mode with the same seed) share their equal-examples
baselines, and every multi-task config of the same tasks, model and optimizer settings shares
the converged ones. The model is named by its path or hub name and revision, not hashed:
replace a local model in place and the cache must be cleared by hand.

What the runs' scores say, and how they are tested, is `mtlm.analysis.comparison`'s; how they
are shown, `mtlm.analysis.compare_report`'s.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from mtlm.analysis.baselines import baseline_config, train_converged
from mtlm.analysis.compare_report import write_comparison
from mtlm.analysis.comparison import BaselinePlan, BaselineRun, Comparison, SeedRuns, summarise
from mtlm.cache import cache_dir
from mtlm.config import ExperimentConfig, TaskSpec, config_from_dict
from mtlm.data.sources import check_split_present, read_task_splits
from mtlm.errors import ConfigError
from mtlm.files import read_json, staged_directory
from mtlm.outputs import RUN_MARKER
from mtlm.training.checkpoint import list_checkpoints
from mtlm.training.run_folder import FINISHED_MARKER, fine_tuning_left
from mtlm.training.trainer import Trainer

#: Bump when what a baseline trains changes, so that older cached baselines are not reused.
BASELINE_VERSION = 1
#: Training keys that decide where a run writes or how it reports progress, not what it learns.
_RUN_ONLY_KEYS = (
    "output_dir",
    "overwrite_output_dir",
    "progress_bar",
    "logging_steps",
    "save_steps",
    "save_total_limit",
)
#: What a cached baseline keeps; its model and checkpoints are large and never read again.
_KEPT_FILES = ("eval_results.json", "train_summary.json", "experiment_config.json", "metrics.jsonl")


def compare(
    config: ExperimentConfig,
    output_dir: str | Path,
    seeds: int = 1,
    baseline_cache: str | Path | None = None,
    plan: BaselinePlan | None = None,
) -> Comparison:
    """Train the config's multi-task model and the single-task baselines of `plan` (converged
    ones by default) for `seeds` seeds (from `training.seed` on); write comparison.json, .md
    and .png to `output_dir`."""
    plan = plan or BaselinePlan()
    if seeds < 1:
        raise ConfigError(f"--seeds: give at least 1 seed (got {seeds})")
    plan.check()
    output_dir = Path(output_dir)
    first = config.training.seed
    run_configs = [
        _multitask_config(config, seed, output_dir / "multitask" / f"seed-{seed}")
        for seed in range(first, first + seeds)
    ]
    for run_config in run_configs:
        _check_multitask_folder(run_config, output_dir)
    cache = Path(baseline_cache) if baseline_cache else cache_dir() / "baselines"
    fingerprints, validated, notes, present = {}, {}, [], {}
    for spec in config.tasks:
        splits, _ = read_task_splits(spec)
        present[spec.name] = splits
        fingerprints[spec.name] = _fingerprint(splits)
        validated[spec.name] = config.training.eval_split in splits
        if "converged" in plan.kinds and not validated[spec.name]:
            notes.append(
                f"{spec.name}: no {config.training.eval_split} split, so its converged "
                f"baseline trained all {plan.epochs} epochs without early stopping"
            )
    # The comparison is of scores on this split: without it, every run would be for nothing.
    check_split_present(config.training.final_eval_split, "training.final_eval_split", present)
    runs = []
    for run_config in run_configs:
        seed = run_config.training.seed
        folder = _train_multitask(run_config)
        summary = read_json(folder / FINISHED_MARKER)
        baselines: dict[str, dict[str, BaselineRun]] = {kind: {} for kind in plan.kinds}
        for spec in config.tasks:
            examples = summary["examples_per_task"][spec.name]
            if examples == 0:
                continue
            for kind in plan.kinds:
                if kind == "converged":
                    patience = plan.patience if validated[spec.name] else None
                    baselines[kind][spec.name] = _train_converged_baseline(
                        run_config, spec.name, plan, patience, fingerprints[spec.name], cache
                    )
                else:
                    baseline = baseline_config(run_config, spec.name, examples, summary["steps"])
                    baselines[kind][spec.name] = _train_baseline(
                        baseline, kind, fingerprints[spec.name], cache
                    )
        runs.append(SeedRuns(seed, folder, baselines))
    comparison = summarise(config, runs, plan)
    comparison.notes += notes
    write_comparison(comparison, output_dir)
    return comparison


def baseline_key(config: ExperimentConfig, data_fingerprint: str) -> str:
    """The cache key of a baseline: its config without run-only keys, and its data."""
    described = json.dumps(
        [BASELINE_VERSION, _canonical(config.model_dump(mode="json")), data_fingerprint],
        sort_keys=True,
    )
    return hashlib.sha256(described.encode()).hexdigest()[:32]


def data_fingerprint(spec: TaskSpec) -> str:
    """A hash of a task's rows, split by split, from the content fingerprints that key the
    features cache."""
    return _fingerprint(read_task_splits(spec)[0])


def _fingerprint(splits: dict[str, Any]) -> str:
    described = json.dumps({split: rows.fingerprint for split, rows in splits.items()})
    return hashlib.sha256(described.encode()).hexdigest()


# --- runs ----------------------------------------------------------------------------------
def _multitask_config(config: ExperimentConfig, seed: int, folder: Path) -> ExperimentConfig:
    raw = config.model_dump(mode="json")
    # A run of this config stopped before its first checkpoint is trained again from the start
    # (`_check_multitask_folder` has refused a run of any other config).
    raw["training"].update(seed=seed, output_dir=str(folder), overwrite_output_dir=True)
    return config_from_dict(raw, source=f"the multi-task run of seed {seed}")


def _check_multitask_folder(config: ExperimentConfig, output_dir: Path) -> None:
    """A ConfigError unless the multi-task run's folder is missing, empty, or holds a run of
    this same config (to reuse or resume): a run of another config is never replaced."""
    folder = Path(config.training.output_dir)
    if not (folder.is_dir() and any(folder.iterdir())) or _same_run(config, folder):
        return
    if (folder / RUN_MARKER).is_file():
        raise ConfigError(
            f"--output-dir: {output_dir} holds a comparison of another config ({folder} was "
            "not trained from this one); choose another --output-dir"
        )
    raise ConfigError(
        f"--output-dir: {folder} holds files that are not an mtlm run; choose another --output-dir"
    )


def _same_run(config: ExperimentConfig, folder: Path) -> bool:
    """Whether `folder` holds a run of `config` (up to where it writes and what it prints)."""
    stored = folder / RUN_MARKER
    return stored.is_file() and _canonical(read_json(stored)) == _canonical(
        config.model_dump(mode="json")
    )


def _train_multitask(config: ExperimentConfig) -> Path:
    """Train the multi-task run into its folder, unless a finished run of it is there."""
    folder = Path(config.training.output_dir)
    same = _same_run(config, folder)
    label = f"multi-task seed {config.training.seed}"
    fine_tuning = same and fine_tuning_left(folder, config.training.finetune is not None)
    if same and (folder / FINISHED_MARKER).is_file() and not fine_tuning:
        _say(f"{label}: reusing the finished run in {folder}")
        return folder
    resume = fine_tuning or (same and bool(list_checkpoints(folder / "checkpoints")))
    _say(f"{label}: {'resuming' if resume else 'training'} in {folder}")
    Trainer(config, folder).train(resume=resume)
    return folder


def _train_converged_baseline(
    config: ExperimentConfig,
    task: str,
    plan: BaselinePlan,
    patience: int | None,
    data_hash: str,
    cache: Path,
) -> BaselineRun:
    """The converged baseline of `task` (`mtlm.analysis.baselines.train_converged`), each of
    its runs cached as any baseline is."""
    trained: dict[Path, BaselineRun] = {}

    def train(baseline: ExperimentConfig) -> Path:
        run = _train_baseline(baseline, "converged", data_hash, cache)
        trained[run.folder] = run
        return run.folder

    converged = train_converged(config, task, train, plan.epochs, patience, plan.max_epochs)
    # Without a validation split there was one run and no choice (a note says so).
    budgets = converged.tried if patience is not None else ()
    return replace(trained[converged.kept.folder], budgets=budgets)


def _train_baseline(
    config: ExperimentConfig, kind: str, data_hash: str, cache: Path
) -> BaselineRun:
    """The cached baseline of this config and data, trained (and cached) if missing."""
    task, training = config.tasks[0].name, config.training
    folder = cache / baseline_key(config, data_hash)
    label = f"single-task {task} ({kind.replace('_', ' ')}) seed {training.seed}"
    cached = (folder / FINISHED_MARKER).is_file()
    if cached:
        _say(f"{label}: cached in {folder}")
    else:
        budget = (
            f"{training.max_steps} steps"
            if training.max_steps
            else f"up to {training.num_epochs:g} epochs"
        )
        _say(f"{label}: training {budget} into {folder}")
        config.training.output_dir = str(folder)
        with staged_directory(folder) as staging:
            Trainer(config, staging).train()
            for entry in staging.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                elif entry.name not in _KEPT_FILES:
                    entry.unlink()
    return BaselineRun.read(folder, kind, task, cached)


def _canonical(raw: dict[str, Any]) -> dict[str, Any]:
    """A dumped config without the keys that do not change what a run learns."""
    # Where features are cached does not change what they are.
    kept = {key: value for key, value in raw.items() if key != "cache_dir"}
    training = raw.get("training", {})
    kept["training"] = {k: v for k, v in training.items() if k not in _RUN_ONLY_KEYS}
    return kept


def _say(message: str) -> None:
    print(f"mtlm compare: {message}", flush=True)
