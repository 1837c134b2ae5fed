"""The data pipeline on the 4 demo tasks: preparing them (read, validate, tokenize) with an
empty features cache and again with it filled, and the padding left in training batches.

Each preparation runs in a fresh process, so the second one gains only from the on-disk cache
(not from anything kept in memory): it hashes each task's data files, finds the task's entry
(what reading and fitting gave) and loads the features, without parsing, validating or
tokenizing a row. The padding fraction is over one epoch of every task's
length-grouped training batches, as the trainer forms them. Prints one JSON object; with
`--write` it replaces the data-pipeline section of BENCHMARKS.md.

    python benchmarks/data_pipeline.py [--write]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, run_isolated, write_section  # noqa: E402

THREADS = 2


def prepare_once(cache: str) -> dict:
    """Read and tokenize the demo tasks into (or from) the features cache at `cache`."""
    import torch

    from mtlm import load_config
    from mtlm.bundled import resolve_model_name
    from mtlm.data.features import load_task_data
    from mtlm.demo.prepare import prepare_demo
    from mtlm.modeling.multitask_model import load_tokenizer

    torch.set_num_threads(THREADS)
    prepare_demo()  # the demo files themselves are not what is measured
    config = load_config(ROOT / "examples" / "demo.yaml")
    tokenizer = load_tokenizer(resolve_model_name(config.model.name_or_path))
    started = time.perf_counter()
    data = {spec.name: load_task_data(spec, tokenizer, Path(cache)) for spec in config.tasks}
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "padding": padding_fraction(config, data),
        "batch_size": config.training.batch_size,
    }


def padding_fraction(config, data) -> float:
    """Share of the tokens in one epoch of length-grouped training batches that are padding."""
    from mtlm.training.streams import TaskBatchStream

    real = computed = 0
    for index, task_data in enumerate(data.values()):
        train = task_data.splits["train"]
        stream = TaskBatchStream(
            task_data.task,
            train,
            config.training.batch_size,
            config.training.seed + index,
            0,
            config.training.length_group_chunk,
        )
        for _ in range(-(-len(train) // config.training.batch_size)):
            batch = stream.next_batch()
            real += int(batch["attention_mask"].sum())
            computed += batch["input_ids"].numel()
    return round(1 - real / computed, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args, rest = parser.parse_known_args()
    if args.one == "prepare":
        print(json.dumps(prepare_once(rest[0])), flush=True)
        return
    with tempfile.TemporaryDirectory() as cache:
        first = run_isolated(__file__, "prepare", [cache])
        second = run_isolated(__file__, "prepare", [cache])
    if "error" in first or "error" in second:
        raise SystemExit(f"a preparation failed: {first.get('error') or second.get('error')}")
    result = {
        "first_seconds": first["seconds"],
        "cached_seconds": second["seconds"],
        "speedup": round(first["seconds"] / second["seconds"], 1),
        "padding_fraction": second["padding"],
        "batch_size": second["batch_size"],
    }
    print(json.dumps(result))
    if args.write:
        write_section(
            "data-pipeline",
            "Data pipeline: preparing the demo tasks, and padding",
            "read, validate and tokenize the 4 demo tasks (6,025 training rows and their "
            "validation and test splits) in a fresh process with an empty features cache, then "
            "in another with the cache filled (it hashes the data files and loads the cached "
            "task state and features); padding over one epoch of length-grouped "
            f"training batches of {result['batch_size']}.",
            "| first preparation | cached | speed-up | padding |\n|---|---|---|---|\n"
            f"| {result['first_seconds']:.2f} s | {result['cached_seconds']:.2f} s | "
            f"{result['speedup']}× | {100 * result['padding_fraction']:.1f} % |\n",
            "python benchmarks/data_pipeline.py --write",
        )


if __name__ == "__main__":
    main()
