"""MultiTaskModel: one backbone pass for several heads, predictions, and an exact save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mtlm import ConfigError, MultiTaskModel
from mtlm.modeling.multitask_model import HEADS_FILE, MTLM_CONFIG
from mtlm.tasks import KINDS

TEXTS = ["the movie was great", "a very dull plot", "it is awful and boring", "lovely film"]
WORDS = [["the", "movie", "was", "great"], ["a", "plot"], ["it", "is", "very", "bad", "film"]]
TASK_STATES = {
    "sentiment": {"label_names": ["neg", "pos"]},
    "score": {"mean": 0.1, "std": 0.9},
    "tagging": {"label_names": ["CC", "DT", "JJ", "NN", "PRP", "RB", "VB"]},
}


@pytest.fixture
def model(make_config, tiny_model_dir: Path) -> MultiTaskModel:
    """The three-task model with freshly initialised heads, in eval mode."""
    tasks = {
        spec.name: KINDS[spec.kind](spec, TASK_STATES[spec.name]) for spec in make_config().tasks
    }
    torch.manual_seed(1)
    return MultiTaskModel.from_backbone(str(tiny_model_dir), tasks).eval()


def text_batch(model: MultiTaskModel, texts: list[str]) -> dict[str, torch.Tensor]:
    """A padded batch of texts, as the sequence tasks tokenize them."""
    task = model.tasks["sentiment"]
    features = task.encode_inputs([{"text": text} for text in texts], model.tokenizer)
    rows = [
        dict(zip(features, values, strict=True)) for values in zip(*features.values(), strict=True)
    ]
    return task.collate(rows, model.tokenizer.pad_token_id)


def word_batch(model: MultiTaskModel, words: list[list[str]]) -> dict[str, torch.Tensor]:
    """A padded batch of word lists, as the tagging task tokenizes them."""
    task = model.tasks["tagging"]
    features = task.encode_inputs([{"tokens": row} for row in words], model.tokenizer)
    rows = [
        dict(zip(features, values, strict=True)) for values in zip(*features.values(), strict=True)
    ]
    return task.collate(rows, model.tokenizer.pad_token_id)


def test_saved_folder_holds_plain_files_and_no_pickle(model, tmp_path):
    model.save_pretrained(tmp_path / "saved")
    names = {path.name for path in (tmp_path / "saved").iterdir()}
    expected = {
        "config.json",
        "model.safetensors",
        HEADS_FILE,
        MTLM_CONFIG,
        "tokenizer_config.json",
    }
    assert expected <= names
    assert names & {"tokenizer.json", "vocab.txt"}
    pickled = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}
    assert not [name for name in names if Path(name).suffix in pickled]
    assert not [name for name in names if name.startswith(".")]


def test_round_trip_gives_bitwise_identical_outputs_for_every_task_kind(model, tmp_path):
    with torch.no_grad():
        model.heads["score"].out.bias.fill_(0.25)  # a state that a fresh model would not have
    model.save_pretrained(tmp_path / "saved")
    loaded = MultiTaskModel.from_pretrained(tmp_path / "saved")
    assert not loaded.training
    assert loaded.tokenizer.get_vocab() == model.tokenizer.get_vocab()
    # The model also tells each task the family it runs on.
    assert {name: task.state for name, task in loaded.tasks.items()} == {
        name: {**state, "family": "encoder"} for name, state in TASK_STATES.items()
    }
    assert {name: type(task) for name, task in loaded.tasks.items()} == {
        name: type(task) for name, task in model.tasks.items()
    }
    with torch.no_grad():
        for batch, names in (
            (text_batch(model, TEXTS), ["sentiment", "score"]),
            (word_batch(model, WORDS), ["tagging"]),
        ):
            before = model.forward_heads(batch, names)
            after = loaded.forward_heads(batch, names)
            for name in names:
                assert torch.equal(before[name], after[name]), name
    for name, inputs in (("sentiment", TEXTS), ("score", TEXTS), ("tagging", WORDS)):
        assert loaded.predict(name, inputs) == model.predict(name, inputs)


def test_forward_heads_equals_one_forward_call_per_task(model):
    batch = text_batch(model, TEXTS)
    with torch.no_grad():
        together = model.forward_heads(batch, ["sentiment", "score", "tagging"])
        for name in ("sentiment", "score", "tagging"):
            assert torch.equal(together[name], model(name, batch)), name
    assert together["sentiment"].shape == (len(TEXTS), 2)
    assert together["score"].shape == (len(TEXTS), 1)
    assert together["tagging"].shape == (*batch["input_ids"].shape, 7)


def test_predict_one_task_returns_label_names_in_input_order(model):
    predictions = model.predict("sentiment", TEXTS, batch_size=3)
    assert len(predictions) == len(TEXTS)
    for prediction in predictions:
        assert prediction["label"] in ("neg", "pos")
        assert set(prediction["probabilities"]) == {"neg", "pos"}
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0)
    # Batching sorts inputs by length; the answers still come back in input order.
    one_by_one = [model.predict("sentiment", [text])[0] for text in TEXTS]
    assert [p["label"] for p in predictions] == [p["label"] for p in one_by_one]
    tags = model.predict("tagging", WORDS)
    assert [len(row["tags"]) for row in tags] == [len(words) for words in WORDS]
    assert all(tag in TASK_STATES["tagging"]["label_names"] for row in tags for tag in row["tags"])


def test_predict_several_tasks_returns_each_of_them(model):
    both = model.predict(["sentiment", "score"], TEXTS)
    assert set(both) == {"sentiment", "score"}
    assert both["sentiment"] == model.predict("sentiment", TEXTS)
    assert both["score"] == model.predict("score", TEXTS)
    assert all(isinstance(row["score"], float) for row in both["score"])


def test_from_pretrained_without_mtlm_config_is_a_config_error(model, tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match=MTLM_CONFIG):
        MultiTaskModel.from_pretrained(tiny_model_dir)
    model.save_pretrained(tmp_path / "saved")
    (tmp_path / "saved" / MTLM_CONFIG).unlink()
    with pytest.raises(ConfigError, match="not an mtlm model"):
        MultiTaskModel.from_pretrained(tmp_path / "saved")


def cut_short(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def replace_text(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")


@pytest.mark.parametrize(
    ("damage", "file", "reason"),
    [
        # safetensors' own wording after this prefix differs between its releases.
        (cut_short, HEADS_FILE, "Error while deserializing header"),
        (lambda path: path.write_text("{}"), HEADS_FILE, "Error while deserializing header"),
        (cut_short, "model.safetensors", "Error while deserializing header"),
        (lambda path: path.write_text('{"tasks": ['), MTLM_CONFIG, "Expecting value"),
        (lambda path: path.write_text("[]"), MTLM_CONFIG, "not a JSON object"),
        (
            lambda path: path.write_text('{"format_version": 2, "tasks": [{"spec": {}}]}'),
            MTLM_CONFIG,
            "no list of tasks, each with its spec and state",
        ),
        (
            lambda path: replace_text(path, '"regression"', '"regresion"'),
            MTLM_CONFIG,
            "tasks[1].spec: kind: unknown kind 'regresion'",
        ),
        (lambda path: path.write_text('{"hidden_size": '), "config.json", "Expecting value"),
        (cut_short, "tokenizer.json", "line "),
    ],
)
def test_a_damaged_file_is_named_by_every_loader(model, tmp_path, damage, file, reason):
    from mtlm.export import export_task
    from mtlm.pipeline import MultiTaskPipeline

    model.save_pretrained(tmp_path / "run" / "model")
    damage(tmp_path / "run" / "model" / file)
    expected = f"{tmp_path / 'run' / 'model' / file} is damaged"
    for load in (
        lambda: MultiTaskModel.from_pretrained(tmp_path / "run"),
        lambda: MultiTaskPipeline(tmp_path / "run" / "model"),
        lambda: export_task(tmp_path / "run", "sentiment", tmp_path / "exported"),
    ):
        with pytest.raises(ConfigError) as caught:
            load()
        assert str(caught.value).startswith(expected) and reason in str(caught.value)
    assert not (tmp_path / "exported").exists()


def test_heads_that_do_not_match_the_tasks_are_named(model, tmp_path):
    from safetensors.torch import save_file

    model.save_pretrained(tmp_path / "saved")
    heads = tmp_path / "saved" / HEADS_FILE
    weights = {name: tensor.clone() for name, tensor in model.heads.state_dict().items()}
    save_file({**weights, "sentiment.out.weight": torch.zeros(3, 32)}, heads)
    with pytest.raises(ConfigError) as caught:
        MultiTaskModel.from_pretrained(tmp_path / "saved")
    assert str(caught.value) == (
        f"{heads} is damaged ('sentiment.out.weight' has shape [3, 32], and "
        f"{MTLM_CONFIG}'s tasks need [2, 32])"
    )
    save_file({key: value for key, value in weights.items() if "score" not in key}, heads)
    with pytest.raises(ConfigError, match=r"is damaged \(no tensor 'score\."):
        MultiTaskModel.from_pretrained(tmp_path / "saved")
    save_file({**weights, "extra.weight": torch.zeros(1)}, heads)
    with pytest.raises(ConfigError, match=r"'extra\.weight' belongs to no head"):
        MultiTaskModel.from_pretrained(tmp_path / "saved")
    heads.unlink()
    with pytest.raises(ConfigError, match=r"heads\.safetensors: not found"):
        MultiTaskModel.from_pretrained(tmp_path / "saved")


def test_predict_needs_a_positive_batch_size(model):
    for size in (0, -1):
        with pytest.raises(ConfigError, match=rf"^batch_size: must be at least 1 \(got {size}\)"):
            model.predict("sentiment", TEXTS, batch_size=size)


@pytest.mark.parametrize(
    ("sharing", "file"),
    [
        ({"kind": "soft"}, "backbones/tagging/model.safetensors"),
        ({"kind": "lora"}, "adapters/score/adapter_model.safetensors"),
        ({"kind": "lora"}, "adapters/score/adapter_config.json"),
    ],
)
def test_a_damaged_file_of_a_tasks_own_backbone_or_adapter_is_named(
    make_config, tiny_model_dir, tmp_path, sharing, file
):
    from conftest import four_task_model

    four_task_model(make_config(), tiny_model_dir, sharing).save_pretrained(tmp_path / "saved")
    cut_short(tmp_path / "saved" / file)
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'saved' / file} is damaged \("):
        MultiTaskModel.from_pretrained(tmp_path / "saved")
