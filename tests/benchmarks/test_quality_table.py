"""The methods-quality table's figures, from hand-written records with hand-computed values."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from quality_table import derived_rows, entry_figures, render  # noqa: E402

PRIMARY = {"a": "accuracy", "b": "mse"}
TRIVIAL = {"a": 0.5, "b": 1.0}


def multitask(validation, test, finetuned=None, stopped_early=False):
    record = {
        "validation": validation,
        "test": test,
        "trivial": TRIVIAL,
        "primary": PRIMARY,
        "train_seconds": 100.0,
        "steps": 80 if stopped_early else 100,
        "planned_steps": 100,
    }
    if finetuned:
        record["finetuned"] = {**finetuned, "train_seconds": 20.0}
    return record


RECORDS = {
    "single_task": {
        42: {
            "validation": {"a": 0.70, "b": 0.60},
            "test": {"a": 0.80, "b": 0.50},
            "train_seconds": 50.0,
        }
    },
    "hard_temperature": {
        42: multitask(
            {"a": 0.72, "b": 0.65},
            {"a": 0.84, "b": 0.40},
            finetuned={"validation": {"a": 0.71, "b": 0.55}, "test": {"a": 0.90, "b": 0.30}},
        )
    },
}


def test_delta_m_and_delta_n_of_one_seed():
    figures = entry_figures(
        RECORDS["hard_temperature"], RECORDS["single_task"], RECORDS["hard_temperature"]
    )
    # a: (0.84 - 0.80) / 0.80 = +5 %; b (lower is better): (0.50 - 0.40) / 0.50 = +20 %
    assert figures["delta_m"] == [pytest.approx(12.5)]
    # a: n = (x - 0.5) / 0.5: 60 -> 68; b: n = (1 - x) / 1: 50 -> 60
    assert figures["delta_n"] == [pytest.approx(9.0)]
    assert figures["changes"] == {"a": pytest.approx(5.0), "b": pytest.approx(20.0)}
    assert figures["seconds"] == 100.0


def test_two_stage_and_plan_rows_come_from_the_records():
    rows = derived_rows(RECORDS)
    assert rows["two_stage"][42]["test"] == {"a": 0.90, "b": 0.30}
    assert rows["two_stage"][42]["train_seconds"] == 120.0
    # a: all-in-one has the best validation (0.72); b: the fine-tuned model (0.55 < 0.60)
    assert rows["plan"][42]["chosen"] == {"a": "all-in-one", "b": "all-in-one + fine-tune"}
    assert rows["plan"][42]["test"] == {"a": 0.84, "b": 0.30}
    assert rows["plan"][42]["train_seconds"] == 170.0


def test_a_plan_with_a_further_candidate_serves_a_task_by_it_where_it_validates_best():
    soft = {42: multitask({"a": 0.75, "b": 0.70}, {"a": 0.78, "b": 0.45})}
    rows = derived_rows({**RECORDS, "soft": soft})
    # a: soft validates best (0.75 > 0.72); b (lower is better): the fine-tune's 0.55 stays.
    assert rows["plan + soft"][42]["chosen"] == {"a": "soft", "b": "all-in-one + fine-tune"}
    assert rows["plan + soft"][42]["test"] == {"a": 0.78, "b": 0.30}
    assert rows["plan + soft"][42]["train_seconds"] == 270.0
    assert rows["plan"][42]["chosen"]["a"] == "all-in-one"
    # Without a lora record for the seed there is no such plan.
    assert "plan + lora" not in rows


def test_the_long_fine_tune_gives_its_own_two_stage_row_and_not_a_second_joint_row():
    long = {
        42: multitask(
            {"a": 0.72, "b": 0.65},
            {"a": 0.84, "b": 0.40},
            finetuned={"validation": {"a": 0.75, "b": 0.50}, "test": {"a": 0.88, "b": 0.35}},
        )
    }
    records = {**RECORDS, "hard_temperature_long_finetune": long}
    rows = derived_rows(records)
    assert rows["two_stage_long"][42]["test"] == {"a": 0.88, "b": 0.35}
    # The plan's candidates stay single-task, hard_temperature and its fine-tune.
    assert rows["plan"][42]["test"] == {"a": 0.84, "b": 0.30}
    text = render("suite", records, [42])
    # a: (0.88 - 0.80) / 0.80 = +10 %; b: (0.50 - 0.35) / 0.50 = +30 %
    assert "| two_stage_long | 1 | +20.00 |" in text
    assert "| hard_temperature_long_finetune |" not in text


def test_the_joint_model_gets_the_single_task_baselines_budget_rule():
    tuned = {"validation": {"a": 0.74, "b": 0.50}, "test": {"a": 0.86, "b": 0.35}}
    short = {
        # The cap ended it; the 30-epoch run validates better: (0.80 - 0.60) / 2 > (0.72 - 0.65) / 2
        42: multitask({"a": 0.72, "b": 0.65}, {"a": 0.84, "b": 0.40}),
        # Early stopping ended it: kept, though the longer run validates better.
        43: multitask({"a": 0.72, "b": 0.65}, {"a": 0.81, "b": 0.40}, stopped_early=True),
        # The cap ended it and its longer run is missing: no row for the seed.
        44: multitask({"a": 0.72, "b": 0.65}, {"a": 0.84, "b": 0.40}),
    }
    longer = {
        seed: multitask({"a": 0.80, "b": 0.60}, {"a": 0.70, "b": 0.45}, finetuned=tuned)
        for seed in (42, 43)
    }
    single = {seed: RECORDS["single_task"][42] for seed in (42, 43, 44)}
    rows = derived_rows(
        {"single_task": single, "hard_temperature": short, "hard_temperature_30_epochs": longer}
    )
    chosen = rows["hard_temperature (epochs by validation)"]
    assert sorted(chosen) == [42, 43]
    assert chosen[42]["test"] == {"a": 0.70, "b": 0.45}
    assert chosen[42]["train_seconds"] == 200.0  # both runs
    assert chosen[43]["test"] == {"a": 0.81, "b": 0.40}
    assert chosen[43]["train_seconds"] == 100.0
    # Only seed 42's kept run was fine-tuned.
    assert rows["two_stage (epochs by validation)"] == {42: {**tuned, "train_seconds": 220.0}}
    plan = rows["plan (epochs by validation)"]
    # a: the 30-epoch joint model validates best (0.80, against 0.74 fine-tuned and 0.70
    # alone); b (lower is better): the fine-tune's 0.50, against 0.60 for both others.
    assert plan[42]["chosen"] == {"a": "all-in-one", "b": "all-in-one + fine-tune"}
    assert plan[42]["test"] == {"a": 0.70, "b": 0.35}
    assert 43 not in plan  # its kept run has no fine-tune
    # Every plan row has its version over the kept run, where its candidates are recorded.
    assert "plan + soft (epochs by validation)" not in rows


def test_soft_sharing_gets_the_rule_too_and_the_plan_weighs_both_kept_runs():
    tuned = {"validation": {"a": 0.71, "b": 0.55}, "test": {"a": 0.90, "b": 0.30}}
    joint = {42: multitask({"a": 0.72, "b": 0.65}, {"a": 0.84, "b": 0.40}, stopped_early=True)}
    joint[42]["finetuned"] = {**tuned, "train_seconds": 20.0}
    # The cap ended the 10-epoch soft run; its 30-epoch run validates better on a (0.78 > 0.74)
    # and so is kept: (0.78 - 0.62) / 2 > (0.74 - 0.62) / 2.
    soft = {42: multitask({"a": 0.74, "b": 0.62}, {"a": 0.79, "b": 0.45})}
    soft_longer = {42: multitask({"a": 0.78, "b": 0.62}, {"a": 0.83, "b": 0.45})}
    records = {
        **RECORDS,
        "hard_temperature": joint,
        "soft": soft,
        "soft_30_epochs": soft_longer,
    }
    rows = derived_rows(records)
    assert rows["soft (epochs by validation)"][42]["test"] == {"a": 0.83, "b": 0.45}
    assert "two_stage (epochs by validation)" in rows
    # a: the kept soft run validates best (0.78 > 0.72 joint, 0.71 fine-tuned, 0.70 alone).
    plan = rows["plan + soft (epochs by validation)"][42]
    assert plan["chosen"] == {"a": "soft", "b": "all-in-one + fine-tune"}
    assert plan["test"] == {"a": 0.83, "b": 0.30}
    # The plan over the 10-epoch soft run serves a by it too, at its lower test score.
    assert rows["plan + soft"][42]["test"] == {"a": 0.79, "b": 0.30}


def test_a_longer_run_is_missing_only_where_the_cap_ended_the_shorter_one():
    soft = {
        42: multitask({"a": 0.74, "b": 0.62}, {"a": 0.79, "b": 0.45}),
        43: multitask({"a": 0.74, "b": 0.62}, {"a": 0.79, "b": 0.45}, stopped_early=True),
    }
    text = render("suite", {**RECORDS, "soft": soft}, [42, 43, 44])
    assert "soft_30_epochs/seed-42" in text
    assert "soft_30_epochs/seed-43" not in text
    # Without the shorter run's record the longer one may be needed.
    assert "soft_30_epochs/seed-44" in text


def test_the_table_lists_every_row_and_the_missing_records():
    text = render("suite", RECORDS, [42, 43])
    assert "| hard_temperature | 1 | +12.50 | +9.00 |" in text
    assert "| two_stage | 1 |" in text and "| plan | 1 |" in text
    assert "single_task/seed-43" in text and "hard_temperature/seed-43" in text
    assert "single_task/seed-42" not in text


def test_an_entry_whose_run_is_another_entrys_is_not_missing_and_says_why():
    text = render("suite", RECORDS, [42])
    assert "hard_proportional/seed-42" not in text
    assert "hard_proportional is not trained here" in text and "hard_temperature's" in text
    # On the low-resource suite the task sizes differ, so it is trained and can be missing.
    low_resource = render("suite_low_resource", RECORDS, [42])
    assert "hard_proportional/seed-42" in low_resource
    # The full suite's diagnostics are not missing elsewhere.
    assert "static_joint_unscaled_lr/seed-42" in text
    assert "static_joint_unscaled_lr/seed-42" not in low_resource


@pytest.mark.parametrize("suite", ["suite", "suite_low_resource"])
def test_every_entry_is_a_valid_config_of_every_suite(suite, tmp_path):
    import methods_quality
    from quality_entries import ENTRIES

    for entry in ENTRIES:
        config = methods_quality.entry_config(suite, entry, 7, tmp_path)
        assert config.training.seed == 7


def test_a_section_of_another_kind_replaces_the_base_section_instead_of_merging():
    from methods_quality import merged

    base = {"training": {"sampler": {"kind": "temperature", "temperature": 2.0}, "seed": 1}}
    changed = merged(base, {"training": {"sampler": {"kind": "proportional"}}})
    assert changed == {"training": {"sampler": {"kind": "proportional"}, "seed": 1}}
    same_kind = merged(base, {"training": {"sampler": {"temperature": 3.0}}})
    assert same_kind["training"]["sampler"] == {"kind": "temperature", "temperature": 3.0}


def test_a_multitask_record_says_what_ended_the_run_and_how_far_apart_soft_tasks_ended(
    tmp_path, monkeypatch
):
    import methods_quality

    import mtlm

    results = {"tasks": {"a": {"primary": "accuracy", "accuracy": 0.8}}}
    files = {
        "validation_results.json": results,
        "eval_results.json": results,
        "trivial_results.json": results,
        "train_summary.json": {
            "steps": 133,
            "planned_steps": 188,
            "best_step": 95,
            "epochs": 7.0,
            "train_seconds": 9.0,
            "model": {"total_parameters": 10},
        },
    }
    for name, content in files.items():
        (tmp_path / name).write_text(json.dumps(content))
    logged = [
        {"step": 20, "losses": {"a": 0.9}, "sharing": {"penalty": 0.1, "distance": 0.002}},
        {"step": 40, "losses": {"a": 0.7}, "sharing": {"penalty": 0.2, "distance": 0.003}},
        {"step": 95, "eval": {"a": 0.8}},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in logged))

    class Trained:
        def __init__(self, config):
            pass

        def train(self):
            pass

    monkeypatch.setattr(mtlm, "Trainer", Trained)
    record = methods_quality._multitask_record(None, tmp_path)
    assert (record["steps"], record["planned_steps"], record["best_step"]) == (133, 188, 95)
    assert record["epochs"] == 7.0 and record["test"] == {"a": 0.8}
    assert record["tie_distance"] == 0.003

    # A model without a soft tie logs no distance, and its record has none.
    (tmp_path / "metrics.jsonl").write_text(json.dumps(logged[-1]) + "\n")
    assert "tie_distance" not in methods_quality._multitask_record(None, tmp_path)


def test_group_models_enter_the_plan_with_their_fine_tunes_and_have_no_row_of_their_own():
    # One group model of task a only (b's group was a single task): its fine-tune validates
    # best on a (0.76 > 0.72 joint, 0.71 joint fine-tuned, 0.70 alone).
    groups = {
        42: {
            "groups": [["a", "c"], ["b"]],
            "validation": {"a": 0.74},
            "test": {"a": 0.81},
            "train_seconds": 30.0,
            "finetuned": {"validation": {"a": 0.76}, "test": {"a": 0.86}, "train_seconds": 5.0},
        }
    }
    # Early stopping ended the joint run: the rule keeps it.
    joint = {42: {**RECORDS["hard_temperature"][42], "steps": 80}}
    records = {**RECORDS, "hard_temperature": joint, "groups": groups}
    rows = derived_rows(records)
    plan = rows["plan + groups (epochs by validation)"][42]
    assert plan["chosen"] == {"a": "groups + fine-tune", "b": "all-in-one + fine-tune"}
    assert plan["test"] == {"a": 0.86, "b": 0.30}
    assert plan["train_seconds"] == 170.0 + 30.0 + 5.0
    # Group models are chosen by the epoch rule: no plan row over 10-epoch runs has them.
    assert "plan + groups" not in rows
    text = render("suite", records, [42])
    assert "| groups |" not in text
    assert "| plan + groups (epochs by validation) | 1 |" in text


def test_a_groups_record_holds_the_group_models_scores_and_their_fine_tunes(make_config):
    import methods_quality

    config = make_config(max_steps=4, eval_steps=None, finetune={"max_steps": 2})
    folder = Path(config.training.output_dir)
    record = methods_quality._groups_record(config, folder)

    partition = record["groups"]
    assert sorted(task for group in partition for task in group) == [
        "score",
        "sentiment",
        "tagging",
    ]
    # Three tasks in two groups: one group of two gets a model, the other is a single task.
    grouped = next(group for group in partition if len(group) == 2)
    assert sorted(record["validation"]) == sorted(grouped) == sorted(record["test"])
    assert sorted(record["finetuned"]["validation"]) == sorted(grouped)
    # Groups are numbered from 1 in the partition's order, as `mtlm plan` numbers them.
    assert (folder / f"group-{partition.index(grouped) + 1}" / "finetuned").is_dir()
    assert (folder / "affinity" / "affinity.json").is_file()
    # A step budget is the user's: no epochs chosen.
    assert record["budgets"] == {}
    assert record["train_seconds"] > record["finetuned"]["train_seconds"] > 0
