"""`mtlm compare`: did multi-task training help each task, against single-task runs?

For every seed the multi-task model of a config is trained (a finished run of the same config
in the output folder is reused, an interrupted one resumed from its checkpoint), and every task
gets single-task baselines of one or both kinds (`--baseline`):

- `converged` (the default): the task trained alone to its best validation score: up to
  `--baseline-epochs` epochs (10), validated at each epoch's end, stopped after
  `--baseline-patience` (2) validations without improvement, with the best validated weights
  kept. It cannot flatter multi-task training by stopping a baseline before it has learned.
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
- one task needs no sampler, balancer or joint groups: sampled steps, default sampler;
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
#: The kinds of single-task baseline, in the order of their columns.
BASELINE_KINDS = ("equal_examples", "converged")
#: What `--baseline` accepts: one kind, or both.
BASELINE_CHOICES = ("converged", "equal_examples", "both")
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


@dataclass(frozen=True)
class BaselinePlan:
    """Which single-task baselines to train (`converged`, `equal_examples` or `both`), and the
    converged ones' limits."""

    mode: str = "converged"
    epochs: int = 10
    patience: int = 2

    @property
    def kinds(self) -> list[str]:
        """The kinds of baseline to train, in column order."""
        return list(BASELINE_KINDS) if self.mode == "both" else [self.mode]

    def describe(self, kind: str) -> str:
        """What the single-task models of `kind` were given, for report headers."""
        if kind == "converged":
            return (
                f"trained to their best validation score (≤ {self.epochs} epochs, "
                f"patience {self.patience})"
            )
        return "given the same training examples per task as the multi-task run"

    def check(self) -> None:
        """A ConfigError naming the flag for a mode, epoch count or patience out of range."""
        if self.mode not in BASELINE_CHOICES:
            raise ConfigError(
                f"--baseline: {self.mode!r} is not one of {', '.join(BASELINE_CHOICES)}"
            )
        if self.epochs < 1:
            raise ConfigError(f"--baseline-epochs: give at least 1 epoch (got {self.epochs})")
        if self.patience < 1:
            raise ConfigError(
                f"--baseline-patience: give at least 1 validation (got {self.patience})"
            )


@dataclass
class BaselineRun:
    """One single-task baseline: its folder and kind, what it trained, whether it was cached."""

    folder: Path
    kind: str
    examples: int
    steps: int
    planned_steps: int
    epochs: float
    train_seconds: float | None
    cached: bool

    @property
    def stopped_early(self) -> bool:
        """Whether early stopping ended it before its planned steps."""
        return self.steps < self.planned_steps

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "folder": str(self.folder),
            "examples": self.examples,
            "steps": self.steps,
            "planned_steps": self.planned_steps,
            "epochs": self.epochs,
            "stopped_early": self.stopped_early,
            "train_seconds": self.train_seconds,
            "cached": self.cached,
        }


@dataclass
class SeedRuns:
    """The runs of one seed: the multi-task run and, by kind, each task's baseline."""

    seed: int
    multitask: Path
    baselines: dict[str, dict[str, BaselineRun]]


@dataclass
class Contrast:
    """One task's multi-task scores against one kind of single-task baseline, over seeds."""

    baseline: str
    single: list[float]
    multi: list[float]
    higher_is_better: bool
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

    @property
    def transfer(self) -> str:
        """The table's word for it: positive, none or negative transfer."""
        if not self.negative_transfer:
            return "positive" if self.difference != 0 else "none"
        return "negative transfer" + (" (within seed noise)" if self.within_noise else "")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "difference": self.difference,
            "relative_change_percent": self.relative_change,
            "p_value": self.seed_test.p_value if self.seed_test else None,
            "significant": self.seed_test.significant if self.seed_test else None,
            "negative_transfer": self.negative_transfer,
            "transfer": self.transfer,
            "advice": self.advice,
        }


@dataclass
class TaskComparison:
    """One task's primary metric: each model's scores over seeds, and the multi-task model
    against each kind of baseline."""

    task: str
    metric: str
    higher_is_better: bool
    #: Seed scores by column: a baseline kind, or `multi_task`.
    scores: dict[str, list[float]]
    #: The multi-task model against each baseline kind, by kind.
    against: dict[str, Contrast]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with means and sample standard deviations."""
        columns = {}
        for column, scores in self.scores.items():
            mean, std = mean_std(scores)
            columns[column] = {"scores": scores, "mean": mean, "std": std}
        return {
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "scores": columns,
            "against": {kind: contrast.to_dict() for kind, contrast in self.against.items()},
        }


@dataclass
class View:
    """The multi-task model against one kind of baseline over all tasks: Δm, overall and per
    seed."""

    baseline: str
    delta_m: DeltaM
    delta_m_per_seed: list[float | None]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "delta_m_percent": self.delta_m.value,
            "delta_m_left_out": self.delta_m.left_out,
            "delta_m_percent_per_seed": self.delta_m_per_seed,
        }


@dataclass
class Comparison:
    """The per-task comparisons, Δm against each kind of baseline, notes and the runs."""

    split: str
    seeds: list[int]
    plan: BaselinePlan
    tasks: list[TaskComparison]
    views: dict[str, View]
    runs: list[SeedRuns]
    notes: list[str] = field(default_factory=list)

    @property
    def headline(self) -> View:
        """The view against converged baselines where they were trained (they cannot flatter
        multi-task training), else against equal-examples ones."""
        return self.views.get("converged") or self.views["equal_examples"]

    def to_dict(self) -> dict[str, Any]:
        """The `comparison.json` structure: the headline view's figures at the top."""
        return {
            "split": self.split,
            "seeds": self.seeds,
            "baseline": {
                "mode": self.plan.mode,
                "epochs": self.plan.epochs if "converged" in self.plan.kinds else None,
                "patience": self.plan.patience if "converged" in self.plan.kinds else None,
            },
            "headline": self.headline.baseline,
            **self.headline.to_dict(),
            "views": {kind: view.to_dict() for kind, view in self.views.items()},
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
                        kind: {name: b.to_dict() for name, b in baselines.items()}
                        for kind, baselines in run.baselines.items()
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
    cache = Path(baseline_cache) if baseline_cache else cache_dir() / "baselines"
    fingerprints, validated, notes = {}, {}, []
    for spec in config.tasks:
        splits, _ = read_task_splits(spec)
        fingerprints[spec.name] = _fingerprint(splits)
        validated[spec.name] = config.training.eval_split in splits
        if "converged" in plan.kinds and not validated[spec.name]:
            notes.append(
                f"{spec.name}: no {config.training.eval_split} split, so its converged "
                f"baseline trained all {plan.epochs} epochs without early stopping"
            )
    first = config.training.seed
    runs = []
    for seed in range(first, first + seeds):
        run_config = _multitask_config(config, seed, output_dir / "multitask" / f"seed-{seed}")
        folder = _train_multitask(run_config)
        summary = _read_json(folder / "train_summary.json")
        baselines: dict[str, dict[str, BaselineRun]] = {kind: {} for kind in plan.kinds}
        for spec in config.tasks:
            examples = summary["examples_per_task"][spec.name]
            if examples == 0:
                continue
            for kind in plan.kinds:
                if kind == "converged":
                    patience = plan.patience if validated[spec.name] else None
                    baseline = converged_baseline_config(
                        run_config, spec.name, plan.epochs, patience
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


def baseline_config(
    config: ExperimentConfig, task: str, examples: int, multitask_steps: int
) -> ExperimentConfig:
    """The equal-examples baseline: the single-task config of `task` that sees `examples` of
    its training examples, as the multi-task run of `config` (`multitask_steps` steps) did."""
    raw = _single_task(config, task)
    training = raw["training"]
    steps = math.ceil(examples / (training["batch_size"] * training["gradient_accumulation_steps"]))
    eval_steps = training["eval_steps"]
    if eval_steps is not None:
        eval_steps = max(1, round(eval_steps * steps / multitask_steps))
    training.update(max_steps=steps, num_epochs=None, eval_steps=eval_steps)
    return config_from_dict(raw, source=f"the single-task baseline of {task}")


def converged_baseline_config(
    config: ExperimentConfig, task: str, epochs: int = 10, patience: int | None = 2
) -> ExperimentConfig:
    """The converged baseline: the single-task config of `task` trained up to `epochs` epochs,
    validated at each epoch's end and stopped after `patience` validations without any
    improvement (None: never), keeping its best validated weights."""
    raw = _single_task(config, task)
    raw["training"].update(
        max_steps=None,
        num_epochs=float(epochs),
        eval_strategy="epoch",
        eval_steps=None,
        early_stopping_patience=patience,
        early_stopping_threshold=0.0,
        load_best_model_at_end=True,
    )
    return config_from_dict(raw, source=f"the converged single-task baseline of {task}")


def _single_task(config: ExperimentConfig, task: str) -> dict[str, Any]:
    """The dumped config of `task` trained alone with the settings of the multi-task `config`
    (see the module's docstring); the caller sets its budget."""
    raw = config.model_dump(mode="json")
    names = [spec["name"] for spec in raw["tasks"]]
    index = names.index(task)
    raw["tasks"] = [{**raw["tasks"][index], "loss_weight": 1.0}]
    if raw["sharing"]["kind"] != "lora":
        raw["sharing"] = {}
    raw["training"].update(
        seed=raw["training"]["seed"] + index,
        save_steps=None,
        step_mode="sampled",
        sampler={},
        balancer={},
        joint_groups=None,
        overwrite_output_dir=False,
    )
    return raw


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


def summarise(
    config: ExperimentConfig, runs: list[SeedRuns], plan: BaselinePlan | None = None
) -> Comparison:
    """Per-task scores from the runs' eval_results.json files, Δm against each kind of
    baseline, flags and advice."""
    plan = plan or BaselinePlan()
    notes = []
    multi = [_read_json(run.multitask / "eval_results.json") for run in runs]
    split = multi[0]["split"]
    tasks = []
    for spec in config.tasks:
        name = spec.name
        if any(name not in run.baselines[kind] for run in runs for kind in plan.kinds):
            notes.append(f"{name}: the multi-task run gave it no training examples")
            continue
        if name not in multi[0]["tasks"]:
            notes.append(f"{name}: no {split} split, nothing to compare")
            continue
        metric = multi[0]["tasks"][name]["primary"]
        higher = KINDS[spec.kind](spec).higher_is_better(metric)
        scores = {
            kind: [
                _read_json(run.baselines[kind][name].folder / "eval_results.json")["tasks"][name][
                    metric
                ]
                for run in runs
            ]
            for kind in plan.kinds
        }
        scores["multi_task"] = [results["tasks"][name][metric] for results in multi]
        against = {}
        for kind in plan.kinds:
            contrast = Contrast(
                kind,
                scores[kind],
                scores["multi_task"],
                higher,
                seed_test(scores[kind], scores["multi_task"]),
            )
            if contrast.negative_transfer:
                contrast.advice = advice(config, name, contrast)
            against[kind] = contrast
        tasks.append(TaskComparison(name, metric, higher, scores, against))
    views = {}
    for kind in plan.kinds:
        views[kind] = _view(kind, tasks, len(runs))
        notes += [
            f"{name}: its {kind.replace('_', '-')} single-task score is 0, so it has no "
            "relative change; left out of Δm against it"
            for name in views[kind].delta_m.left_out
        ]
    seeds = [run.seed for run in runs]
    return Comparison(split, seeds, plan, tasks, views, runs, notes)


def _view(kind: str, tasks: list[TaskComparison], seeds: int) -> View:
    """Δm of the multi-task model against the `kind` baselines, overall and per seed."""
    direction = {t.task: t.higher_is_better for t in tasks}

    def at(column: str, seed: int | None) -> dict[str, float]:
        pick = (lambda s: mean_std(s)[0]) if seed is None else (lambda s: s[seed])
        return {t.task: pick(t.scores[column]) for t in tasks}

    overall = delta_m(at(kind, None), at("multi_task", None), direction)
    per_seed = [
        delta_m(at(kind, seed), at("multi_task", seed), direction).value for seed in range(seeds)
    ]
    return View(kind, overall, per_seed)


def advice(config: ExperimentConfig, task: str, contrast: Contrast) -> list[str]:
    """What to try for a task that multi-task training made worse than a baseline, given how
    it was trained."""
    training, sharing = config.training, config.sharing
    lines = []
    if contrast.seed_test is None and len(contrast.single) == 1:
        lines.append("one seed: rerun with --seeds 3 to tell this from seed noise")
    elif contrast.within_noise:
        p_value = contrast.seed_test.p_value
        lines.append(f"within seed noise (p = {p_value:.2f}): more seeds first")
    if sharing.kind == "lora" and not sharing.train_base:
        lines.append(
            "it shares no trained weight (own adapter and head, frozen base): the gap comes "
            "from keeping the checkpoint with the best validation aggregate"
        )
        return lines
    if training.step_mode == "sampled":
        baseline = mean_std(contrast.single)[0]
        lines.append(
            "weigh the other tasks less: lower their loss_weight or sampling share, or use "
            f"training.sampler: {{kind: dynamic, targets: {{{task}: {baseline:.3g}}}}}"
        )
    else:
        lines.append(f"weigh it more: raise tasks[{task}].loss_weight or lower the others'")
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


def _train_baseline(
    config: ExperimentConfig, kind: str, data_hash: str, cache: Path
) -> BaselineRun:
    """The cached baseline of this config and data, trained (and cached) if missing."""
    task, training = config.tasks[0].name, config.training
    folder = cache / baseline_key(config, data_hash)
    label = f"single-task {task} ({kind.replace('_', ' ')}) seed {training.seed}"
    cached = (folder / "train_summary.json").is_file()
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
    summary = _read_json(folder / "train_summary.json")
    return BaselineRun(
        folder,
        kind,
        examples=summary["examples_per_task"][task],
        steps=summary["steps"],
        planned_steps=summary["planned_steps"],
        epochs=summary["epochs"],
        train_seconds=summary.get("train_seconds"),
        cached=cached,
    )


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
