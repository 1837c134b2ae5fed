"""The `mtlm` command: sub-commands, one-line errors with exit status 2, evaluate and predict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import snapshot

from mtlm import Trainer
from mtlm.cli import main

TASKS = {"sentiment", "score", "tagging"}


def write_yaml(raw: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def one_line_error(stderr: str) -> str:
    """The single line the CLI printed for a user mistake, checked to be only that."""
    assert stderr.count("\n") == 1 and stderr.startswith("mtlm: error: "), stderr
    assert "Traceback" not in stderr
    return stderr


@pytest.fixture
def run(make_config, tmp_path) -> Path:
    """A run directory trained for a few steps."""
    config = make_config(max_steps=4, eval_steps=None, output_dir=str(tmp_path / "trained"))
    Trainer(config).train()
    return tmp_path / "trained"


@pytest.fixture
def rows_file(tmp_path) -> Path:
    """Rows to predict that have only a `text` field."""
    rows = [{"text": "the movie was great"}, {"text": "a dull plot"}, {"text": "lovely"}]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    listed = capsys.readouterr().out
    for command in (
        "train",
        "evaluate",
        "predict",
        "export",
        "compare",
        "affinity",
        "report",
        "demo",
    ):
        assert f"    {command} " in listed


def test_unknown_config_key_exits_2_with_one_line_naming_the_key(make_config, tmp_path):
    raw = make_config().model_dump(mode="json")
    raw["training"]["learning_rat"] = 0.1
    config_file = write_yaml(raw, tmp_path / "typo.yaml")
    # The installed console script, in a process of its own: the real exit status.
    mtlm = Path(sys.executable).with_name("mtlm")
    process = subprocess.run(
        [str(mtlm), "train", str(config_file)], capture_output=True, text=True, timeout=300
    )
    assert process.returncode == 2
    error = one_line_error(process.stderr)
    assert str(config_file) in error and "training.learning_rat" in error
    assert "did you mean 'learning_rate'" in error
    assert process.stdout == ""
    assert not Path(raw["training"]["output_dir"]).exists()


def test_bad_data_exits_2_naming_file_and_line(make_config, task_files, tmp_path, capsys):
    train_file = task_files["sentiment"]["train"]
    lines = train_file.read_text(encoding="utf-8").splitlines(keepends=True)
    row = json.loads(lines[2])
    row["score"] = "abc"
    lines[2] = json.dumps(row) + "\n"
    train_file.write_text("".join(lines), encoding="utf-8")
    raw = make_config().model_dump(mode="json")
    config_file = write_yaml(raw, tmp_path / "config.yaml")

    assert main(["train", str(config_file)]) == 2
    error = one_line_error(capsys.readouterr().err)
    assert f"{train_file}, line 3" in error and "'abc'" in error
    assert not Path(raw["training"]["output_dir"]).exists()


def test_evaluate_prints_a_table_and_writes_the_fixed_schema(run, capsys):
    training_results = (run / "eval_results.json").read_bytes()

    assert main(["evaluate", "--model", str(run), "--split", "test"]) == 0
    printed = capsys.readouterr().out
    assert "scores on the test split" in printed
    table = printed.splitlines()
    assert any(line.startswith("aggregate") for line in table)
    assert all(any(line.startswith(task) for line in table) for task in TASKS)
    assert table[-1] == f"results: {run / 'eval_results.test.json'}"

    results = json.loads((run / "eval_results.test.json").read_text())
    assert set(results) == {"tasks", "aggregate", "split"}
    assert results["split"] == "test" and isinstance(results["aggregate"], float)
    assert set(results["tasks"]) == TASKS
    for metrics in results["tasks"].values():
        assert isinstance(metrics[metrics["primary"]], float)
    # The saved model scores exactly as the trained one did at the end of training, whose
    # results stay as they were.
    assert results == json.loads(training_results)
    assert (run / "eval_results.json").read_bytes() == training_results


def test_evaluate_on_another_split_keeps_the_training_results(run, tmp_path, capsys):
    training_results = (run / "eval_results.json").read_bytes()
    assert main(["evaluate", "--model", str(run), "--split", "validation"]) == 0
    assert json.loads((run / "eval_results.validation.json").read_text())["split"] == "validation"
    assert (run / "eval_results.json").read_bytes() == training_results

    named = tmp_path / "scores" / "validation.json"
    arguments = ["evaluate", "--model", str(run), "--split", "validation", "--output", str(named)]
    assert main(arguments) == 0
    first = named.read_bytes()
    assert main(arguments) == 0  # an earlier results file of mtlm is replaced
    assert named.read_bytes() == first and json.loads(first)["split"] == "validation"
    assert (run / "eval_results.json").read_bytes() == training_results


def test_evaluate_does_not_overwrite_a_file_it_did_not_write(run, tmp_path, capsys):
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": true}\n')
    before = sorted(path.name for path in run.iterdir())
    assert main(["evaluate", "--model", str(run), "--split", "test", "--output", str(notes)]) == 2
    error = one_line_error(capsys.readouterr().err)
    assert error.startswith(f"mtlm: error: --output: {notes} exists and is not a results file")
    assert notes.read_text() == '{"mine": true}\n'
    assert sorted(path.name for path in run.iterdir()) == before


def test_evaluate_on_a_split_no_task_has_exits_2(run, capsys):
    assert main(["evaluate", "--model", str(run), "--split", "nosuch"]) == 2
    assert "--split" in one_line_error(capsys.readouterr().err)


def test_predict_one_task_writes_a_line_per_row(run, rows_file, tmp_path):
    output = tmp_path / "out.jsonl"
    arguments = ["--model", str(run), "--input", str(rows_file), "--output", str(output)]
    assert main(["predict", "--task", "sentiment", *arguments]) == 0
    lines = read_jsonl(output)
    assert len(lines) == 3
    for line in lines:
        assert set(line) == {"sentiment"}
        prediction = line["sentiment"]
        assert prediction["label"] in ("neg", "pos")
        assert set(prediction["probabilities"]) == {"neg", "pos"}
        assert (
            max(prediction["probabilities"], key=prediction["probabilities"].get)
            == (prediction["label"])
        )


def test_predict_replaces_its_own_earlier_predictions(run, rows_file, tmp_path):
    output = tmp_path / "out.jsonl"
    arguments = ["--model", str(run), "--input", str(rows_file), "--output", str(output)]
    assert main(["predict", "--task", "sentiment", *arguments]) == 0
    assert main(["predict", "--task", "all", *arguments]) == 0
    assert all(set(line) == {"sentiment", "score"} for line in read_jsonl(output))


def test_predict_all_runs_every_task_whose_inputs_the_rows_have(run, rows_file, capsys):
    assert main(["predict", "--model", str(run), "--task", "all", "--input", str(rows_file)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3
    assert all(set(line) == {"sentiment", "score"} for line in lines)
    assert all(isinstance(line["score"]["score"], float) for line in lines)


def test_predict_unknown_task_exits_2(run, rows_file, tmp_path, capsys):
    output = tmp_path / "out.jsonl"
    arguments = ["--input", str(rows_file), "--output", str(output)]
    assert main(["predict", "--model", str(run), "--task", "sentimnet", *arguments]) == 2
    error = one_line_error(capsys.readouterr().err)
    assert "'sentimnet'" in error and "sentiment" in error
    assert not output.exists()


def test_report_rewrites_the_run_report_and_prints_its_path(run, capsys):
    (run / "report.md").unlink()
    assert main(["report", str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(run / "report.md")
    assert "plots/loss.png" in (run / "report.md").read_text()


def test_report_of_a_folder_without_a_run_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert str(tmp_path) in one_line_error(capsys.readouterr().err)


def test_compare_with_no_seeds_exits_2_naming_the_flag(make_config, tmp_path, capsys):
    config = write_yaml(make_config().model_dump(mode="json"), tmp_path / "exp.yaml")
    assert main(["compare", str(config), "--seeds", "0"]) == 2
    assert "--seeds" in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "run-compare").exists()


def test_compare_with_no_baseline_epochs_exits_2_naming_the_flag(make_config, tmp_path, capsys):
    config = write_yaml(make_config().model_dump(mode="json"), tmp_path / "exp.yaml")
    assert main(["compare", str(config), "--baseline-epochs", "0"]) == 2
    assert "--baseline-epochs" in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "run-compare").exists()


def test_compare_prints_only_paths_that_remain(make_config, tmp_path, capsys):
    config = make_config(max_steps=4, eval_steps=None)
    config_file = write_yaml(config.model_dump(mode="json"), tmp_path / "exp.yaml")
    output = tmp_path / "compare"
    arguments = ["compare", str(config_file), "--baseline", "equal_examples"]
    arguments += ["--output-dir", str(output), "--baseline-cache", str(tmp_path / "cache")]
    assert main(arguments) == 0
    printed = capsys.readouterr().out.splitlines()
    paths = [line.split(": ", 1)[1] for line in printed if line.startswith(("model: ", "report: "))]
    assert paths == [str(output / "comparison.md")]
    assert all(Path(path).exists() for path in paths)


def test_compare_into_the_folder_of_another_configs_stopped_run_exits_2(
    make_config, tmp_path, capsys
):
    output = tmp_path / "compare"
    stopped = output / "multitask" / "seed-42"
    stopped.mkdir(parents=True)
    other = make_config(learning_rate=0.01, output_dir=str(stopped))
    (stopped / "experiment_config.json").write_text(other.to_json())
    (stopped / "metrics.jsonl").write_text('{"step": 5}\n')
    config = write_yaml(make_config().model_dump(mode="json"), tmp_path / "exp.yaml")
    before = snapshot(tmp_path)
    assert main(["compare", str(config), "--output-dir", str(output)]) == 2
    assert one_line_error(capsys.readouterr().err) == (
        f"mtlm: error: --output-dir: {output} holds a comparison of another config ({stopped} "
        "was not trained from this one); choose another --output-dir\n"
    )
    assert snapshot(tmp_path) == before


def test_affinity_prints_both_matrices_and_writes_them(make_config, tmp_path, capsys):
    config = write_yaml(make_config().model_dump(mode="json"), tmp_path / "exp.yaml")
    out = tmp_path / "affinity"
    assert (
        main(["affinity", str(config), "--steps", "2", "--groups", "2", "--output-dir", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert all(task in printed for task in TASKS)
    written = json.loads((out / "affinity.json").read_text())
    for matrix in ("gradient_affinity", "lookahead_affinity"):
        assert set(written[matrix]) == TASKS
    assert (out / "lookahead_affinity.png").stat().st_size > 1000


def test_affinity_with_more_groups_than_tasks_exits_2_before_training(
    make_config, tmp_path, capsys
):
    config = write_yaml(make_config().model_dump(mode="json"), tmp_path / "exp.yaml")
    out = tmp_path / "affinity"
    assert main(["affinity", str(config), "--groups", "4", "--output-dir", str(out)]) == 2
    assert "--groups" in one_line_error(capsys.readouterr().err)
    assert not out.exists()


def test_export_writes_a_model_transformers_loads(run, tmp_path, capsys):
    from transformers import AutoModelForTokenClassification

    out = tmp_path / "tagging-export"
    assert main(["export", "--model", str(run), "--task", "tagging", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    exported = AutoModelForTokenClassification.from_pretrained(out)
    assert set(exported.config.label2id) == {"CC", "DT", "JJ", "NN", "PRP", "RB", "VB"}


def test_export_of_an_unknown_task_exits_2(run, tmp_path, capsys):
    out = tmp_path / "nothing"
    assert main(["export", "--model", str(run), "--task", "nope", "--out", str(out)]) == 2
    assert "--task" in one_line_error(capsys.readouterr().err)
    assert not out.exists()


def test_export_into_a_folder_of_the_users_files_exits_2_and_deletes_nothing(run, tmp_path, capsys):
    out = tmp_path / "documents"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    before = snapshot(tmp_path)
    assert main(["export", "--model", str(run), "--task", "sentiment", "--out", str(out)]) == 2
    error = one_line_error(capsys.readouterr().err)
    assert error.startswith(f"mtlm: error: --out: {out} already holds files (thesis.tex)")
    assert snapshot(tmp_path) == before


def test_export_again_replaces_the_earlier_export(run, tmp_path, capsys):
    out = tmp_path / "export"
    for task in ("tagging", "sentiment"):
        assert main(["export", "--model", str(run), "--task", task, "--out", str(out)]) == 0
    assert json.loads((out / "mtlm_export.json").read_text())["task"] == "sentiment"
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "neg", "1": "pos"}


# --- the output folder of a training ------------------------------------------------------------
def train_config(make_config, tmp_path: Path, output_dir: Path, **training) -> Path:
    config = make_config(max_steps=2, eval_steps=None, output_dir=str(output_dir), **training)
    return write_yaml(config.model_dump(mode="json"), tmp_path / "train.yaml")


def test_overwrite_output_dir_on_a_folder_of_the_users_files_exits_2_and_deletes_nothing(
    make_config, tmp_path, capsys
):
    folder = tmp_path / "documents"
    (folder / "photos").mkdir(parents=True)
    (folder / "thesis.tex").write_text("years of work")
    config = train_config(make_config, tmp_path, folder, overwrite_output_dir=True)
    before = snapshot(tmp_path)
    assert main(["train", str(config)]) == 2
    assert one_line_error(capsys.readouterr().err) == (
        f"mtlm: error: training.output_dir: {folder} holds files that are not an mtlm run "
        "(photos, thesis.tex, no experiment_config.json); mtlm will not replace it: choose "
        "another folder\n"
    )
    assert snapshot(tmp_path) == before


def test_overwrite_output_dir_replaces_an_earlier_run_but_not_the_users_files_in_it(
    make_config, tmp_path, capsys
):
    folder = tmp_path / "run"
    config = train_config(make_config, tmp_path, folder, overwrite_output_dir=True)
    assert main(["train", str(config)]) == 0
    first = (folder / "metrics.jsonl").stat().st_mtime_ns
    assert main(["train", str(config)]) == 0  # an earlier run is replaced
    assert (folder / "metrics.jsonl").stat().st_mtime_ns != first

    (folder / "notes.txt").write_text("what I tried")
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert main(["train", str(config)]) == 2
    error = one_line_error(capsys.readouterr().err)
    assert error.startswith(
        f"mtlm: error: training.output_dir: {folder} holds an mtlm run and files that no run "
        "writes (notes.txt); mtlm will not replace it"
    )
    assert snapshot(tmp_path) == before


def test_an_output_dir_under_a_regular_file_exits_2_before_reading_data(
    make_config, tmp_path, capsys
):
    blocker = tmp_path / "results.txt"
    blocker.write_text("a file")
    config = train_config(make_config, tmp_path, blocker / "run")
    before = snapshot(tmp_path)
    assert main(["train", str(config)]) == 2
    assert one_line_error(capsys.readouterr().err) == (
        f"mtlm: error: training.output_dir: {blocker / 'run'} cannot be a folder: {blocker} "
        "is a file\n"
    )
    assert snapshot(tmp_path) == before


def test_an_output_dir_on_a_read_only_file_system_exits_2(make_config, tmp_path, capsys):
    import os

    from mtlm import outputs

    class ReadOnly:
        f_flag = os.ST_RDONLY

    config = train_config(make_config, tmp_path, tmp_path / "run")
    # No read-only mount is at hand in a test; the file system's flag is what mtlm reads.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(outputs.os, "statvfs", lambda path: ReadOnly())
        assert main(["train", str(config), "--output-dir", str(tmp_path / "out")]) == 2
    assert one_line_error(capsys.readouterr().err) == (
        f"mtlm: error: --output-dir: {tmp_path / 'out'} cannot be written: {tmp_path} is on a "
        "read-only file system\n"
    )
    assert not (tmp_path / "out").exists()
