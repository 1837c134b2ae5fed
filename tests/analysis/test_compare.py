"""`compare`: converged and equal-examples single-task baselines, their cache, and the reports."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from mtlm.analysis.baselines import baseline_config, converged_baseline_config
from mtlm.analysis.compare import baseline_key, compare, data_fingerprint
from mtlm.analysis.compare_report import format_comparison, write_comparison
from mtlm.analysis.comparison import BaselinePlan, BaselineRun, SeedRuns, summarise
from mtlm.config import ExperimentConfig, config_from_dict
from mtlm.errors import ConfigError
from mtlm.training.trainer import Trainer


def _variant(config: ExperimentConfig, **top: Any) -> ExperimentConfig:
    """The config with top-level keys (sharing, tasks) replaced."""
    return config_from_dict({**config.model_dump(mode="json"), **top})


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _results(scores: dict[str, tuple[str, float]]) -> dict[str, Any]:
    """An eval_results.json (or trivial_results.json) of {task: (primary metric, value)}."""
    tasks = {task: {"primary": metric, metric: value} for task, (metric, value) in scores.items()}
    return {"tasks": tasks, "aggregate": None, "split": "test"}


def _write(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def _fake_runs(
    root: Path,
    single: dict[str, tuple[str, float]],
    multi: dict[str, tuple[str, float]],
    trivial: dict[str, tuple[str, float]] | None,
) -> list[SeedRuns]:
    """One seed of hand-written result files: a multi-task run and converged baselines."""
    multitask = root / "multitask"
    _write(multitask / "eval_results.json", _results(multi))
    if trivial is not None:
        _write(multitask / "trivial_results.json", _results(trivial))
    baselines = {}
    for task, score in single.items():
        folder = root / "baselines" / task
        _write(folder / "eval_results.json", _results({task: score}))
        baselines[task] = BaselineRun(
            folder, "converged", 64, 24, 80, 3.0, 1.5, cached=False, parameters=500
        )
    return [SeedRuns(1, multitask, {"converged": baselines})]


def test_the_two_kinds_of_baseline_never_share_a_cache_entry(make_config, task_files):
    config = make_config()
    data = data_fingerprint(config.tasks[0])
    # Even an equal-examples budget of exactly 10 epochs is another config than 10 epochs
    # with early stopping.
    steps_per_epoch = math.ceil(64 / config.training.batch_size)
    examples = 10 * steps_per_epoch * config.training.batch_size
    equal = baseline_config(config, "sentiment", examples, multitask_steps=30)
    converged = converged_baseline_config(config, "sentiment", epochs=10)
    assert baseline_key(equal, data) != baseline_key(converged, data)


def test_the_baseline_key_ignores_where_a_run_writes_but_not_what_it_learns(
    make_config, task_files
):
    config = baseline_config(make_config(), "sentiment", examples=40, multitask_steps=30)
    data = data_fingerprint(config.tasks[0])
    elsewhere = config.model_copy(deep=True)
    elsewhere.training.output_dir = "somewhere/else"
    elsewhere.training.progress_bar = True
    elsewhere.training.logging_steps = 1
    assert baseline_key(elsewhere, data) == baseline_key(config, data)
    faster = config.model_copy(deep=True)
    faster.training.learning_rate *= 2
    assert baseline_key(faster, data) != baseline_key(config, data)

    train_file = task_files["sentiment"]["train"]
    train_file.write_text(train_file.read_text() + '{"text": "good", "label": "pos"}\n')
    changed = data_fingerprint(config.tasks[0])
    assert changed != data
    assert baseline_key(config, changed) != baseline_key(config, data)


def test_seeds_and_baseline_limits_below_one_are_refused(make_config, tmp_path):
    with pytest.raises(ConfigError, match="--seeds"):
        compare(make_config(), tmp_path / "compare", seeds=0)
    for plan, flag in (
        (BaselinePlan(epochs=0), "--baseline-epochs"),
        (BaselinePlan(patience=0), "--baseline-patience"),
        (BaselinePlan(epochs=10, max_epochs=5), "--baseline-max-epochs"),
        (BaselinePlan("longest"), "--baseline"),
    ):
        with pytest.raises(ConfigError, match=flag):
            compare(make_config(), tmp_path / "compare", plan=plan)
    assert not (tmp_path / "compare").exists()


def test_both_kinds_of_baseline_are_reported_side_by_side(make_config, tmp_path):
    config = make_config(max_steps=12, eval_steps=6)
    tasks = config.model_dump(mode="json")["tasks"]
    tasks[1]["primary_metric"] = "mse"  # a lower-is-better metric, end to end
    config = _variant(config, tasks=tasks)
    output = tmp_path / "compare"
    plan = BaselinePlan("both", epochs=2, patience=1, max_epochs=2)

    comparison = compare(config, output, seeds=2, baseline_cache=tmp_path / "baselines", plan=plan)

    names = [task.name for task in config.tasks]
    saved = _read(output / "comparison.json")
    assert list(saved["tasks"]) == names
    assert saved["baseline"] == {"mode": "both", "epochs": 2, "patience": 1, "max_epochs": 2}
    assert (output / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (output / "comparison.md").read_text()
    table = format_comparison(comparison)
    for text in (markdown, table):
        assert all(name in text for name in names)
        assert "Welch" in text
        assert "single-task (equal examples)" in text and "single-task (converged)" in text
        assert "trained to their best validation score (≤ 2 epochs, patience 1)" in text
        assert "the same training examples per task" in text
        assert text.count("Δm = ") >= 2 and text.count("Δn = ") >= 2
        assert "trivial" in text
    assert saved["tasks"]["score"]["higher_is_better"] is False

    per_step = config.training.batch_size * config.training.gradient_accumulation_steps
    for run in saved["runs"]:
        multitask = Path(run["multitask"])
        seen = _read(multitask / "train_summary.json")["examples_per_task"]
        scores = _read(multitask / "eval_results.json")["tasks"]
        index = saved["seeds"].index(run["seed"])
        assert set(run["baselines"]) == {"equal_examples", "converged"}
        for kind, baselines in run["baselines"].items():
            for name, baseline in baselines.items():
                folder = Path(baseline["folder"])
                summary = _read(folder / "train_summary.json")
                if kind == "equal_examples":
                    assert abs(summary["examples_per_task"][name] - seen[name]) <= per_step
                else:
                    assert summary["epochs"] <= 2
                assert baseline["steps"] == summary["steps"] <= summary["planned_steps"]
                assert baseline["stopped_early"] == (summary["steps"] < summary["planned_steps"])
                assert not (folder / "model").exists() and not (folder / "checkpoints").exists()
                metric = saved["tasks"][name]["metric"]
                columns = saved["tasks"][name]["scores"]
                assert columns["multi_task"]["scores"][index] == scores[name][metric]
                single = _read(folder / "eval_results.json")["tasks"][name][metric]
                assert columns[kind]["scores"][index] == single
                trivial = _read(multitask / "trivial_results.json")["tasks"][name][metric]
                assert saved["tasks"][name]["trivial_per_seed"][index] == trivial

    # Ideal scores: 1 for accuracy, 0 for mse.
    ideal = {"sentiment": 1.0, "score": 0.0, "tagging": 1.0}
    for kind in ("equal_examples", "converged"):
        terms, points = [], []
        for name, task in saved["tasks"].items():
            single = task["scores"][kind]["mean"]
            multi = task["scores"]["multi_task"]["mean"]
            better = multi - single if task["higher_is_better"] else single - multi
            contrast = task["against"]["multi_task"][kind]
            single_learned = task["scores"][kind]["learned"]
            multi_learned = task["scores"]["multi_task"]["learned"]
            if not single_learned and not multi_learned:
                assert contrast["transfer"] == "not learned (neither model beats trivial)"
                assert not contrast["negative_transfer"]
                assert "no advice" in contrast["advice"][0]
            elif single_learned != multi_learned:
                only = "single" if single_learned else "multi"
                assert contrast["transfer"] == f"learned only by {only}-task"
                assert contrast["negative_transfer"] == single_learned
            else:
                assert contrast["negative_transfer"] == (better < 0)
                assert bool(contrast["advice"]) == contrast["negative_transfer"]
            if contrast["p_value"] is not None:
                assert contrast["significant"] == (contrast["p_value"] < 0.05)
            if single != 0:
                terms.append(100 * better / abs(single))
            floor = task["trivial"]
            room = ideal[name] - floor
            points.append(100 * (multi - floor) / room - 100 * (single - floor) / room)
        view = saved["views"]["multi_task"][kind]
        assert view["delta_m_percent"] == pytest.approx(sum(terms) / len(terms))
        assert view["delta_n_points"] == pytest.approx(sum(points) / len(points))
        assert len(view["delta_n_points_per_seed"]) == 2
    # The headline is against the baselines that cannot flatter multi-task training.
    assert saved["headline"] == {"model": "multi_task", "baseline": "converged"}
    converged = saved["views"]["multi_task"]["converged"]
    assert saved["delta_m_percent"] == converged["delta_m_percent"]
    assert saved["delta_n_points"] == converged["delta_n_points"]


def test_converged_baselines_stop_by_their_epochs_and_do_not_depend_on_the_multitask_budget(
    make_config, tmp_path, monkeypatch
):
    trained: list[list[str]] = []
    original = Trainer.train

    def counting_train(self: Trainer, resume: bool = False):
        trained.append([task.name for task in self.config.tasks])
        return original(self, resume)

    monkeypatch.setattr(Trainer, "train", counting_train)
    cache = tmp_path / "baselines"
    names = [task.name for task in make_config().tasks]
    plan = BaselinePlan(epochs=4, patience=1, max_epochs=4)

    comparison = compare(
        make_config(max_steps=12, eval_steps=None),
        tmp_path / "short",
        baseline_cache=cache,
        plan=plan,
    )

    assert trained == [names] + [[name] for name in names]
    assert list(comparison.runs[0].baselines) == ["converged"]
    for baseline in comparison.runs[0].baselines["converged"].values():
        summary = _read(baseline.folder / "train_summary.json")
        stored = _read(baseline.folder / "experiment_config.json")["training"]
        assert stored["eval_strategy"] == "epoch" and stored["early_stopping_patience"] == 1
        assert summary["planned_steps"] == 4 * summary["steps_per_epoch"]
        assert baseline.steps <= baseline.planned_steps and baseline.epochs <= 4
        assert baseline.stopped_early == (baseline.steps < baseline.planned_steps)
        # Early stopping ends a run at an epoch's end.
        assert baseline.steps % summary["steps_per_epoch"] == 0 or not baseline.stopped_early
    table = format_comparison(comparison)
    assert "single-task models trained to their best validation score (≤ 4 epochs, patience 1)" in (
        table
    )
    header = next(line for line in table.splitlines() if line.startswith("task "))
    assert header.split()[:4] == ["task", "metric", "trivial", "single-task"]

    trained.clear()
    compare(
        make_config(max_steps=16, eval_steps=None),
        tmp_path / "longer",
        baseline_cache=cache,
        plan=plan,
    )
    assert trained == [names]  # a longer multi-task run, the same converged baselines


def test_a_baseline_its_cap_ended_trains_again_longer_and_keeps_the_better_validating_run(
    make_config, tmp_path, monkeypatch
):
    caps: list[tuple[str, float]] = []
    original = Trainer.train

    def recording_train(self: Trainer, resume: bool = False):
        if len(self.config.tasks) == 1:
            caps.append((self.config.tasks[0].name, self.config.training.num_epochs))
        return original(self, resume)

    monkeypatch.setattr(Trainer, "train", recording_train)
    # One epoch, one validation: patience cannot end it, so only its cap can.
    plan = BaselinePlan(epochs=1, patience=1, max_epochs=3)

    comparison = compare(make_config(max_steps=6, eval_steps=None), tmp_path / "c", plan=plan)

    names = [task.name for task in make_config().tasks]
    assert caps == [(name, epochs) for name in names for epochs in (1.0, 3.0)]
    saved = _read(tmp_path / "c" / "comparison.json")
    assert saved["baseline"]["max_epochs"] == 3
    assert "(≤ 1 epochs, patience 1; 3 times the epochs, up to 3, while the cap" in (
        format_comparison(comparison)
    )
    for name, baseline in comparison.runs[0].baselines["converged"].items():
        short, long = baseline.budgets
        assert (short.epochs, long.epochs) == (1, 3) and not short.stopped_early
        kept = long if long.best_validation > short.best_validation else short
        assert baseline.folder == kept.folder
        assert baseline.epochs <= kept.epochs
        assert baseline.capped == (not long.stopped_early)
        said = any(
            note.startswith(f"{name}: its converged baseline was still improving")
            for note in comparison.notes
        )
        assert said == baseline.capped
        stored = saved["runs"][0]["baselines"]["converged"][name]["budgets"]
        assert [budget["epochs"] for budget in stored] == [1, 3]


def test_baselines_are_reused_while_the_budget_per_task_is_the_same(
    make_config, tmp_path, monkeypatch, capsys
):
    trained: list[list[str]] = []
    resumed: list[bool] = []
    original = Trainer.train

    def counting_train(self: Trainer, resume: bool = False):
        trained.append([task.name for task in self.config.tasks])
        resumed.append(resume)
        return original(self, resume)

    monkeypatch.setattr(Trainer, "train", counting_train)
    cache = tmp_path / "baselines"
    # No intermediate validations: the baselines then depend on the examples alone.
    config = make_config(max_steps=12, eval_steps=None, save_steps=6)
    names = [task.name for task in config.tasks]

    equal = BaselinePlan("equal_examples")
    hard = compare(config, tmp_path / "hard", baseline_cache=cache, plan=equal)
    assert trained == [names] + [[name] for name in names]
    assert not any(resumed)

    trained.clear()
    compare(config, tmp_path / "hard", baseline_cache=cache, plan=equal)
    assert trained == []  # a finished multi-task run and cached baselines: nothing to train

    # A run killed before its summary resumes from its checkpoint; the baselines stay cached.
    (hard.runs[0].multitask / "train_summary.json").unlink()
    compare(config, tmp_path / "hard", baseline_cache=cache, plan=equal)
    assert trained == [names] and resumed[-1]
    trained.clear()

    capsys.readouterr()
    soft = compare(
        _variant(config, sharing={"kind": "soft"}),
        tmp_path / "soft",
        baseline_cache=cache,
        plan=equal,
    )
    assert trained == [names]
    assert "cached" in capsys.readouterr().out

    def examples(comparison) -> dict[str, int]:
        summary = _read(comparison.runs[0].multitask / "train_summary.json")
        return summary["examples_per_task"]

    assert examples(soft) == examples(hard)
    soft_baselines = soft.runs[0].baselines["equal_examples"]
    assert all(run.cached for run in soft_baselines.values())
    assert {n: b.folder for n, b in soft_baselines.items()} == {
        n: b.folder for n, b in hard.runs[0].baselines["equal_examples"].items()
    }

    trained.clear()
    longer = compare(
        make_config(max_steps=16, eval_steps=None),
        tmp_path / "longer",
        baseline_cache=cache,
        plan=equal,
    )
    changed = [name for name in names if examples(longer)[name] != examples(hard)[name]]
    assert changed
    assert trained == [names] + [[name] for name in changed]


def test_tasks_a_model_did_not_learn_get_words_instead_of_transfer(make_config, tmp_path):
    config = make_config()
    trivial = {
        "sentiment": ("accuracy", 0.50),
        "score": ("mse", 1.00),
        "tagging": ("accuracy", 0.40),
    }
    single = {
        "sentiment": ("accuracy", 0.505),
        "score": ("mse", 0.40),
        "tagging": ("accuracy", 0.41),
    }
    multi = {"sentiment": ("accuracy", 0.49), "score": ("mse", 0.50), "tagging": ("accuracy", 0.70)}
    runs = _fake_runs(tmp_path, single, multi, trivial)

    comparison = summarise(config, runs, BaselinePlan())

    against = {task.task: task.against["multi_task"]["converged"] for task in comparison.tasks}
    # sentiment: 1 and −2 points, neither above 2; tagging: 1.7 points against 50.
    assert against["sentiment"].transfer == "not learned (neither model beats trivial)"
    assert len(against["sentiment"].advice) == 1 and "no advice" in against["sentiment"].advice[0]
    assert against["score"].transfer == "negative transfer" and len(against["score"].advice) > 1
    assert against["tagging"].transfer == "learned only by multi-task"
    assert not against["tagging"].negative_transfer and not against["tagging"].advice
    # Normalised scores (trivial 0, ideal 100): sentiment 1 -> -2; mse (trivial 1, ideal 0)
    # 0.40 -> 60 and 0.50 -> 50; tagging (trivial 0.4) 0.41 -> 1.67 and 0.70 -> 50.
    expected = (-3.0 - 10.0 + (50.0 - 100 * 0.01 / 0.6)) / 3
    assert comparison.headline.delta_n.value == pytest.approx(expected)
    assert against["score"].normalised_change == pytest.approx(-10.0)
    table = format_comparison(comparison)
    assert "learned: " in table and "normalised score above 2" in table
    assert "- sentiment: not learned (neither model beats trivial) on accuracy" in table
    assert "- tagging:" not in table
    write_comparison(comparison, tmp_path / "report")
    saved = _read(tmp_path / "report" / "comparison.json")
    assert saved["delta_n_points"] == pytest.approx(expected)
    assert saved["tasks"]["tagging"]["scores"]["converged"]["learned"] is False
    assert saved["tasks"]["tagging"]["scores"]["multi_task"]["learned"] is True
    # Its baseline stopped at 24 of 80 steps without learning the task: patience ran out.
    assert any(
        note.startswith("tagging: its converged baseline stopped early") for note in saved["notes"]
    )

    # The multi-task model at 1 point of mse where its baseline is at 60.
    _write(runs[0].multitask / "eval_results.json", _results({**multi, "score": ("mse", 0.99)}))
    score = summarise(config, runs, BaselinePlan()).tasks[1].against["multi_task"]["converged"]
    assert score.transfer == "learned only by single-task"
    assert score.negative_transfer and any("weigh" in line for line in score.advice)


def test_a_run_without_trivial_results_has_no_trivial_column_values_or_delta_n(
    make_config, tmp_path
):
    scores = {
        "sentiment": ("accuracy", 0.8),
        "score": ("pearson", 0.5),
        "tagging": ("accuracy", 0.9),
    }
    runs = _fake_runs(tmp_path, scores, scores, trivial=None)

    comparison = summarise(make_config(), runs, BaselinePlan())

    assert comparison.headline.delta_n.value is None
    assert comparison.headline.delta_m.value == pytest.approx(0.0)
    assert all(t.against["multi_task"]["converged"].transfer == "none" for t in comparison.tasks)
    assert any("no trivial_results.json" in note for note in comparison.notes)
    assert "Δn = n/a" in format_comparison(comparison)


@pytest.mark.parametrize(
    ("validations", "noted"),
    [([0.5, 0.6], True), ([0.6, 0.5], False), ([0.6, 0.6], False), ([0.6], False)],
)
def test_a_multi_task_model_still_improving_at_its_last_validation_is_noted(
    make_config, tmp_path, validations, noted
):
    scores = {"sentiment": ("accuracy", 0.8), "score": ("pearson", 0.5)}
    runs = _fake_runs(tmp_path, scores, scores, trivial=None)
    rows = [{"step": 10, "loss": 1.0}, {"step": 10, "eval": {"aggregate": 0.9, "split": "test"}}]
    rows += [
        {"step": 10 * (i + 1), "eval": {"aggregate": score, "split": "validation"}}
        for i, score in enumerate(validations)
    ]
    log = "".join(json.dumps(row) + "\n" for row in rows)
    (runs[0].multitask / "metrics.jsonl").write_text(log, encoding="utf-8")

    comparison = summarise(make_config(), runs, BaselinePlan())

    said = [note for note in comparison.notes if "last validation was its best" in note]
    assert said == (
        [
            "the multi-task model's last validation was its best (seed 1): its budget, "
            "not early stopping, ended it, and a longer one may change the answer"
        ]
        if noted
        else []
    )


def test_a_fine_tuned_model_is_a_column_of_its_own_with_its_cost(make_config, tmp_path):
    trivial = {
        "sentiment": ("accuracy", 0.5),
        "score": ("pearson", 0.0),
        "tagging": ("accuracy", 0.4),
    }
    single = {
        "sentiment": ("accuracy", 0.8),
        "score": ("pearson", 0.5),
        "tagging": ("accuracy", 0.41),
    }
    multi = {
        "sentiment": ("accuracy", 0.7),
        "score": ("pearson", 0.6),
        "tagging": ("accuracy", 0.7),
    }
    tuned = {
        "sentiment": ("accuracy", 0.9),
        "score": ("pearson", 0.4),
        "tagging": ("accuracy", 0.76),
    }
    runs = _fake_runs(tmp_path, single, multi, trivial)
    multitask = runs[0].multitask
    _write(
        multitask / "train_summary.json",
        {"train_seconds": 10.0, "model": {"total_parameters": 1000}},
    )
    _write(multitask / "finetuned" / "eval_results.json", _results(tuned))
    _write(
        multitask / "finetuned" / "train_summary.json",
        {"train_seconds": 6.0, "model": {"total_parameters": 3000}},
    )

    comparison = summarise(make_config(), runs, BaselinePlan())
    write_comparison(comparison, tmp_path / "report")

    saved = _read(tmp_path / "report" / "comparison.json")
    view = saved["views"]["finetuned"]["converged"]
    # Against the single-task scores 0.8, 0.5, 0.41 (trivial 0.5, 0, 0.4; ideal 1):
    assert view["delta_m_percent"] == pytest.approx((12.5 - 20.0 + 100 * 0.35 / 0.41) / 3)
    assert view["delta_n_points"] == pytest.approx((20.0 - 10.0 + (60.0 - 100 * 0.01 / 0.6)) / 3)
    # The multi-task model's own view is still the headline.
    assert saved["headline"] == {"model": "multi_task", "baseline": "converged"}
    assert saved["delta_m_percent"] == pytest.approx((-12.5 + 20.0 + 100 * 0.29 / 0.41) / 3)
    tuned_against = {t: saved["tasks"][t]["against"]["finetuned"]["converged"] for t in tuned}
    assert tuned_against["sentiment"]["transfer"] == "positive"
    assert tuned_against["score"]["transfer"] == "negative transfer"
    assert tuned_against["score"]["advice"] == []  # advice is about the multi-task config
    assert tuned_against["tagging"]["transfer"] == "learned only by multi-task + fine-tune"
    assert saved["costs"] == {
        "converged": {"train_seconds": 4.5, "train_seconds_per_seed": [4.5], "parameters": 1500},
        "multi_task": {"train_seconds": 10.0, "train_seconds_per_seed": [10.0], "parameters": 1000},
        "finetuned": {"train_seconds": 16.0, "train_seconds_per_seed": [16.0], "parameters": 3000},
    }
    table = format_comparison(comparison)
    assert "multi-task + fine-tune against single-task" in table
    score_header = next(line for line in table.splitlines() if line.startswith("task "))
    assert score_header.split("  ")[-1].strip() == "multi-task + fine-tune"
    assert "16.0 s" in table and "3,000" in table
    markdown = (tmp_path / "report" / "comparison.md").read_text()
    assert "| multi-task + fine-tune | 16.0 s | 3,000 |" in markdown


def test_a_two_stage_run_gets_its_fine_tuned_column_end_to_end(make_config, tmp_path):
    config = make_config(max_steps=12, eval_steps=None, finetune={"num_epochs": 1})
    plan = BaselinePlan(epochs=2, patience=1, max_epochs=2)

    comparison = compare(config, tmp_path / "compare", baseline_cache=tmp_path / "cache", plan=plan)

    assert comparison.columns == ["converged", "multi_task", "finetuned"]
    assert [(v.model, v.baseline) for v in comparison.views] == [
        ("multi_task", "converged"),
        ("finetuned", "converged"),
    ]
    tuned = _read(comparison.runs[0].finetuned / "eval_results.json")["tasks"]
    for task in comparison.tasks:
        assert task.scores["finetuned"] == [tuned[task.task][task.metric]]
    costs = comparison.costs
    assert costs["finetuned"].train_seconds[0] > costs["multi_task"].train_seconds[0] > 0
    assert costs["finetuned"].parameters > costs["multi_task"].parameters
    assert costs["converged"].parameters > costs["multi_task"].parameters  # three backbones
    for baseline in comparison.runs[0].baselines["converged"].values():
        assert _read(baseline.folder / "experiment_config.json")["training"]["finetune"] is None
    assert "multi-task + fine-tune against single-task" in format_comparison(comparison)


def test_a_multi_task_run_whose_fine_tuning_did_not_finish_is_fine_tuned_again(
    make_config, tmp_path, capsys
):
    config = make_config(max_steps=8, eval_steps=None, finetune={"num_epochs": 1})
    plan = BaselinePlan("equal_examples")
    first = compare(config, tmp_path / "compare", baseline_cache=tmp_path / "cache", plan=plan)
    # As a run killed before its fine-tuning finished leaves it.
    (first.runs[0].finetuned / "train_summary.json").unlink()
    capsys.readouterr()

    again = compare(config, tmp_path / "compare", baseline_cache=tmp_path / "cache", plan=plan)

    printed = capsys.readouterr().out
    assert "mtlm compare: multi-task seed 42: resuming in " in printed
    assert "after its multi-task stage: fine-tuning each task" in printed
    assert "of 192 examples" not in printed  # the multi-task stage is not trained again
    assert again.columns == ["equal_examples", "multi_task", "finetuned"]
    for before, after in zip(first.tasks, again.tasks, strict=True):
        assert after.scores == before.scores
