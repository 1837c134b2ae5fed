"""export_task: one task as a plain Hugging Face model that predicts what mtlm predicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import PAIRS, TASK_STATES, four_task_model, snapshot
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForTokenClassification, AutoTokenizer, pipeline

from mtlm import ConfigError, MultiTaskModel
from mtlm.export import export_task
from mtlm.modeling.heads import SequenceHead
from mtlm.modeling.multitask_model import MTLM_CONFIG

TEXTS = ["the movie was great", "a very dull plot", "it is awful and boring", "lovely film"]
SHARING = {"hard": {"kind": "hard"}, "soft": {"kind": "soft"}, "lora": {"kind": "lora", "r": 4}}


def build_model(make_config, tiny_model_dir: Path, sharing: dict, pooling: str = "cls"):
    """The tiny model with a text-pair task added, each task's own weights made distinct."""
    return four_task_model(make_config(), tiny_model_dir, sharing, pooling)


@pytest.mark.parametrize("sharing", list(SHARING), ids=list(SHARING))
def test_exported_tasks_predict_what_mtlm_predicts(make_config, tiny_model_dir, tmp_path, sharing):
    model = build_model(make_config, tiny_model_dir, SHARING[sharing])
    if sharing == "hard":
        # also exports from a saved folder, by its path
        model.save_pretrained(tmp_path / "saved")
        source = str(tmp_path / "saved")
    else:
        source = model
    folders = {task: export_task(source, task, tmp_path / task) for task in TASK_STATES}

    classify = pipeline("text-classification", model=str(folders["sentiment"]), top_k=None)
    for ours, theirs in zip(model.predict("sentiment", TEXTS), classify(TEXTS), strict=True):
        assert ours["label"] == theirs[0]["label"]
        assert {row["label"]: row["score"] for row in theirs} == pytest.approx(
            ours["probabilities"], abs=1e-5
        )

    pairs = pipeline("text-classification", model=str(folders["pair"]), top_k=None)
    answers = pairs([{"text": text, "text_pair": pair} for text, pair in PAIRS])
    for ours, theirs in zip(model.predict("pair", PAIRS), answers, strict=True):
        assert ours["label"] == theirs[0]["label"]
        assert {row["label"]: row["score"] for row in theirs} == pytest.approx(
            ours["probabilities"], abs=1e-5
        )

    regress = pipeline("text-classification", model=str(folders["score"]))
    values = [row["score"] for row in regress(TEXTS)]
    assert values == pytest.approx([row["score"] for row in model.predict("score", TEXTS)], 1e-4)

    words = [text.split() for text in TEXTS]
    tagger = AutoModelForTokenClassification.from_pretrained(folders["tagging"])
    tokenizer = AutoTokenizer.from_pretrained(folders["tagging"])
    for row, ours in zip(words, model.predict("tagging", words), strict=True):
        encoded = tokenizer(row, is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            best = tagger(**encoded).logits[0].argmax(-1).tolist()
        firsts, previous = [], None
        for position, word in enumerate(encoded.word_ids()):
            if word is not None and word != previous:
                firsts.append(position)
            previous = word
        assert [tagger.config.id2label[best[i]] for i in firsts] == ours["tags"]


def test_exported_config_names_the_labels_and_the_plain_class(
    make_config, tiny_model_dir, tmp_path
):
    model = build_model(make_config, tiny_model_dir, SHARING["hard"])
    for task, architecture, problem in (
        ("pair", "BertForSequenceClassification", "single_label_classification"),
        ("score", "BertForSequenceClassification", "regression"),
        ("tagging", "BertForTokenClassification", None),
    ):
        folder = export_task(model, task, tmp_path / task)
        config = json.loads((folder / "config.json").read_text())
        assert config["architectures"] == [architecture]
        assert config.get("problem_type") == problem
        assert "auto_map" not in config
        assert not list(folder.glob("*.py"))
        if task == "score":
            assert len(config["id2label"]) == 1
            continue
        names = TASK_STATES[task]["label_names"]
        assert config["id2label"] == {str(i): name for i, name in enumerate(names)}
        assert config["label2id"] == {name: i for i, name in enumerate(names)}
        assert AutoTokenizer.from_pretrained(folder).model_max_length == 128


def test_lora_export_leaves_the_loaded_model_unmerged(make_config, tiny_model_dir, tmp_path):
    model = build_model(make_config, tiny_model_dir, SHARING["lora"])
    before = {key: value.clone() for key, value in model.state_dict().items()}
    export_task(model, "sentiment", tmp_path / "sentiment")
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert model.predict("score", TEXTS) == build_model(
        make_config, tiny_model_dir, SHARING["lora"]
    ).predict("score", TEXTS)


def test_mean_pooling_is_refused_and_leaves_the_output_folder_alone(
    make_config, tiny_model_dir, tmp_path
):
    model = build_model(make_config, tiny_model_dir, SHARING["hard"], pooling="mean")
    target = export_task(model, "tagging", tmp_path / "exports" / "out")
    before = snapshot(target.parent)
    with pytest.raises(ConfigError, match=r"--task: 'sentiment' pools by mean.*pooling: cls"):
        export_task(model, "sentiment", target)
    assert snapshot(target.parent) == before


def test_unknown_task_is_refused(make_config, tiny_model_dir, tmp_path):
    model = build_model(make_config, tiny_model_dir, SHARING["hard"])
    with pytest.raises(ConfigError, match=r"--task: no task 'sentimnet' \(tasks: sentiment, "):
        export_task(model, "sentimnet", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_export_that_does_not_reproduce_mtlm_is_not_published(
    make_config, tiny_model_dir, tmp_path
):
    model = build_model(make_config, tiny_model_dir, SHARING["hard"])
    head = model.heads["sentiment"]
    plain = head.forward
    # mtlm's head now computes something no mapping of its weights can give
    head.forward = lambda hidden, mask: plain(hidden, mask) * 1.01
    target = export_task(model, "tagging", tmp_path / "exports" / "out")
    before = snapshot(target.parent)
    with pytest.raises(ConfigError, match="does not reproduce mtlm's outputs for 'sentiment'"):
        export_task(model, "sentiment", target)
    assert snapshot(target.parent) == before


# --- what an export may replace ----------------------------------------------------------------
def test_an_export_into_a_folder_of_the_users_files_is_refused_and_deletes_nothing(
    make_config, tiny_model_dir, tmp_path
):
    model = build_model(make_config, tiny_model_dir, SHARING["hard"])
    target = tmp_path / "mine"
    (target / "notes").mkdir(parents=True)
    (target / "thesis.tex").write_text("years of work")
    (target / "notes" / "a.txt").write_text("more")
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError) as refused:
        export_task(model, "sentiment", target)
    assert str(refused.value) == (
        f"--out: {target} already holds files (notes, thesis.tex) and is not an earlier "
        "export (no mtlm_export.json); choose a new or empty folder"
    )
    assert snapshot(tmp_path) == before


def test_an_earlier_export_is_replaced_but_not_one_holding_the_users_files(
    make_config, tiny_model_dir, tmp_path
):
    model = build_model(make_config, tiny_model_dir, SHARING["hard"])
    target = export_task(model, "tagging", tmp_path / "out")
    marker = json.loads((target / "mtlm_export.json").read_text())
    assert marker["task"] == "tagging"
    assert set(marker["files"]) | {"mtlm_export.json"} == {p.name for p in target.iterdir()}

    export_task(model, "sentiment", target)
    assert AutoModel.from_pretrained(target).config.id2label == {0: "neg", 1: "pos"}

    (target / "notes.md").write_text("my notes")
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match=r"--out: .* also holds files it did not write \(notes"):
        export_task(model, "tagging", target)
    assert snapshot(tmp_path) == before


def test_an_empty_folder_can_be_exported_into(make_config, tiny_model_dir, tmp_path):
    model = build_model(make_config, tiny_model_dir, SHARING["hard"])
    (tmp_path / "empty").mkdir()
    assert (export_task(model, "sentiment", tmp_path / "empty") / "config.json").is_file()


# --- the head shape that export relies on -----------------------------------------------------
def test_cls_heads_start_from_the_backbones_pretrained_pooler(make_config, tiny_model_dir):
    pooler = AutoModel.from_pretrained(tiny_model_dir).pooler.dense
    for sharing in SHARING.values():
        model = build_model(make_config, tiny_model_dir, sharing)
        for task in ("sentiment", "score", "pair"):
            head = model.heads[task]
            assert isinstance(head, SequenceHead)
            assert torch.equal(head.dense.weight, pooler.weight)
            assert torch.equal(head.dense.bias, pooler.bias)
            assert head.dense.weight.data_ptr() != pooler.weight.data_ptr()
    mean = build_model(make_config, tiny_model_dir, SHARING["hard"], pooling="mean")
    assert mean.heads["sentiment"].dense is None
    assert mean.heads["score"].dense is not None


def test_a_model_saved_in_the_older_format_is_refused(make_config, tiny_model_dir, tmp_path):
    model = build_model(make_config, tiny_model_dir, SHARING["hard"])
    model.save_pretrained(tmp_path / "saved")
    heads = load_file(tmp_path / "saved" / "heads.safetensors")
    assert "sentiment.dense.weight" in heads
    described = json.loads((tmp_path / "saved" / MTLM_CONFIG).read_text())
    described["format_version"] = 1
    (tmp_path / "saved" / MTLM_CONFIG).write_text(json.dumps(described))
    with pytest.raises(ConfigError, match="format 1.*retrain"):
        MultiTaskModel.from_pretrained(tmp_path / "saved")


def test_a_task_reading_three_text_columns_exports_and_takes_tuples_of_three(
    make_config, tiny_model_dir, tmp_path
):
    """As SuperGLUE's WiC reads a word and two sentences: export probes every column, and a
    plain input is a tuple with one value per column; one with fewer is a DataError."""
    from mtlm.config import sharing_spec
    from mtlm.errors import DataError
    from mtlm.tasks import KINDS

    spec = (
        make_config()
        .tasks[0]
        .model_copy(
            update={"name": "wic", "text_column": ["word", "sentence1"], "text_pair_column": "s2"}
        )
    )
    torch.manual_seed(1)
    task = KINDS[spec.kind](spec, TASK_STATES["sentiment"])
    model = MultiTaskModel.from_backbone(
        str(tiny_model_dir), {"wic": task}, sharing=sharing_spec({"kind": "hard"})
    ).eval()
    folder = export_task(model, "wic", tmp_path / "wic")
    assert (folder / "config.json").is_file()

    triples = [("movie", "the movie was great", "a dull movie"), ("plot", "a dull plot", "plot")]
    rows = [dict(zip(["word", "sentence1", "s2"], triple, strict=True)) for triple in triples]
    assert model.predict("wic", triples) == model.predict("wic", rows)
    message = r"input 1: task 'wic' reads 3 values \(word, sentence1, s2\)"
    with pytest.raises(DataError, match=message):
        model.predict("wic", [("movie", "the movie was great")])
