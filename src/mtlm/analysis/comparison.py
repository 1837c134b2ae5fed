"""What `mtlm compare`'s runs say: each task's scores over seeds, the multi-task model against
each kind of single-task baseline, and what to try where it is worse.

Where the multi-task run folder holds `finetuned/eval_results.json` (the multi-task model with
each task fine-tuned alone afterwards), it is a column of its own, compared against the same
baselines. Each column also reports what it costs: training seconds, and parameters to serve.

Δm (Maninis, Radosavovic and Kokkinos, 2019) is the headline, and Δn beside it: the mean
change of the normalised score, which puts each task between its trivial score (0: what the
multi-task run's `trivial_results.json` says input-blind predictions score) and its ideal score
(100), so that a near-zero baseline cannot dominate it. A model that does not beat the trivial
score has not learned the task, and a task neither model learned shows no transfer either way.
With several seeds each difference is tested against seed noise with Welch's t-test (see
`mtlm.analysis.transfer` for all of these).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtlm.analysis.transfer import (
    LEARNED_RULE,
    SEED_TEST,
    DeltaM,
    DeltaN,
    Learned,
    SeedTest,
    delta_m,
    delta_n,
    learned,
    mean_std,
    normalised_change,
    normalised_score,
    relative_change,
    seed_test,
    signed_difference,
)
from mtlm.config import ExperimentConfig
from mtlm.errors import ConfigError
from mtlm.evaluation.run_report import read_log_rows
from mtlm.files import read_json
from mtlm.tasks import KINDS
from mtlm.training.epoch_budget import GROWTH, BudgetTried
from mtlm.training.run_folder import FINETUNED, FINISHED_MARKER

#: The kinds of single-task baseline, in the order of their columns.
BASELINE_KINDS = ("equal_examples", "converged")
#: What `--baseline` accepts: one kind, or both.
BASELINE_CHOICES = ("converged", "equal_examples", "both")
#: The models compared against the baselines, and their names in reports.
MODELS = {"multi_task": "multi-task", "finetuned": "multi-task + fine-tune"}


@dataclass(frozen=True)
class BaselinePlan:
    """Which single-task baselines to train (`converged`, `equal_examples` or `both`), and the
    converged ones' limits."""

    mode: str = "converged"
    epochs: int = 10
    patience: int = 2
    max_epochs: int = 30

    @property
    def kinds(self) -> list[str]:
        """The kinds of baseline to train, in column order."""
        return list(BASELINE_KINDS) if self.mode == "both" else [self.mode]

    def describe(self, kind: str) -> str:
        """What the single-task models of `kind` were given, for report headers."""
        if kind == "converged":
            limits = f"≤ {self.epochs} epochs, patience {self.patience}"
            if self.max_epochs > self.epochs:
                limits += (
                    f"; {GROWTH} times the epochs, up to {self.max_epochs}, while the cap rather "
                    "than early stopping ended a run; the best-validating run kept"
                )
            return f"trained to their best validation score ({limits})"
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
        if self.max_epochs < self.epochs:
            raise ConfigError(
                f"--baseline-max-epochs: give at least --baseline-epochs ({self.epochs}) "
                f"(got {self.max_epochs})"
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
    parameters: int | None = None
    #: A converged baseline's runs, one per epoch cap tried; this one is the best-validating.
    budgets: tuple[BudgetTried, ...] = ()

    @classmethod
    def read(cls, folder: Path, kind: str, task: str, cached: bool) -> BaselineRun:
        """The `kind` baseline of `task` that `folder` holds, from its train_summary.json."""
        summary = read_json(folder / FINISHED_MARKER)
        return cls(
            folder,
            kind,
            examples=summary["examples_per_task"][task],
            steps=summary["steps"],
            planned_steps=summary["planned_steps"],
            epochs=summary["epochs"],
            train_seconds=summary.get("train_seconds"),
            cached=cached,
            parameters=_parameters(summary),
        )

    @property
    def stopped_early(self) -> bool:
        """Whether early stopping ended it before its planned steps."""
        return self.steps < self.planned_steps

    @property
    def capped(self) -> bool:
        """Whether a converged baseline's longest run was ended by its cap, not early
        stopping: it may still be under-trained."""
        return bool(self.budgets) and not self.budgets[-1].stopped_early

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
            "parameters": self.parameters,
            "cached": self.cached,
            "budgets": [budget.to_dict() for budget in self.budgets],
        }


@dataclass
class SeedRuns:
    """The runs of one seed: the multi-task run and, by kind, each task's baseline."""

    seed: int
    multitask: Path
    baselines: dict[str, dict[str, BaselineRun]]

    @property
    def finetuned(self) -> Path:
        """Where a fine-tuned copy of the multi-task model keeps its results, if it has one."""
        return self.multitask / FINETUNED


@dataclass
class Cost:
    """What a column's models cost: training seconds per seed (None where a run does not say),
    and parameters to serve."""

    train_seconds: list[float | None]
    parameters: int | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with the mean training time over seeds."""
        known = [seconds for seconds in self.train_seconds if seconds is not None]
        return {
            "train_seconds": mean_std(known)[0] if len(known) == len(self.train_seconds) else None,
            "train_seconds_per_seed": self.train_seconds,
            "parameters": self.parameters,
        }


@dataclass
class Contrast:
    """One task's scores of a multi-task model (`model`: multi_task or finetuned) against one
    kind of single-task baseline, over seeds, and whether each model learned the task (None
    without a trivial score)."""

    model: str
    baseline: str
    single: list[float]
    multi: list[float]
    higher_is_better: bool
    seed_test: SeedTest | None
    #: n(multi) − n(single) of the means, in points (None without a trivial score).
    normalised_change: float | None = None
    single_learned: bool | None = None
    multi_learned: bool | None = None
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
    def not_learned(self) -> bool:
        """Whether neither model beats the trivial score: then there is no transfer to judge."""
        return self.single_learned is False and self.multi_learned is False

    @property
    def learned_by_one(self) -> str | None:
        """`single` or `multi` when only that model beats the trivial score, else None."""
        if None in (self.single_learned, self.multi_learned):
            return None
        if self.single_learned != self.multi_learned:
            return "single" if self.single_learned else "multi"
        return None

    @property
    def negative_transfer(self) -> bool:
        """Whether the multi-task model is worse on this task: it did not learn a task the
        single-task model learned, or (both having learned it) scores worse."""
        if self.not_learned or self.learned_by_one is not None:
            return self.learned_by_one == "single"
        means = mean_std(self.single)[0], mean_std(self.multi)[0]
        return signed_difference(*means, self.higher_is_better) < 0

    @property
    def within_noise(self) -> bool:
        """Whether the seed-noise test ran and found the difference not significant."""
        return self.seed_test is not None and not self.seed_test.significant

    @property
    def transfer(self) -> str:
        """The table's word for it: not learned, learned only by one model, positive, none or
        negative transfer."""
        if self.not_learned:
            return "not learned (neither model beats trivial)"
        if self.learned_by_one is not None:
            learner = "single-task" if self.learned_by_one == "single" else MODELS[self.model]
            return f"learned only by {learner}"
        if not self.negative_transfer:
            return "positive" if self.difference != 0 else "none"
        return "negative transfer" + (" (within seed noise)" if self.within_noise else "")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "difference": self.difference,
            "relative_change_percent": self.relative_change,
            "normalised_change_points": self.normalised_change,
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
    #: Seed scores by column: a baseline kind, `multi_task` or `finetuned`.
    scores: dict[str, list[float]]
    #: Each model (of MODELS) against each baseline kind, by model and kind.
    against: dict[str, dict[str, Contrast]]
    #: What input-blind predictions score, per seed; None where the runs do not say.
    trivial: list[float] | None = None
    ideal: float = 1.0
    #: Whether each column's model beat the trivial score (empty without one).
    learned: dict[str, Learned] = field(default_factory=dict)

    @property
    def trivial_mean(self) -> float | None:
        """The mean trivial score over seeds, or None."""
        return None if self.trivial is None else mean_std(self.trivial)[0]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with means and sample standard deviations."""
        columns = {}
        for column, scores in self.scores.items():
            mean, std = mean_std(scores)
            columns[column] = {"scores": scores, "mean": mean, "std": std}
            if self.trivial is not None:
                test = self.learned[column]
                columns[column].update(
                    normalised=normalised_score(mean, self.trivial_mean, self.ideal),
                    learned=test.learned,
                    learned_p_value=test.p_value,
                )
        return {
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "trivial": self.trivial_mean,
            "trivial_per_seed": self.trivial,
            "ideal": self.ideal,
            "scores": columns,
            "against": {
                model: {kind: contrast.to_dict() for kind, contrast in contrasts.items()}
                for model, contrasts in self.against.items()
            },
        }


@dataclass
class View:
    """A model against one kind of baseline over all tasks: Δm and Δn, overall and per seed."""

    model: str
    baseline: str
    delta_m: DeltaM
    delta_m_per_seed: list[float | None]
    delta_n: DeltaN
    delta_n_per_seed: list[float | None]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "delta_m_percent": self.delta_m.value,
            "delta_m_left_out": self.delta_m.left_out,
            "delta_m_percent_per_seed": self.delta_m_per_seed,
            "delta_n_points": self.delta_n.value,
            "delta_n_left_out": self.delta_n.left_out,
            "delta_n_points_per_seed": self.delta_n_per_seed,
        }


@dataclass
class Comparison:
    """The per-task comparisons, Δm against each kind of baseline, notes and the runs."""

    split: str
    seeds: list[int]
    plan: BaselinePlan
    tasks: list[TaskComparison]
    views: list[View]
    costs: dict[str, Cost]
    runs: list[SeedRuns]
    notes: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        """The columns of scores: the baseline kinds, multi_task, and finetuned where any task
        has fine-tuned scores."""
        finetuned = any("finetuned" in task.scores for task in self.tasks)
        return [*self.plan.kinds, "multi_task", *(["finetuned"] if finetuned else [])]

    @property
    def headline(self) -> View:
        """The multi-task model against converged baselines where they were trained (they
        cannot flatter multi-task training), else against equal-examples ones."""
        kind = "converged" if "converged" in self.plan.kinds else "equal_examples"
        return next(v for v in self.views if v.model == "multi_task" and v.baseline == kind)

    def label(self, column: str) -> str:
        """A column's name in reports: `single-task` (`single-task (converged)` beside another
        kind), `multi-task`, `multi-task + fine-tune`."""
        if column in MODELS:
            return MODELS[column]
        if len(self.plan.kinds) == 1:
            return "single-task"
        return f"single-task ({column.replace('_', ' ')})"

    def to_dict(self) -> dict[str, Any]:
        """The `comparison.json` structure: the headline view's figures at the top."""
        return {
            "split": self.split,
            "seeds": self.seeds,
            "baseline": {
                "mode": self.plan.mode,
                "epochs": self.plan.epochs if "converged" in self.plan.kinds else None,
                "patience": self.plan.patience if "converged" in self.plan.kinds else None,
                "max_epochs": self.plan.max_epochs if "converged" in self.plan.kinds else None,
            },
            "headline": {"model": self.headline.model, "baseline": self.headline.baseline},
            **self.headline.to_dict(),
            "views": {
                model: {v.baseline: v.to_dict() for v in self.views if v.model == model}
                for model in dict.fromkeys(v.model for v in self.views)
            },
            "costs": {column: cost.to_dict() for column, cost in self.costs.items()},
            "delta_m_method": "Maninis, Radosavovic, Kokkinos 2019: mean over tasks of "
            "(-1)^l (M_mt - M_st) / |M_st| x 100, l = 1 where lower is better",
            "delta_n_method": "mean over tasks of n(M_mt) - n(M_st), n(x) = (x - trivial) / "
            "(ideal - trivial) x 100: 0 = input-blind predictions, 100 = ideal score",
            "seed_test": SEED_TEST if len(self.seeds) > 1 else None,
            "learned_test": LEARNED_RULE,
            "tasks": {t.task: t.to_dict() for t in self.tasks},
            "notes": self.notes,
            "runs": [
                {
                    "seed": run.seed,
                    "multitask": str(run.multitask),
                    "finetuned": str(run.finetuned) if "finetuned" in self.costs else None,
                    "baselines": {
                        kind: {name: b.to_dict() for name, b in baselines.items()}
                        for kind, baselines in run.baselines.items()
                    },
                }
                for run in self.runs
            ],
        }


def summarise(
    config: ExperimentConfig, runs: list[SeedRuns], plan: BaselinePlan | None = None
) -> Comparison:
    """Per-task scores from the runs' eval_results.json files and trivial scores from the
    multi-task runs' trivial_results.json; whether each model learned each task; Δm and Δn
    against each kind of baseline; flags and advice."""
    plan = plan or BaselinePlan()
    notes = []
    multi = [read_json(run.multitask / "eval_results.json") for run in runs]
    trivial = _trivial_results(runs, notes)
    finetuned = _finetuned_results(runs, notes)
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
        kind_of_task = KINDS[spec.kind](spec)
        metric = multi[0]["tasks"][name]["primary"]
        scores = {
            kind: [
                read_json(run.baselines[kind][name].folder / "eval_results.json")["tasks"][name][
                    metric
                ]
                for run in runs
            ]
            for kind in plan.kinds
        }
        scores["multi_task"] = [results["tasks"][name][metric] for results in multi]
        if finetuned is not None:
            if all(metric in results["tasks"].get(name, {}) for results in finetuned):
                scores["finetuned"] = [results["tasks"][name][metric] for results in finetuned]
            else:
                notes.append(f"{name}: no {metric} in the fine-tuned results; left out of them")
        task = TaskComparison(
            name,
            metric,
            kind_of_task.higher_is_better(metric),
            scores,
            against={},
            trivial=_trivial_scores(trivial, name, metric),
            ideal=kind_of_task.ideal_score(metric),
        )
        if task.trivial is not None:
            task.learned = {
                column: learned(values, task.trivial, task.ideal, task.higher_is_better)
                for column, values in scores.items()
            }
        task.against = {
            model: {kind: _contrast(config, task, model, kind) for kind in plan.kinds}
            for model in MODELS
            if model in scores
        }
        tasks.append(task)
    views = [
        _view(model, kind, [t for t in tasks if model in t.scores], len(runs))
        for model in MODELS
        if model == "multi_task" or any(model in t.scores for t in tasks)
        for kind in plan.kinds
    ]
    for view in views:
        if view.model == "multi_task":
            notes += [
                f"{name}: its {view.baseline.replace('_', '-')} single-task score is 0, so it "
                "has no relative change; left out of Δm against it"
                for name in view.delta_m.left_out
            ]
    for task in tasks:
        stopped = [
            run.baselines["converged"][task.task]
            for run in runs
            if "converged" in run.baselines and run.baselines["converged"][task.task].stopped_early
        ]
        if stopped and task.learned and not task.learned["converged"].learned:
            epochs = ", ".join(f"{b.epochs:g}" for b in stopped)
            notes.append(
                f"{task.task}: its converged baseline stopped early (after {epochs} epochs) "
                "without beating the trivial score; a larger --baseline-patience may let it learn"
            )
    for task in tasks:
        capped = [
            run.seed
            for run in runs
            if "converged" in run.baselines and run.baselines["converged"][task.task].capped
        ]
        if capped:
            notes.append(
                f"{task.task}: its converged baseline was still improving at the "
                f"{plan.max_epochs}-epoch cap (seed {', '.join(map(str, capped))}), so it may "
                "be under-trained; a larger --baseline-max-epochs trains it further"
            )
    improving = [run.seed for run in runs if _still_improving(run.multitask, config)]
    if improving:
        notes.append(
            "the multi-task model's last validation was its best (seed "
            f"{', '.join(map(str, improving))}): its budget, not early stopping, ended it, and "
            "a longer one may change the answer"
        )
    left_out = {name for view in views for name in view.delta_n.left_out}
    for task in tasks:
        if task.task in left_out:
            reason = "no trivial score" if task.trivial is None else "no normalised score"
            notes.append(f"{task.task}: {reason}, left out of Δn")
    seeds = [run.seed for run in runs]
    costs = _costs(runs, plan, finetuned is not None)
    return Comparison(split, seeds, plan, tasks, views, costs, runs, notes)


def _finetuned_results(runs: list[SeedRuns], notes: list[str]) -> list[dict[str, Any]] | None:
    """Each seed's finetuned/eval_results.json; None (with a note if some seeds have one)
    unless every seed has one."""
    present = [(run.finetuned / "eval_results.json").is_file() for run in runs]
    if not all(present):
        if any(present):
            seeds = ", ".join(str(r.seed) for r, found in zip(runs, present, strict=True) if found)
            notes.append(f"fine-tuned results for seed {seeds} only: no fine-tuned column")
        return None
    return [read_json(run.finetuned / "eval_results.json") for run in runs]


def _still_improving(folder: Path, config: ExperimentConfig) -> bool:
    """Whether a run validated more than once and its last validation beat every earlier one."""
    log = folder / "metrics.jsonl"
    if not log.is_file():
        return False
    split = config.training.eval_split
    scores = [
        row["eval"]["aggregate"]
        for row in read_log_rows(log)
        if "eval" in row and row["eval"].get("split") == split
    ]
    return (
        len(scores) > 1
        and scores[-1] is not None
        and all(score is None or scores[-1] > score for score in scores[:-1])
    )


def _costs(runs: list[SeedRuns], plan: BaselinePlan, finetuned: bool) -> dict[str, Cost]:
    """Training seconds per seed and parameters to serve of each column: a kind's baselines
    summed over tasks; the fine-tuned model's seconds add both stages."""
    costs = {}
    for kind in plan.kinds:
        seconds = [_total([b.train_seconds for b in run.baselines[kind].values()]) for run in runs]
        parameters = _total([b.parameters for b in runs[0].baselines[kind].values()])
        costs[kind] = Cost(seconds, parameters)
    multi = [_summary(run.multitask) for run in runs]
    costs["multi_task"] = Cost([m.get("train_seconds") for m in multi], _parameters(multi[0]))
    if finetuned:
        tuned = [_summary(run.finetuned) for run in runs]
        seconds = [
            _total([m.get("train_seconds"), t.get("train_seconds")])
            for m, t in zip(multi, tuned, strict=True)
        ]
        costs["finetuned"] = Cost(seconds, _parameters(tuned[0]))
    return costs


def _summary(folder: Path) -> dict[str, Any]:
    """A run's train_summary.json, or nothing where it has none."""
    path = folder / FINISHED_MARKER
    return read_json(path) if path.is_file() else {}


def _parameters(summary: dict[str, Any]) -> int | None:
    """The parameters of a run's model, from its summary's accounting."""
    return (summary.get("model") or {}).get("total_parameters")


def _total(values: list[Any]) -> Any:
    """The sum, or None when some value is unknown (or there is none)."""
    return None if not values or any(v is None for v in values) else sum(values)


def _trivial_results(runs: list[SeedRuns], notes: list[str]) -> list[dict[str, Any]] | None:
    """Each seed's trivial_results.json, or None (with a note) when a run has none."""
    missing = [run.seed for run in runs if not (run.multitask / "trivial_results.json").is_file()]
    if missing:
        notes.append(
            f"the multi-task run of seed {missing[0]} has no trivial_results.json (an older "
            "run?): no trivial scores, learned tests or Δn"
        )
        return None
    return [read_json(run.multitask / "trivial_results.json") for run in runs]


def _trivial_scores(
    trivial: list[dict[str, Any]] | None, task: str, metric: str
) -> list[float] | None:
    """A task's trivial score per seed, or None when some seed does not have it."""
    if trivial is None or any(metric not in r["tasks"].get(task, {}) for r in trivial):
        return None
    return [r["tasks"][task][metric] for r in trivial]


def _contrast(config: ExperimentConfig, task: TaskComparison, model: str, kind: str) -> Contrast:
    """`model` (of MODELS) against the `kind` baseline on `task`; the multi-task model gets
    advice when it is worse."""
    single, multi = task.scores[kind], task.scores[model]
    contrast = Contrast(model, kind, single, multi, task.higher_is_better, seed_test(single, multi))
    if task.trivial is not None:
        contrast.normalised_change = normalised_change(
            mean_std(single)[0], mean_std(multi)[0], task.trivial_mean, task.ideal
        )
        contrast.single_learned = task.learned[kind].learned
        contrast.multi_learned = task.learned[model].learned
    if model != "multi_task":
        return contrast
    if contrast.not_learned:
        contrast.advice = [
            f"neither model beats the trivial {task.metric} ({task.trivial_mean:.4g}): there is no "
            "transfer to judge, so no advice about it; check the task's data, learning rate "
            "and training length first"
        ]
    elif contrast.negative_transfer:
        contrast.advice = advice(config, task.task, contrast)
    return contrast


def _view(model: str, kind: str, tasks: list[TaskComparison], seeds: int) -> View:
    """Δm and Δn of `model` against the `kind` baselines, overall and per seed."""
    direction = {t.task: t.higher_is_better for t in tasks}
    ideal = {t.task: t.ideal for t in tasks}

    def at(column: str, seed: int | None) -> dict[str, float]:
        pick = (lambda s: mean_std(s)[0]) if seed is None else (lambda s: s[seed])
        return {t.task: pick(t.scores[column]) for t in tasks}

    def trivial_at(seed: int | None) -> dict[str, float | None]:
        if seed is None:
            return {t.task: t.trivial_mean for t in tasks}
        return {t.task: None if t.trivial is None else t.trivial[seed] for t in tasks}

    per_seed_m, per_seed_n = [], []
    for seed in range(seeds):
        single, multi = at(kind, seed), at(model, seed)
        per_seed_m.append(delta_m(single, multi, direction).value)
        per_seed_n.append(delta_n(single, multi, trivial_at(seed), ideal).value)
    single, multi = at(kind, None), at(model, None)
    return View(
        model,
        kind,
        delta_m(single, multi, direction),
        per_seed_m,
        delta_n(single, multi, trivial_at(None), ideal),
        per_seed_n,
    )


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
    if not sharing.shares_trained_weights:
        lines.append(
            f"it shares no trained weight with the other tasks (sharing {sharing.kind} as "
            "configured): the gap comes from keeping the checkpoint with the best validation "
            "aggregate"
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
    lines.append(sharing.less_sharing())
    lines.append("train it in another group: `mtlm affinity` shows which tasks hurt it")
    if training.step_mode == "sampled":
        lines.append(
            "or resolve gradient conflicts: training.step_mode: joint with "
            "training.balancer.kind: upgrad (or pcgrad, cagrad)"
        )
    elif not training.balancer.aggregates_gradients:
        lines.append("or resolve gradient conflicts: training.balancer.kind: upgrad (or pcgrad)")
    return lines
