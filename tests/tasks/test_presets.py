"""GLUE and SuperGLUE presets: what each fills in, how a task's own keys win, the official
metrics on fixed predictions against numbers worked out by hand, and training on local copies
of the datasets in the hub's own format."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from conftest import FILLER, NEGATIVE, POSITIVE, short_run_config, write_hub_folder

from mtlm import ConfigError, MultiTaskModel, Trainer
from mtlm.config import config_from_dict, load_config, task_spec
from mtlm.tasks import KINDS
from mtlm.tasks.presets import PRESETS

#: Each preset's kind, primary metric and the other official metrics it reports.
OFFICIAL = {
    "glue/cola": ("classification", "mcc", []),
    "glue/sst2": ("classification", "accuracy", []),
    "glue/mrpc": ("classification", "f1", ["accuracy"]),
    "glue/qqp": ("classification", "f1", ["accuracy"]),
    "glue/stsb": ("regression", "pearson", ["spearman"]),
    "glue/mnli": ("classification", "accuracy", []),
    "glue/mnli-mm": ("classification", "accuracy", []),
    "glue/qnli": ("classification", "accuracy", []),
    "glue/rte": ("classification", "accuracy", []),
    "glue/wnli": ("classification", "accuracy", []),
    "superglue/boolq": ("classification", "accuracy", []),
    "superglue/cb": ("classification", "macro_f1", ["accuracy"]),
    "superglue/copa": ("multiple_choice", "accuracy", []),
    "superglue/rte": ("classification", "accuracy", []),
    "superglue/wic": ("classification", "accuracy", []),
}


def preset(name: str, /, **fields: Any) -> Any:
    """The spec of a task that names preset `name`; `fields` are the task's own keys (`data`
    keys merge with the preset's)."""
    data = {"preset": name, **fields.pop("data", {})}
    return task_spec({**fields, "data": data})


def test_every_preset_is_listed_with_its_official_metrics() -> None:
    assert set(PRESETS) == set(OFFICIAL)


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_a_preset_fills_in_the_dataset_splits_and_official_metric(name: str) -> None:
    kind, primary, others = OFFICIAL[name]
    spec = preset(name)
    assert (spec.name, spec.kind, spec.primary_metric) == (name.split("/")[1], kind, primary)
    assert set(others) <= set(spec.metric_names())
    benchmark = {"glue": "nyu-mll/glue", "superglue": "aps/super_glue"}[name.split("/")[0]]
    assert spec.data.hub == benchmark
    # The official validation split is the test split; validation is carved from train.
    assert spec.data.splits.train == "train"
    assert spec.data.splits.validation is None
    assert spec.data.splits.test.startswith("validation")


def test_the_docs_list_every_preset() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "how-to" / "glue.md"
    assert [name for name in PRESETS if f"`{name}`" not in page.read_text(encoding="utf-8")] == []


def test_mrpc_and_mnli_fill_in_columns_labels_and_split_names() -> None:
    mrpc = preset("glue/mrpc")
    assert (mrpc.data.hub_config, mrpc.text_column, mrpc.text_pair_column) == (
        "mrpc",
        "sentence1",
        "sentence2",
    )
    assert (mrpc.labels, mrpc.positive_label) == (["not_equivalent", "equivalent"], "equivalent")
    assert preset("glue/mnli").data.splits.test == "validation_matched"
    assert preset("glue/mnli-mm").data.splits.test == "validation_mismatched"
    assert preset("glue/mnli-mm").data.hub_config == "mnli"


def test_the_task_keys_win_over_the_preset() -> None:
    spec = preset(
        "glue/mrpc",
        name="paraphrase",
        max_length=64,
        primary_metric="accuracy",
        data={"hub": "/data/glue", "validation_fraction": 0.2},
    )
    assert (spec.name, spec.max_length, spec.primary_metric) == ("paraphrase", 64, "accuracy")
    assert (spec.data.hub, spec.data.hub_config) == ("/data/glue", "mrpc")
    assert spec.data.validation_fraction == 0.2
    assert spec.data.splits.test == "validation"


def test_files_of_the_task_replace_the_preset_source() -> None:
    spec = preset("glue/mrpc", data={"train": "train.jsonl", "test": "dev.jsonl"})
    assert (spec.data.train, spec.data.test) == ("train.jsonl", "dev.jsonl")
    assert (spec.data.hub, spec.data.hub_config, spec.data.splits) == (None, None, None)
    assert spec.text_pair_column == "sentence2"


def test_an_unknown_preset_names_the_key_its_line_and_the_presets(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(
        "model: {name_or_path: x}\ntasks:\n  - data:\n      preset: glue/mrcp\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(
        f"{path}, line 4: tasks[0].data.preset: unknown preset 'glue/mrcp' "
        "(did you mean 'glue/mrpc'?); the presets: glue/cola, glue/sst2, glue/mrpc,"
    )
    assert "superglue/wic" in message and "\n" not in message


def test_a_kind_other_than_the_preset_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(
            {
                "model": {"name_or_path": "x"},
                "tasks": [{"name": "s", "kind": "classification", "data": {"preset": "glue/stsb"}}],
            }
        )
    assert str(caught.value) == (
        "config: tasks[s].kind: preset glue/stsb is a regression task (got 'classification')"
    )


# --- the official metrics, on fixed predictions ---------------------------------------------
def scores(name: str, state: dict[str, Any], predictions: list[Any], gold: list[Any]) -> dict:
    spec = preset(name)
    return KINDS[spec.kind](spec, state).score(predictions, gold)


def labelled(labels: list[str]) -> list[dict[str, Any]]:
    return [{"label": label} for label in labels]


def test_mrpc_scores_f1_of_the_equivalent_class_and_accuracy() -> None:
    gold = ["equivalent"] * 3 + ["not_equivalent"] * 2 + ["equivalent"] + ["not_equivalent"] * 2
    guess = ["equivalent", "not_equivalent", "equivalent", "equivalent"]
    guess += ["not_equivalent", "equivalent", "not_equivalent", "equivalent"]
    state = {"label_names": ["not_equivalent", "equivalent"]}
    result = scores("glue/mrpc", state, labelled(guess), gold)
    assert result["primary"] == "f1"
    # TP = 3 (rows 1, 3, 6), FP = 2 (rows 4, 8), FN = 1 (row 2), TN = 2 (rows 5, 7)
    assert result["f1"] == pytest.approx(0.666667, abs=1e-6)  # 2*3 / (2*3 + 2 + 1) = 6/9
    assert result["accuracy"] == pytest.approx(0.625)  # (3 + 2) / 8
    # (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (6 - 2) / sqrt(5*4*4*3)
    assert result["mcc"] == pytest.approx(0.258199, abs=1e-6)  # 4 / sqrt(240)


def test_cola_scores_matthews_correlation() -> None:
    gold = ["acceptable"] * 6 + ["unacceptable"] * 4
    guess = ["acceptable"] * 4 + ["unacceptable"] * 2 + ["acceptable"] + ["unacceptable"] * 3
    state = {"label_names": ["unacceptable", "acceptable"]}
    result = scores("glue/cola", state, labelled(guess), gold)
    assert result["primary"] == "mcc"
    # TP = 4, FN = 2, FP = 1, TN = 3: (4*3 - 1*2) / sqrt(5*6*4*5) = 10 / sqrt(600)
    assert result["mcc"] == pytest.approx(0.408248, abs=1e-6)


def test_stsb_scores_pearson_and_spearman() -> None:
    predictions = [{"score": value} for value in (1.0, 2.0, 3.0, 4.0)]
    gold = [1.0, 3.0, 2.0, 5.0]
    result = scores("glue/stsb", {"mean": 3.0, "std": 1.0}, predictions, gold)
    assert result["primary"] == "pearson"
    # deviations from the means 2.5 and 2.75: (-1.5, -0.5, 0.5, 1.5) and (-1.75, 0.25, -0.75,
    # 2.25); sum of products 5.5, sums of squares 5 and 8.75: 5.5 / sqrt(5 * 8.75)
    assert result["pearson"] == pytest.approx(0.831522, abs=1e-6)
    # ranks (1, 2, 3, 4) and (1, 3, 2, 4), squared differences 2: 1 - 6*2 / (4 * (16 - 1))
    assert result["spearman"] == pytest.approx(0.8)


def test_cb_scores_macro_f1_and_accuracy() -> None:
    gold = ["entailment"] * 3 + ["contradiction"] * 2 + ["neutral"]
    guess = ["entailment"] * 2 + ["contradiction"] * 2 + ["neutral"] * 2
    state = {"label_names": ["entailment", "contradiction", "neutral"]}
    result = scores("superglue/cb", state, labelled(guess), gold)
    assert result["primary"] == "macro_f1"
    # F1 per class, 2TP / (2TP + FP + FN): entailment 4/5, contradiction 2/4, neutral 2/3
    assert result["macro_f1"] == pytest.approx(0.655556, abs=1e-6)  # (0.8 + 0.5 + 0.6667) / 3
    assert result["accuracy"] == pytest.approx(0.666667, abs=1e-6)  # 4 / 6


def test_copa_scores_accuracy() -> None:
    predictions = [{"choice": choice} for choice in (0, 1, 1, 0)]
    result = scores("superglue/copa", {}, predictions, [0, 1, 0, 0])
    assert (result["primary"], result["accuracy"]) == ("accuracy", 0.75)  # 3 right of 4


# --- training on local copies in the hub's format -------------------------------------------
def paraphrase_rows(count: int, seed: int) -> dict[str, list[Any]]:
    """MRPC's columns: a pair is `equivalent` (class 1) when both sentences share a tone."""
    rng = random.Random(seed)
    columns: dict[str, list[Any]] = {"sentence1": [], "sentence2": [], "label": [], "idx": []}
    for index in range(count):
        first, second = rng.choice([POSITIVE, NEGATIVE]), rng.choice([POSITIVE, NEGATIVE])
        columns["sentence1"].append(f"{rng.choice(FILLER)} {rng.choice(first)}")
        columns["sentence2"].append(f"{rng.choice(FILLER)} {rng.choice(second)}")
        columns["label"].append(int(first is second))
        columns["idx"].append(index)
    return columns


def save_glue_mrpc(folder: Path) -> None:
    """MRPC as `datasets` saves it, under its configuration's name; test labels hidden (-1)."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features(
        {
            "sentence1": Value("string"),
            "sentence2": Value("string"),
            "label": ClassLabel(names=["not_equivalent", "equivalent"]),
            "idx": Value("int32"),
        }
    )
    test = paraphrase_rows(6, 2) | {"label": [-1] * 6}
    splits = {"train": paraphrase_rows(40, 0), "validation": paraphrase_rows(12, 1), "test": test}
    DatasetDict(
        {split: Dataset.from_dict(rows, features=features) for split, rows in splits.items()}
    ).save_to_disk(str(folder / "mrpc"))


def copa_rows(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        label = rng.randint(0, 1)
        right, wrong = rng.choice(POSITIVE), rng.choice(NEGATIVE)
        choices = [right, wrong] if label == 0 else [wrong, right]
        rows.append(
            {
                "premise": f"the {rng.choice(['movie', 'film', 'plot'])} was",
                "choice1": choices[0],
                "choice2": choices[1],
                "question": rng.choice(["cause", "effect"]),
                "idx": index,
                "label": label,
            }
        )
    return rows


def test_glue_and_superglue_presets_train_on_local_copies_and_score_officially(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    save_glue_mrpc(tmp_path / "glue")
    splits = {"train": copa_rows(30, 0), "validation": copa_rows(8, 1)}
    write_hub_folder(tmp_path / "super_glue", "copa", splits, {"label": ["choice1", "choice2"]})
    hub_cache = {"cache_dir": str(tmp_path / "hf")}
    tasks = [
        {"data": {"preset": "glue/mrpc", "hub": str(tmp_path / "glue")}},
        {
            "data": {
                "preset": "superglue/copa",
                "hub": str(tmp_path / "super_glue"),
                "hub_kwargs": hub_cache,
            }
        },
    ]
    config = short_run_config(
        tiny_model_dir, tmp_path, tasks, {"max_steps": 6, "learning_rate": 1e-3}
    )
    trainer = Trainer(config)
    sizes = {
        name: {s: len(rows) for s, rows in d.splits.items()} for name, d in trainer.data.items()
    }
    # Train keeps 90% of the official train split; the official validation is the test split.
    assert sizes["mrpc"] == {"train": 36, "validation": 4, "test": 12}
    assert sizes["copa"] == {"train": 27, "validation": 3, "test": 8}
    assert "mrpc: the test split is the dataset's 'validation' split" in trainer.notes
    results = trainer.train()

    assert results["split"] == "test"
    mrpc, copa = results["tasks"]["mrpc"], results["tasks"]["copa"]
    assert mrpc["primary"] == "f1" and copa["primary"] == "accuracy"
    # The reported scores, worked out here from the model's answers on the official rows.
    model = MultiTaskModel.from_pretrained(tmp_path / "run" / "model")
    official = paraphrase_rows(12, 1)
    rows = [
        dict(zip(official, values, strict=True)) for values in zip(*official.values(), strict=True)
    ]
    answers = [p["label"] == "equivalent" for p in model.predict("mrpc", rows)]
    gold = [label == 1 for label in official["label"]]
    hits = sum(a and g for a, g in zip(answers, gold, strict=True))
    f1 = 2 * hits / (sum(answers) + sum(gold))  # 2TP / (2TP + FP + FN); gold has positives
    right = sum(a == g for a, g in zip(answers, gold, strict=True))
    assert mrpc["f1"] == pytest.approx(f1)
    assert mrpc["accuracy"] == pytest.approx(right / 12)
    chosen = [p["choice"] for p in model.predict("copa", splits["validation"])]
    right = sum(c == row["label"] for c, row in zip(chosen, splits["validation"], strict=True))
    assert copa["accuracy"] == pytest.approx(right / 8)
