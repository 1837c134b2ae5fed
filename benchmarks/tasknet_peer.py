"""Throughput peer: tasknet (https://pypi.org/project/tasknet/) on the benchmark workload.

Imported from the main venv, ``run_tasknet(workload_path)`` prepares a virtualenv of its own with
tasknet and runs this file there as ``python tasknet_peer.py --run WORKLOAD_JSON``, which trains
with tasknet and prints one JSON line (that role must not import mtlm).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TASKNET_VERSION = "1.60"
TORCH_VERSION = "2.13.0"  # takes the CPU build on disk; pip's free choice pulls a CUDA build
VENV = Path.home() / ".cache" / "mtlm" / "bench-venvs" / "tasknet"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def _error(why: object) -> dict:
    return {"name": "tasknet", "error": " ".join(str(why).split())[:500] or "unknown error"}


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _ensure_venv(transformers_version: str) -> Path:
    """Create or reuse the tasknet venv and return its python; RuntimeError says why not."""
    python, stamp = VENV / "bin" / "python", VENV / "mtlm-ready.json"
    want = dict(torch=TORCH_VERSION, tasknet=TASKNET_VERSION, transformers=transformers_version)
    if python.exists() and stamp.exists() and json.loads(stamp.read_text() or "{}") == want:
        return python
    pip = [str(python), "-m", "pip", "install"]
    steps = [["python3", "-m", "venv", str(VENV)]] if not python.exists() else []
    steps += [pip + [f"torch=={TORCH_VERSION}"]]  # first, so that tasknet's deps keep this torch
    steps += [pip + [f"tasknet=={TASKNET_VERSION}", f"transformers=={transformers_version}"]]
    VENV.parent.mkdir(parents=True, exist_ok=True)
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        with open(VENV.parent / "tasknet-install.log", "a") as log:
            log.write(f"$ {' '.join(step)}\n{done.stdout}\n{done.stderr}\n")
        if done.returncode:
            raise RuntimeError(f"{' '.join(step[2:])} failed: {_last_line(done.stderr)}")
    stamp.write_text(json.dumps(want))
    return python


def run_tasknet(workload_path: Path) -> dict:
    """Train with tasknet on the workload in its own venv: its result, or {"name", "error"}."""
    from importlib.metadata import version

    try:
        python = _ensure_venv(version("transformers"))
    except Exception as e:  # noqa: BLE001 - any failure becomes the peer's error line
        return _error(e if isinstance(e, RuntimeError) else f"{type(e).__name__}: {e}")
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k not in drop} | OFFLINE
    cmd = [str(python), str(Path(__file__).resolve()), "--run", str(Path(workload_path).resolve())]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    except Exception as e:  # noqa: BLE001
        return _error(f"could not start the tasknet run: {e}")
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return _error(f"tasknet run exited {done.returncode}: {_last_line(done.stderr)}")


def _datasets(task: dict):
    """One workload task as a DatasetDict: its rows as train, one row as the validation and test
    splits that tasknet's Trainer insists on (never evaluated)."""
    import datasets as ds

    rows = [json.loads(line) for line in open(task["train"], encoding="utf-8") if line.strip()]
    if task["kind"] == "token_classification":
        cols = {task["tokens_column"]: ds.Sequence(ds.Value("string"))}
        cols[task["tags_column"]] = ds.Sequence(ds.ClassLabel(names=task["labels"]))
    else:
        regression = task["kind"] == "regression"
        label = ds.Value("float32") if regression else ds.ClassLabel(names=task["labels"])
        cols = {task["text_column"]: ds.Value("string"), task["label_column"]: label}
    rows = [{k: r[k] for k in cols} for r in rows]
    train = ds.Dataset.from_list(rows, features=ds.Features(cols))
    return ds.DatasetDict(train=train, validation=train.select([0]), test=train.select([0]))


def _tasks(tn, work: dict, notes: list) -> list:
    """tasknet task objects for the workload, each with its own max_length."""
    from frozendict import frozendict

    tasks = []
    for spec in work["tasks"]:
        kwargs = dict(dataset=_datasets(spec), name=spec["name"])
        kwargs["tokenizer_kwargs"] = frozendict(
            padding="max_length", max_length=spec["max_length"], truncation=True
        )
        if spec["kind"] in ("classification", "regression"):
            kwargs.update(s1=spec["text_column"], s2="__no_second_text__", y=spec["label_column"])
            tasks.append(tn.Classification(**kwargs))
        elif spec["kind"] == "token_classification":
            kwargs.update(tokens=spec["tokens_column"], y=spec["tags_column"])
            tasks.append(tn.TokenClassification(**kwargs))
        else:
            notes.append(f"{spec['name']}: no tasknet task for kind {spec['kind']!r}; left out")
        if spec["kind"] == "regression":
            notes.append(
                f"{spec['name']}: tasknet.Classification on a float label (1 output, MSE loss)"
            )
    notes.append(
        "max_length per task (tokenizer_kwargs); tasknet pads rows to it, then trims each batch "
        "to its longest row before the forward (batch_truncation)"
    )
    notes.append("tasknet's Trainer needs validation/test splits: one train row each, unused")
    return tasks


def _run(workload_path: str) -> dict:
    os.environ.update(OFFLINE)
    import tempfile
    import time
    from importlib.metadata import version

    import evaluate
    import torch
    import transformers
    from counting import TokenCounter, peak_rss_mb  # torch only, no mtlm

    work = json.loads(Path(workload_path).read_text())
    torch.set_num_threads(int(work["threads"]))
    transformers.set_seed(int(work["seed"]))
    # tasknet's tasks.py calls evaluate.load("seqeval") and ("bleu") at import time, which fetch
    # metric scripts from the Hugging Face Hub: offline, `import tasknet` fails. The metrics serve
    # evaluation only, which never runs here, so they are stubbed for the import.
    hub_load, evaluate.load = evaluate.load, lambda *args, **kwargs: None
    try:
        import tasknet as tn
    finally:
        evaluate.load = hub_load
    notes = ["evaluate.load stubbed for `import tasknet`, which fetches seqeval/bleu from the Hub"]
    tasks = _tasks(tn, work, notes)

    with tempfile.TemporaryDirectory(prefix="tasknet-peer-") as out_dir:
        args = dict(
            model_name=work["model"],
            learning_rate=float(work["learning_rate"]),
            per_device_train_batch_size=int(work["batch_size"]),
            num_train_epochs=1,  # tasknet's sampler: every task's batches once (p=1)
            seed=int(work["seed"]),
            output_dir=out_dir,
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            push_to_hub=False,
            use_cpu=True,
            batched=True,  # tokenize with batched map (preprocessing, not timed)
            disable_tqdm=True,
        )
        model = tn.Model(tasks, args)
        trainer = tn.Trainer(model, tasks, args)
        counter = TokenCounter()  # on the shared encoder, fed each batch after trimming
        counter.watch(model)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start

    return counter.figures(seconds) | {
        "name": "tasknet",
        "tasknet_version": version("tasknet"),
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "optimizer_steps": int(trainer.state.global_step),
        "peak_rss_mb": peak_rss_mb(),
        "tasks": [t.name for t in tasks],
        "notes": notes,
    }


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--run":
        sys.exit(f"usage: {sys.argv[0]} --run WORKLOAD_JSON")
    try:
        result = _run(sys.argv[2])
    except Exception as e:  # noqa: BLE001 - report why, as the last JSON line
        import traceback

        traceback.print_exc()
        print(json.dumps(_error(f"{type(e).__name__}: {e}")))
        sys.exit(1)
    print(json.dumps(result))
