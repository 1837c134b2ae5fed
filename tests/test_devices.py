"""Where a loaded model runs: device names, the default, and every inference surface taking a
device (MultiTaskModel and RoutedModel.from_pretrained, MultiTaskPipeline, export_task and the
`--device` of `mtlm evaluate`, `predict` and `export`), or a device_map for the backbone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import four_task_model
from transformers import AutoModel

from mtlm import ConfigError, MultiTaskModel
from mtlm import devices as devices_module
from mtlm.cli import main
from mtlm.devices import Placement, default_device, input_device, resolve_device
from mtlm.export import export_task
from mtlm.modeling import backbones
from mtlm.modeling.routed_model import RoutedModel, load_model
from mtlm.pipeline import MultiTaskPipeline

TEXTS = ["the movie was great", "a very dull plot and it is boring", "lovely"]
CPU = torch.device("cpu")
#: The tiny backbone's second layer on disk, the rest on the CPU.
TO_DISK = {"embeddings": "cpu", "encoder.layer.0": "cpu", "encoder.layer.1": "disk"} | {
    "pooler": "cpu"
}
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@pytest.fixture
def saved(make_config, tiny_model_dir, tmp_path) -> Path:
    """The tiny four-task model, saved."""
    four_task_model(make_config(), tiny_model_dir, {"kind": "hard"}).save_pretrained(
        tmp_path / "model"
    )
    return tmp_path / "model"


def assert_on(model: MultiTaskModel, device: torch.device) -> None:
    """Every weight and buffer is on `device`, and so is a head's output."""
    tensors = [*model.parameters(), *model.buffers()]
    assert {tensor.device for tensor in tensors} == {device}
    assert model.device == device
    batch = model.tasks["sentiment"].collate(
        [{"input_ids": [2, 9, 3], "attention_mask": [1, 1, 1], "labels": 0}],
        model.pad_token_id,
    )
    with torch.no_grad():
        output = model("sentiment", {key: value.to(device) for key, value in batch.items()})
    assert output.device == device


# --- naming a device --------------------------------------------------------------------------
@pytest.mark.parametrize("given", ["cpu", CPU, -1, "-1"])
def test_the_cpu_named_every_way(given):
    assert resolve_device(given) == CPU


@no_cuda
def test_the_default_is_the_cpu_on_a_machine_without_an_accelerator():
    assert resolve_device(None) == default_device() == CPU


def test_the_default_is_the_accelerator_where_there_is_one(monkeypatch):
    monkeypatch.setattr(devices_module, "_accelerator_type", lambda: "cuda")
    assert default_device() == torch.device("cuda")
    monkeypatch.setattr(devices_module, "_device_count", lambda kind: 2)
    assert resolve_device(1) == torch.device("cuda", 1)
    assert resolve_device("1") == torch.device("cuda", 1)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("gpu", r"--device: 'gpu' is not a device; give 'cpu', 'cuda'"),
        ("cuda:x", r"--device: 'cuda:x' is not a device"),
        ("CPU", r"--device: 'CPU' is not a device"),
        ("meta", r"--device: 'meta' holds no weights"),
        (True, r"--device: expected 'cpu', 'cuda', .* \(got True\)"),
        (1.5, r"--device: expected .* \(got 1.5\)"),
    ],
)
def test_a_bad_device_names_the_flag(given, message):
    with pytest.raises(ConfigError, match=message):
        resolve_device(given, "--device")


@no_cuda
@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("cuda", r"device: 'cuda' is not available: torch finds no cuda device"),
        ("cuda:1", r"device: 'cuda:1' is not available"),
        (0, r"device: 0 is an accelerator's index, and this machine has no accelerator"),
    ],
)
def test_a_device_this_machine_lacks_is_refused(given, message):
    with pytest.raises(ConfigError, match=message):
        resolve_device(given)


def test_a_gpu_index_beyond_the_machines_is_refused(monkeypatch):
    monkeypatch.setattr(devices_module, "_device_count", lambda kind: 2)
    with pytest.raises(ConfigError, match=r"'cuda:2' does not exist: this machine has 2 cuda"):
        resolve_device("cuda:2")


# --- every surface takes one ------------------------------------------------------------------
@pytest.mark.parametrize("device", ["cpu", CPU, -1, None])
def test_from_pretrained_puts_the_model_on_the_device(saved, device):
    assert_on(MultiTaskModel.from_pretrained(saved, device=device), CPU)


def test_a_bad_device_fails_before_the_model_is_read(tmp_path):
    with pytest.raises(ConfigError, match="^device: 'gpu' is not a device"):
        MultiTaskModel.from_pretrained(tmp_path / "no-model", device="gpu")


@pytest.fixture
def placements(monkeypatch) -> list[Placement | None]:
    """The placement each backbone is loaded with, in order."""
    seen: list[Placement | None] = []
    load = backbones.load_backbone

    def spy(*args, **kwargs):
        seen.append(kwargs["placement"])
        return load(*args, **kwargs)

    monkeypatch.setattr(backbones, "load_backbone", spy)
    return seen


@pytest.mark.parametrize("kind", ["hard", "soft", "lora"])
def test_a_device_map_reaches_every_backbones_from_pretrained(
    make_config, tiny_model_dir, tmp_path, placements, kind
):
    model = four_task_model(make_config(), tiny_model_dir, {"kind": kind})
    model.save_pretrained(tmp_path / "model")
    placed = MultiTaskModel.from_pretrained(tmp_path / "model", device_map={"": "cpu"})
    assert placements == [Placement({"": "cpu"})] * (len(model.tasks) if kind == "soft" else 1)
    assert_on(placed, CPU)
    assert placed.predict(["sentiment", "score"], TEXTS) == model.predict(
        ["sentiment", "score"], TEXTS
    )


@pytest.mark.parametrize("kind", ["hard", "soft"])
def test_layers_a_device_map_sends_to_disk_serve_and_get_the_offload_folder(
    make_config, tiny_model_dir, tmp_path, placements, kind
):
    """transformers reads a disk layer from the saved safetensors file itself; the offload
    folder is for weights it converts as they load (fused experts, say), so what mtlm owes is
    to pass it on, one folder per backbone where several have the same weight names."""
    model = four_task_model(make_config(), tiny_model_dir, {"kind": kind})
    model.save_pretrained(tmp_path / "model")
    offload = tmp_path / "offload"
    placed = MultiTaskModel.from_pretrained(
        tmp_path / "model", device_map=TO_DISK, offload_folder=offload
    )
    assert "meta" in {parameter.device.type for parameter in placed.parameters()}
    assert placed.predict(["sentiment", "score"], TEXTS) == model.predict(
        ["sentiment", "score"], TEXTS
    )
    folders = [offload / task for task in model.tasks] if kind == "soft" else [offload]
    assert placements == [Placement(TO_DISK, folder) for folder in folders]


def test_lora_adapters_over_layers_on_disk_are_refused(make_config, tiny_model_dir, tmp_path):
    four_task_model(make_config(), tiny_model_dir, {"kind": "lora"}).save_pretrained(
        tmp_path / "model"
    )
    with pytest.raises(ConfigError, match="^device_map: LoRA adapters cannot load over layers"):
        MultiTaskModel.from_pretrained(tmp_path / "model", device_map=TO_DISK)


def test_heads_read_a_backbone_that_accelerate_spread_over_devices(
    make_config, tiny_model_dir, tmp_path
):
    """A layer offloaded to disk makes accelerate dispatch the backbone with its hooks (the
    only way to get them without several GPUs): inputs go where it runs, outputs come back."""
    model = four_task_model(make_config(), tiny_model_dir, {"kind": "hard"})
    spread = AutoModel.from_pretrained(
        tiny_model_dir,
        device_map=TO_DISK,
        offload_folder=tmp_path / "offload",
    )
    assert "meta" in {parameter.device.type for parameter in spread.parameters()}
    assert input_device(spread) == CPU
    dispatched = MultiTaskModel(spread, model.tasks, model.tokenizer)
    dispatched.heads.load_state_dict(model.heads.state_dict())
    assert dispatched.device == CPU
    assert dispatched.predict("sentiment", TEXTS) == model.predict("sentiment", TEXTS)


def test_an_offload_folder_without_a_device_map_is_refused(saved, tmp_path):
    with pytest.raises(ConfigError, match="^offload_folder: .*give a device map too"):
        MultiTaskModel.from_pretrained(saved, offload_folder=tmp_path / "offload")
    with pytest.raises(ConfigError, match="^offload_folder: places a model loaded from a path"):
        MultiTaskPipeline(MultiTaskModel.from_pretrained(saved), offload_folder=tmp_path)


def test_a_routed_folder_offloads_each_model_to_a_folder_of_its_own(saved, tmp_path, placements):
    folder = tmp_path / "plan"
    folder.mkdir()
    saved.rename(folder / "model-0")
    (folder / "routing.json").write_text(json.dumps({"tasks": {"sentiment": "model-0"}}))
    routed = load_model(folder, device_map=TO_DISK, offload_folder=tmp_path / "offload")
    assert isinstance(routed, RoutedModel)
    assert placements == [Placement(TO_DISK, tmp_path / "offload" / "model-0")]
    assert MultiTaskPipeline(folder)(TEXTS)["sentiment"] == routed.predict("sentiment", TEXTS)


def test_a_device_and_a_device_map_together_are_refused(saved):
    with pytest.raises(ConfigError, match="^device_map: give a device or a device_map, not both"):
        MultiTaskModel.from_pretrained(saved, device="cpu", device_map="auto")


def test_a_routed_folder_loads_every_model_on_the_device(saved, tmp_path):
    folder = tmp_path / "plan"
    folder.mkdir()
    saved.rename(folder / "model-0")
    (folder / "routing.json").write_text(json.dumps({"tasks": {"sentiment": "model-0"}}))
    routed = RoutedModel.from_pretrained(folder, device=CPU)
    assert_on(routed.models["model-0"], CPU)
    assert routed.to("cpu") is routed
    assert isinstance(load_model(folder, "cpu"), RoutedModel)
    with pytest.raises(ConfigError, match="^device: 'gpu' is not a device"):
        RoutedModel.from_pretrained(folder, device="gpu")


@pytest.mark.parametrize("device", ["cpu", CPU, -1])
def test_the_pipeline_loads_or_moves_the_model_to_the_device(saved, device):
    serve = MultiTaskPipeline(saved, device=device)
    assert_on(serve.model, CPU)
    loaded = MultiTaskModel.from_pretrained(saved, device="cpu")
    assert MultiTaskPipeline(loaded, device=device).model is loaded
    assert serve(TEXTS)["sentiment"] == loaded.predict("sentiment", TEXTS)


def test_the_pipeline_refuses_a_bad_device_and_a_device_map_for_a_loaded_model(saved):
    with pytest.raises(ConfigError, match="^device: 'cuda:x' is not a device"):
        MultiTaskPipeline(saved, device="cuda:x")
    with pytest.raises(ConfigError, match="^device_map: places a model loaded from a path"):
        MultiTaskPipeline(MultiTaskModel.from_pretrained(saved), device_map="auto")


def test_export_verifies_on_the_device_it_loads_the_model_on(saved, tmp_path):
    assert export_task(saved, "sentiment", tmp_path / "exported", device=CPU).is_dir()
    with pytest.raises(ConfigError, match="^--device: 'gpu' is not a device"):
        export_task(saved, "sentiment", tmp_path / "again", device="gpu")
    assert not (tmp_path / "again").exists()


def test_the_commands_that_run_a_model_take_device_flags(saved, tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS))
    predict = ["predict", "--model", str(saved), "--task", "sentiment", "--input", str(rows)]
    assert main([*predict, "--device", "cpu"]) == 0
    on_cpu = capsys.readouterr().out
    assert main([*predict, "--device-map", "auto"]) == 0
    assert capsys.readouterr().out == on_cpu
    exported = tmp_path / "exported"
    export = ["export", "--model", str(saved), "--task", "sentiment", "--out", str(exported)]
    assert main([*export, "--device", "-1"]) == 0
    assert main([*predict, "--device", "cpu", "--device-map", "auto"]) == 2
    assert "--device-map: give --device or --device-map, not both" in capsys.readouterr().err


@pytest.mark.gpu
def test_predict_on_cuda_gives_the_cpu_predictions(saved, tmp_path, capsys):
    """Needs a CUDA GPU: the model, the pipeline and `mtlm predict` run there."""
    cuda = MultiTaskModel.from_pretrained(saved, device="cuda")
    assert {parameter.device.type for parameter in cuda.parameters()} == {"cuda"}
    assert_on(cuda, torch.device("cuda", torch.cuda.current_device()))
    cpu = MultiTaskModel.from_pretrained(saved, device="cpu")
    for ours, theirs in zip(cuda.predict("score", TEXTS), cpu.predict("score", TEXTS), strict=True):
        assert ours["score"] == pytest.approx(theirs["score"], abs=1e-4)
    serve = MultiTaskPipeline(saved, device="cuda:0")
    assert serve(TEXTS)["sentiment"][0]["label"] == cpu.predict("sentiment", TEXTS)[0]["label"]
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS))
    predict = ["predict", "--model", str(saved), "--task", "sentiment", "--input", str(rows)]
    assert main([*predict, "--device", "cuda"]) == 0
    lines = capsys.readouterr().out.splitlines()
    labels = [json.loads(line)["sentiment"]["label"] for line in lines]
    assert labels == [row["label"] for row in cpu.predict("sentiment", TEXTS)]
