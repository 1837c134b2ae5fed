"""MultiTaskPipeline: every head on raw texts in one encoder pass, as model.predict decodes."""

from __future__ import annotations

import json

import pytest
from conftest import PAIRS, four_task_model

from mtlm import ConfigError, MultiTaskModel
from mtlm.pipeline import MultiTaskPipeline

TEXTS = [
    "the movie was great",
    "a very dull plot and it is boring and the film is very very dull",
    "it is awful, really",
    "lovely",
    "the plots were superb and the films are fine",  # sub-words: plot ##s, film ##s
]


def build_model(make_config, tiny_model_dir, kind: str = "hard") -> MultiTaskModel:
    """The tiny three-task model and a text-pair task; soft backbones made distinct."""
    return four_task_model(make_config(), tiny_model_dir, {"kind": kind})


def assert_same(ours: list, theirs: list) -> None:
    """Equal labels and tags; scores and probabilities equal up to float noise."""
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], str | list):
                assert a[key] == b[key]
            else:
                assert a[key] == pytest.approx(b[key], abs=1e-5)


@pytest.mark.parametrize("kind", ["hard", "soft"])
def test_predictions_equal_model_predict_for_every_task(make_config, tiny_model_dir, kind):
    model = build_model(make_config, tiny_model_dir, kind)
    serve = MultiTaskPipeline(model, batch_size=2)
    results = serve(TEXTS)
    assert set(results) == {"sentiment", "score", "tagging"}
    for task in ("sentiment", "score"):
        assert_same(results[task], model.predict(task, TEXTS, batch_size=2))
    words = [text.split() for text in TEXTS]
    assert_same(results["tagging"], model.predict("tagging", words, batch_size=2))
    assert [len(row["tags"]) for row in results["tagging"]] == [len(w) for w in words]
    assert_same(serve(PAIRS)["pair"], model.predict("pair", PAIRS, batch_size=2))


def test_hard_sharing_runs_the_backbone_once_per_batch_for_all_heads(make_config, tiny_model_dir):
    model = build_model(make_config, tiny_model_dir)
    calls = []
    model.sharing.backbone.register_forward_hook(lambda *args: calls.append(1))
    results = MultiTaskPipeline(model, batch_size=2)(TEXTS)
    assert len(results) == 3
    assert len(calls) == 3  # 5 texts in batches of 2, for 3 heads


def test_soft_sharing_runs_each_tasks_own_backbone(make_config, tiny_model_dir):
    model = build_model(make_config, tiny_model_dir, "soft")
    calls: dict[str, int] = {}
    for name, backbone in model.sharing.backbones.items():
        backbone.register_forward_hook(
            lambda *args, name=name: calls.__setitem__(name, calls.get(name, 0) + 1)
        )
    MultiTaskPipeline(model, tasks=["sentiment", "tagging"], batch_size=2)(TEXTS)
    assert calls == {"sentiment": 3, "tagging": 3}


def test_pairs_go_to_pair_tasks_and_texts_to_the_others(make_config, tiny_model_dir):
    model = build_model(make_config, tiny_model_dir)
    serve = MultiTaskPipeline(model)
    assert set(serve(PAIRS)) == {"pair"}
    assert set(serve("the movie was great")) == {"sentiment", "score", "tagging"}
    assert len(serve("the movie was great")["sentiment"]) == 1
    with pytest.raises(ConfigError, match="no served task reads text pairs"):
        MultiTaskPipeline(model, tasks=["sentiment"])(PAIRS)
    with pytest.raises(ConfigError, match="not a mix"):
        serve(["a text", ("a text", "a pair")])


def test_results_come_back_in_input_order_whatever_the_lengths(make_config, tiny_model_dir):
    model = build_model(make_config, tiny_model_dir)
    together = MultiTaskPipeline(model, batch_size=2)(TEXTS)
    serve_one = MultiTaskPipeline(model, batch_size=1)
    for index, text in enumerate(TEXTS):
        alone = serve_one(text)
        for task, predictions in together.items():
            assert_same([predictions[index]], alone[task])


def test_each_task_reads_up_to_its_own_max_length(make_config, tiny_model_dir):
    model = build_model(make_config, tiny_model_dir)
    model.tasks["sentiment"].spec.max_length = 6
    model.tasks["tagging"].spec.max_length = 9
    long_text = TEXTS[1]
    served = MultiTaskPipeline(model, tasks=["sentiment", "tagging"])(long_text)
    assert len(served["tagging"][0]["tags"]) == 9 - 2  # one sub-word per word, [CLS] and [SEP]
    assert served["sentiment"] == model.predict("sentiment", [long_text])
    cut = model.predict("sentiment", [" ".join(long_text.split()[:4])])  # 6 tokens: 4 words
    assert served["sentiment"][0]["probabilities"] == pytest.approx(cut[0]["probabilities"])


def test_empty_inputs_and_unknown_tasks_are_config_errors(make_config, tiny_model_dir):
    model = build_model(make_config, tiny_model_dir)
    with pytest.raises(ConfigError, match="inputs: empty"):
        MultiTaskPipeline(model)([])
    with pytest.raises(ConfigError, match=r"tasks: no task 'sentimnet' in the model \(tasks: "):
        MultiTaskPipeline(model, tasks=["sentiment", "sentimnet"])


def test_a_plans_routed_folder_answers_each_task_with_its_model(
    make_config, tiny_model_dir, tmp_path
):
    soft = build_model(make_config, tiny_model_dir, "soft")
    hard = build_model(make_config, tiny_model_dir)
    soft.save_pretrained(tmp_path / "plan" / "model" / "model-0")
    hard.save_pretrained(tmp_path / "plan" / "model" / "model-1")
    routing = {"sentiment": "model-0", "score": "model-1", "tagging": "model-1"}
    (tmp_path / "plan" / "model" / "routing.json").write_text(json.dumps({"tasks": routing}))
    results = MultiTaskPipeline(tmp_path / "plan", batch_size=2)(TEXTS)
    words = [text.split() for text in TEXTS]
    assert results == {
        "sentiment": soft.predict("sentiment", TEXTS, batch_size=2),
        "score": hard.predict("score", TEXTS, batch_size=2),
        "tagging": hard.predict("tagging", words, batch_size=2),
    }
    assert results["sentiment"] != hard.predict("sentiment", TEXTS, batch_size=2)
    with pytest.raises(ConfigError, match="no served task reads text pairs"):
        MultiTaskPipeline(tmp_path / "plan" / "model")(PAIRS)  # no pair task is routed
