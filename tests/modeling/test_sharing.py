"""Soft sharing and LoRA adapters: the penalty, tying, isolation, accounting, save and reload."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModel

from mtlm import ConfigError, MultiTaskModel, Trainer
from mtlm.config import config_from_dict, sharing_spec
from mtlm.modeling.sharing.lora import LoraSharingSpec
from mtlm.modeling.sharing.soft import SoftSharing, SoftSharingSpec

TEXTS = ["the movie was good", "a bad plot", "it is very boring"]


def trained(make_config, tmp_path, name, sharing, **training):
    """Train the tiny 3-task model with a sharing section; return (trainer, run folder)."""
    config = make_config(output_dir=str(tmp_path / name), eval_steps=None, **training)
    config.sharing = sharing_spec(sharing)
    trainer = Trainer(config)
    trainer.train()
    return trainer, tmp_path / name


def soft_distance(model: MultiTaskModel) -> float:
    """RMS distance of the tasks' backbones from their mean."""
    return float(model.sharing.penalty(1.0)[1])


def test_penalty_equals_the_formula_on_a_hand_made_case(tiny_model_dir):
    backbone = AutoModel.from_pretrained(tiny_model_dir)
    sharing = SoftSharing.from_one(
        SoftSharingSpec(kind="soft", hard_modules=["embeddings"]), backbone, ["a", "b", "c"]
    )
    torch.manual_seed(1)
    with torch.no_grad():
        for index, task in enumerate(["a", "b", "c"]):
            for parameter in sharing.task_parameters(task):
                parameter.add_(torch.randn_like(parameter) * (index + 1) * 0.01)
    names = [n for n, _ in sharing.backbones["a"].named_parameters() if "embeddings" not in n]
    expected = 0.0
    for name in names:
        values = [sharing.backbones[task].get_parameter(name).detach() for task in "abc"]
        mean = sum(values) / 3
        expected += sum(float(((value - mean) ** 2).sum()) for value in values)
    penalty, distance = sharing.penalty(0.5)
    assert penalty.item() == pytest.approx(0.5 * expected, rel=1e-5)
    assert float(distance) == pytest.approx((expected / 3) ** 0.5, rel=1e-5)
    penalty.backward()
    parameter = sharing.backbones["a"].get_parameter(names[0])
    values = [sharing.backbones[task].get_parameter(names[0]).detach() for task in "abc"]
    # d/dθ_a of λ Σ_i ||θ_i − θ̄||² is 2λ(θ_a − θ̄): the mean's own derivative cancels.
    assert torch.allclose(parameter.grad, 2 * 0.5 * (values[0] - sum(values) / 3), atol=1e-6)


def test_the_penalty_node_matches_autograd_of_the_formula_for_every_task(tiny_model_dir):
    backbone = AutoModel.from_pretrained(tiny_model_dir)
    tasks = ["a", "b", "c", "d"]
    sharing = SoftSharing.from_one(SoftSharingSpec(kind="soft"), backbone, tasks)
    torch.manual_seed(2)
    with torch.no_grad():
        for task in tasks:
            for parameter in sharing.task_parameters(task):
                parameter.add_(torch.randn_like(parameter) * 0.01)
    frozen = "encoder.layer.0.attention.self.query.weight"
    sharing.backbones["b"].get_parameter(frozen).requires_grad_(False)
    names = [n for n, _ in sharing.backbones["a"].named_parameters()]
    # The formula through plain autograd, on copies of the parameters.
    copies = {
        task: [
            sharing.backbones[task].get_parameter(n).detach().clone().requires_grad_()
            for n in names
        ]
        for task in tasks
    }
    total = 0.0
    for index in range(len(names)):
        values = [copies[task][index] for task in tasks]
        mean = sum(values) / len(tasks)
        total = total + sum(((value - mean) ** 2).sum() for value in values)
    (0.3 * total).backward()
    penalty, _ = sharing.penalty(0.3)
    assert penalty.item() == pytest.approx(0.3 * total.item(), rel=1e-5)
    penalty.backward()
    for task in tasks:
        for name, reference in zip(names, copies[task], strict=True):
            parameter = sharing.backbones[task].get_parameter(name)
            if task == "b" and name == frozen:
                assert parameter.grad is None
            else:
                assert torch.allclose(parameter.grad, reference.grad, atol=1e-7), (task, name)


def test_strength_zero_trains_tasks_apart_and_a_large_strength_keeps_them_together(
    make_config, tmp_path
):
    free, _ = trained(make_config, tmp_path, "free", {"kind": "soft", "strength": 0.0})
    tied, _ = trained(make_config, tmp_path, "tied", {"kind": "soft", "strength": 100.0})
    assert soft_distance(free.model) > 1e-3
    assert soft_distance(tied.model) < soft_distance(free.model) / 20


def test_partial_sharing_keeps_hard_layers_as_one_tensor_after_reload(make_config, tmp_path):
    sharing = {
        "kind": "soft",
        "strength": 0.01,
        "hard_modules": ["embeddings"],
        "hard_layers": [0, 0],
    }
    trainer, run = trained(make_config, tmp_path, "partial", sharing)
    for model in (trainer.model, MultiTaskModel.from_pretrained(run)):
        backbones = model.sharing.backbones
        for name in ("embeddings.word_embeddings.weight", "encoder.layer.0.output.dense.weight"):
            assert len({backbones[t].get_parameter(name).data_ptr() for t in backbones}) == 1
        upper = "encoder.layer.1.output.dense.weight"
        assert len({backbones[t].get_parameter(upper).data_ptr() for t in backbones}) == 3
    shared_ids = {id(p) for p in trainer.model.shared_parameters()}
    assert shared_ids and all(
        id(p) not in shared_ids for p in trainer.model.task_parameters("score")
    )


def test_frozen_lora_base_changes_only_adapters_and_heads(make_config, tmp_path, tiny_model_dir):
    trainer, run = trained(make_config, tmp_path, "lora", {"kind": "lora", "r": 4})
    base = AutoModel.from_pretrained(tiny_model_dir).state_dict()
    after = trainer.model.state_dict()
    changed = {key for key, value in after.items() if "lora_" in key or key.startswith("heads.")}
    for key, value in after.items():
        if key in changed:
            continue
        plain = key.removeprefix("backbone.base_model.model.").replace(".base_layer", "")
        assert torch.equal(value, base[plain]), key
    assert any(
        not torch.equal(after[k], torch.zeros_like(after[k])) for k in changed if "lora_B" in k
    )


def test_each_adapter_affects_only_its_task(make_config, tmp_path):
    trainer, _ = trained(make_config, tmp_path, "lora", {"kind": "lora", "r": 4})
    model = trainer.model
    before = model.predict(["sentiment", "score"], TEXTS)
    with torch.no_grad():
        for parameter in model.sharing.task_parameters("sentiment"):
            parameter.add_(0.5)
    after = model.predict(["sentiment", "score"], TEXTS)
    assert after["score"] == before["score"]
    assert after["sentiment"] != before["sentiment"]


@pytest.mark.parametrize(
    "sharing",
    [{"kind": "hard"}, {"kind": "soft", "strength": 0.01}, {"kind": "lora", "r": 4}],
    ids=["hard", "soft", "lora"],
)
def test_save_and_reload_give_identical_predictions(make_config, tmp_path, sharing):
    trainer, run = trained(make_config, tmp_path, sharing["kind"], sharing)
    reloaded = MultiTaskModel.from_pretrained(run)
    for task in ("sentiment", "score"):
        assert reloaded.predict(task, TEXTS) == trainer.model.predict(task, TEXTS)
    words = [["the", "movie", "was", "good"]]
    assert reloaded.predict("tagging", words) == trainer.model.predict("tagging", words)
    described = json.loads((run / "model" / "mtlm_config.json").read_text())
    assert described["sharing"]["kind"] == sharing["kind"]


def test_lora_adapter_folders_load_with_peft_alone(make_config, tmp_path):
    trainer, run = trained(make_config, tmp_path, "lora", {"kind": "lora", "r": 4})
    base = AutoModel.from_pretrained(run / "model")
    alone = PeftModel.from_pretrained(base, run / "model" / "adapters" / "sentiment")
    ours = trainer.model.sharing.task_parameters("sentiment")
    theirs = [p for n, p in alone.named_parameters() if "lora_" in n]
    assert len(theirs) == len(ours)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_accounting_shows_what_each_kind_costs(make_config, tmp_path):
    counts = {}
    for kind, sharing in (
        ("hard", {"kind": "hard"}),
        ("soft", {"kind": "soft"}),
        ("lora", {"kind": "lora", "r": 4}),
    ):
        trainer, run = trained(make_config, tmp_path, kind, sharing, max_steps=1)
        summary = json.loads((run / "train_summary.json").read_text())
        counts[kind] = summary["model"]
        assert summary["model"] == trainer.model.accounting()
    backbone = counts["hard"]["total_parameters"] - sum(
        sum(p.numel() for p in head.parameters()) for head in trainer.model.heads.values()
    )
    assert counts["soft"]["total_parameters"] > 2.9 * backbone
    assert counts["lora"]["total_parameters"] < 1.5 * counts["hard"]["total_parameters"]
    assert counts["lora"]["trainable_parameters"] < counts["hard"]["trainable_parameters"] / 2
    assert counts["soft"]["memory_bytes"] > 2.5 * counts["hard"]["memory_bytes"]


def test_soft_penalty_is_logged(make_config, tmp_path):
    _, run = trained(make_config, tmp_path, "soft", {"kind": "soft", "strength": 0.1})
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    logged = [row["sharing"] for row in rows if "sharing" in row]
    assert logged and all(entry["penalty"] >= 0 and entry["distance"] > 0 for entry in logged)


def test_linear_warmup_raises_the_strength_from_zero():
    sharing = SoftSharingSpec(
        kind="soft", strength=2.0, strength_schedule="linear_warmup", strength_warmup_ratio=0.5
    )
    strengths = [sharing.penalty_strength(step, 10) for step in (0, 1, 5, 9)]
    assert strengths == [0.0, pytest.approx(0.4), 2.0, 2.0]
    assert sharing_spec({"kind": "hard"}).penalty_strength(5, 10) is None


@pytest.mark.parametrize(
    ("sharing", "message"),
    [
        ({"kind": "hard", "r": 4}, r"sharing\.r: hard sharing takes no 'r'; lora sharing does"),
        ({"kind": "soft", "hard_layers": [0, 5]}, "sharing.hard_layers: the backbone has 2 layers"),
        ({"kind": "soft", "hard_modules": ["embedings"]}, "sharing.hard_modules"),
    ],
)
def test_sharing_errors_name_the_key(make_config, sharing, message):
    with pytest.raises(ConfigError, match=message):
        raw = make_config().model_dump(mode="json")
        raw["sharing"] = sharing
        Trainer(config_from_dict(raw))


def test_aggregators_need_shared_parameters(make_config, tmp_path):
    config = make_config(step_mode="joint", balancer={"kind": "pcgrad"}, max_steps=2)
    config.sharing = LoraSharingSpec(kind="lora", r=4)
    with pytest.raises(ConfigError, match="no trainable parameter is shared"):
        Trainer(config).train()
    assert not (tmp_path / "run").exists()
