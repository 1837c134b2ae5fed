"""`mtlm plan` on the tiny model: candidates, the per-task choice on validation, the served
model and its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtlm.analysis.plan import make_plan
from mtlm.analysis.selection import SINGLE_TASK
from mtlm.cli import main
from mtlm.modeling.multitask_model import MultiTaskModel
from mtlm.modeling.routed_model import RoutedModel

TEXTS = ["the movie was great", "a very dull plot", "it is awful"]


@pytest.fixture(scope="module")
def plan(tiny_model_dir, tmp_path_factory):
    from conftest import three_task_config, write_task_files

    root = tmp_path_factory.mktemp("plan")
    config = three_task_config(
        tiny_model_dir,
        write_task_files(root),
        root,
        max_steps=16,
        eval_steps=8,
        finetune={"num_epochs": 1, "r": 4, "alpha": 8},
    )
    return make_plan(
        config,
        root / "plan",
        groups=2,
        affinity_steps=4,
        affinity_every=1,
        sharing=["lora", "soft"],
    )


def test_every_task_is_served_by_a_candidate_no_worse_on_validation_than_its_own(plan):
    chosen = json.loads((plan.folder / "plan.json").read_text())["choices"]
    assert set(chosen) == {"sentiment", "score", "tagging"}
    single = next(c for c in plan.candidates if c.name == SINGLE_TASK)
    for task, choice in chosen.items():
        # all three tasks are higher-is-better (accuracy, pearson, accuracy)
        assert choice["validation"] >= single.validation[task]
        if choice["candidate"] != SINGLE_TASK:
            assert choice["validation"] > single.validation[task]
    names = [c.name for c in plan.candidates]
    # Soft sharing gives every task a backbone of its own: it has no fine-tuning stage.
    assert names[:5] == [
        "all-in-one",
        "all-in-one + fine-tune",
        "all-in-one (lora)",
        "all-in-one (lora) + fine-tune",
        "all-in-one (soft)",
    ]
    assert "all-in-one (soft) + fine-tune" not in names
    assert names[-1] == SINGLE_TASK
    # the LoRA candidate was trained with LoRA sharing, every task with an adapter of its own
    lora = MultiTaskModel.from_pretrained(plan.folder / "candidates" / "multitask-1" / "model")
    assert lora.describe()["sharing"]["kind"] == "lora"


def test_the_served_model_answers_each_task_with_the_chosen_model(plan):
    served = RoutedModel.from_pretrained(plan.folder)
    by_name = {c.name: c for c in plan.candidates}
    for task, choice in plan.choices.items():
        own = MultiTaskModel.from_pretrained(by_name[choice.candidate].models[task])
        assert (
            served.predict(task, TEXTS) == own.predict(task, TEXTS) if task != "tagging" else True
        )
    tagged = served.predict(["tagging"], [t.split() for t in TEXTS])["tagging"]
    assert len(tagged) == 3


def test_the_report_names_each_choice_and_the_cli_serves_the_plan(plan, tmp_path, capsys):
    report = (plan.folder / "plan.md").read_text()
    for task, choice in plan.choices.items():
        assert f"| {task} | {choice.candidate} |" in report
    # The candidates' budgets are steps, the user's; the single-task models' were chosen.
    budgets = json.loads((plan.folder / "plan.json").read_text())["budgets"]
    assert sorted(budgets) == [
        f"{SINGLE_TASK} {task}" for task in ("score", "sentiment", "tagging")
    ]
    assert f"| {SINGLE_TASK} sentiment | " in report
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    assert (
        main(
            [
                "predict",
                "--model",
                str(plan.folder / "model"),
                "--task",
                "all",
                "--input",
                str(rows),
            ]
        )
        == 0
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3 and set(lines[0]) == {"sentiment", "score"}


@pytest.mark.parametrize(
    ("patience", "outcomes", "trained", "kept"),
    [
        # The cap ended the 2-epoch run: 6 epochs too, and the better-validating kept.
        (2, {2.0: (0.5, False), 6.0: (0.6, True)}, ["run", "run-epochs-6"], "run-epochs-6"),
        (2, {2.0: (0.6, False), 6.0: (0.5, True)}, ["run", "run-epochs-6"], "run"),
        # Early stopping ended it: nothing more to try.
        (2, {2.0: (0.5, True)}, ["run"], "run"),
        # Without early stopping the budget is the user's: one run.
        (None, {2.0: (0.5, False)}, ["run"], "run"),
    ],
)
def test_a_candidate_its_cap_ended_trains_again_longer(
    make_config, tmp_path, monkeypatch, patience, outcomes, trained, kept
):
    from mtlm.analysis import plan as planning

    folders = []

    def fake_train(config):
        folder = Path(config.training.output_dir)
        folders.append(folder.name)
        best, stopped_early = outcomes[config.training.num_epochs]
        folder.mkdir(parents=True)
        summary = {"steps": 8 if stopped_early else 10, "planned_steps": 10}
        summary["best_validation_aggregate"] = best
        (folder / "train_summary.json").write_text(json.dumps(summary))

    monkeypatch.setattr(planning, "_train", fake_train)
    config = make_config(
        max_steps=None,
        num_epochs=2,
        eval_steps=None,
        eval_strategy="epoch",
        early_stopping_patience=patience,
        output_dir=str(tmp_path / "run"),
    )

    folder, budget = planning.train_candidate(config)
    assert folder == tmp_path / kept
    assert folders == trained
    if patience is None:
        assert budget is None
    else:
        assert [run.epochs for run in budget.tried] == [float(e) for e in outcomes]
        assert budget.kept.folder == folder


def test_the_report_says_which_epoch_budget_each_model_kept(tmp_path):
    from mtlm.analysis.plan import Plan, plan_dict, plan_markdown
    from mtlm.analysis.selection import Candidate, choose_per_task
    from mtlm.training.epoch_budget import BudgetChoice, BudgetTried

    short = BudgetTried(10, 0.5, False, tmp_path / "run")
    longer = BudgetTried(30, 0.6, True, tmp_path / "run-epochs-30")
    alone = BudgetTried(10, 0.7, True, tmp_path / "alone")
    candidates = [Candidate("all-in-one", {"a": 0.6}), Candidate(SINGLE_TASK, {"a": 0.7})]
    plan = Plan(
        candidates,
        choose_per_task(candidates, {"a": True}),
        [],
        tmp_path,
        {
            "all-in-one": BudgetChoice((short, longer), longer),
            f"{SINGLE_TASK} a": BudgetChoice((alone,), alone),
        },
    )
    report = plan_markdown(plan)
    assert "| all-in-one | 10 (cap), 30 (early stopping) | 30 |" in report
    assert "| single-task a | 10 (early stopping) | 10 |" in report
    assert plan_dict(plan)["budgets"]["all-in-one"] == {
        "tried": [
            {"epochs": 10, "best_validation": 0.5, "stopped_early": False},
            {"epochs": 30, "best_validation": 0.6, "stopped_early": True},
        ],
        "kept_epochs": 30,
    }
