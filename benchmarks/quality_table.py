"""The methods-quality table, from recorded runs: per entry, Δm and Δn over seeds against the
single-task records of the same seeds, each task's change, Welch's test against the reference
entry, time per run, and which records are missing."""

from __future__ import annotations

from typing import Any

from quality_entries import (
    BUDGET_CHOICES,
    ENTRIES,
    EPOCHS_BY_VALIDATION,
    FINE_TUNED,
    PLANS,
    REFERENCE,
    RULED_PLANS,
    SAME_AS,
    WITHOUT_A_ROW,
    runs_on,
)

from mtlm.analysis.selection import SINGLE_TASK, Candidate, choose_per_task, chosen_scores
from mtlm.analysis.transfer import delta_m, delta_n, mean_std, relative_change, seed_test
from mtlm.training.epoch_budget import stopped_early

Records = dict[str, dict[int, dict[str, Any]]]


def derived_rows(records: Records) -> Records:
    """A two-stage row from the fine-tuned part of each entry that fine-tunes (`two_stage` from
    `hard_temperature`, ...), the plan rows of `PLANS`, each task served by whichever candidate
    had its best validation score, and, under the single-task baselines' budget rule, the run
    the rule keeps of each entry of `BUDGET_CHOICES`, that run's fine-tune and each plan row
    over the kept runs, `RULED_PLANS` included (an entry outside `BUDGET_CHOICES` enters as its
    recorded run)."""
    rows: Records = {
        row: _fine_tuned_row(records.get(entry, {})) for entry, row in FINE_TUNED.items()
    }
    for name, extra in PLANS.items():
        rows[name] = _plan_row(records, extra)
    kept = {
        entry: _budget_chosen(records.get(entry, {}), records.get(longer, {}))
        for entry, longer in BUDGET_CHOICES.items()
    }
    for entry, by_seed in kept.items():
        rows[entry + EPOCHS_BY_VALIDATION] = by_seed
        if entry in FINE_TUNED:
            rows[FINE_TUNED[entry] + EPOCHS_BY_VALIDATION] = _fine_tuned_row(by_seed)
    for name, extra in {**PLANS, **RULED_PLANS}.items():
        rows[name + EPOCHS_BY_VALIDATION] = _plan_row({**records, **kept}, extra)
    return {name: seeds for name, seeds in rows.items() if seeds}


def _fine_tuned_row(records: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The fine-tuned part of each seed's record, timed with the run it started from."""
    return {
        seed: {**tuned, "train_seconds": record["train_seconds"] + tuned["train_seconds"]}
        for seed, record in records.items()
        if (tuned := record.get("finetuned")) is not None
    }


def _budget_chosen(
    short: dict[int, dict[str, Any]], longer: dict[int, dict[str, Any]]
) -> dict[int, dict[str, Any]]:
    """Per seed, the run kept by the single-task baselines' rule: `short` where early stopping
    ended it, else the better-validating of it and `longer` (the shorter on a tie); none for a
    seed whose longer run is needed but missing."""
    chosen = {}
    for seed, record in short.items():
        if stopped_early(record):
            chosen[seed] = record
        elif seed in longer:
            other = longer[seed]
            better = _validation_aggregate(other) > _validation_aggregate(record)
            chosen[seed] = {
                **(other if better else record),
                # What the rule costs: both runs.
                "train_seconds": record["train_seconds"] + other["train_seconds"],
            }
    return chosen


def _validation_aggregate(record: dict[str, Any]) -> float:
    """The trainer's validation aggregate: the mean primary score, lower-is-better negated."""
    signed = [v if _higher(record, task) else -v for task, v in record["validation"].items()]
    return sum(signed) / len(signed)


def _plan_row(records: Records, extra: tuple[str, ...]) -> dict[int, dict[str, Any]]:
    """The plan's choice per seed among single_task, hard_temperature, its fine-tune and the
    `extra` entries with their fine-tunes; seeds missing any of them have none."""
    row = {}
    for seed, record in records.get("hard_temperature", {}).items():
        tuned = record.get("finetuned")
        single = records.get("single_task", {}).get(seed)
        others = [records.get(entry, {}).get(seed) for entry in extra]
        if tuned is None or single is None or None in others:
            continue
        candidates = [
            Candidate(SINGLE_TASK, single["validation"], single["test"]),
            Candidate("all-in-one", record["validation"], record["test"]),
            Candidate("all-in-one + fine-tune", tuned["validation"], tuned["test"]),
        ]
        for name, other in zip(extra, others, strict=True):
            candidates.append(Candidate(name, other["validation"], other["test"]))
            if (other_tuned := other.get("finetuned")) is not None:
                candidates.append(
                    Candidate(name + " + fine-tune", other_tuned["validation"], other_tuned["test"])
                )
        directions = {task: _higher(record, task) for task in record["test"]}
        choices = chosen_scores(choose_per_task(candidates, directions), candidates)
        seconds = [single, record, tuned, *others]
        seconds += [o["finetuned"] for o in others if "finetuned" in o]
        row[seed] = {
            "test": {task: choice["test"] for task, choice in choices.items()},
            "chosen": {task: choice["candidate"] for task, choice in choices.items()},
            "train_seconds": sum(part["train_seconds"] for part in seconds),
        }
    return row


def _higher(record: dict[str, Any], task: str) -> bool:
    return record["primary"][task] not in ("mse", "perplexity")


def entry_figures(
    entry: dict[int, dict[str, Any]], single: dict[int, dict[str, Any]], reference: dict[str, Any]
) -> dict[str, Any]:
    """Δm and Δn per seed (seeds with a single-task record only), per-task mean changes."""
    seeds = sorted(seed for seed in entry if seed in single)
    per_seed_m, per_seed_n, changes = [], [], {}
    for seed in seeds:
        base, run = single[seed]["test"], entry[seed]["test"]
        directions = {task: _higher(reference[seed], task) for task in base}
        per_seed_m.append(delta_m(base, run, directions).value)
        per_seed_n.append(
            delta_n(base, run, reference[seed]["trivial"], _ideals(reference[seed])).value
        )
        for task in base:
            change = relative_change(base[task], run[task], directions[task])
            changes.setdefault(task, []).append(change)
    return {
        "seeds": seeds,
        "delta_m": per_seed_m,
        "delta_n": per_seed_n,
        "changes": {task: mean_std(values)[0] for task, values in changes.items()},
        "seconds": mean_std([entry[seed]["train_seconds"] for seed in seeds])[0] if seeds else None,
    }


def _ideals(record: dict[str, Any]) -> dict[str, float]:
    return {task: 0.0 if not _higher(record, task) else 1.0 for task in record["primary"]}


def render(suite: str, records: Records, seeds: list[int]) -> str:
    """The markdown table of one suite, with the missing records listed under it."""
    single = records.get("single_task", {})
    trained = {k: v for k, v in records.items() if k != "single_task" and k not in WITHOUT_A_ROW}
    # Any multi-task record of every task knows each task's primary metric and trivial score.
    reference = {seed: record for by_seed in trained.values() for seed, record in by_seed.items()}
    rows = {**trained, **derived_rows(records)}
    figures = {name: entry_figures(by_seed, single, reference) for name, by_seed in rows.items()}
    tasks = sorted({task for record in single.values() for task in record["test"]})
    header = ["entry", "seeds", "Δm %", "Δn points", "p vs " + REFERENCE, *tasks, "s / run"]
    lines = [f"### {suite}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, figure in figures.items():
        if not figure["seeds"]:
            continue
        test = seed_test(figures.get(REFERENCE, {}).get("delta_m", []), figure["delta_m"])
        p = "-" if test is None or name == REFERENCE else f"{test.p_value:.3f}"
        if test is not None and test.significant and name != REFERENCE:
            p += " *"
        cells = [
            name,
            str(len(figure["seeds"])),
            _mean_cell(figure["delta_m"]),
            _mean_cell(figure["delta_n"]),
            p,
            *(_change_cell(figure["changes"].get(task)) for task in tasks),
            f"{figure['seconds']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if single:
        base = [
            f"{task} {mean_std([r['test'][task] for r in single.values()])[0]:.4f}"
            for task in tasks
        ]
        lines += [
            "",
            f"Single-task test scores (mean of {len(single)} seeds): " + ", ".join(base) + ".",
        ]
    for (alias_suite, entry), (same, why) in SAME_AS.items():
        if alias_suite == suite:
            lines += ["", f"{entry} is not trained here: {why}; its row is {same}'s."]
    missing = [
        f"{entry}/seed-{seed}"
        for entry in ENTRIES
        if runs_on(suite, entry)
        for seed in seeds
        if seed not in records.get(entry, {}) and _needed(records, entry, seed)
    ]
    if missing:
        lines += ["", f"Missing records ({len(missing)}): " + ", ".join(missing) + "."]
    return "\n".join(lines)


def _needed(records: Records, entry: str, seed: int) -> bool:
    """Whether a seed's record of `entry` is needed: a longer run of `BUDGET_CHOICES` is not
    where early stopping ended the shorter one."""
    shorter = next((short for short, longer in BUDGET_CHOICES.items() if longer == entry), None)
    if shorter is None or seed not in records.get(shorter, {}):
        return True
    return not stopped_early(records[shorter][seed])


def _mean_cell(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "-"
    mean, std = mean_std(known)
    return f"{mean:+.2f}" + ("" if std is None else f" ± {std:.2f}")


def _change_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f} %"
