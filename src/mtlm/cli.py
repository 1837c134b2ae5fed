"""The `mtlm` command: train, evaluate, predict, export, compare, affinity, report and demo.

User mistakes (ConfigError, DataError) print one line and exit with status 2; bugs exit 1
with their traceback. A command that reads a config validates it before it imports torch or
transformers, so that a mistake in it shows at once.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from mtlm.errors import ConfigError, DataError, MtlmError

if TYPE_CHECKING:
    from mtlm.config import ExperimentConfig
    from mtlm.data.rows import SplitRows


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `mtlm` command."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        return args.handler(args)
    except MtlmError as error:
        print(f"mtlm: error: {error}", file=sys.stderr)
        return 2


def _quiet_library_progress_bars() -> None:
    """Keep the terminal for mtlm's own progress bar and tables (this imports datasets and
    transformers: seconds)."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


class _OneLineParser(argparse.ArgumentParser):
    """Command-line mistakes print one line, as every other user mistake does (argparse's own
    error prints the whole usage first): they are ConfigErrors, so `main` returns 2."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message} (see {self.prog} --help)")


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _positive_number(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="mtlm", description="Multi-task fine-tuning of transformer language models."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train the tasks of a YAML config together")
    train.add_argument("config", help="experiment YAML file")
    train.add_argument("--output-dir", help="overrides training.output_dir")
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="per-task metrics of a trained model")
    evaluate.add_argument("--model", required=True, help="run directory or its model/ folder")
    evaluate.add_argument("--split", default="test", help="split to score (default: test)")
    evaluate.add_argument(
        "--output",
        help="JSON file to write (default: eval_results.SPLIT.json in the --model folder; "
        "the training's own eval_results.json is never replaced)",
    )
    _add_device_flags(evaluate, device_map=True)
    evaluate.set_defaults(handler=_evaluate)

    predict = commands.add_parser("predict", help="predictions for the rows of a JSONL file")
    predict.add_argument("--model", required=True, help="run directory or its model/ folder")
    predict.add_argument("--task", required=True, help="a task name, or 'all'")
    predict.add_argument("--input", required=True, help="JSONL file, one row per line")
    predict.add_argument("--output", help="JSONL file to write (default: standard output)")
    predict.add_argument("--batch-size", type=_whole_number(1), default=32)
    _add_device_flags(predict, device_map=True)
    predict.set_defaults(handler=_predict)

    export = commands.add_parser(
        "export", help="one task as a plain Hugging Face model that transformers loads"
    )
    export.add_argument("--model", required=True, help="run directory or its model/ folder")
    export.add_argument("--task", required=True, help="the task to export")
    export.add_argument("--out", required=True, help="folder to write")
    _add_device_flags(export, device_map=False)
    export.set_defaults(handler=_export)

    push = commands.add_parser(
        "push", help="upload a trained model or an exported task to the Hugging Face Hub"
    )
    push.add_argument("--model", required=True, help="run directory, model/ or export folder")
    push.add_argument("--repo", required=True, help="Hub repository, e.g. user/my-model")
    push.add_argument("--private", action="store_true", help="create the repository private")
    push.add_argument("--revision", help="branch to commit to (default: main)")
    push.add_argument("--token", help="Hub token (default: the logged-in one, or HF_TOKEN)")
    push.set_defaults(handler=_push)

    compare = commands.add_parser(
        "compare", help="each task: multi-task score against single-task models of it"
    )
    compare.add_argument("config", help="experiment YAML file")
    compare.add_argument(
        "--seeds",
        type=_whole_number(1),
        default=1,
        help="seeds from training.seed on; 3 or more to test noise",
    )
    compare.add_argument(
        "--baseline",
        choices=["converged", "equal_examples", "both"],
        default="converged",
        help="single-task models trained to their best validation score (converged, default), "
        "on as many examples as the multi-task run gave the task (equal_examples), or both",
    )
    compare.add_argument(
        "--baseline-epochs",
        type=_whole_number(1),
        default=10,
        help="converged baselines: the first run's epochs (10)",
    )
    compare.add_argument(
        "--baseline-max-epochs",
        type=_whole_number(1),
        default=30,
        help="converged baselines: while the epoch cap, not early stopping, ends a run, train "
        "again with 3 times the epochs, up to this many, and keep the best on validation (30)",
    )
    compare.add_argument(
        "--baseline-patience",
        type=_whole_number(1),
        default=2,
        help="converged baselines: stop after this many epochs without improvement (2)",
    )
    compare.add_argument("--output-dir", help="default: <training.output_dir>-compare")
    compare.add_argument("--baseline-cache", help="default: <mtlm cache>/baselines")
    compare.set_defaults(handler=_compare)

    plan = commands.add_parser(
        "plan", help="train candidate models and serve each task with its best on validation"
    )
    plan.add_argument("config", help="experiment YAML file (its training section is the budget)")
    plan.add_argument(
        "--groups",
        type=_whole_number(0),
        default=2,
        help="groups to propose by affinity (0: none; default 2)",
    )
    plan.add_argument(
        "--affinity-steps", type=_whole_number(1), default=60, help="joint steps measured (60)"
    )
    plan.add_argument(
        "--sharing",
        nargs="+",
        default=[],
        metavar="KIND",
        help="other sharing kinds to try for the model of all tasks (hard, soft, lora; "
        "default: the config's only)",
    )
    plan.add_argument("--output-dir", help="default: <training.output_dir>-plan")
    plan.set_defaults(handler=_plan)

    affinity = commands.add_parser(
        "affinity", help="which tasks help each other, and how to group them"
    )
    affinity.add_argument("config", help="experiment YAML file")
    affinity.add_argument(
        "--steps", type=_whole_number(1), default=100, help="joint training steps (100)"
    )
    affinity.add_argument(
        "--every", type=_whole_number(1), default=1, help="measure every N-th step (1)"
    )
    affinity.add_argument(
        "--groups",
        type=_whole_number(1),
        nargs="+",
        help="numbers of groups to recommend (default: 1 to T)",
    )
    affinity.add_argument(
        "--lookahead-lr",
        type=_positive_number,
        help="lookahead step size (default: training.learning_rate)",
    )
    affinity.add_argument("--output-dir", default="runs/affinity", help="default: runs/affinity")
    affinity.set_defaults(handler=_affinity)

    report = commands.add_parser("report", help="plots and report.md of a run directory")
    report.add_argument("run_dir", help="a run's output directory")
    report.set_defaults(handler=_report)

    from mtlm.demo.packaged import DEFAULT_DEMO_CONFIG, demo_config_names

    demo = commands.add_parser("demo", help="fetch the bundled model and data, train 4 tasks")
    demo.add_argument("--output-dir", default="runs/demo")
    demo.add_argument(
        "--config",
        default=DEFAULT_DEMO_CONFIG,
        help=f"a packaged demo config ({', '.join(demo_config_names())}) or a YAML file "
        f"(default: {DEFAULT_DEMO_CONFIG})",
    )
    demo.set_defaults(handler=_demo)
    return parser


#: The placements transformers' `from_pretrained(device_map=...)` computes itself.
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


def _add_device_flags(command: argparse.ArgumentParser, device_map: bool) -> None:
    """--device (and --device-map) for a command that runs a saved model."""
    command.add_argument(
        "--device",
        help="where the model runs: cpu, cuda, cuda:N, mps or an accelerator's index "
        "(default: the accelerator if there is one, else cpu)",
    )
    if device_map:
        command.add_argument(
            "--device-map",
            choices=DEVICE_MAPS,
            help="instead of --device: spread the backbone's layers over the GPUs as "
            "transformers' device_map does, for a model larger than one GPU",
        )
        command.add_argument(
            "--offload-folder",
            help="with --device-map: where the layers that fit in neither GPU nor CPU memory "
            "are kept on disk",
        )


def _placement(args: argparse.Namespace) -> tuple[Any, str | None, str | None]:
    """The device, device map and offload folder that --device, --device-map and
    --offload-folder ask for, checked."""
    from mtlm.devices import placement, resolve_device

    device_map = getattr(args, "device_map", None)
    offload_folder = getattr(args, "offload_folder", None)
    placement(device_map, offload_folder, "--offload-folder")
    if device_map is not None:
        if args.device is not None:
            raise ConfigError("--device-map: give --device or --device-map, not both")
        return None, device_map, offload_folder
    return resolve_device(args.device, "--device"), None, None


def _load_config(path: str) -> ExperimentConfig:
    """The validated config, read before torch and transformers are imported."""
    from mtlm.config import load_config
    from mtlm.data.sources import check_split_names

    config = load_config(path)
    check_split_names(config.training)
    _quiet_library_progress_bars()
    return config


def _train(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    from mtlm.data.sources import check_split_present
    from mtlm.evaluation.report import print_results
    from mtlm.training.run_folder import plan_start
    from mtlm.training.trainer import Trainer

    # A folder that cannot be trained into fails now, not after minutes of reading data.
    plan_start(
        Path(args.output_dir or config.training.output_dir),
        "--output-dir" if args.output_dir else "training.output_dir",
        overwrite=config.training.overwrite_output_dir,
        resume=args.resume,
        finetune=config.training.finetune is not None,
    )
    trainer = Trainer(config, args.output_dir)
    # The run's results are its scores on this split: without it, training would be for nothing.
    check_split_present(
        config.training.final_eval_split,
        "training.final_eval_split",
        {name: data.splits for name, data in trainer.data.items()},
    )
    results = trainer.train(resume=args.resume)
    if results:
        columns = {"model": results}
        finetuned = trainer.output_dir / "finetuned" / "eval_results.json"
        if config.training.finetune is not None and finetuned.is_file():
            columns = {"multi-task": results, "+ fine-tune": json.loads(finetuned.read_text())}
        print_results(columns)
        print(f"model: {trainer.output_dir / 'model'}")
        print(f"report: {trainer.output_dir / 'report.md'}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    _quiet_library_progress_bars()
    from mtlm.cache import cache_dir
    from mtlm.data.features import load_task_data
    from mtlm.data.sources import check_split_name
    from mtlm.evaluation.evaluate import evaluate, results
    from mtlm.evaluation.report import print_results
    from mtlm.files import write_json
    from mtlm.modeling.routed_model import RoutedModel, load_model
    from mtlm.outputs import check_results_file

    check_split_name(args.split, "--split")
    output = Path(args.output or Path(args.model) / f"eval_results.{args.split}.json")
    check_results_file(output, "--output")
    loaded = load_model(args.model, *_placement(args))
    parts = loaded.parts() if isinstance(loaded, RoutedModel) else [(loaded, list(loaded.tasks))]
    scores, kinds = {}, {}
    for model, names in parts:
        # The model's own tasks keep the label names it was trained with.
        data = {
            name: load_task_data(
                model.tasks[name].spec, model.tokenizer, cache_dir() / "features", model.tasks[name]
            )
            for name in names
        }
        scores.update(evaluate(model, data, args.split)["tasks"])
        kinds.update({name: d.task for name, d in data.items()})
    if not scores:
        raise ConfigError(f"--split: no task has a {args.split!r} split")
    scored = results(scores, kinds, args.split)
    print_results({"model": scored})
    write_json(output, scored)
    print(f"results: {output}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    if args.output:
        from mtlm.outputs import check_predictions_file

        check_predictions_file(Path(args.output), "--output")
    _quiet_library_progress_bars()
    from mtlm.modeling.routed_model import load_model

    model = load_model(args.model, *_placement(args))
    read = _read_jsonl(args.input)
    rows = read.rows
    if args.task == "all":
        names = [
            name
            for name, task in model.tasks.items()
            if all(column in rows[0] for column in task.input_columns)
        ]
        if not names:
            raise DataError(f"{read.where(0)}: no task's input columns are in the rows")
    elif args.task in model.tasks:
        names = [args.task]
    else:
        raise ConfigError(f"--task: no task {args.task!r} (tasks: {', '.join(model.tasks)}, all)")
    for name in names:  # here, where a bad row can be named by its line in the file
        model.tasks[name].check_inputs(rows, read.where)
    predictions = model.predict(names, rows, batch_size=args.batch_size)
    lines = [
        json.dumps({name: predictions[name][index] for name in names}) for index in range(len(rows))
    ]
    text = "".join(f"{line}\n" for line in lines)
    if args.output:
        from mtlm.files import write_text

        write_text(Path(args.output), text)
    else:
        sys.stdout.write(text)
    return 0


def _read_jsonl(path: str) -> SplitRows:
    from mtlm.data.sources import read_file

    read = read_file(path, "jsonl")
    if not read.rows:
        raise DataError(f"{path}: no rows to predict")
    return read


def _export(args: argparse.Namespace) -> int:
    _quiet_library_progress_bars()
    from mtlm.export import export_task

    device = _placement(args)[0]
    print(export_task(args.model, args.task, args.out, device))
    return 0


def _push(args: argparse.Namespace) -> int:
    _quiet_library_progress_bars()
    from mtlm.push import push_to_hub

    print(
        push_to_hub(
            args.model, args.repo, token=args.token, private=args.private, revision=args.revision
        )
    )
    return 0


def _compare(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    from mtlm.analysis.compare import compare
    from mtlm.analysis.compare_report import format_comparison
    from mtlm.analysis.comparison import BaselinePlan

    plan = BaselinePlan(
        args.baseline, args.baseline_epochs, args.baseline_patience, args.baseline_max_epochs
    )
    plan.check()  # before reading data or training anything
    # Beside the training folder, not in it: overwrite_output_dir would delete it.
    output = Path(args.output_dir or f"{config.training.output_dir}-compare")
    comparison = compare(
        config, output, seeds=args.seeds, baseline_cache=args.baseline_cache, plan=plan
    )
    print(format_comparison(comparison))
    print(f"report: {output / 'comparison.md'}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    from mtlm.analysis.plan import format_plan, make_plan

    output = Path(args.output_dir or f"{config.training.output_dir}-plan")
    plan = make_plan(
        config,
        output,
        groups=args.groups,
        affinity_steps=args.affinity_steps,
        sharing=args.sharing,
    )
    print(format_plan(plan))
    return 0


def _affinity(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    from mtlm.analysis.affinity import affinity_summary, measure_affinity, write_affinity
    from mtlm.analysis.grouping import check_group_count

    for groups in args.groups or []:  # fail before minutes of measuring
        check_group_count(groups, len(config.tasks))
    measured = measure_affinity(config, args.steps, args.every, args.lookahead_lr)
    report = write_affinity(measured, Path(args.output_dir), args.groups)
    print(affinity_summary(report))
    return 0


def _report(args: argparse.Namespace) -> int:
    _quiet_library_progress_bars()
    from mtlm.evaluation.run_report import write_report

    print(write_report(args.run_dir))
    return 0


def _demo(args: argparse.Namespace) -> int:
    _quiet_library_progress_bars()
    from mtlm.demo.command import run_demo

    run_demo(Path(args.output_dir), args.config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
