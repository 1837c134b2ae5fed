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
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCALARIZERS = [
    "static",
    "uncertainty",
    "dwa",
    "random",
    "famo",
    "imtl_l",
    "geometric_mean",
    "stch",
    "gradnorm",
]
AGGREGATORS = [
    "pcgrad",
    "upgrad",
    "mgda",
    "cagrad",
    "nash_mtl",
    "imtl_g",
    "aligned_mtl",
    "dualproj",
    "graddrop",
    "gradvac",
    "config",
]
REPRESENTATION = ["mgda", "imtl_g", "aligned_mtl", "nash_mtl", "cagrad"]


def all_methods() -> list[str]:
    """Every balancer, with `:representation` for the representation-mode ones."""
    return SCALARIZERS + AGGREGATORS + [f"{kind}:representation" for kind in REPRESENTATION]


def measure_one(method: str, steps: int, warmup: int) -> dict:
    """Train `warmup + steps` joint steps with one balancer; time the last `steps`."""
    from mtlm import Trainer, load_config

    kind, _, on = method.partition(":")
    config = load_config(ROOT / "examples" / "demo.yaml")
    training = config.training
    training.step_mode = "joint"
    training.balancer = training.balancer.model_validate({"kind": kind, "on": on or "parameters"})
    training.max_steps = warmup + steps
    training.batch_size = 16
    training.logging_steps = 1
    training.eval_steps = None
    training.save_steps = None
    training.progress_bar = False
    # No task has these splits, so evaluation costs nothing: only the steps are measured.
    training.eval_split = training.final_eval_split = "none"
    with tempfile.TemporaryDirectory() as output:
        Trainer(config, output).train()
        rows = [json.loads(line) for line in (Path(output) / "metrics.jsonl").open()]
    timed = [row for row in rows if "examples_per_second" in row][warmup:]
    seconds = [sum(row["batches"].values()) * 16 / row["examples_per_second"] for row in timed]
    return {
        "method": method,
        "seconds_per_step": statistics.median(seconds),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "steps_timed": len(seconds),
    }


def run_all(methods: list[str], steps: int, warmup: int) -> list[dict]:
    """Each method in a fresh process; results in the order given."""
    results = []
    for method in methods:
        command = [sys.executable, __file__, "--one", method, "--steps", str(steps)]
        command += ["--warmup", str(warmup)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            result = {"method": method, "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
        else:
            result = json.loads(lines[-1])
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


def table(results: list[dict], tasks: int = 4) -> str:
    """Markdown table with each method's cost relative to static and its goal."""
    static = next(r["seconds_per_step"] for r in results if r["method"] == "static")
    lines = [
        "| method | on | s/step | × static | goal | peak RSS (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        kind, _, on = result["method"].partition(":")
        on = on or ("parameters" if kind in AGGREGATORS else "-")
        if "error" in result:
            lines.append(f"| {kind} | {on} | failed: {result['error']} | | | |")
            continue
        ratio = result["seconds_per_step"] / static
        if kind in SCALARIZERS:
            goal = 1.05
        else:
            goal = 1.5 if on == "representation" else 1 + 0.5 * tasks
        verdict = "met" if ratio <= goal or kind == "static" else "missed"
        lines.append(
            f"| {kind} | {on} | {result['seconds_per_step']:.2f} | {ratio:.2f} | "
            f"≤ {goal:g} ({verdict}) | {result['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def write_section(markdown: str, command: str) -> None:
    """Replace the balancing section of BENCHMARKS.md (or append it)."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start, end = "<!-- balancing:start -->", "<!-- balancing:end -->"
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    section = (
        f"{start}\n## Balancers: cost per optimizer step\n\n"
        f"`{command}` on {machine}: the bundled MiniLM encoder, the 4 demo tasks, `joint` "
        "step mode (one batch of 16 of every task per step), median of the timed steps.\n\n"
        f"{markdown}\n{end}"
    )
    if start in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


def main() -> None:
    """Run the benchmark from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
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
    results = run_all(methods, args.steps, args.warmup)
    markdown = table(results)
    print(markdown)
    if args.write:
        write_section(markdown, "python benchmarks/balancing.py --write")


if __name__ == "__main__":
    main()
