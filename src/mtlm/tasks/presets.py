"""Presets for the GLUE and SuperGLUE benchmarks: `data: {preset: glue/mrpc}` fills in a task's
kind, its dataset on the Hugging Face hub, its columns, label names and split names, and the
benchmark's official metric as its primary metric.

GLUE (Wang et al., 2019, "GLUE: A Multi-Task Benchmark and Analysis Platform for Natural
Language Understanding") and SuperGLUE (Wang et al., 2019, "SuperGLUE: A Stickier Benchmark for
General-Purpose Language Understanding Systems") keep the labels of their test splits hidden.
So the split rule of every preset: the official validation split is the task's `test` split,
where the final score is reported, and the `validation` split, which picks the best checkpoint
and stops training early, is carved from the official training split with a fixed seed
(`validation_fraction` of it, default 10%, seed `split_seed`, default 0). Selecting on the split
that is reported would tune on it, and the reported score would be optimistic.

The keys a task writes win over its preset's, in the task and in its `data`. A task whose data
names files of its own (`train`, `validation`, `test`, `path` or `bundled`) takes none of the
preset's source keys (`hub`, `hub_config`, `hub_kwargs`, `splits`); one that writes `hub` (a
local copy of the dataset: a folder as the hub holds it, or one written by `save_to_disk`)
keeps the preset's `hub_config` and `splits`. A task's name defaults to the preset's short name
(`mrpc`).

Left out: GLUE's diagnostic AX and SuperGLUE's AX-b and AX-g (test splits only, without
labels); MultiRC (its exact match counts the questions whose answers are all right, which a
classification task scoring rows one by one cannot report); ReCoRD and WSC (answers are spans
of the text).

Only plain data here: a preset is filled in before the config is validated, which imports
neither torch nor transformers.
"""

from __future__ import annotations

import copy
import difflib
from typing import Any

GLUE = "nyu-mll/glue"
SUPER_GLUE = "aps/super_glue"


def _task(
    hub: str, config: str, kind: str, primary: str, test_split: str = "validation", **options: Any
) -> dict[str, Any]:
    """A task reading `config` of `hub`: the official `test_split` (with labels, unlike the
    official test split) as its test split, its validation split carved from train."""
    return {
        "kind": kind,
        **options,
        "label_column": "label",
        "primary_metric": primary,
        "data": {
            "hub": hub,
            "hub_config": config,
            "splits": {"train": "train", "test": test_split},
        },
    }


def _classification(
    hub: str,
    config: str,
    text: str | list[str],
    pair: str | list[str] | None,
    labels: list[str],
    primary: str = "accuracy",
    **options: Any,
) -> dict[str, Any]:
    """A classification task on the `text` column (and the `pair` column); `labels` in the
    order of the dataset's class ids."""
    columns = {"text_column": text} | ({"text_pair_column": pair} if pair else {})
    return _task(hub, config, "classification", primary, **columns, labels=labels, **options)


_NLI = ["entailment", "neutral", "contradiction"]

#: Every preset, by the name `data.preset` gives.
PRESETS: dict[str, dict[str, Any]] = {
    # GLUE: Matthews correlation for CoLA, F1 of the positive class (and accuracy) for MRPC
    # and QQP, Pearson (and Spearman) for STS-B, accuracy for the others.
    "glue/cola": _classification(
        GLUE, "cola", "sentence", None, ["unacceptable", "acceptable"], "mcc"
    ),
    "glue/sst2": _classification(GLUE, "sst2", "sentence", None, ["negative", "positive"]),
    "glue/mrpc": _classification(
        GLUE,
        "mrpc",
        "sentence1",
        "sentence2",
        ["not_equivalent", "equivalent"],
        "f1",
        positive_label="equivalent",
    ),
    "glue/qqp": _classification(
        GLUE,
        "qqp",
        "question1",
        "question2",
        ["not_duplicate", "duplicate"],
        "f1",
        positive_label="duplicate",
    ),
    "glue/stsb": _task(
        GLUE, "stsb", "regression", "pearson", text_column="sentence1", text_pair_column="sentence2"
    ),
    # MNLI is scored on its matched and its mismatched validation split: one preset each.
    "glue/mnli": _classification(
        GLUE, "mnli", "premise", "hypothesis", _NLI, test_split="validation_matched"
    ),
    "glue/mnli-mm": _classification(
        GLUE, "mnli", "premise", "hypothesis", _NLI, test_split="validation_mismatched"
    ),
    "glue/qnli": _classification(
        GLUE, "qnli", "question", "sentence", ["entailment", "not_entailment"]
    ),
    "glue/rte": _classification(
        GLUE, "rte", "sentence1", "sentence2", ["entailment", "not_entailment"]
    ),
    "glue/wnli": _classification(
        GLUE, "wnli", "sentence1", "sentence2", ["not_entailment", "entailment"]
    ),
    # SuperGLUE: macro-averaged F1 (and accuracy) for CB, accuracy for the others.
    "superglue/boolq": _classification(
        SUPER_GLUE, "boolq", "question", "passage", ["False", "True"]
    ),
    "superglue/cb": _classification(
        SUPER_GLUE,
        "cb",
        "premise",
        "hypothesis",
        ["entailment", "contradiction", "neutral"],
        "macro_f1",
    ),
    # The context is the premise and the question (`cause` or `effect`); the answer names the
    # right candidate's column (`choice1`, `choice2`).
    "superglue/copa": _task(
        SUPER_GLUE,
        "copa",
        "multiple_choice",
        "accuracy",
        text_column=["premise", "question"],
        choices_column=["choice1", "choice2"],
    ),
    "superglue/rte": _classification(
        SUPER_GLUE, "rte", "premise", "hypothesis", ["entailment", "not_entailment"]
    ),
    # The target word first, then the two sentences that use it.
    "superglue/wic": _classification(
        SUPER_GLUE, "wic", "word", ["sentence1", "sentence2"], ["False", "True"]
    ),
}

#: The data keys that name a source of rows other than a hub dataset.
_OWN_SOURCES = ("train", "validation", "test", "path", "bundled")


class PresetError(ValueError):
    """A task's preset that cannot be filled in; `key` is the task's key at fault."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def with_preset(task: Any) -> Any:
    """A task entry as a config holds it, with the preset its `data.preset` names filled in
    under the keys it writes; an entry that names no preset comes back as it is."""
    data = task.get("data") if isinstance(task, dict) else None
    if not isinstance(data, dict) or "preset" not in data:
        return task
    name = data["preset"]
    if not isinstance(name, str) or name not in PRESETS:
        close = difflib.get_close_matches(str(name), PRESETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise PresetError(
            "data.preset", f"unknown preset {name!r}{hint}; the presets: {', '.join(PRESETS)}"
        )
    preset = copy.deepcopy(PRESETS[name])
    if "kind" in task and task["kind"] != preset["kind"]:
        raise PresetError(
            "kind", f"preset {name} is a {preset['kind']} task (got {task['kind']!r})"
        )
    written = {key: value for key, value in data.items() if key != "preset"}
    source = {} if any(written.get(key) for key in _OWN_SOURCES) else preset["data"]
    return {"name": name.split("/")[1], **preset, **task, "data": {**source, **written}}
