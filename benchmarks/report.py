"""Shared by the benchmark scripts: where they write their tables and what machine ran them."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    """The processor and core count, for the record."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores"


def write_section(
    key: str,
    title: str,
    intro: str,
    markdown: str,
    command: str,
    path: Path = ROOT / "BENCHMARKS.md",
    where: str | None = None,
) -> None:
    """Replace the `key` section of BENCHMARKS.md (or of the copy at `path`), or append it;
    `where` names the machine (default: this one's processor)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    where = where or machine()
    section = f"{start}\n## {title}\n\n`{command}` on {where}: {intro}\n\n{markdown}\n{end}"
    if start in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


def run_isolated(script: str, name: str, arguments: list[str]) -> dict:
    """Run `script --one NAME ARGUMENTS` in a fresh process (its own peak memory) and return
    the JSON object it prints last, or the error it ended with."""
    command = [sys.executable, script, "--one", name, *arguments]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"name": name, "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(lines[-1])


def run_each(script: str, names: list[str], arguments: list[str], key: str) -> list[dict]:
    """`run_isolated` for every name in turn, each result printed as it arrives and labelled
    with its name under `key`."""
    results = []
    for name in names:
        result = run_isolated(script, name, arguments)
        result.setdefault(key, name)
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


def timed_log_rows(config, warmup: int) -> list[dict]:
    """Train `config` logging every step, with no evaluation or checkpoints, in a temporary
    folder; its metrics rows after the first `warmup` steps."""
    import tempfile

    from mtlm import Trainer
    from mtlm.training.experiment import build_experiment

    training = config.training
    training.logging_steps = 1
    training.eval_steps = training.save_steps = None
    training.progress_bar = False
    experiment = build_experiment(config)
    # Only the training splits are kept, so evaluation costs nothing: only steps are measured.
    for task_data in experiment.data.values():
        task_data.splits = {"train": task_data.splits["train"]}
    with tempfile.TemporaryDirectory() as output:
        Trainer(config, output, model=experiment.model, data=experiment.data).train()
        rows = [json.loads(line) for line in (Path(output) / "metrics.jsonl").open()]
    return [row for row in rows if "examples_per_second" in row][warmup:]
