"""`mtlm plan`: which model should serve each task? Measured, chosen on validation, served.

The plan measures task affinity (Fifty et al., 2021, "Efficiently Identifying Task Groupings
for Multi-Task Learning") to propose groups, then trains a few candidates with the config's own
training budget:

- `all-in-one`: one model of every task, as the config says, and `all-in-one (KIND)` for each
  other sharing kind asked for (e.g. LoRA adapters per task, which can spare a task the others'
  interference);
- `group k`: one model of each group of the partition that affinity recommends (groups of one
  task are single-task models and are not trained twice);
- each of those followed by per-task fine-tuning (`+ fine-tune`, MT-DNN's second stage, see
  `mtlm.training.finetune`), with the config's `training.finetune` or its defaults, except a
  model with a backbone per task (soft sharing), whose tasks already have weights of their own;
- `single-task`: every task alone to its best validation score (compare's converged baseline,
  `mtlm.analysis.baselines`).

A candidate's budget in epochs with early stopping is chosen on validation, as a single-task
baseline's is: where the cap rather than early stopping ended its run, it trains again with
three times the epochs and the better-validating run is the candidate.

Each task is then served by the candidate with its best *validation* score
(`mtlm.analysis.selection`; the test split takes no part), falling back to its single-task
model unless another candidate beats it. The plan writes `plan.md` (the choice for each task,
why, and the test score of the choice), `plan.json`, and `model/`: the chosen models and a
routing file that `mtlm predict`/`evaluate` and `RoutedModel` read.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from mtlm.analysis.selection import (
    SINGLE_TASK,
    Candidate,
    Choice,
    choose_per_task,
    chosen_scores,
)
from mtlm.config import ExperimentConfig, FinetuneSpec, config_from_dict
from mtlm.errors import ConfigError
from mtlm.files import staged_directory, write_json, write_text
from mtlm.modeling.routed_model import ROUTING_FILE
from mtlm.tasks import KINDS
from mtlm.training.epoch_budget import GROWTH, BudgetChoice, choose_epochs

FINE_TUNED = " + fine-tune"


@dataclass
class Plan:
    """The candidates trained, the choice for each task, where the plan was written, and the
    epoch budgets validation chose (by candidate, and `single-task <task>` for each task's
    own model)."""

    candidates: list[Candidate]
    choices: dict[str, Choice]
    groups: list[list[str]]
    folder: Path
    budgets: dict[str, BudgetChoice] = field(default_factory=dict)

    def outcome(self) -> dict[str, dict[str, Any]]:
        """Per task: the chosen candidate, its validation and test scores, the single-task
        model's test score, and why it was chosen."""
        single = next(c for c in self.candidates if c.name == SINGLE_TASK)
        chosen = chosen_scores(self.choices, self.candidates)
        return {
            task: {
                **chosen[task],
                "single_task_test": single.test.get(task),
                "reason": choice.reason,
            }
            for task, choice in self.choices.items()
        }


def make_plan(
    config: ExperimentConfig,
    output_dir: str | Path,
    groups: int = 2,
    affinity_steps: int = 60,
    affinity_every: int = 2,
    sharing: Sequence[str] = (),
) -> Plan:
    """Measure affinity, train the candidates, choose per task on validation and write the
    plan and its servable model to `output_dir`. `groups=0` trains no group models; each kind
    in `sharing` other than the config's adds a model of all tasks shared that way (with its
    defaults)."""
    from mtlm.analysis.grouping import check_group_count
    from mtlm.modeling.sharing import SHARING

    folder = Path(output_dir)
    names = [spec.name for spec in config.tasks]
    if groups:
        check_group_count(groups, len(names))
    for kind in sharing:
        if kind not in SHARING:
            raise ConfigError(
                f"--sharing: unknown sharing kind {kind!r}; known: {', '.join(sorted(SHARING))}"
            )
    finetune = config.training.finetune or FinetuneSpec()
    candidates_dir = folder / "candidates"
    partition: list[list[str]] = []
    if groups > 1:
        partition = recommended_partition(
            config, groups, folder / "affinity", affinity_steps, affinity_every
        )
    own = config.sharing.kind
    models: dict[str, tuple[list[str], str | None]] = {"all-in-one": (names, None)}
    others = [kind for kind in dict.fromkeys(sharing) if kind != own]
    models |= {f"all-in-one ({kind})": (names, kind) for kind in others}
    models |= {
        f"group {index} ({', '.join(group)})": (group, None)
        for index, group in group_models(partition, len(names))
    }
    candidates: list[Candidate] = []
    budgets: dict[str, BudgetChoice] = {}
    for index, (name, (tasks, kind)) in enumerate(models.items()):
        run = candidates_dir / f"multitask-{index}"
        _say(f"{name}: training {len(tasks)} tasks into {run}")
        one_config = candidate_config(config, tasks, run, finetune, kind)
        kept, budget = train_candidate(one_config)
        if budget is not None:
            budgets[name] = budget
        candidates.append(_candidate(name, kept))
        if one_config.training.finetune is not None:
            candidates.append(_candidate(name + FINE_TUNED, kept / "finetuned"))
    single, single_budgets = _single_task_candidate(config, candidates_dir / "single-task")
    candidates.append(single)
    budgets |= {f"{SINGLE_TASK} {task}": budget for task, budget in single_budgets.items()}
    # A kind's primary metric can depend on what it learned from its rows (tags in BIO form
    # or not), so it is read from the scores of the model of all tasks.
    scored = json.loads((candidates_dir / "multitask-0" / "eval_results.json").read_text())
    directions = {
        spec.name: KINDS[spec.kind](spec).higher_is_better(scored["tasks"][spec.name]["primary"])
        for spec in config.tasks
        if spec.name in scored["tasks"]
    }
    choices = choose_per_task(candidates, directions)
    plan = Plan(candidates, choices, partition, folder, budgets)
    _write_model(plan)
    write_json(folder / "plan.json", plan_dict(plan))
    write_text(folder / "plan.md", plan_markdown(plan))
    return plan


def recommended_partition(
    config: ExperimentConfig,
    groups: int,
    output_dir: str | Path,
    steps: int = 60,
    every: int = 2,
) -> list[list[str]]:
    """The partition of the config's tasks into `groups` groups that lookahead affinity,
    measured over `steps` joint steps, recommends; the affinity report is written to
    `output_dir`."""
    from mtlm.analysis.affinity import measure_affinity, write_affinity

    _say(f"measuring task affinity ({steps} joint steps)")
    report = write_affinity(measure_affinity(config, steps, every), output_dir, [groups])
    return report["grouping"]["recommended"][0]["tasks"]


def group_models(partition: list[list[str]], task_count: int) -> list[tuple[int, list[str]]]:
    """The groups of `partition` that get a model of their own, numbered from 1: not a group of
    one task (its single-task model) nor of every task (the model of all tasks)."""
    return [
        (index, group)
        for index, group in enumerate(partition, start=1)
        if 1 < len(group) < task_count
    ]


def candidate_config(
    config: ExperimentConfig,
    tasks: list[str],
    run: Path,
    finetune: FinetuneSpec,
    sharing: str | None = None,
) -> ExperimentConfig:
    """The config of a candidate: `tasks` only, into `run`, shared as the config says or as
    `sharing` (a kind, with its defaults), fine-tuned per task unless it has a backbone per
    task."""
    from mtlm.modeling.sharing import SHARING

    raw = config.model_dump(mode="json")
    raw["tasks"] = [spec for spec in raw["tasks"] if spec["name"] in tasks]
    if sharing is not None:
        raw["sharing"] = {"kind": sharing}
    per_task = SHARING[raw["sharing"]["kind"]].options.backbone_per_task
    training = raw["training"]
    training["sampler"] = config.training.sampler.for_tasks(tasks).model_dump(mode="json")
    training.update(
        output_dir=str(run),
        overwrite_output_dir=True,
        joint_groups=None,
        finetune=None if per_task else finetune.model_dump(mode="json"),
    )
    return config_from_dict(raw, source=f"the plan's model of {', '.join(tasks)}")


def train_candidate(config: ExperimentConfig) -> tuple[Path, BudgetChoice | None]:
    """Train a multi-task candidate and return the run kept, with the budgets tried. A budget
    in epochs with early stopping is chosen on validation, as the single-task candidates' is
    (`mtlm.training.epoch_budget`): where the cap ended the run, it is trained again with
    three times the epochs into `<run>-epochs-<cap>`. Any other budget is the user's: one run,
    no choice."""
    training, run = config.training, Path(config.training.output_dir)
    if training.max_steps is not None or training.early_stopping_patience is None:
        _train(config)
        return run, None

    def configure(epochs: float) -> ExperimentConfig:
        longer = config.model_copy(deep=True)
        longer.training.num_epochs = epochs
        if epochs != training.num_epochs:
            longer.training.output_dir = f"{run}-epochs-{epochs:g}"
            _say(f"{run.name}: its cap ended it; training {epochs:g} epochs")
        return longer

    def train(candidate: ExperimentConfig) -> Path:
        _train(candidate)
        return Path(candidate.training.output_dir)

    epochs = training.num_epochs
    choice = choose_epochs(configure, train, epochs, GROWTH * epochs)
    return choice.kept.folder, choice


def _train(config: ExperimentConfig) -> None:
    from mtlm.training.trainer import Trainer

    Trainer(config).train()


def _single_task_candidate(
    config: ExperimentConfig, folder: Path
) -> tuple[Candidate, dict[str, BudgetChoice]]:
    """Every task alone, to its best validation score, as compare's converged baseline; with
    the budgets each task tried."""
    from mtlm.analysis.baselines import train_converged

    candidate = Candidate(SINGLE_TASK, {})
    budgets = {}
    for spec in config.tasks:
        budgets[spec.name] = train_converged(
            config, spec.name, partial(_train_single, folder=folder)
        )
        one = _candidate(SINGLE_TASK, budgets[spec.name].kept.folder)
        candidate.validation.update(one.validation)
        candidate.test.update(one.test)
        candidate.models.update(one.models)
    return candidate, budgets


def _train_single(single: ExperimentConfig, folder: Path) -> Path:
    """Train one run of a single-task config into `folder/<task>/epochs-<cap>`."""
    task, epochs = single.tasks[0].name, single.training.num_epochs
    run = folder / task / f"epochs-{epochs:g}"
    single.training.output_dir = str(run)
    single.training.overwrite_output_dir = True
    _say(f"single-task {task}: training up to {epochs:g} epochs into {run}")
    _train(single)
    return run


def _candidate(name: str, run: Path) -> Candidate:
    """A trained run's primary scores on validation and test, and its model for every task."""

    def scores(file: str) -> dict[str, float]:
        results = json.loads((run / file).read_text())
        return {task: m[m["primary"]] for task, m in results["tasks"].items()}

    test = scores("eval_results.json")
    return Candidate(
        name, scores("validation_results.json"), test, dict.fromkeys(test, str(run / "model"))
    )


def _write_model(plan: Plan) -> None:
    """`model/`: a copy of every chosen model folder and the routing of tasks to them."""
    by_name = {c.name: c for c in plan.candidates}
    routing: dict[str, str] = {}
    sources: dict[str, str] = {}
    for task, choice in plan.choices.items():
        source = by_name[choice.candidate].models[task]
        if source not in sources:
            sources[source] = f"model-{len(sources)}"
        routing[task] = sources[source]
    with staged_directory(plan.folder / "model") as staging:
        for source, name in sources.items():
            shutil.copytree(source, staging / name)
        (staging / ROUTING_FILE).write_text(json.dumps({"tasks": routing}, indent=2))


def plan_dict(plan: Plan) -> dict[str, Any]:
    """The `plan.json` structure."""
    return {
        "groups": plan.groups,
        "candidates": {
            c.name: {"validation": c.validation, "test": c.test} for c in plan.candidates
        },
        "choices": plan.outcome(),
        "budgets": {name: budget.to_dict() for name, budget in plan.budgets.items()},
    }


def plan_markdown(plan: Plan) -> str:
    """`plan.md`: what serves each task, why, and the test score of the choice."""
    by_name = {c.name: c for c in plan.candidates}
    rows = [
        "| task | served by | validation | test | single-task test | why |",
        "|---|---|---|---|---|---|",
    ]
    for task, row in plan.outcome().items():
        rows.append(
            f"| {task} | {row['candidate']} | {row['validation']:.4f} | {_cell(row['test'])} | "
            f"{_cell(row['single_task_test'])} | {row['reason']} |"
        )
    names = [c.name for c in plan.candidates]
    tasks = list(plan.choices)
    grid = [
        "| candidate | " + " | ".join(tasks) + " |",
        "|---|" + "---|" * len(tasks),
        *(
            f"| {name} | "
            + " | ".join(_cell(by_name[name].validation.get(task)) for task in tasks)
            + " |"
            for name in names
        ),
    ]
    fallback = [t for t, c in plan.choices.items() if c.candidate == SINGLE_TASK]
    lines = [
        "# Plan: which model serves each task",
        "",
        "Chosen on the validation split only; the test scores are reported, never used.",
        "",
        *rows,
        "",
    ]
    if fallback:
        lines += [
            "Served by their single-task model, because no multi-task candidate beat it on "
            f"validation: {', '.join(fallback)}.",
            "",
        ]
    if plan.groups:
        lines += [
            "Groups by lookahead affinity: " + " | ".join(", ".join(g) for g in plan.groups),
            "",
        ]
    lines += ["## Validation scores of every candidate", "", *grid, ""]
    if plan.budgets:
        lines += [
            "## Epoch budgets",
            "",
            f"Where its epoch cap rather than early stopping ended a run, it was trained again "
            f"with {GROWTH} times the epochs, and the run with the better validation score kept.",
            "",
            "| model | epochs tried (what ended the run) | epochs kept |",
            "|---|---|---|",
            *(
                f"| {name} | {budget.describe()} | {budget.kept.epochs:g} |"
                for name, budget in plan.budgets.items()
            ),
            "",
        ]
    lines += [
        "Serve it: `mtlm predict --model "
        f"{plan.folder / 'model'} --task all --input rows.jsonl`, or "
        "`RoutedModel.from_pretrained(...)` in Python.",
    ]
    return "\n".join(lines) + "\n"


def format_plan(plan: Plan) -> str:
    """The terminal summary: one line per task."""
    lines = ["plan (chosen on validation; test scores reported):"]
    for task, row in plan.outcome().items():
        lines.append(
            f"  {task}: {row['candidate']} (test {_cell(row['test'])}, single-task "
            f"{_cell(row['single_task_test'])}) - {row['reason']}"
        )
    lines.append(f"model: {plan.folder / 'model'}")
    lines.append(f"report: {plan.folder / 'plan.md'}")
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _say(message: str) -> None:
    print(f"mtlm plan: {message}", flush=True)
