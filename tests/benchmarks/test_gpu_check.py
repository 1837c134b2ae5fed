"""The GPU check's Python steps: the bundle that carries the demo's model and data to a machine
without internet, the demo configs in bf16, and the GPU section written from the figures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import gpu_check  # noqa: E402

from mtlm import bundled  # noqa: E402


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A stand-in for the bundled model and the demo tasks' files."""
    model = tmp_path / "minilm"
    model.mkdir()
    for name in gpu_check.MODEL_FILES:
        (model / name).write_text(f"{name} of the model")
    torch.manual_seed(0)
    weights = {"embeddings.weight": torch.randn(30, 8), "layer.bias": torch.randn(8) * 1e-3}
    save_file(weights, model / "model.safetensors")
    files = {}
    for task in gpu_check.demo_tasks():
        folder = tmp_path / "demo_data" / task
        folder.mkdir(parents=True)
        (folder / ".build.json").write_text('{"stamp": 1}')
        files[task] = {split: folder / f"{split}.jsonl" for split in ("train", "test")}
        for path in files[task].values():
            path.write_text(f'{{"text": "{task}"}}\n')
    monkeypatch.setattr(bundled, "resolve_model_name", lambda name: str(model))
    monkeypatch.setattr(bundled, "bundled_task_files", lambda task: files[task])
    return {"model": model, "weights": model / "model.safetensors", "data": tmp_path / "demo_data"}


def test_the_bundle_restores_the_model_in_float32_and_the_data_as_built(sources, tmp_path):
    bundle = tmp_path / "bundle"
    size = gpu_check.pack(bundle, wheels=False)
    halved = load_file(bundle / "models" / "minilm-float16" / "model.safetensors")
    assert {tensor.dtype for tensor in halved.values()} == {torch.float16}
    assert size == sum(path.stat().st_size for path in bundle.rglob("*") if path.is_file())

    cache = tmp_path / "cache"
    gpu_check.unpack(bundle, cache)
    original = load_file(sources["weights"])
    restored = load_file(cache / "models" / "minilm" / "model.safetensors")
    assert restored.keys() == original.keys()
    for key, tensor in original.items():
        assert restored[key].dtype == torch.float32
        assert torch.equal(restored[key], tensor.half().float())
    for name in gpu_check.MODEL_FILES:
        if name != "model.safetensors":
            assert (cache / "models" / "minilm" / name).read_text() == f"{name} of the model"
    built = sorted(p.relative_to(sources["data"]) for p in sources["data"].rglob("*"))
    copied = sorted(p.relative_to(cache / "demo_data") for p in (cache / "demo_data").rglob("*"))
    assert copied == built and any(path.name == ".build.json" for path in copied)


def test_a_dry_run_bundle_keeps_the_first_rows_of_each_split(sources, tmp_path):
    bundle = tmp_path / "bundle"
    gpu_check.pack(bundle, wheels=False)
    for split in (bundle / "demo_data").glob("*/*.jsonl"):
        split.write_text("".join(f'{{"row": {index}}}\n' for index in range(5)))
    gpu_check.unpack(bundle, tmp_path / "cache", rows=2)
    splits = list((tmp_path / "cache" / "demo_data").glob("*/*.jsonl"))
    assert len(splits) == 2 * len(gpu_check.demo_tasks())
    assert {split.read_text() for split in splits} == {'{"row": 0}\n{"row": 1}\n'}


def test_a_bundle_over_the_limit_is_refused(sources, tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "BUNDLE_LIMIT_MIB", 0)
    with pytest.raises(SystemExit, match="over 0 MiB"):
        gpu_check.pack(tmp_path / "bundle", wheels=False)


@pytest.mark.parametrize(
    ("variant", "dtype", "precision"),
    [("autocast", "float32", "bf16"), ("weights", "bfloat16", "no")],
)
def test_the_demo_configs_train_in_bf16_two_ways(tmp_path, variant, dtype, precision):
    from mtlm.config import load_config

    file = tmp_path / "demo.yaml"
    gpu_check.demo_config(variant, file, tmp_path / "run", max_steps=4)
    raw = yaml.safe_load(file.read_text())
    assert raw["model"]["dtype"] == dtype
    assert raw["training"]["mixed_precision"] == precision
    assert raw["training"]["max_steps"] == 4 and raw["training"]["eval_steps"] == 2
    assert load_config(file).training.output_dir == str(tmp_path / "run")
    gpu_check.demo_config(variant, file, tmp_path / "run", max_steps=None)
    assert yaml.safe_load(file.read_text())["training"]["max_steps"] == 600  # the demo's own


def contender(name: str, tokens_per_second: float, flops: float) -> dict:
    return {
        "name": name,
        "optimizer_steps": 190,
        "examples_per_second": tokens_per_second / 20,
        "tokens_per_second": tokens_per_second,
        "useful_flops_per_second": flops,
        "train_seconds": 4.0,
    }


def test_the_gpu_section_reports_each_figure(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    demo = {
        "test": {"sentiment": 0.9, "pos": 0.95},
        "primary": {"sentiment": "accuracy", "pos": "f1"},
        "aggregate": 0.925,
        "steps": 600,
        "train_seconds": 12.5,
        "real_tokens_per_second": 50000.0,
    }
    (out / "demo_autocast.json").write_text(json.dumps(demo))
    speed = {
        "device_name": "NVIDIA H200",
        "mtlm_bf16": contender("mtlm (bf16)", 300000.0, 8e12)
        | {"bare_loop_seconds": 3.8, "step_overhead": 0.05},
        "mtlm_bf16_weights": {"name": "mtlm (bf16 weights)", "error": "RuntimeError: x"},
        "hf_trainer_bf16": contender("HF Trainer (bf16)", 200000.0, 5e12),
        "matmul_bf16": 8e14,
        "matmul_fp32": 5e13,
    }
    (out / "training_speed.json").write_text(json.dumps(speed))
    (out / "gpu_tests.txt").write_text("..\n1 passed, 1 skipped in 3.0s\n")
    before = (gpu_check.ROOT / "BENCHMARKS.md").read_text()

    written = gpu_check.report(out, "bash benchmarks/gpu_check.sh gpu-bundle OUT")
    assert (gpu_check.ROOT / "BENCHMARKS.md").read_text() == before
    text = written.read_text()
    section = text[text.index("<!-- gpu:start -->") : text.index("<!-- gpu:end -->")]
    assert "on NVIDIA H200:" in section
    assert "| bf16 autocast, float32 weights | 0.9000 | 0.9500 | 0.9250 | 600 | 12.5 |" in section
    assert "| mtlm (bf16) | 190 | 15000.0 | 300000 | 1.50 | 8.00 | 0.0100 |" in section
    assert "| mtlm_bf16_weights | failed: RuntimeError: x |" in section
    assert "bf16 800.0 TFLOP/s" in section and "5.0 % overhead" in section
    assert "Tests marked `gpu`: 1 passed, 1 skipped in 3.0s" in section
    assert without_gpu_section(text) == without_gpu_section(before)  # nothing else changed


def without_gpu_section(text: str) -> str:
    start, end = "<!-- gpu:start -->", "<!-- gpu:end -->"
    if start in text:
        text = text[: text.index(start)] + text[text.index(end) + len(end) :]
    return text.strip()
