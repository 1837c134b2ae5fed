"""Cost of more tasks: seconds per 100 training examples and peak memory at T = 1, 2, 4, 8.

T tasks are copies of the demo sentiment task under new names, each with its own head, so
that the work per example is the same at every T and only the number of tasks changes (copies
of different demo tasks would mix in their different text lengths); hard sharing on the
bundled MiniLM encoder, batch 16. In `sampled` mode a step trains one task's batch, in `joint`
mode one batch of every task with static weights. Every (mode, T) runs in a fresh process; the
first steps are warm-up, the rest are timed from the run's metrics.jsonl; peak RSS is the whole
process's (loading and tokenizing included). Prints one JSON object per run and a Markdown
table, and with `--write` replaces the task-scaling section of BENCHMARKS.md.

    python benchmarks/task_scaling.py [--examples 960] [--warmup 2] [--write]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, run_each, timed_log_rows, write_section  # noqa: E402

COUNTS = (1, 2, 4, 8)
BATCH_SIZE = 16
THREADS = 2


def measure_one(run: str, examples: int, warmup: int) -> dict:
    """Train one (mode, T) for about `examples` timed examples after `warmup` steps."""
    import torch

    from mtlm import load_config
    from mtlm.config import sampler_spec

    torch.set_num_threads(THREADS)
    mode, count = run.split(":")
    count = int(count)
    config = load_config(ROOT / "examples" / "demo.yaml")
    sentiment = next(spec for spec in config.tasks if spec.name == "sentiment")
    config.tasks = [
        sentiment.model_copy(update={"name": f"sentiment_{index}"}) for index in range(count)
    ]
    per_step = BATCH_SIZE * (count if mode == "joint" else 1)
    training = config.training
    training.step_mode = mode
    training.sampler = sampler_spec({"kind": "uniform"})
    training.max_steps = warmup + max(2, -(-examples // per_step))
    training.batch_size = BATCH_SIZE
    timed = timed_log_rows(config, warmup)
    seconds = sum(row["examples"] / row["examples_per_second"] for row in timed)
    trained = sum(row["examples"] for row in timed)
    return {
        "mode": mode,
        "tasks": count,
        "seconds_per_100_examples": round(100 * seconds / trained, 3),
        "steps_timed": len(timed),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def table(results: list[dict]) -> tuple[str, dict]:
    """Markdown table (one row per T, both modes) and the goals' figures."""
    by_run = {(r["mode"], r["tasks"]): r for r in results if "error" not in r}
    lines = [
        "| tasks | sampled: s / 100 examples | × T=1 | joint: s / 100 examples | × T=1 | "
        "peak RSS sampled MB | × T=1 | peak RSS joint MB |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cell(mode: str, count: int, key: str) -> tuple[str, str]:
        run, first = by_run.get((mode, count)), by_run.get((mode, 1))
        if run is None or first is None:
            return "failed", ""
        return f"{run[key]:.2f}" if key.startswith("sec") else f"{run[key]:.0f}", (
            f"{run[key] / first[key]:.2f}"
        )

    for count in COUNTS:
        sampled, sampled_ratio = cell("sampled", count, "seconds_per_100_examples")
        joint, joint_ratio = cell("joint", count, "seconds_per_100_examples")
        memory, memory_ratio = cell("sampled", count, "peak_rss_mb")
        joint_memory, _ = cell("joint", count, "peak_rss_mb")
        lines.append(
            f"| {count} | {sampled} | {sampled_ratio} | {joint} | {joint_ratio} | {memory} | "
            f"{memory_ratio} | {joint_memory} |"
        )
    figures = {}
    if ("sampled", 1) in by_run and ("sampled", 8) in by_run:
        first, last = by_run[("sampled", 1)], by_run[("sampled", 8)]
        figures["memory_growth_1_to_8"] = round(last["peak_rss_mb"] / first["peak_rss_mb"] - 1, 4)
        figures["sampled_time_ratio_8_to_1"] = round(
            last["seconds_per_100_examples"] / first["seconds_per_100_examples"], 3
        )
    return "\n".join(lines), figures


def main() -> None:
    """Run every (mode, T) in its own process and report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=960, help="timed examples per run")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.examples, args.warmup)))
        return
    runs = [f"{mode}:{count}" for mode in ("sampled", "joint") for count in COUNTS]
    arguments = ["--examples", str(args.examples), "--warmup", str(args.warmup)]
    results = run_each(__file__, runs, arguments, "run")
    markdown, figures = table(results)
    print(markdown)
    print(json.dumps(figures))
    if args.write:
        growth = figures.get("memory_growth_1_to_8")
        verdict = (
            f"Peak RSS grows {100 * growth:.1f} % from 1 to 8 tasks in sampled mode "
            f"(goal < 15 %: {'met' if growth < 0.15 else 'missed'}); "
            f"sampled time per example at T = 8 is {figures['sampled_time_ratio_8_to_1']:.2f}× "
            "that at T = 1 (goal: flat)."
            if growth is not None
            else "A run failed; see the table."
        )
        write_section(
            "task-scaling",
            "Scaling with the number of tasks",
            f"T copies of the demo sentiment task (each with its own head) on the bundled "
            f"MiniLM encoder, hard sharing, batch "
            f"{BATCH_SIZE}, {THREADS} threads, uniform task sampling; about {args.examples} "
            f"timed examples per run after {args.warmup} warm-up steps; each run in a fresh "
            "process, peak RSS including loading and tokenizing.",
            markdown + "\n\n" + verdict + "\n",
            f"python benchmarks/task_scaling.py --examples {args.examples} --write",
        )


if __name__ == "__main__":
    main()
