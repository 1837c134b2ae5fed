"""Seconds per optimizer step and peak memory of every balancer, on the bundled encoder.

Each method runs in its own process (so peak RSS is its own) on the 4 demo tasks in `joint`
step mode, batch 16 per task; the first steps are warm-up, the rest are timed from the run's
metrics.jsonl. Prints one JSON object per method and a Markdown table, and with `--write`
replaces the balancing section of BENCHMARKS.md.

    python benchmarks/balancing.py [--steps 5] [--warmup 2] [--methods static pcgrad ...] [--write]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, run_each, timed_log_rows, write_section  # noqa: E402

from mtlm.training.balancers import BALANCERS  # noqa: E402

AGGREGATORS = [
    kind for kind, balancer in BALANCERS.items() if balancer.options.aggregates_gradients
]
LOSS_WEIGHTINGS = [kind for kind in BALANCERS if kind not in AGGREGATORS]
REPRESENTATION = [kind for kind in AGGREGATORS if BALANCERS[kind].options.weighs_representation]


def all_methods() -> list[str]:
    """Every balancer, with `:representation` for the representation-mode ones; static again
    at the end, so that drift over the run shows in the reference."""
    representation = [f"{kind}:representation" for kind in REPRESENTATION]
    return LOSS_WEIGHTINGS + AGGREGATORS + representation + ["static"]


def measure_one(method: str, steps: int, warmup: int) -> dict:
    """Train `warmup + steps` joint steps with one balancer; time the last `steps`."""
    from mtlm import load_config
    from mtlm.config import balancer_spec

    kind, _, on = method.partition(":")
    config = load_config(ROOT / "examples" / "demo.yaml")
    training = config.training
    training.step_mode = "joint"
    section = {"kind": kind, "gradients": on} if on else {"kind": kind}
    training.balancer = balancer_spec(section)
    training.max_steps = warmup + steps
    training.batch_size = 16
    timed = timed_log_rows(config, warmup)
    seconds = [sum(row["batches"].values()) * 16 / row["examples_per_second"] for row in timed]
    return {
        "method": method,
        "seconds_per_step": statistics.median(seconds),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "steps_timed": len(seconds),
    }


def table(results: list[dict], tasks: int = 4) -> str:
    """Markdown table with each method's cost relative to static (the median of its runs)
    and its goal."""
    static = statistics.median(
        r["seconds_per_step"] for r in results if r["method"] == "static" and "error" not in r
    )
    lines = [
        "| method | gradients | s/step | × static | goal | peak RSS (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        kind, _, on = result["method"].partition(":")
        on = on or ("parameters" if kind in AGGREGATORS else "-")
        if "error" in result:
            lines.append(f"| {kind} | {on} | failed: {result['error']} | | | |")
            continue
        ratio = result["seconds_per_step"] / static
        if kind in LOSS_WEIGHTINGS:
            goal = 1.05
        else:
            goal = 1.5 if on == "representation" else 1 + 0.5 * tasks
        verdict = "met" if ratio <= goal or kind == "static" else "missed"
        lines.append(
            f"| {kind} | {on} | {result['seconds_per_step']:.2f} | {ratio:.2f} | "
            f"≤ {goal:g} ({verdict}) | {result['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--methods", nargs="*", default=None)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.steps, args.warmup)))
        return
    methods = args.methods or all_methods()
    if "static" not in methods:
        methods = ["static", *methods]
    arguments = ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    results = run_each(__file__, methods, arguments, "method")
    markdown = table(results)
    print(markdown)
    if args.write:
        intro = (
            "the bundled MiniLM encoder, the 4 demo tasks, `joint` step mode (one batch of 16 "
            f"of every task per step), median of {args.steps} timed steps after {args.warmup} "
            "warm-up steps; peak RSS of the whole process."
        )
        write_section(
            "balancing",
            "Balancers: cost per optimizer step",
            intro,
            markdown,
            f"python benchmarks/balancing.py --steps {args.steps} --warmup {args.warmup} --write",
        )


if __name__ == "__main__":
    main()
