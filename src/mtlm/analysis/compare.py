"""`mtlm compare`: did multi-task training help each task, against same-budget single-task runs?

For every seed the multi-task model of a config is trained (a finished run of the same config
in the output folder is reused, an interrupted one resumed from its checkpoint), and every task
gets a single-task baseline that had the same chance to learn it:

- the same examples of the task: `max_steps = ⌈examples / (batch_size × accumulation)⌉`, from
  the multi-task run's `train_summary.json` (a short last batch may add or drop one batch);
- the same rows in the same order: the baseline's seed is the multi-task seed plus the task's
  position, which is the seed the multi-task trainer gives that task's batch stream and
  `max_examples` draw (head initialisation and dropout differ either way);
- the same model, optimizer settings, precision, max_length and warm-up ratio, and as many
  validations (`eval_steps` scaled by the ratio of steps);
- a loss weight of 1: `loss_weight` weighs a task against the others; alone it would only
  rescale its gradient, which gradient clipping and weight decay do not ignore;
- one task needs no sampler, balancer or joint groups: sampled steps, default sampler;
- sharing: LoRA stays LoRA (one adapter on the same base is the matching baseline); hard and
  soft become hard, which for one task is plain fine-tuning;
- no step checkpoints: a baseline is short, and its weights are not kept.

Not normalised, by design: the multi-task run keeps the checkpoint with the best validation
*aggregate*, a baseline the best one for its only task; that is part of the price of one model.

Baselines are cached by a hash of their config (without output and progress keys) and of the
task's data (the content fingerprints the features cache keys on). Two multi-task configs with
the same budget per task (hard against soft sharing, or two balancers in joint mode with the
same seed) therefore share their baselines. The model is named by its path or hub name and
revision, not hashed: replace a local model in place and the cache must be cleared by hand.

Δm (Maninis, Radosavovic and Kokkinos, 2019) is the headline; with several seeds each
difference is tested against seed noise with Welch's t-test (see `mtlm.analysis.transfer`).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtlm.analysis.compare_report import write_comparison
from mtlm.analysis.transfer import (
    SEED_TEST,
    DeltaM,
    SeedTest,
    delta_m,
    mean_std,
    relative_change,
    seed_test,
    signed_difference,
)
from mtlm.assets import cache_dir
from mtlm.config import AGGREGATORS, ExperimentConfig, TaskSpec, config_from_dict
from mtlm.data.sources import read_task_splits
from mtlm.errors import ConfigError
from mtlm.files import staged_directory
from mtlm.tasks import KINDS
from mtlm.training.checkpoint import list_checkpoints
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


@dataclass
class BaselineRun:
    """One single-task baseline: its folder, the budget it was given, whether it was cached."""

    folder: Path
    examples: int
    steps: int
    cached: bool


@dataclass
class SeedRuns:
    """The runs of one seed: the multi-task run and each task's baseline."""

    seed: int
    multitask: Path
    baselines: dict[str, BaselineRun]


@dataclass
class TaskComparison:
    """One task's primary metric, single-task against multi-task, over seeds."""

    task: str
    metric: str
    higher_is_better: bool
    single: list[float]
    multi: list[float]
    seed_test: SeedTest | None
    advice: list[str] = field(default_factory=list)

    @property
    def difference(self) -> float:
        """Mean multi-task score minus mean single-task score (raw, whatever the direction)."""
        return mean_std(self.multi)[0] - mean_std(self.single)[0]

    @property
    def relative_change(self) -> float | None:
        """This task's term of Δm, in percent."""
        return relative_change(
            mean_std(self.single)[0], mean_std(self.multi)[0], self.higher_is_better
        )

    @property
    def negative_transfer(self) -> bool:
        """Whether the multi-task model is worse on this task."""
        means = mean_std(self.single)[0], mean_std(self.multi)[0]
        return signed_difference(*means, self.higher_is_better) < 0

    @property
    def within_noise(self) -> bool:
        """Whether the seed-noise test ran and found the difference not significant."""
        return self.seed_test is not None and not self.seed_test.significant

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with means and sample standard deviations."""
        single_mean, single_std = mean_std(self.single)
        multi_mean, multi_std = mean_std(self.multi)
        return {
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "single_task": {"scores": self.single, "mean": single_mean, "std": single_std},
            "multi_task": {"scores": self.multi, "mean": multi_mean, "std": multi_std},
            "difference": self.difference,
            "relative_change_percent": self.relative_change,
            "p_value": self.seed_test.p_value if self.seed_test else None,
            "significant": self.seed_test.significant if self.seed_test else None,
            "negative_transfer": self.negative_transfer,
            "advice": self.advice,
        }


@dataclass
class Comparison:
    """The per-task comparisons, Δm over them, notes and the runs they come from."""

    split: str
    seeds: list[int]
    tasks: list[TaskComparison]
    delta_m: DeltaM
    delta_m_per_seed: list[float | None]
    runs: list[SeedRuns]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The `comparison.json` structure."""
        return {
            "split": self.split,
            "seeds": self.seeds,
            "delta_m_percent": self.delta_m.value,
            "delta_m_left_out": self.delta_m.left_out,
            "delta_m_percent_per_seed": self.delta_m_per_seed,
            "delta_m_method": "Maninis, Radosavovic, Kokkinos 2019: mean over tasks of "
            "(-1)^l (M_mt - M_st) / |M_st| x 100, l = 1 where lower is better",
            "seed_test": SEED_TEST if len(self.seeds) > 1 else None,
            "tasks": {t.task: t.to_dict() for t in self.tasks},
            "notes": self.notes,
            "runs": [
                {
                    "seed": run.seed,
                    "multitask": str(run.multitask),
                    "baselines": {
                        name: {
                            "folder": str(b.folder),
                            "examples": b.examples,
                            "steps": b.steps,
                            "cached": b.cached,
                        }
                        for name, b in run.baselines.items()
                    },
                }
                for run in self.runs
            ],
        }


# --- the command ---------------------------------------------------------------------------
def compare(
    config: ExperimentConfig,
    output_dir: str | Path,
    seeds: int = 1,
    baseline_cache: str | Path | None = None,
) -> Comparison:
    """Train the config's multi-task model and same-budget single-task baselines for `seeds`
    seeds (from `training.seed` on); write comparison.json, .md and .png to `output_dir`."""
    if seeds < 1:
        raise ConfigError(f"--seeds: give at least 1 seed (got {seeds})")
    output_dir = Path(output_dir)
    cache = Path(baseline_cache) if baseline_cache else cache_dir() / "baselines"
    fingerprints = {spec.name: data_fingerprint(spec) for spec in config.tasks}
    first = config.training.seed
    runs = []
    for seed in range(first, first + seeds):
        run_config = _multitask_config(config, seed, output_dir / "multitask" / f"seed-{seed}")
        folder = _train_multitask(run_config)
        summary = _read_json(folder / "train_summary.json")
        baselines = {}
        for spec in config.tasks:
            examples = summary["examples_per_task"][spec.name]
            if examples == 0:
                continue
            baseline = baseline_config(run_config, spec.name, examples, summary["steps"])
            baselines[spec.name] = _train_baseline(baseline, fingerprints[spec.name], cache)
        runs.append(SeedRuns(seed, folder, baselines))
    comparison = summarise(config, runs)
    write_comparison(comparison, output_dir)
    return comparison


def baseline_config(
    config: ExperimentConfig, task: str, examples: int, multitask_steps: int
) -> ExperimentConfig:
    """The single-task config of `task` that sees `examples` of its training examples, as the
    multi-task run of `config` (which took `multitask_steps` steps) did."""
    raw = config.model_dump(mode="json")
    names = [spec["name"] for spec in raw["tasks"]]
    index = names.index(task)
    raw["tasks"] = [{**raw["tasks"][index], "loss_weight": 1.0}]
    if raw["sharing"]["kind"] != "lora":
        raw["sharing"] = {}
    training = raw["training"]
    steps = math.ceil(examples / (training["batch_size"] * training["gradient_accumulation_steps"]))
    eval_steps = training["eval_steps"]
    if eval_steps is not None:
        eval_steps = max(1, round(eval_steps * steps / multitask_steps))
    training.update(
        seed=training["seed"] + index,
        max_steps=steps,
        num_epochs=None,
        eval_steps=eval_steps,
        save_steps=None,
        step_mode="sampled",
        sampler={},
        balancer={},
        joint_groups=None,
        overwrite_output_dir=False,
    )
    return config_from_dict(raw, source=f"the single-task baseline of {task}")


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
    splits, _ = read_task_splits(spec)
    described = json.dumps({split: rows.fingerprint for split, rows in splits.items()})
    return hashlib.sha256(described.encode()).hexdigest()


def summarise(config: ExperimentConfig, runs: list[SeedRuns]) -> Comparison:
    """Per-task scores from the runs' eval_results.json files, Δm, flags and advice."""
    notes = []
    multi = [_read_json(run.multitask / "eval_results.json") for run in runs]
    split = multi[0]["split"]
    tasks = []
    for spec in config.tasks:
        if any(spec.name not in run.baselines for run in runs):
            notes.append(f"{spec.name}: the multi-task run gave it no training examples")
            continue
        if spec.name not in multi[0]["tasks"]:
            notes.append(f"{spec.name}: no {split} split, nothing to compare")
            continue
        single = [
            _read_json(run.baselines[spec.name].folder / "eval_results.json")["tasks"][spec.name]
            for run in runs
        ]
        metric = single[0]["primary"]
        scores = [results["tasks"][spec.name][metric] for results in multi]
        baseline_scores = [metrics[metric] for metrics in single]
        tasks.append(
            TaskComparison(
                task=spec.name,
                metric=metric,
                higher_is_better=KINDS[spec.kind](spec).higher_is_better(metric),
                single=baseline_scores,
                multi=scores,
                seed_test=seed_test(baseline_scores, scores),
            )
        )
    for task in tasks:
        if task.negative_transfer:
            task.advice = advice(config, task)
    direction = {t.task: t.higher_is_better for t in tasks}
    overall = delta_m(
        {t.task: mean_std(t.single)[0] for t in tasks},
        {t.task: mean_std(t.multi)[0] for t in tasks},
        direction,
    )
    notes += [
        f"{name}: its single-task score is 0, so it has no relative change; left out of Δm"
        for name in overall.left_out
    ]
    per_seed = [
        delta_m(
            {t.task: t.single[i] for t in tasks}, {t.task: t.multi[i] for t in tasks}, direction
        ).value
        for i in range(len(runs))
    ]
    seeds = [run.seed for run in runs]
    return Comparison(split, seeds, tasks, overall, per_seed, runs, notes)


def advice(config: ExperimentConfig, task: TaskComparison) -> list[str]:
    """What to try for a task that multi-task training made worse, given how it was trained."""
    training, sharing = config.training, config.sharing
    lines = []
    if task.seed_test is None and len(task.single) == 1:
        lines.append("one seed: rerun with --seeds 3 to tell this from seed noise")
    elif task.within_noise:
        lines.append(f"within seed noise (p = {task.seed_test.p_value:.2f}): more seeds first")
    if sharing.kind == "lora" and not sharing.train_base:
        lines.append(
            "it shares no trained weight (own adapter and head, frozen base): the gap comes "
            "from keeping the checkpoint with the best validation aggregate"
        )
        return lines
    if training.step_mode == "sampled":
        baseline = mean_std(task.single)[0]
        lines.append(
            "weigh the other tasks less: lower their loss_weight or sampling share, or use "
            f"training.sampler: {{kind: dynamic, targets: {{{task.task}: {baseline:.3g}}}}}"
        )
    else:
        lines.append(f"weigh it more: raise tasks[{task.task}].loss_weight or lower the others'")
    if sharing.kind == "hard":
        lines.append("give it its own parameters: sharing: {kind: lora} or {kind: soft}")
    elif sharing.kind == "soft":
        lines.append(
            f"tie it less: sharing.strength below {sharing.strength:g}, or sharing: {{kind: lora}}"
        )
    else:
        lines.append("keep the other tasks off its base: sharing.train_base: false")
    lines.append("train it in another group: `mtlm affinity` shows which tasks hurt it")
    if training.step_mode == "sampled":
        lines.append(
            "or resolve gradient conflicts: training.step_mode: joint with "
            "training.balancer.kind: upgrad (or pcgrad, cagrad)"
        )
    elif training.balancer.kind not in AGGREGATORS:
        lines.append("or resolve gradient conflicts: training.balancer.kind: upgrad (or pcgrad)")
    return lines


# --- runs ----------------------------------------------------------------------------------
def _multitask_config(config: ExperimentConfig, seed: int, folder: Path) -> ExperimentConfig:
    raw = config.model_dump(mode="json")
    # compare owns this folder: a run of another config there is replaced.
    raw["training"].update(seed=seed, output_dir=str(folder), overwrite_output_dir=True)
    return config_from_dict(raw, source=f"the multi-task run of seed {seed}")


def _train_multitask(config: ExperimentConfig) -> Path:
    """Train the multi-task run into its folder, unless a finished run of it is there."""
    folder = Path(config.training.output_dir)
    stored = folder / "experiment_config.json"
    same = stored.is_file() and _canonical(_read_json(stored)) == _canonical(
        config.model_dump(mode="json")
    )
    label = f"multi-task seed {config.training.seed}"
    if same and (folder / "train_summary.json").is_file():
        _say(f"{label}: reusing the finished run in {folder}")
        return folder
    resume = same and bool(list_checkpoints(folder / "checkpoints"))
    _say(f"{label}: {'resuming' if resume else 'training'} in {folder}")
    Trainer(config, folder).train(resume=resume)
    return folder


def _train_baseline(config: ExperimentConfig, data_hash: str, cache: Path) -> BaselineRun:
    """The cached baseline of this config and data, trained (and cached) if missing."""
    task, steps = config.tasks[0].name, config.training.max_steps
    folder = cache / baseline_key(config, data_hash)
    label = f"single-task {task} seed {config.training.seed}"
    cached = (folder / "train_summary.json").is_file()
    if cached:
        _say(f"{label}: cached in {folder}")
    else:
        _say(f"{label}: training {steps} steps into {folder}")
        config.training.output_dir = str(folder)
        with staged_directory(folder) as staging:
            Trainer(config, staging).train()
            for entry in staging.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry)
                elif entry.name not in _KEPT_FILES:
                    entry.unlink()
    examples = _read_json(folder / "train_summary.json")["examples_per_task"][task]
    return BaselineRun(folder, examples, steps, cached)


def _canonical(raw: dict[str, Any]) -> dict[str, Any]:
    """A dumped config without the keys that do not change what a run learns."""
    # Where features are cached does not change what they are.
    kept = {key: value for key, value in raw.items() if key != "cache_dir"}
    training = raw.get("training", {})
    kept["training"] = {k: v for k, v in training.items() if k not in _RUN_ONLY_KEYS}
    return kept


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _say(message: str) -> None:
    print(f"mtlm compare: {message}", flush=True)
