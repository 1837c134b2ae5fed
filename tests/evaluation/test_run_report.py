"""The run report: training ends with report.md and real PNGs; it follows the step mode, skips
plots without data, and works on a run that is still training."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import three_task_config, write_task_files
from matplotlib.image import imread

from mtlm import Trainer
from mtlm.errors import ConfigError
from mtlm.evaluation import run_report
from mtlm.evaluation.run_report import write_report

TASKS = ("sentiment", "score", "tagging")


@pytest.fixture(scope="module")
def trained_run(tiny_model_dir, tmp_path_factory):
    """One short sampled-mode run of the three tiny tasks, shared by the tests that read it."""
    root = tmp_path_factory.mktemp("report")
    config = three_task_config(
        tiny_model_dir, write_task_files(root), root, max_steps=20, logging_steps=4, eval_steps=10
    )
    Trainer(config).train()
    return root / "run"


def embedded(report: str) -> set[str]:
    """The image paths that report.md embeds."""
    return set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report))


def assert_real_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(path)
    colours = np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)
    assert len(colours) > 2, f"{path.name} is blank"


def test_training_ends_with_a_report_of_real_plots_and_the_final_scores(trained_run):
    pngs = {p.name for p in (trained_run / "plots").iterdir()}
    # Sampled steps with hard sharing log no gradient cosines and no sharing penalty.
    assert pngs == {"loss.png", "validation.png", "balance.png"}
    for name in pngs:
        assert_real_png(trained_run / "plots" / name)
    report = (trained_run / "report.md").read_text()
    assert embedded(report) == {f"plots/{name}" for name in pngs}
    assert f"# Run report: {trained_run}" in report
    assert "![Sampling probabilities (sampler proportional)](plots/balance.png)" in report
    summary = json.loads((trained_run / "train_summary.json").read_text())
    assert f"Steps: 20 ({summary['epochs']:g} epochs" in report
    assert f"at step {summary['best_step']}" in report
    assert "Step mode: sampled, sampler proportional" in report
    final = json.loads((trained_run / "eval_results.json").read_text())
    assert "## Final results (test split)" in report
    for task in TASKS:
        metrics = final["tasks"][task]
        primary = metrics["primary"]
        assert f"| {task} | {primary} | {metrics[primary]:.4f} |" in report
    assert "not there yet" not in report


def test_joint_mode_with_a_learned_balancer_draws_the_task_weights(make_config, monkeypatch):
    config = make_config(
        step_mode="joint", balancer={"kind": "uncertainty"}, max_steps=10, eval_steps=None
    )
    Trainer(config).train()
    run = Path(config.training.output_dir)
    drawn = {}
    monkeypatch.setattr(
        run_report, "save_figure", lambda figure, path: drawn.setdefault(path.name, figure)
    )
    report = write_report(run).read_text()
    assert "![Task weights (balancer uncertainty)](plots/balance.png)" in report
    assert "Step mode: joint, balancer uncertainty" in report
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    weights = [row["task_weights"] for row in rows if "losses" in row]
    lines = {
        line.get_label(): list(line.get_ydata()) for line in drawn["balance.png"].axes[0].lines
    }
    assert lines == {task: [row[task] for row in weights] for task in TASKS}
    # The learned weights move away from where they start.
    assert len({row["sentiment"] for row in weights}) > 1


def test_a_run_still_training_gets_plots_of_what_it_logged_so_far(trained_run, tmp_path):
    shutil.copy(trained_run / "experiment_config.json", tmp_path)
    rows = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    with open(tmp_path / "metrics.jsonl", "w") as log:
        for row in rows:
            if "losses" in row:  # no validation yet
                row["gradient_cosine"] = {"sentiment|score": 0.5, "sentiment|tagging": -0.25}
                row["sharing"] = {"penalty": 1e-3 * row["step"], "distance": 0.1 * row["step"]}
                log.write(json.dumps(row) + "\n")
        log.write('{"step": 99, "losses": {"sent')  # a row being written
    report = write_report(tmp_path).read_text()
    assert "Final results are not there yet" in report
    last = max(row["step"] for row in rows if "losses" in row)
    assert f"Steps: {last} logged so far" in report
    pngs = {p.name for p in (tmp_path / "plots").iterdir()}
    assert pngs == {"loss.png", "balance.png", "gradient_cosine.png", "sharing.png"}
    assert embedded(report) == {f"plots/{name}" for name in pngs}
    for name in pngs:
        assert_real_png(tmp_path / "plots" / name)


def test_a_folder_without_metrics_is_not_a_run(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path}: no metrics.jsonl")):
        write_report(tmp_path)
    assert not (tmp_path / "report.md").exists()
