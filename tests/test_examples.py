"""Every example config in examples/ is valid as it stands."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlm.config import load_config
from mtlm.demo.archives import ARCHIVES
from mtlm.demo.tasks import demo_task
from mtlm.modeling.multitask_model import MultiTaskModel
from mtlm.pipeline import MultiTaskPipeline
from mtlm.tasks import KINDS

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.yaml"))


def test_there_are_examples():
    assert any(path.name == "demo.yaml" for path in EXAMPLES)


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_config_is_valid(path):
    config = load_config(path)
    # Offline examples use bundled data; the others name hub datasets, never local files.
    assert config.tasks and all(task.data.bundled or task.data.hub for task in config.tasks)


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_bundled_data_sets_are_known_and_pinned(path):
    # Offline: the names resolve to demo tasks whose archives are pinned; nothing is fetched.
    for task in load_config(path).tasks:
        if task.data.bundled:
            assert demo_task(task.data.bundled).archive in ARCHIVES


NLU_LABELS = {
    "intent": ["airfare", "flight", "ground_service"],
    "sentiment": ["fresh", "rotten"],
    "entities": ["B-fromloc.city_name", "B-toloc.city_name", "I-toloc.city_name", "O"],
}


def test_nlu_example_serves_intent_sentiment_and_entities_in_one_encoder_pass(tiny_model_dir):
    config = load_config(EXAMPLES_DIR / "nlu.yaml")
    assert [(task.name, task.kind, task.data.bundled) for task in config.tasks] == [
        ("intent", "classification", "intent"),
        ("sentiment", "classification", "sentiment"),
        ("entities", "token_classification", "slots"),
    ]
    assert config.sharing.kind == "hard"
    # The example's own task specs and sharing, on the tiny model, untrained.
    tasks = {
        spec.name: KINDS[spec.kind](spec, {"label_names": NLU_LABELS[spec.name]})
        for spec in config.tasks
    }
    model = MultiTaskModel.from_backbone(str(tiny_model_dir), tasks, sharing=config.sharing).eval()
    calls = []
    model.sharing.backbone.register_forward_hook(lambda *args: calls.append(1))
    messages = ["show me flights to boston", "a dull plot", "the movie was great"]
    results = MultiTaskPipeline(model, batch_size=8)(messages)
    assert len(calls) == 1
    assert set(results) == {"intent", "sentiment", "entities"}
    assert {row["label"] for row in results["intent"]} <= set(NLU_LABELS["intent"])
    assert [len(row["tags"]) for row in results["entities"]] == [5, 3, 4]
