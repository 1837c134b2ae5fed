"""Seconds per optimizer step of two training processes (torchrun, gloo on CPU) against a
baseline source tree, and the cost of averaging gradients across them.

Steps: the bundled MiniLM encoder and the 4 demo tasks, batch 16 per process, one thread per
process; `joint` steps with PCGrad (gradients that the trainer averages across processes itself)
and `sampled` steps (gradients that DDP averages). Each mode is trained by this source tree and
by `--baseline` (the `src` folder of another checkout, e.g. `git worktree add /tmp/before
COMMIT`), alternately and in alternating order, `--repeats` times, so that both meet the same
machine load. Each run's steps after `--warmup` are timed from its metrics.jsonl (its final
evaluation is left out). Prints one JSON object per run, then the median seconds per step of
each tree and mode.

Averaging (`--averaging`): in two processes, the gradients of the demo model's trainable
parameters, with hard sharing and with LoRA adapters, averaged with one all-reduce per
parameter (as the trainer did) and with `mtlm.training.processes.average_gradients`,
alternately, `--repeats` times each; prints the median milliseconds.

    python benchmarks/distributed_steps.py --baseline /tmp/before/src [--steps 8] [--warmup 2]
        [--repeats 3]
    python benchmarks/distributed_steps.py --averaging [--repeats 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ["joint-pcgrad", "sampled"]

#: Trains the demo config in one mode on every process; the main process prints its timed steps.
_STEPS = """
import json, sys
from pathlib import Path
from mtlm import Trainer, load_config
from mtlm.config import balancer_spec

root, mode, steps, warmup, output = sys.argv[1:6]
config = load_config(Path(root) / "examples" / "demo.yaml")
training = config.training
if mode == "joint-pcgrad":
    training.step_mode = "joint"
    training.balancer = balancer_spec({"kind": "pcgrad"})
training.max_steps = int(steps) + int(warmup)
training.batch_size = 16
training.logging_steps = 1
training.eval_steps = training.save_steps = None
training.progress_bar = False
trainer = Trainer(config, output)
trainer.train()
if trainer.accelerator.is_main_process:
    rows = [json.loads(line) for line in (Path(output) / "metrics.jsonl").open()]
    rows = [row for row in rows if "examples_per_second" in row][int(warmup):]
    seconds = [sum(row["batches"].values()) * 16 / row["examples_per_second"] for row in rows]
    print("RESULT " + json.dumps(seconds), flush=True)
"""

#: Averages the demo model's gradients both ways; the main process prints the times.
_AVERAGING = """
import json, statistics, sys, time
from pathlib import Path
import torch
import yaml
from accelerate import Accelerator
from mtlm.config import config_from_dict
from mtlm.training.experiment import build_experiment
from mtlm.training.processes import average_gradients

root, repeats = Path(sys.argv[1]), int(sys.argv[2])
accelerator = Accelerator(cpu=True)
raw = yaml.safe_load((root / "examples" / "demo.yaml").read_text())
results = {}
for sharing in ({"kind": "hard"}, {"kind": "lora", "r": 8}):
    config = config_from_dict({**raw, "sharing": sharing})
    model = build_experiment(config, accelerator=accelerator).model
    parameters = [p for p in model.parameters() if p.requires_grad]
    for parameter in parameters:
        parameter.grad = torch.randn_like(parameter)

    def per_parameter():
        for parameter in parameters:
            torch.distributed.all_reduce(parameter.grad)
            parameter.grad /= 2

    ways = {"per_parameter": per_parameter, "mtlm": lambda: average_gradients(parameters)}
    times = {name: [] for name in ways}
    for _ in range(repeats):
        for name, average in ways.items():
            torch.distributed.barrier()
            start = time.perf_counter()
            average()
            times[name].append(time.perf_counter() - start)
    results[sharing["kind"]] = {
        "tensors": len(parameters),
        "megabytes": round(sum(p.numel() * p.element_size() for p in parameters) / 2**20, 1),
        "median_ms": {name: round(statistics.median(t) * 1000, 1) for name, t in times.items()},
    }
if accelerator.is_main_process:
    print("RESULT " + json.dumps(results), flush=True)
"""


def torchrun(script: str, source: Path, arguments: list[str]):
    """What `script` run by torchrun on 2 processes, with mtlm from `source`, printed last
    after `RESULT `."""
    with tempfile.TemporaryDirectory() as folder:
        worker = Path(folder) / "worker.py"
        worker.write_text(script)
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += ["--nproc_per_node", "2", str(worker), str(ROOT), *arguments]
        command = [part.replace("{folder}", folder) for part in command]
        environment = {**os.environ, "PYTHONPATH": str(source), "OMP_NUM_THREADS": "1"}
        done = subprocess.run(command, capture_output=True, text=True, env=environment)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"{source} {arguments} failed:\n{done.stderr[-3000:]}")
        return json.loads(lines[-1].removeprefix("RESULT "))


def time_steps(trees: dict[str, Path], modes: list[str], args: argparse.Namespace) -> None:
    """Each mode trained by each tree, alternately, `args.repeats` times."""
    medians: dict[str, dict[str, list[float]]] = {mode: {} for mode in modes}
    for repeat in range(args.repeats):
        for mode in modes:
            order = list(trees) if repeat % 2 == 0 else list(reversed(trees))
            for tree in order:
                arguments = [mode, str(args.steps), str(args.warmup), "{folder}/run"]
                seconds = torchrun(_STEPS, trees[tree], arguments)
                median = statistics.median(seconds)
                medians[mode].setdefault(tree, []).append(median)
                result = {"repeat": repeat, "mode": mode, "tree": tree, "median_s": median}
                print(json.dumps({**result, "seconds": [round(s, 3) for s in seconds]}))
    summary = {
        mode: {tree: round(statistics.median(values), 3) for tree, values in by_tree.items()}
        for mode, by_tree in medians.items()
    }
    print(json.dumps({"median_seconds_per_step": summary}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="the src folder to compare steps with")
    parser.add_argument("--averaging", action="store_true", help="time the averaging alone")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=MODES, choices=MODES)
    args = parser.parse_args()
    if args.averaging:
        print(json.dumps(torchrun(_AVERAGING, ROOT / "src", [str(args.repeats)]), indent=1))
    elif args.baseline is None:
        parser.error("--baseline is required to time the steps")
    else:
        time_steps({"baseline": args.baseline.resolve(), "this": ROOT / "src"}, args.modes, args)


if __name__ == "__main__":
    main()
