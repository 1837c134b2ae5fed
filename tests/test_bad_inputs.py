"""The bad-input catalogue: user mistakes that mtlm promises to catch, each run through the
installed `mtlm` command in a process of its own.

Every entry must end with exit status 2 and one line `mtlm: error: ...` that names what is at
fault (the file, line or key), print nothing on stdout, and leave the case's folder exactly as
it was: nothing written, nothing deleted, nothing changed. A new bad input joins the table
below, not a test of its own.

Placeholders in commands, `names` and extra files: `{config}` the case's config file (the good
config of `good_config` with the entry's `edit` applied), `{run}` a trained run directory,
`{model}` its saved model, `{rows}` a file of rows to predict, `{dir}` the case's folder,
`{decoder}` a tiny causal LM's folder, `{decoder_model}` the saved model of a run on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import three_task_config, write_task_files

from mtlm import Trainer
from mtlm.config import config_from_dict

MTLM = Path(sys.executable).with_name("mtlm")


@dataclass(frozen=True)
class BadInput:
    name: str
    #: Arguments after `mtlm`, with placeholders.
    command: tuple[str, ...]
    #: Texts the error line must contain, with placeholders.
    names: tuple[str, ...]
    #: Changes the good config (a dict, as YAML reads it) in place.
    edit: Callable[[dict[str, Any]], Any] | None = None
    #: Extra files written into the case's folder before the command: path -> text.
    files: dict[str, str] = field(default_factory=dict)
    #: Environment variables set for the command (as a launcher would set them).
    environment: dict[str, str] = field(default_factory=dict)


def _holder(raw: dict[str, Any], path: str) -> tuple[Any, Any]:
    """The mapping or list that holds a dotted key (`training.learning_rate`, `tasks.0.kind`),
    and the key or index within it."""
    *parents, last = path.split(".")
    node: Any = raw
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node, int(last) if isinstance(node, list) else last


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit that sets a dotted key to `value`."""

    def edit(raw: dict[str, Any]) -> None:
        node, key = _holder(raw, path)
        node[key] = value

    return edit


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    """An edit that removes a dotted key."""

    def edit(raw: dict[str, Any]) -> None:
        node, key = _holder(raw, path)
        del node[key]

    return edit


def _truncated_safetensors() -> str:
    """A safetensors file cut after its header: the header promises 8 bytes of tensor data
    that the file does not hold (as a copy or a download cut short leaves it)."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})
    return chr(len(header)) + "\0" * 7 + header


def _rows(*lines: str) -> str:
    return "".join(f"{line}\n" for line in lines)


def _each_task(edit: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], None]:
    """An edit applied to every task of the config."""

    def apply(raw: dict[str, Any]) -> None:
        for task in raw["tasks"]:
            edit(task)

    return apply


TRAIN = ("train", "{config}")
EVALUATE = ("evaluate", "--model", "{run}")
PREDICT = ("predict", "--model", "{model}", "--task", "sentiment", "--input", "{rows}")
CATALOGUE = [
    # --- the config: keys, values, kinds ------------------------------------------------------
    BadInput(
        "FSDP launch",
        TRAIN,
        ("accelerate launch (ACCELERATE_USE_FSDP=true)", "FSDP is not supported"),
        environment={"ACCELERATE_USE_FSDP": "true"},
    ),
    BadInput(
        "DeepSpeed launch",
        TRAIN,
        ("accelerate launch (ACCELERATE_USE_DEEPSPEED=true)", "DeepSpeed is not supported"),
        environment={"ACCELERATE_USE_DEEPSPEED": "true"},
    ),
    BadInput(
        "misspelt training key",
        TRAIN,
        ("{config}", "training.learning_rat", "did you mean 'learning_rate'"),
        edit=_set("training.learning_rat", 0.1),
    ),
    BadInput(
        "misspelt top-level key",
        TRAIN,
        ("{config}", "trainng"),
        edit=lambda raw: raw.update(trainng=raw.pop("training")),
    ),
    BadInput(
        "negative learning rate",
        TRAIN,
        ("{config}", "training.learning_rate"),
        edit=_set("training.learning_rate", -1.0),
    ),
    BadInput(
        "unknown task kind",
        TRAIN,
        ("{config}", "tasks[sentiment].kind", "pair_classification"),
        edit=_set("tasks.0.kind", "pair_classification"),
    ),
    BadInput(
        "task without a name",
        TRAIN,
        ("{config}", "tasks[0].name"),
        edit=_drop("tasks.0.name"),
    ),
    BadInput(
        "two tasks with one name",
        TRAIN,
        ("{config}", "score"),
        edit=_set("tasks.0.name", "score"),
    ),
    BadInput("no tasks", TRAIN, ("{config}", "tasks"), edit=_set("tasks", [])),
    BadInput(
        "unknown sampler",
        TRAIN,
        ("{config}", "training.sampler"),
        edit=_set("training.sampler", {"kind": "temprature"}),
    ),
    BadInput(
        "sampler written as its kind",
        TRAIN,
        ("{config}, line ", "training.sampler", "`sampler: {kind: temperature}`"),
        edit=_set("training.sampler", "temperature"),
    ),
    BadInput(
        "option of another task kind",
        TRAIN,
        ("{config}, line ", "tasks[sentiment].stride", "extractive_qa tasks do"),
        edit=_set("tasks.0.stride", 16),
    ),
    BadInput(
        "prompt template on a regression task",
        TRAIN,
        ("{config}, line ", "tasks[score].prompt_template", "text_to_text tasks do"),
        edit=_set("tasks.1.prompt_template", "Review: {text}"),
    ),
    BadInput(
        "option of another sampler kind",
        TRAIN,
        ("{config}, line ", "training.sampler.temperature", "temperature samplers do"),
        edit=_set("training.sampler", {"kind": "uniform", "temperature": 3.0}),
    ),
    BadInput(
        "option of another balancer kind",
        TRAIN,
        ("{config}, line ", "training.balancer.c", "cagrad balancers do"),
        edit=lambda raw: raw["training"].update(
            step_mode="joint", balancer={"kind": "pcgrad", "c": 0.4}
        ),
    ),
    BadInput(
        "balancer option that no balancer takes",
        TRAIN,
        ("{config}, line ", "training.balancer.options", "unknown key 'options'"),
        edit=lambda raw: raw["training"].update(
            step_mode="joint", balancer={"kind": "cagrad", "options": {"c": 0.4}}
        ),
    ),
    BadInput(
        "option of another sharing kind",
        TRAIN,
        ("{config}, line ", "sharing.r", "lora sharing does"),
        edit=_set("sharing", {"kind": "hard", "r": 4}),
    ),
    BadInput(
        "primary metric that the kind does not report",
        TRAIN,
        ("{config}, line ", "tasks[sentiment].primary_metric", "'acc'", "accuracy, macro_f1"),
        edit=_set("tasks.0.primary_metric", "acc"),
    ),
    BadInput(
        "unknown data preset",
        TRAIN,
        (
            "{config}, line ",
            "tasks[sentiment].data.preset",
            "did you mean 'glue/mrpc'",
            "glue/cola, glue/sst2",
        ),
        edit=_set("tasks.0.data", {"preset": "glue/mrcp"}),
    ),
    BadInput(
        "data preset of another kind than the task's",
        TRAIN,
        ("{config}, line ", "tasks[sentiment].kind", "preset glue/stsb is a regression task"),
        edit=_set("tasks.0.data", {"preset": "glue/stsb"}),
    ),
    BadInput(
        "hub split names without a hub dataset",
        TRAIN,
        ("{config}, line ", "tasks[sentiment].data.splits", "needs data.hub"),
        edit=_set("tasks.0.data.splits", {"test": "validation"}),
    ),
    BadInput(
        "hub split names for an unknown split",
        TRAIN,
        ("{config}, line ", "tasks[sentiment].data.splits.dev", "unknown key 'dev'"),
        edit=_set(
            "tasks.0.data", {"hub": "nyu-mll/glue", "hub_config": "sst2", "splits": {"dev": "x"}}
        ),
    ),
    BadInput(
        "positive label that is not a declared label",
        TRAIN,
        ("{config}, line ", "tasks[sentiment].positive_label", "'good' is not among the labels"),
        edit=lambda raw: raw["tasks"][0].update(labels=["neg", "pos"], positive_label="good"),
    ),
    BadInput(
        "positive label that the data does not have",
        TRAIN,
        ("tasks[sentiment].positive_label", "no label 'good' in the data (labels: neg, pos)"),
        edit=_set("tasks.0.positive_label", "good"),
    ),
    BadInput(
        "label declared twice",
        TRAIN,
        ("{config}, line ", "tasks[sentiment].labels", "'neg' is declared twice"),
        edit=_set("tasks.0.labels", ["neg", "pos", "neg"]),
    ),
    BadInput(
        "yes and no labels declared twice",
        ("train", "{dir}/yes_no.yaml"),
        ("{dir}/yes_no.yaml, line 4", "tasks[answer].labels", "'yes' is declared twice"),
        files={
            "yes_no.yaml": "model: {name_or_path: x}\n"
            "tasks:\n"
            "  - {name: answer, kind: classification, data: {train: t.jsonl},\n"
            "     labels: [yes, no, yes]}\n"
        },
    ),
    BadInput(
        "task name with a newline",
        TRAIN,
        ("{config}, line ", "tasks[0].name", "letters, digits"),
        edit=_set("tasks.0.name", "senti\nment"),
    ),
    BadInput(
        "config file that is not a mapping",
        ("train", "{dir}/list.yaml"),
        ("{dir}/list.yaml",),
        files={"list.yaml": "- one\n- two\n"},
    ),
    BadInput(
        "config file that is not YAML",
        ("train", "{dir}/broken.yaml"),
        ("{dir}/broken.yaml, line 3",),
        files={"broken.yaml": "model: {}\ntasks:\n\t- name: x\n"},
    ),
    BadInput("config file that does not exist", ("train", "{dir}/absent.yaml"), ("absent.yaml",)),
    BadInput(
        "unknown bundled model",
        TRAIN,
        ("model.name_or_path", "'bundled:bert'", "bundled:minilm"),
        edit=_set("model.name_or_path", "bundled:bert"),
    ),
    BadInput(
        "first-token pooling on a decoder",
        TRAIN,
        ("tasks[sentiment].pooling", "causal model", "use last"),
        edit=lambda raw: (
            raw["model"].update(name_or_path="{decoder}"),
            raw["tasks"][0].update(pooling="cls"),
        ),
    ),
    BadInput(
        "multiple choice on a decoder",
        TRAIN,
        ("tasks[sentiment].kind", "multiple_choice works with encoder", "cast the task as"),
        edit=lambda raw: (
            raw["model"].update(name_or_path="{decoder}"),
            raw["tasks"][0].update(kind="multiple_choice", choices_column="text"),
        ),
    ),
    BadInput(
        "model folder without a tokenizer",
        TRAIN,
        ("model.name_or_path", "no tokenizer at", "{dir}/bare"),
        files={"bare/config.json": json.dumps({"model_type": "bert", "vocab_size": 10})},
        edit=_set("model.name_or_path", "{dir}/bare"),
    ),
    BadInput(
        "weights dtype that transformers does not take",
        TRAIN,
        ("model.dtype", "bfloat16"),
        edit=_set("model.dtype", "float8"),
    ),
    # --- data ---------------------------------------------------------------------------------
    BadInput(
        "training file that does not exist",
        TRAIN,
        ("{dir}/absent.jsonl",),
        edit=_set("tasks.0.data.train", "{dir}/absent.jsonl"),
    ),
    BadInput(
        "row that is not JSON",
        TRAIN,
        ("{dir}/bad.jsonl", "line 2"),
        edit=_set("tasks.0.data.train", "{dir}/bad.jsonl"),
        files={"bad.jsonl": '{"text": "good", "label": "pos"}\n{"text": "bad"\n'},
    ),
    BadInput(
        "row without the label column",
        TRAIN,
        ("{dir}/unlabelled.jsonl", "line 2", "label"),
        edit=_set("tasks.0.data.train", "{dir}/unlabelled.jsonl"),
        files={"unlabelled.jsonl": '{"text": "good", "label": "pos"}\n{"text": "bad"}\n'},
    ),
    BadInput(
        "unknown bundled data set",
        TRAIN,
        ("data.bundled", "'sentimnt'", "sentiment"),
        edit=_set("tasks.0.data", {"bundled": "sentimnt"}),
    ),
    BadInput(
        "a list where a text is expected",
        TRAIN,
        ("{dir}/list_text.jsonl, line 2", "column 'text'", "a list ['a', 'b']"),
        edit=_set("tasks.0.data.train", "{dir}/list_text.jsonl"),
        files={
            "list_text.jsonl": _rows(
                '{"text": "good", "label": "pos"}', '{"text": ["a", "b"], "label": "neg"}'
            )
        },
    ),
    BadInput(
        "a list where a label is expected",
        TRAIN,
        ("{dir}/list_label.jsonl, line 3", "column 'label'", "a list"),
        edit=_set("tasks.0.data.train", "{dir}/list_label.jsonl"),
        files={
            "list_label.jsonl": _rows(
                '{"text": "good", "label": "pos"}', "", '{"text": "bad", "label": ["neg"]}'
            )
        },
    ),
    BadInput(
        "an object where a text is expected",
        TRAIN,
        ("{dir}/object_text.jsonl, line 1", "column 'text'", "an object"),
        edit=_set("tasks.0.data.train", "{dir}/object_text.jsonl"),
        files={"object_text.jsonl": _rows('{"text": {"en": "good"}, "label": "pos"}')},
    ),
    BadInput(
        "a list where a tag is expected",
        TRAIN,
        ("{dir}/nested_tags.jsonl, line 1", "column 'tags'"),
        edit=_set("tasks.2.data.train", "{dir}/nested_tags.jsonl"),
        files={"nested_tags.jsonl": _rows('{"tokens": ["a", "film"], "tags": ["DT", ["NN"]]}')},
    ),
    BadInput(
        "NaN in a JSON row",
        TRAIN,
        ("{dir}/nan.jsonl, line 2", "NaN"),
        edit=_set("tasks.1.data.train", "{dir}/nan.jsonl"),
        files={
            "nan.jsonl": _rows('{"text": "good", "score": 1.0}', '{"text": "bad", "score": NaN}')
        },
    ),
    BadInput(
        "a key twice in a JSON row",
        TRAIN,
        ("{dir}/twice.jsonl, line 1", "'label' appears twice"),
        edit=_set("tasks.0.data.train", "{dir}/twice.jsonl"),
        files={"twice.jsonl": _rows('{"text": "good", "label": "pos", "label": "neg"}')},
    ),
    # --- what the config asks of the model and the data (checked before training) ------------
    BadInput(
        "max_length beyond the model's positions",
        TRAIN,
        ("tasks[sentiment].max_length", "100000", "64", "max_position_embeddings"),
        edit=_set("tasks.0.max_length", 100000),
    ),
    BadInput(
        "validation split that no task can have",
        TRAIN,
        ("training.eval_split", "'dev'", "validation"),
        edit=_set("training.eval_split", "dev"),
    ),
    BadInput(
        "final split that no task can have",
        TRAIN,
        ("training.final_eval_split", "'tst'", "did you mean 'test'"),
        edit=_set("training.final_eval_split", "tst"),
    ),
    BadInput(
        "final split that no task has",
        TRAIN,
        ("training.final_eval_split", "no task has a 'test' split", "train, validation"),
        edit=_each_task(lambda task: task["data"].pop("test")),
    ),
    BadInput(
        "final split that no task has, to compare",
        ("compare", "{config}"),
        ("training.final_eval_split", "no task has a 'test' split"),
        edit=_each_task(lambda task: task["data"].pop("test")),
    ),
    # --- saved models -------------------------------------------------------------------------
    BadInput(
        "damaged heads to evaluate",
        EVALUATE,
        ("{model}/heads.safetensors is damaged",),
        files={"run/model/heads.safetensors": "not a safetensors file"},
    ),
    BadInput(
        "truncated backbone to predict with",
        PREDICT,
        ("{model}/model.safetensors is damaged", "Error while deserializing header"),
        files={"run/model/model.safetensors": _truncated_safetensors()},
    ),
    BadInput(
        "invalid mtlm_config.json to export",
        ("export", "--model", "{model}", "--task", "sentiment", "--out", "{dir}/exported"),
        ("{model}/mtlm_config.json is damaged",),
        files={"run/model/mtlm_config.json": '{"format_version": 2, "tasks": '},
    ),
    BadInput(
        "regression on a decoder to export",
        ("export", "--model", "{decoder_model}", "--task", "score", "--out", "{dir}/exported"),
        ("--task", "'score' is a regression", "no bias"),
    ),
    BadInput(
        "Hub repository name that the Hub does not take",
        ("push", "--model", "{model}", "--repo", "me/my/model"),
        ("--repo", "'me/my/model'"),
    ),
    BadInput(
        "folder to push that holds no model",
        ("push", "--model", "{dir}", "--repo", "me/model"),
        ("--model", "{dir}", "mtlm_config.json"),
    ),
    BadInput(
        "mtlm_config.json without tasks",
        EVALUATE,
        ("{model}/mtlm_config.json is damaged", "list of tasks"),
        files={"run/model/mtlm_config.json": '{"format_version": 2}'},
    ),
    BadInput(
        "mtlm_config.json whose task lost its label names",
        EVALUATE,
        ("{model}/mtlm_config.json is damaged", "state has no 'label_names'"),
        files={
            "run/model/mtlm_config.json": json.dumps(
                {
                    "format_version": 2,
                    "tasks": [
                        {
                            "spec": {
                                "name": "sentiment",
                                "kind": "classification",
                                "data": {"train": "t.jsonl"},
                            },
                            "state": {},
                        }
                    ],
                }
            )
        },
    ),
    BadInput(
        "damaged heads behind a routed plan folder",
        ("predict", "--model", "{dir}", "--task", "sentiment", "--input", "{rows}"),
        ("{model}/heads.safetensors is damaged",),
        files={
            "routing.json": '{"tasks": {"sentiment": "run/model"}}',
            "run/model/heads.safetensors": "not a safetensors file",
        },
    ),
    BadInput(
        "bad row to predict named by its line in the file",
        ("predict", "--model", "{model}", "--task", "sentiment", "--input", "{dir}/gaps.jsonl"),
        ("{dir}/gaps.jsonl, line 4", "missing column 'text'"),
        files={"gaps.jsonl": _rows('{"text": "good"}', "", '{"text": "bad"}', '{"txt": "x"}')},
    ),
    BadInput(
        "a list to predict where a text is expected",
        ("predict", "--model", "{model}", "--task", "all", "--input", "{dir}/list_rows.jsonl"),
        ("{dir}/list_rows.jsonl, line 2", "column 'text'", "a list"),
        files={"list_rows.jsonl": _rows('{"text": "good"}', '{"text": ["a", "b"]}')},
    ),
    # --- the command line ---------------------------------------------------------------------
    BadInput("batch size 0 to predict", (*PREDICT, "--batch-size", "0"), ("--batch-size", "0")),
    BadInput("negative batch size to predict", (*PREDICT, "--batch-size", "-1"), ("--batch-size",)),
    BadInput(
        "batch size that is not a number",
        (*PREDICT, "--batch-size", "many"),
        ("--batch-size", "'many'"),
    ),
    BadInput(
        "device that is not one, to predict on",
        (*PREDICT, "--device", "gpu"),
        ("--device", "'gpu' is not a device"),
    ),
    BadInput(
        "malformed device index, to evaluate on",
        (*EVALUATE, "--device", "cuda:x"),
        ("--device", "'cuda:x' is not a device"),
    ),
    BadInput(
        "the meta device, to export on",
        ("export", "--model", "{model}", "--task", "sentiment", "--out", "{dir}/exported")
        + ("--device", "meta"),
        ("--device", "'meta' holds no weights"),
    ),
    BadInput(
        "a GPU the machine does not have",
        (*PREDICT, "--device", "cuda:7"),
        ("--device", "'cuda:7'"),
    ),
    BadInput(
        "a device and a device map together",
        (*EVALUATE, "--device", "cpu", "--device-map", "auto"),
        ("--device-map", "--device", "not both"),
    ),
    BadInput(
        "unknown device map",
        (*PREDICT, "--device-map", "everywhere"),
        ("--device-map", "'everywhere'"),
    ),
    BadInput(
        "an offload folder without a device map",
        (*PREDICT, "--offload-folder", "{dir}/offload"),
        ("--offload-folder", "device map"),
    ),
    BadInput(
        "zero baseline patience",
        ("compare", "{config}", "--baseline-patience", "0"),
        ("--baseline-patience",),
    ),
    BadInput(
        "a baseline epoch maximum below its first cap",
        ("compare", "{config}", "--baseline-epochs", "5", "--baseline-max-epochs", "3"),
        ("--baseline-max-epochs", "--baseline-epochs (5)"),
    ),
    BadInput("negative groups to plan", ("plan", "{config}", "--groups", "-1"), ("--groups",)),
    BadInput(
        "unknown sharing kind to plan",
        ("plan", "{config}", "--sharing", "lora", "shared"),
        ("--sharing", "'shared'", "lora"),
    ),
    BadInput("zero affinity steps", ("affinity", "{config}", "--steps", "0"), ("--steps",)),
    BadInput("measuring every 0th step", ("affinity", "{config}", "--every", "0"), ("--every",)),
    BadInput(
        "negative lookahead step",
        ("affinity", "{config}", "--lookahead-lr", "-0.1"),
        ("--lookahead-lr",),
    ),
    BadInput(
        "infinite lookahead step",
        ("affinity", "{config}", "--lookahead-lr", "inf"),
        ("--lookahead-lr",),
    ),
    BadInput(
        "unknown task to predict",
        ("predict", "--model", "{model}", "--input", "{rows}", "--task", "sentimnt"),
        ("--task", "sentimnt"),
    ),
    BadInput(
        "split that no task has",
        ("evaluate", "--model", "{model}", "--split", "dev"),
        ("--split", "dev"),
    ),
    BadInput(
        "model folder that does not exist",
        ("evaluate", "--model", "{dir}/absent"),
        ("{dir}/absent",),
    ),
    BadInput(
        "rows file that does not exist",
        ("predict", "--model", "{model}", "--task", "all", "--input", "{dir}/absent.jsonl"),
        ("{dir}/absent.jsonl",),
    ),
    BadInput("zero seeds to compare", ("compare", "{config}", "--seeds", "0"), ("--seeds",)),
    BadInput(
        "required flag left out",
        ("predict", "--model", "{model}", "--input", "{rows}"),
        ("mtlm predict", "--task"),
    ),
    BadInput("unknown command", ("trian", "{config}"), ("trian", "train")),
    BadInput("unknown flag", ("train", "{config}", "--max-step", "3"), ("--max-step",)),
    BadInput(
        "demo config that is neither packaged nor a file",
        ("demo", "--config", "dmeo", "--output-dir", "{dir}/demo"),
        ("--config", "dmeo", "demo_text_to_text"),
    ),
    BadInput(
        "misspelt key in a demo config file",
        ("demo", "--config", "{config}", "--output-dir", "{dir}/demo"),
        ("{config}", "training.learning_rat"),
        edit=_set("training.learning_rat", 0.1),
    ),
    # --- where mtlm writes: never over what it did not write -----------------------------------
    BadInput(
        "export into a folder of the user's files",
        ("export", "--model", "{model}", "--task", "sentiment", "--out", "{dir}/mine"),
        ("--out", "{dir}/mine", "thesis.tex", "not an earlier export"),
        files={"mine/thesis.tex": "years of work"},
    ),
    BadInput(
        "export to a path under a file",
        ("export", "--model", "{model}", "--task", "sentiment", "--out", "{dir}/rows.jsonl/x"),
        ("--out", "{dir}/rows.jsonl is a file"),
    ),
    BadInput(
        "overwrite_output_dir on a folder of the user's files",
        TRAIN,
        ("training.output_dir", "{dir}/data", "not an mtlm run"),
        edit=lambda raw: raw["training"].update(output_dir="{dir}/data", overwrite_output_dir=True),
    ),
    BadInput(
        "overwrite_output_dir on a run that also holds the user's files",
        TRAIN,
        ("training.output_dir", "{dir}/run", "notes.txt"),
        edit=lambda raw: raw["training"].update(output_dir="{dir}/run", overwrite_output_dir=True),
        files={"run/notes.txt": "what I tried"},
    ),
    BadInput(
        "training into a finished run",
        TRAIN,
        ("training.output_dir", "{dir}/run", "overwrite_output_dir"),
        edit=_set("training.output_dir", "{dir}/run"),
    ),
    BadInput(
        "training again into a run stopped before its first checkpoint",
        TRAIN,
        ("training.output_dir", "{dir}/stopped", "pass --resume to train it again"),
        edit=_set("training.output_dir", "{dir}/stopped"),
        files={"stopped/experiment_config.json": "{}", "stopped/metrics.jsonl": ""},
    ),
    BadInput(
        "resume of a finished run without a checkpoint",
        (*TRAIN, "--resume"),
        ("--resume", "{dir}/run", "finished run"),
        edit=_set("training.output_dir", "{dir}/run"),
    ),
    BadInput(
        "training a fine-tuning stage into a run whose multi-task stage finished",
        TRAIN,
        ("training.output_dir", "{dir}/run", "pass --resume to fine-tune"),
        edit=lambda raw: raw["training"].update(output_dir="{dir}/run", finetune={"r": 4}),
    ),
    BadInput(
        "resume in a folder of the user's files",
        (*TRAIN, "--resume"),
        ("training.output_dir", "{dir}/data", "not an mtlm run"),
        edit=_set("training.output_dir", "{dir}/data"),
    ),
    BadInput(
        "output_dir under a regular file",
        TRAIN,
        ("training.output_dir", "{dir}/rows.jsonl is a file"),
        edit=_set("training.output_dir", "{dir}/rows.jsonl/out"),
    ),
    BadInput(
        "--output-dir under a regular file",
        (*TRAIN, "--output-dir", "{dir}/rows.jsonl/out"),
        ("--output-dir", "{dir}/rows.jsonl is a file"),
    ),
    BadInput(
        "evaluate --output onto the user's file",
        ("evaluate", "--model", "{model}", "--output", "{dir}/rows.jsonl"),
        ("--output", "{dir}/rows.jsonl", "not a results file"),
    ),
    BadInput(
        "predict --output onto the rows it reads",
        (*PREDICT, "--output", "{rows}"),
        ("--output", "{rows}", "not a predictions file"),
    ),
    BadInput(
        "predict --output onto the user's notes",
        (*PREDICT, "--output", "{dir}/notes.txt"),
        ("--output", "{dir}/notes.txt", "not a predictions file"),
        files={"notes.txt": "keep me\n"},
    ),
    BadInput(
        "compare into the folder of another config's stopped run",
        ("compare", "{config}", "--output-dir", "{dir}/compared"),
        ("--output-dir", "{dir}/compared", "another config"),
        files={
            "compared/multitask/seed-42/experiment_config.json": '{"tasks": []}',
            "compared/multitask/seed-42/metrics.jsonl": "",
        },
    ),
]


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, tiny_decoder_dir: Path
) -> Path:
    """Task files, trained runs on an encoder and a decoder, and rows to predict, copied into
    every case's folder."""
    root = tmp_path_factory.mktemp("bad-inputs")
    files = write_task_files(root)
    for model_dir, run in ((tiny_model_dir, "run"), (tiny_decoder_dir, "decoder-run")):
        config = three_task_config(
            model_dir, files, root, max_steps=4, eval_steps=None, output_dir=str(root / run)
        )
        Trainer(config).train()
    rows = [{"text": "the movie was great"}, {"text": "a dull plot"}]
    (root / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


def good_config(case_dir: Path, model_dir: Path, cache_dir: Path) -> dict[str, Any]:
    """The config that trains without error in `case_dir`, as YAML would read it."""
    config = three_task_config(
        model_dir,
        write_task_files(case_dir),
        case_dir,
        max_steps=2,
        output_dir=str(case_dir / "out"),
    )
    raw = config.model_dump(mode="json", exclude_defaults=True)
    raw["cache_dir"] = str(cache_dir)
    return raw


def snapshot(folder: Path) -> dict[str, Any]:
    """Every file and folder under `folder` with its content hash and permission bits."""
    found: dict[str, Any] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_dir():
            found[key] = ("dir", path.stat().st_mode)
        else:
            found[key] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mode)
    return found


def _filled(text: str, places: dict[str, str]) -> str:
    for key, value in places.items():
        text = text.replace("{" + key + "}", value)
    return text


def _fill_all(value: Any, places: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _filled(value, places)
    if isinstance(value, list):
        return [_fill_all(item, places) for item in value]
    if isinstance(value, dict):
        return {key: _fill_all(item, places) for key, item in value.items()}
    return value


def test_the_catalogue_is_large_enough():
    names = [case.name for case in CATALOGUE]
    assert len(names) == len(set(names)), "two entries with one name"
    assert len(CATALOGUE) >= 102


@pytest.mark.parametrize("case", CATALOGUE, ids=[case.name for case in CATALOGUE])
def test_bad_input(
    case: BadInput, workspace: Path, tiny_model_dir: Path, tiny_decoder_dir: Path, tmp_path: Path
):
    case_dir = tmp_path / "case"
    shutil.copytree(workspace, case_dir)
    places = {
        "dir": str(case_dir),
        "config": str(case_dir / "config.yaml"),
        "run": str(case_dir / "run"),
        "model": str(case_dir / "run" / "model"),
        "rows": str(case_dir / "rows.jsonl"),
        "decoder": str(tiny_decoder_dir),
        "decoder_model": str(case_dir / "decoder-run" / "model"),
    }
    raw = good_config(case_dir, tiny_model_dir, tmp_path / "features")
    config_from_dict(raw)  # the unedited config is valid: the edit alone is at fault
    if case.edit is not None:
        case.edit(raw)
    (case_dir / "config.yaml").write_text(yaml.safe_dump(_fill_all(raw, places)))
    for name, text in case.files.items():
        (case_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (case_dir / name).write_text(_filled(text, places))
    before = snapshot(case_dir)

    process = subprocess.run(
        [str(MTLM), *(_filled(arg, places) for arg in case.command)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=case_dir,
        env={**os.environ, **case.environment},
    )

    assert process.returncode == 2, process.stderr[-2000:]
    assert process.stderr.startswith("mtlm: error: ") and process.stderr.count("\n") == 1, (
        process.stderr[-2000:]
    )
    for text in case.names:
        assert _filled(text, places) in process.stderr
    assert process.stdout == ""
    assert snapshot(case_dir) == before, "the command wrote, changed or deleted files"
