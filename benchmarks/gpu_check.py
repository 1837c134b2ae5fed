"""The steps of `gpu_check.sh` that are Python: the bundle that carries the demo's model, data
and missing packages to a GPU machine without internet, the demo configs in bf16, and the GPU
section of BENCHMARKS.md.

    python benchmarks/gpu_check.py pack gpu-bundle [--wheels]   # here, with internet
    python benchmarks/gpu_check.py unpack gpu-bundle CACHE [--rows N]  # there: $MTLM_CACHE
    python benchmarks/gpu_check.py demo-config VARIANT FILE RUN_DIR [--max-steps N]
    python benchmarks/gpu_check.py demo-figures RUN_DIR FILE
    python benchmarks/gpu_check.py report OUT                    # OUT/BENCHMARKS.md

The bundle holds the bundled MiniLM in float16 (its float32 weights, 87 MiB, exceed the 64 MiB
that travels to the GPU machine; `unpack` writes them back as float32, the original rounded to
half precision), the demo tasks' split files, and with `--wheels` the packages mtlm needs that
the GPU machine's image lacks (`pip download`, the versions installed here, for CPython 3.12).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, write_section  # noqa: E402

DEMO_CONFIG = ROOT / "examples" / "demo.yaml"
#: The files of the bundled model that loading it reads.
MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
)
#: Packages mtlm imports that the GPU machine's image does not hold (KINDS.md's list).
MISSING_PACKAGES = (
    "annotated-types",
    "datasets",
    "dill",
    "multiprocess",
    "pydantic",
    "pydantic-core",
    "torchjd",
    "typing-inspection",
)
#: Published as a source archive only: built into a wheel here.
SOURCE_ONLY = ("seqeval",)
#: The demo trained in bf16 two ways: autocast over float32 weights, and bfloat16 weights.
DEMO_VARIANTS = {
    "autocast": {"model": {"dtype": "float32"}, "training": {"mixed_precision": "bf16"}},
    "weights": {"model": {"dtype": "bfloat16"}, "training": {"mixed_precision": "no"}},
}
#: What a 64 MiB working tree leaves the bundle, with the repository's own files beside it.
BUNDLE_LIMIT_MIB = 60


def demo_tasks() -> list[str]:
    """The bundled data sets the demo config trains on."""
    raw = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    return [task["data"]["bundled"] for task in raw["tasks"]]


def pack(folder: Path, wheels: bool) -> int:
    """Write the bundle to `folder`; return its size in bytes."""
    from safetensors.torch import load_file, save_file

    from mtlm.bundled import bundled_task_files, resolve_model_name

    model = Path(resolve_model_name("bundled:minilm"))
    target = folder / "models" / "minilm-float16"
    target.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        if name == "model.safetensors":
            weights = load_file(model / name)
            halved = {key: value.half().contiguous() for key, value in weights.items()}
            save_file(halved, target / name, metadata={"format": "pt"})
        else:
            shutil.copy2(model / name, target / name)
    for task in demo_tasks():
        files = bundled_task_files(task)
        source = files["train"].parent
        shutil.copytree(source, folder / "demo_data" / task, dirs_exist_ok=True)
    if wheels:
        download_wheels(folder / "wheels")
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    if size > BUNDLE_LIMIT_MIB * 2**20:
        raise SystemExit(f"{folder}: {size / 2**20:.1f} MiB, over {BUNDLE_LIMIT_MIB} MiB")
    return size


def download_wheels(folder: Path) -> None:
    """The missing packages as wheels for CPython 3.12 on x86-64 Linux, at the versions
    installed here."""
    folder.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    pinned = [f"{name}=={metadata.version(name)}" for name in MISSING_PACKAGES]
    platforms = [
        f"--platform={platform}"
        for platform in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
    ]
    subprocess.run(
        [*pip, "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12"]
        + ["--implementation", "cp", *platforms, "-d", str(folder), *pinned],
        check=True,
    )
    built = [f"{name}=={metadata.version(name)}" for name in SOURCE_ONLY]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(folder), *built], check=True)


def unpack(folder: Path, cache: Path, rows: int | None = None) -> None:
    """Lay the bundle out as an mtlm cache (`$MTLM_CACHE`): the model in float32, the demo
    data as `mtlm demo` builds it (with `rows`, a dry run's: the first `rows` of each split)."""
    import torch
    from safetensors.torch import load_file, save_file

    source = folder / "models" / "minilm-float16"
    model = cache / "models" / "minilm"
    model.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        if name == "model.safetensors":
            weights = load_file(source / name)
            restored = {key: value.to(torch.float32) for key, value in weights.items()}
            save_file(restored, model / name, metadata={"format": "pt"})
        else:
            shutil.copy2(source / name, model / name)
    shutil.copytree(folder / "demo_data", cache / "demo_data", dirs_exist_ok=True)
    if rows is not None:
        for split in (cache / "demo_data").glob("*/*.jsonl"):
            lines = split.read_text(encoding="utf-8").splitlines(keepends=True)
            split.write_text("".join(lines[:rows]), encoding="utf-8")


def demo_config(variant: str, file: Path, run_dir: Path, max_steps: int | None) -> None:
    """The demo config with `variant`'s precision, training into `run_dir`; with `max_steps`
    (a dry run) that many steps, validating and saving every half of them."""
    raw = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    for section, values in DEMO_VARIANTS[variant].items():
        raw[section].update(values)
    raw["training"].update(output_dir=str(run_dir), progress_bar=False)
    if max_steps is not None:
        half = max(1, max_steps // 2)
        raw["training"].update(max_steps=max_steps, eval_steps=half, save_steps=half)
    file.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


def demo_figures(run_dir: Path) -> dict[str, Any]:
    """A trained demo run's test scores, best validation aggregate and speed."""
    results = json.loads((run_dir / "eval_results.json").read_text())
    summary = json.loads((run_dir / "train_summary.json").read_text())
    config = json.loads((run_dir / "experiment_config.json").read_text())
    return {
        "dtype": config["model"]["dtype"],
        "mixed_precision": config["training"]["mixed_precision"],
        "test": {task: m[m["primary"]] for task, m in results["tasks"].items()},
        "primary": {task: m["primary"] for task, m in results["tasks"].items()},
        "aggregate": results["aggregate"],
        **{
            key: summary[key]
            for key in (
                "steps",
                "train_seconds",
                "examples_per_second",
                "real_tokens_per_second",
                "best_validation_aggregate",
            )
        },
    }


# --- the BENCHMARKS.md section ----------------------------------------------------------------
def read_figures(out: Path) -> dict[str, Any]:
    """Every figure file a GPU check wrote to `out` (a missing one is left out)."""
    figures: dict[str, Any] = {}
    for name in ("demo_autocast", "demo_weights", "training_speed", "inference"):
        path = out / f"{name}.json"
        if path.is_file():
            figures[name] = json.loads(path.read_text())
    tests = out / "gpu_tests.txt"
    if tests.is_file():
        lines = [line for line in tests.read_text().splitlines() if line.strip()]
        figures["gpu_tests"] = lines[-1] if lines else "no output"
    return figures


def demo_table(figures: dict[str, Any]) -> str:
    """The two bf16 demo runs side by side: each task's test score, the aggregate, speed."""
    runs = {
        label: figures[key]
        for key, label in (
            ("demo_autocast", "bf16 autocast, float32 weights"),
            ("demo_weights", "bfloat16 weights"),
        )
        if key in figures
    }
    if not runs:
        return "The demo runs wrote no figures (see gpu_check.log)."
    tasks = list(next(iter(runs.values()))["test"])
    lines = [
        "| demo run | " + " | ".join(tasks) + " | aggregate | steps | train s | real tokens/s |",
        "|---|" + "---|" * (len(tasks) + 4),
    ]
    for label, run in runs.items():
        scores = " | ".join(f"{run['test'][task]:.4f}" for task in tasks)
        lines.append(
            f"| {label} | {scores} | {run['aggregate']:.4f} | {run['steps']} | "
            f"{run['train_seconds']:.1f} | {run['real_tokens_per_second']:.0f} |"
        )
    primary = next(iter(runs.values()))["primary"]
    metrics = ", ".join(f"{task} {primary[task]}" for task in tasks)
    return "\n".join(lines) + f"\n\nTest-split primary metrics: {metrics}."


def speed_table(speed: dict[str, Any]) -> str:
    """Training throughput against the HF Trainer, and useful FLOP/s against the measured
    bf16 matmul rate."""
    trainer = speed.get("hf_trainer_bf16")
    rate = speed["matmul_bf16"]
    lines = [
        "| contender | steps | examples/s | real tokens/s | × HF Trainer | useful TFLOP/s | "
        "÷ bf16 matmul |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in ("mtlm_bf16", "mtlm_bf16_weights", "hf_trainer_bf16"):
        result = speed.get(key)
        if result is None or "error" in result:
            error = (result or {}).get("error", "not run")
            lines.append(f"| {key} | failed: {error} | | | | | |")
            continue
        ratio = result["tokens_per_second"] / trainer["tokens_per_second"] if trainer else None
        lines.append(
            f"| {result['name']} | {result['optimizer_steps']} | "
            f"{result['examples_per_second']:.1f} | {result['tokens_per_second']:.0f} | "
            f"{'-' if ratio is None else f'{ratio:.2f}'} | "
            f"{result['useful_flops_per_second'] / 1e12:.2f} | "
            f"{result['useful_flops_per_second'] / rate:.4f} |"
        )
    mtlm = speed.get("mtlm_bf16", {})
    lines.append(
        f"\nMeasured matrix-multiply rate on {speed['device_name']}: bf16 {rate / 1e12:.1f} "
        f"TFLOP/s, fp32 {speed['matmul_fp32'] / 1e12:.1f} TFLOP/s (the higher of a measurement "
        "before and one after the contenders)."
    )
    if "step_overhead" in mtlm:
        lines.append(
            f"mtlm's {mtlm['train_seconds']:.1f} s of steps against "
            f"{mtlm['bare_loop_seconds']:.1f} s for the same batches through a bare "
            f"forward/backward/AdamW loop: {100 * mtlm['step_overhead']:.1f} % overhead."
        )
    return "\n".join(lines)


def gpu_section(figures: dict[str, Any]) -> str:
    """The markdown of the GPU section."""
    from inference import table as inference_table

    parts = ["### The demo config in bf16", "", demo_table(figures), ""]
    if "training_speed" in figures:
        parts += ["### Training speed against the HF Trainer", ""]
        parts += [speed_table(figures["training_speed"]), ""]
    if "inference" in figures:
        inference = figures["inference"]
        parts += [
            f"### Inference ({inference['dtype']}, {inference['texts']} texts, batch "
            f"{inference['batch_size']})",
            "",
            inference_table(inference),
            "",
        ]
        if inference["dtype"] != "float32":
            parts += [
                "The heads are untrained: their label probabilities are near ties, which "
                f"{inference['dtype']} rounding can flip between the two ways of computing them; "
                "the agreement is no measure of quality.",
                "",
            ]
    parts += [f"Tests marked `gpu`: {figures.get('gpu_tests', 'not run')}"]
    return "\n".join(parts)


def report(out: Path, command: str) -> Path:
    """Write `out/BENCHMARKS.md`: this repository's, with the GPU section replaced by the
    figures in `out`."""
    figures = read_figures(out)
    speed = figures.get("training_speed", {})
    where = speed.get("device_name", "the GPU machine")
    copy = out / "BENCHMARKS.md"
    shutil.copy2(ROOT / "BENCHMARKS.md", copy)
    write_section(
        "gpu",
        "GPU: the demo in bf16, training speed and inference",
        "the bundled MiniLM (restored to float32 from the float16 copy that travelled in the "
        "bundle) and the demo data. Training speed: the first rows of each demo task, one "
        "epoch's worth of optimizer steps, each contender in a fresh process; throughput over "
        "the training calls only.",
        gpu_section(figures),
        command,
        path=copy,
        where=where,
    )
    return copy


def main() -> None:
    """Run one step from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    packing = steps.add_parser("pack")
    packing.add_argument("folder", type=Path)
    packing.add_argument("--wheels", action="store_true")
    unpacking = steps.add_parser("unpack")
    unpacking.add_argument("folder", type=Path)
    unpacking.add_argument("cache", type=Path)
    unpacking.add_argument("--rows", type=int, help="keep the first ROWS of each split")
    config = steps.add_parser("demo-config")
    config.add_argument("variant", choices=sorted(DEMO_VARIANTS))
    config.add_argument("file", type=Path)
    config.add_argument("run_dir", type=Path)
    config.add_argument("--max-steps", type=int)
    figures = steps.add_parser("demo-figures")
    figures.add_argument("run_dir", type=Path)
    figures.add_argument("file", type=Path)
    reporting = steps.add_parser("report")
    reporting.add_argument("out", type=Path)
    reporting.add_argument("--command", default="bash benchmarks/gpu_check.sh BUNDLE OUT")
    args = parser.parse_args()
    if args.step == "pack":
        size = pack(args.folder, args.wheels)
        print(f"{args.folder}: {size / 2**20:.1f} MiB")
    elif args.step == "unpack":
        unpack(args.folder, args.cache, args.rows)
    elif args.step == "demo-config":
        demo_config(args.variant, args.file, args.run_dir, args.max_steps)
    elif args.step == "demo-figures":
        args.file.write_text(json.dumps(demo_figures(args.run_dir), indent=1), encoding="utf-8")
    else:
        print(report(args.out, args.command))


if __name__ == "__main__":
    main()
