"""Hard, soft and LoRA sharing side by side on the bundled encoder and the 4 demo tasks.

Each variant trains in its own process (so peak RSS is its own) with the demo config's
settings and the same number of steps, then reports per-task test scores, training time,
peak memory, saved size and the parameter accounting. Prints one JSON object per variant and
a Markdown table; with `--write` it replaces the sharing section of BENCHMARKS.md.

    python benchmarks/sharing.py [--steps 300] [--write]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, run_each, write_section  # noqa: E402

#: name -> (sharing section, learning rate). LoRA trains far fewer weights and needs a larger
#: rate (the usual practice with adapters).
VARIANTS = {
    "hard": ({"kind": "hard"}, 1e-4),
    "soft λ=1e-4": ({"kind": "soft", "strength": 1e-4}, 1e-4),
    "soft λ=1e-2": ({"kind": "soft", "strength": 1e-2}, 1e-4),
    "lora r=8": ({"kind": "lora", "r": 8, "alpha": 16}, 1e-3),
}


def measure_one(name: str, steps: int) -> dict:
    """Train one variant on the demo tasks and measure it."""
    from mtlm import Trainer, load_config
    from mtlm.config import sharing_spec

    sharing, learning_rate = VARIANTS[name]
    config = load_config(ROOT / "examples" / "demo.yaml")
    config.sharing = sharing_spec(sharing)
    training = config.training
    training.max_steps = steps
    training.learning_rate = learning_rate
    training.eval_steps = None
    training.save_steps = None
    training.progress_bar = False
    with tempfile.TemporaryDirectory() as output:
        started = time.perf_counter()
        results = Trainer(config, output).train()
        seconds = time.perf_counter() - started
        summary = json.loads((Path(output) / "train_summary.json").read_text())
        saved = sum(f.stat().st_size for f in (Path(output) / "model").rglob("*") if f.is_file())
    return {
        "variant": name,
        "scores": {task: m[m["primary"]] for task, m in results["tasks"].items()},
        "aggregate": results["aggregate"],
        "train_seconds": summary["train_seconds"],
        "run_seconds": round(seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "saved_mb": round(saved / 2**20, 1),
        "model": summary["model"],
    }


def table(results: list[dict]) -> str:
    """Markdown: one row per variant."""
    tasks = list(next(r for r in results if "scores" in r)["scores"])
    lines = [
        "| sharing | " + " | ".join(tasks) + " | aggregate | train s | peak RSS MB | saved MB "
        "| parameters (trainable) |",
        "|---" * (len(tasks) + 6) + "|",
    ]
    for result in results:
        if "error" in result:
            lines.append(f"| {result['variant']} | failed: {result['error']} |")
            continue
        model = result["model"]
        lines.append(
            f"| {result['variant']} | "
            + " | ".join(f"{result['scores'][task]:.3f}" for task in tasks)
            + f" | {result['aggregate']:.3f} | {result['train_seconds']:.0f} | "
            f"{result['peak_rss_mb']} | {result['saved_mb']} | "
            f"{model['total_parameters'] / 1e6:.1f}M ({model['trainable_parameters'] / 1e6:.2f}M) |"
        )
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.steps)))
        return
    results = run_each(__file__, args.variants, ["--steps", str(args.steps)], "variant")
    markdown = table(results)
    print(markdown)
    if args.write:
        intro = (
            f"the bundled MiniLM encoder, the 4 demo tasks, {args.steps} sampled steps of batch "
            "16 each, test-split primary metrics; LoRA with learning rate 1e-3 (the others "
            "1e-4), adapters on the attention query and value projections."
        )
        write_section(
            "sharing",
            "Sharing kinds: scores, time, memory, size",
            intro,
            markdown,
            f"python benchmarks/sharing.py --steps {args.steps} --write",
        )


if __name__ == "__main__":
    main()
