"""Adding a kind takes one module and one registry line: a toy sampler, balancer, sharing kind
and task kind, each written here as its module would be and registered with one line, train
the tiny model; the config validates their options like those of the kinds mtlm ships, and
forgets them once they are unregistered."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
import torch
from pydantic import Field

from mtlm import ConfigError, MultiTaskModel, Trainer
from mtlm.config import ExperimentConfig, config_from_dict
from mtlm.data.rows import SplitRows
from mtlm.modeling.sharing import SHARING, HardSharing, SharingSpec
from mtlm.tasks import KINDS
from mtlm.tasks.base import Features
from mtlm.tasks.regression import Regression, RegressionSpec
from mtlm.training.balancers import BALANCERS, Balanced, Balancer, BalancerSpec, JointStep
from mtlm.training.balancers.base import backward_with_penalty
from mtlm.training.samplers import SAMPLERS, Sampler, SamplerSpec


def with_changes(config: ExperimentConfig, **sections: Any) -> ExperimentConfig:
    """`config` with top-level sections replaced, validated again."""
    return config_from_dict({**config.model_dump(mode="json"), **sections})


# --- a sampler ------------------------------------------------------------------------------
class AlwaysSpec(SamplerSpec):
    """Always the task named `task`."""

    kind: Literal["always"]
    task: str

    def check_tasks(self, names: list[str]) -> None:
        if self.task not in names:
            raise ValueError(f"training.sampler.task: no task named {self.task!r}")


class Always(Sampler):
    """Draws one task, always."""

    name = "always"
    options = AlwaysSpec
    spec: AlwaysSpec

    def first_probabilities(self) -> dict[str, float]:
        return {name: float(name == self.spec.task) for name in self.sizes}


def test_a_new_sampler_is_one_class_and_one_registry_line(make_config, monkeypatch):
    monkeypatch.setitem(SAMPLERS, Always.name, Always)
    trainer = Trainer(
        make_config(max_steps=6, eval_steps=None, sampler={"kind": "always", "task": "score"})
    )
    trainer.train()
    assert trainer.summary["examples_per_task"] == {"sentiment": 0, "score": 48, "tagging": 0}
    with pytest.raises(ConfigError, match=r"training\.sampler\.task: no task named 'nope'"):
        make_config(sampler={"kind": "always", "task": "nope"})
    taken_by_others = r"training\.sampler\.temperature: always samplers take no 'temperature'"
    with pytest.raises(ConfigError, match=taken_by_others):
        make_config(sampler={"kind": "always", "task": "score", "temperature": 2.0})
    monkeypatch.undo()
    with pytest.raises(ConfigError, match=r"training\.sampler\.kind: unknown kind 'always'"):
        make_config(sampler={"kind": "always", "task": "score"})


# --- a balancer -----------------------------------------------------------------------------
class WorstSpec(BalancerSpec):
    """Train only the task whose loss is largest, its loss scaled by `scale`."""

    kind: Literal["worst"]
    scale: float = Field(1.0, gt=0.0)


class Worst(Balancer):
    """All the weight on the largest loss of each step."""

    name = "worst"
    options = WorstSpec
    spec: WorstSpec

    def backward(self, losses: Sequence[torch.Tensor], step: JointStep) -> Balanced:
        stacked = torch.stack(list(losses))
        weights = torch.zeros_like(stacked.detach())
        weights[stacked.argmax()] = self.spec.scale
        backward_with_penalty((weights * stacked).sum(), step)
        return Balanced(weights)


def test_a_new_balancer_is_one_class_and_one_registry_line(make_config, monkeypatch, tmp_path):
    monkeypatch.setitem(BALANCERS, Worst.name, Worst)
    config = make_config(
        step_mode="joint",
        balancer={"kind": "worst", "scale": 2.0},
        max_steps=4,
        logging_steps=1,
        eval_steps=None,
    )
    Trainer(config).train()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    weights = [row["task_weights"] for row in rows if "task_weights" in row]
    assert len(weights) == 4
    for step_weights in weights:
        assert sorted(step_weights.values()) == [0.0, 0.0, 2.0]
    with pytest.raises(
        ConfigError,
        match=r"training\.balancer\.scale: Input should be greater than 0",
    ):
        make_config(step_mode="joint", balancer={"kind": "worst", "scale": 0})
    with pytest.raises(ConfigError, match=r"training\.balancer\.kind 'worst' needs .*joint"):
        make_config(balancer={"kind": "worst"})
    monkeypatch.undo()
    with pytest.raises(ConfigError, match=r"training\.balancer\.kind: unknown kind 'worst'"):
        make_config(step_mode="joint", balancer={"kind": "worst"})


# --- a sharing kind -------------------------------------------------------------------------
class FrozenEmbeddingsSpec(SharingSpec):
    """One backbone whose embeddings stay as pretrained."""

    kind: Literal["frozen_embeddings"]

    def less_sharing(self) -> str:
        return "give it its own parameters: sharing: {kind: lora}"


class FrozenEmbeddings(HardSharing):
    """Hard sharing with the input embeddings frozen."""

    name = "frozen_embeddings"
    options = FrozenEmbeddingsSpec

    def __init__(self, spec: SharingSpec, backbone: Any) -> None:
        super().__init__(spec, backbone)
        for parameter in backbone.get_input_embeddings().parameters():
            parameter.requires_grad_(False)


def test_a_new_sharing_kind_is_one_class_and_one_registry_line(make_config, monkeypatch, tmp_path):
    monkeypatch.setitem(SHARING, FrozenEmbeddings.name, FrozenEmbeddings)
    config = with_changes(
        make_config(max_steps=4, eval_steps=None), sharing={"kind": "frozen_embeddings"}
    )
    trainer = Trainer(config)
    embeddings = trainer.model.sharing.base.get_input_embeddings().weight.detach().clone()
    trainer.train()
    reloaded = MultiTaskModel.from_pretrained(tmp_path / "run")
    assert isinstance(reloaded.sharing, FrozenEmbeddings)
    assert torch.equal(reloaded.sharing.base.get_input_embeddings().weight, embeddings)
    with pytest.raises(ConfigError, match=r"sharing\.r: frozen_embeddings sharing takes no 'r'"):
        with_changes(config, sharing={"kind": "frozen_embeddings", "r": 4})
    monkeypatch.undo()
    with pytest.raises(ConfigError, match=r"sharing\.kind: unknown kind 'frozen_embeddings'"):
        with_changes(config, sharing={"kind": "frozen_embeddings"})


# --- a task kind ----------------------------------------------------------------------------
class WordCountSpec(RegressionSpec):
    """How long a text is, in words or in characters."""

    kind: Literal["word_count"]
    unit: Literal["words", "characters"] = "words"


class WordCount(Regression):
    """Regression onto the length of the text itself: no label column needed."""

    name = "word_count"
    options = WordCountSpec
    spec: WordCountSpec

    def lengths(self, rows: SplitRows) -> list[float]:
        texts = [str(row[self.spec.text_column]) for row in rows.rows]
        return [float(len(t.split()) if self.spec.unit == "words" else len(t)) for t in texts]

    def fit(self, splits: dict[str, SplitRows]) -> None:
        lengths = np.asarray(self.lengths(splits["train"]))
        self.state["mean"], self.state["std"] = float(lengths.mean()), float(lengths.std()) or 1.0

    def encode_targets(self, rows: SplitRows) -> Features:
        mean, std = self.state["mean"], self.state["std"]
        return {"labels": [(value - mean) / std for value in self.lengths(rows)]}


def test_a_new_task_kind_is_one_class_and_one_registry_line(make_config, monkeypatch, tmp_path):
    monkeypatch.setitem(KINDS, WordCount.name, WordCount)
    config = make_config(max_steps=4, eval_steps=None)
    raw = config.model_dump(mode="json")
    data = raw["tasks"][0]["data"]
    raw["tasks"].append(
        {"name": "length", "kind": "word_count", "data": data, "unit": "characters"}
    )
    Trainer(config_from_dict(raw)).train()
    results = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    assert results["tasks"]["length"]["primary"] == "pearson"
    reloaded = MultiTaskModel.from_pretrained(tmp_path / "run")
    assert isinstance(reloaded.tasks["length"], WordCount)
    assert reloaded.tasks["length"].spec.unit == "characters"
    raw["tasks"][0]["unit"] = "words"
    with pytest.raises(
        ConfigError, match=r"classification tasks take no 'unit'; word_count tasks do"
    ):
        config_from_dict(raw)
    monkeypatch.undo()
    raw["tasks"][0].pop("unit")
    with pytest.raises(ConfigError, match=r"tasks\[length\]\.kind: unknown kind 'word_count'"):
        config_from_dict(raw)


def test_the_guide_documents_every_registered_kind() -> None:
    guide = Path(__file__).resolve().parents[1] / "docs" / "guide"
    pages = {"balancing.md": (SAMPLERS, BALANCERS), "sharing.md": (SHARING,), "tasks.md": (KINDS,)}
    for page, registries in pages.items():
        text = (guide / page).read_text(encoding="utf-8")
        for registry in registries:
            for name in registry:
                assert f"`{name}`" in text, (page, name)
