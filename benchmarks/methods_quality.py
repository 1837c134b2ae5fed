"""What each multi-task method scores on the development suite, against converged single-task
baselines: Δm, Δn and each task's change, over seeds.

Every (suite, entry, seed) is trained once and recorded as JSON under
`benchmarks/results/<suite>/<entry>/seed-<seed>.json` the moment it finishes, so the table can
be built over several sittings and an interrupted run loses nothing. `--run` trains what is
missing (in the order given); without it the script only renders what is recorded and says
which entries are missing.

Entries are the suite's config with a few keys changed. `single_task` is each task trained
alone to its best validation score (the converged baselines of `mtlm compare`, from the same
cache). The `hard_temperature` entry also fine-tunes every task alone afterwards, recorded as
the `two_stage` row (`two_stage_long`: the same on the baselines' budget of 10 epochs). The
`*_30_epochs` entries give hard_temperature and soft the baselines' epoch rule, as `mtlm plan`
gives its candidates; `groups` holds `mtlm plan`'s group models. The plan rows are no training
of their own: each task takes, among single-task, hard_temperature, two_stage (and in
`plan + lora`, `plan + soft`, `plan + groups` those entries' models and fine-tunes), the one
with the best validation score (`mtlm plan`'s rule).

    python benchmarks/methods_quality.py --run --seeds 3 --suites suite suite_low_resource
    python benchmarks/methods_quality.py --write      # render BENCHMARKS.md from the records

Several processes started with the same arguments share the work (each takes what no other
holds), e.g. two with OMP_NUM_THREADS=1 on a 2-core machine.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quality_entries import ENTRIES, runs_on
from report import ROOT, write_section

if TYPE_CHECKING:
    from mtlm.config import ExperimentConfig

RESULTS = ROOT / "benchmarks" / "results"
SCRATCH = RESULTS / ".runs"
SUITES = ("suite", "suite_low_resource")


# --- running ---------------------------------------------------------------------------------
def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` merged in, key by key: nested mappings merged, except one that
    names another `kind` (a sampler, a balancer), which replaces the base's with its options."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        current = out.get(key)
        if isinstance(value, dict) and value and isinstance(current, dict):
            if value.get("kind", current.get("kind")) == current.get("kind"):
                out[key] = merged(current, value)
                continue
        out[key] = copy.deepcopy(value)
    return out


def record_path(suite: str, entry: str, seed: int) -> Path:
    """Where one finished (suite, entry, seed) is recorded."""
    return RESULTS / suite / entry / f"seed-{seed}.json"


def entry_config(suite: str, entry: str, seed: int, folder: Path) -> ExperimentConfig:
    """The validated config of one entry of one suite, writing its run under `folder`."""
    import yaml

    from mtlm.config import config_from_dict

    config_file = ROOT / "examples" / f"{suite}.yaml"
    raw = merged(yaml.safe_load(config_file.read_text()), ENTRIES[entry])
    raw["training"].update(
        seed=seed, output_dir=str(folder), overwrite_output_dir=True, progress_bar=False
    )
    for task in raw["tasks"]:
        data = task["data"]
        for split in ("train", "validation", "test", "path"):
            if data.get(split):
                data[split] = str((config_file.parent / data[split]).resolve())
    return config_from_dict(raw, source=f"{suite}:{entry}")


def run_entry(suite: str, entry: str, seed: int) -> dict[str, Any]:
    """Train one entry of one suite with one seed and return its record."""
    folder = SCRATCH / suite / entry / f"seed-{seed}"
    config = entry_config(suite, entry, seed, folder)
    started = time.perf_counter()
    if entry == "single_task":
        record = _single_task_record(config, folder)
    elif entry == "groups":
        record = _groups_record(config, folder)
    else:
        record = _multitask_record(config, folder)
    record.update(
        suite=suite,
        entry=entry,
        seed=seed,
        changes=ENTRIES[entry],
        wall_seconds=round(time.perf_counter() - started, 1),
        commit=_commit(),
    )
    shutil.rmtree(folder, ignore_errors=True)
    return record


def _scores(results: dict[str, Any]) -> dict[str, float]:
    return {task: m[m["primary"]] for task, m in results["tasks"].items()}


def _run_record(folder: Path) -> dict[str, Any]:
    read = _reader(folder)
    summary = read("train_summary.json")
    return {
        "validation": _scores(read("validation_results.json")),
        "test": _scores(read("eval_results.json")),
        "train_seconds": summary["train_seconds"],
        "parameters": summary["model"]["total_parameters"],
    }


def _multitask_record(config, folder: Path) -> dict[str, Any]:
    from mtlm import Trainer
    from mtlm.evaluation.run_report import read_log_rows

    Trainer(config).train()
    record = _run_record(folder)
    read = _reader(folder)
    record["trivial"] = _scores(read("trivial_results.json"))
    record["primary"] = {t: m["primary"] for t, m in read("eval_results.json")["tasks"].items()}
    summary = read("train_summary.json")
    # Whether the budget or early stopping ended the run: a best step at the last validation
    # says the model was still improving.
    record.update(
        steps=summary["steps"],
        planned_steps=summary["planned_steps"],
        best_step=summary["best_step"],
        epochs=summary["epochs"],
    )
    # How far apart a soft model's tied parameters ended (as logged: the RMS over tasks of the
    # L2 distance of a task's parameters from their mean), to compare entries' strengths.
    tied = [row["sharing"] for row in read_log_rows(folder / "metrics.jsonl") if "sharing" in row]
    if tied:
        record["tie_distance"] = tied[-1]["distance"]
    if (folder / "finetuned" / "eval_results.json").is_file():
        record["finetuned"] = _run_record(folder / "finetuned")
    return record


def _groups_record(config, folder: Path) -> dict[str, Any]:
    """`mtlm plan`'s group models: the 2-group partition lookahead affinity recommends (60
    joint steps, as the plan measures it), a model of each group of several tasks, fine-tuned
    per task, each with its epochs chosen on validation as the plan chooses them. Holds the
    scores of the tasks in those groups only; the time counts the affinity measurement and
    every run tried."""
    from mtlm.analysis.plan import (
        candidate_config,
        group_models,
        recommended_partition,
        train_candidate,
    )

    started = time.perf_counter()
    partition = recommended_partition(config, 2, folder / "affinity")
    record: dict[str, Any] = {
        "groups": partition,
        "validation": {},
        "test": {},
        "train_seconds": time.perf_counter() - started,
        "parameters": 0,
        "budgets": {},
    }
    tuned: dict[str, Any] = {"validation": {}, "test": {}, "train_seconds": 0.0, "parameters": 0}
    for index, group in group_models(partition, len(config.tasks)):
        one = candidate_config(config, group, folder / f"group-{index}", config.training.finetune)
        kept, budget = train_candidate(one)
        tried = [run.folder for run in budget.tried] if budget else [kept]
        for part, subfolder in ((record, "."), (tuned, "finetuned")):
            runs = {run: _run_record(run / subfolder) for run in tried}
            part["validation"] |= runs[kept]["validation"]
            part["test"] |= runs[kept]["test"]
            part["train_seconds"] += sum(run["train_seconds"] for run in runs.values())
            part["parameters"] += runs[kept]["parameters"]
        if budget is not None:
            record["budgets"][", ".join(group)] = budget.to_dict()
    record["finetuned"] = tuned
    return record


def _single_task_record(config, folder: Path) -> dict[str, Any]:
    """Every task alone as `mtlm compare`'s converged baseline (10 epochs, a validation per
    epoch, patience 2, its best weights; 30 epochs too where the cap ended the 10-epoch run,
    the better-validating run kept), with the epoch caps it tried."""
    from mtlm import Trainer
    from mtlm.analysis.baselines import train_converged

    def train(single) -> Path:
        run = folder / single.tasks[0].name / f"epochs-{single.training.num_epochs:g}"
        Trainer(single, run).train()
        return run

    record: dict[str, Any] = {
        "validation": {},
        "test": {},
        "train_seconds": 0.0,
        "parameters": 0,
        "budgets": {},
    }
    for spec in config.tasks:
        task = spec.name
        converged = train_converged(config, task, train)
        runs = [_run_record(budget.folder) for budget in converged.tried]
        kept = runs[converged.tried.index(converged.kept)]
        record["validation"][task] = kept["validation"][task]
        record["test"][task] = kept["test"][task]
        # What a user pays to find the baseline: every run it tried.
        record["train_seconds"] += sum(run["train_seconds"] for run in runs)
        record["parameters"] += kept["parameters"]
        record["budgets"][task] = converged.to_dict()
    return record


def _claim_file(record: Path) -> Path:
    return record.with_suffix(".running")


def _claim(record: Path) -> bool:
    """Take (suite, entry, seed) for this process, so that several processes started with the
    same arguments share the work (on 2 cores, two single-threaded trainings finish sooner than
    one that uses both). False if another process holds it."""
    record.parent.mkdir(parents=True, exist_ok=True)
    try:
        _claim_file(record).open("x").close()
    except FileExistsError:
        print(
            f"skipping {record}: {_claim_file(record)} says another process trains it "
            "(delete that file if none does)",
            flush=True,
        )
        return False
    return True


def _reader(folder: Path):
    return lambda name: json.loads((folder / name).read_text())


def _commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip()


# --- rendering -------------------------------------------------------------------------------
def load_records(suite: str) -> dict[str, dict[int, dict[str, Any]]]:
    """Every recorded entry of a suite: entry -> seed -> record."""
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for path in sorted((RESULTS / suite).glob("*/seed-*.json")):
        record = json.loads(path.read_text())
        found.setdefault(record["entry"], {})[record["seed"]] = record
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", nargs="+", default=list(SUITES), choices=SUITES)
    parser.add_argument("--entries", nargs="+", default=list(ENTRIES), choices=list(ENTRIES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=42)
    parser.add_argument("--run", action="store_true", help="train the missing entries")
    parser.add_argument("--write", action="store_true", help="rewrite BENCHMARKS.md's section")
    args = parser.parse_args()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    if args.run:
        for seed in seeds:
            for suite in args.suites:
                for entry in args.entries:
                    path = record_path(suite, entry, seed)
                    if not runs_on(suite, entry) or path.is_file() or not _claim(path):
                        continue
                    try:
                        print(f"training {suite} / {entry} / seed {seed}", flush=True)
                        record = run_entry(suite, entry, seed)
                        path.write_text(json.dumps(record, indent=2) + "\n")
                        print(json.dumps(record), flush=True)
                    finally:
                        _claim_file(path).unlink()
    from quality_table import render

    sections = [render(suite, load_records(suite), list(seeds)) for suite in args.suites]
    text = "\n\n".join(sections)
    print(text)
    if args.write:
        write_section(
            "methods-quality",
            "Multi-task methods: what they score against converged single-task baselines",
            "test scores of the model each run kept on validation; single-task baselines "
            "trained alone to their best validation score (10 epochs, patience 2; 30 where the "
            "cap, not early stopping, ended the 10-epoch run; the better-validating run kept). "
            "Rows marked (epochs by validation) give the joint model (hard_temperature, whose "
            "30-epoch run is hard_temperature_30_epochs) and soft sharing (soft, soft_30_epochs) "
            "the same rule, as `mtlm plan` gives its candidates; the other multi-task rows are "
            "10-epoch runs.",
            text,
            "python benchmarks/methods_quality.py --run --write",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
